"""The instructor's manual feed (``POST /sim/v1/market``), guarded like a live feed.

Two rules, the live feeds' (``market_guard``, ``feeds.FeedSupervisor``) applied to injected data:

1. **Bad-tick band** (``off_band``): an injected ``Trade``, ``MarkPrice`` or ``IndexPrice`` whose
   price lies outside ``band`` around the *reference*, or a book (snapshot or delta) whose top
   would lie outside it (a bid above ``ref × (1 + band)``, an ask below ``ref × (1 − band)``), is
   refused with a message saying why; nothing of the request is applied. The reference is the
   core's own market state (its mark, else its last trade, else its book's mid), so it follows
   every price the core took, whatever the source (the dashboard's staged shock, a lesson, a live
   feed), and moves with each accepted event of the request. A market with no price yet has no
   reference: anything is accepted. A deliberate shock stays possible: ``force`` skips the band
   (the admin API's ``"force": true``; the dashboard's staged shock and the lessons submit their
   prices to the node directly, as deliberate moves).
2. **Staleness** (``ManualFeed``): a symbol that got no price (trade, mark, index or book, from any
   source) for ``stale_after`` seconds is marked stale (``FeedStatus(stale=True)``: the margin
   monitor holds, market orders are refused) and fresh again right after its next price.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from exchange_sim.core.fixed import SCALE
from exchange_sim.core.messages import BookDelta, BookSnapshot, FeedStatus, IndexPrice, MarkPrice, Trade

log = logging.getLogger(__name__)

PRICE_EVENTS = (Trade, MarkPrice, IndexPrice, BookSnapshot, BookDelta)


def _reference(view: Any) -> int:
    """The core's reference price of a market: mark, else last trade, else book mid (0: none)."""
    if view is None:
        return 0
    if view.mark:
        return view.mark
    if view.last_price:
        return view.last_price
    if view.best_bid and view.best_ask:
        return (view.best_bid + view.best_ask) // 2
    return 0


def _percent(price: int, ref: int) -> str:
    return f"{abs(price - ref) * 100 / ref:.1f}%"


def off_band(msgs: Iterable[Any], market_view: Callable[[str], Any], band: int) -> str | None:
    """Why the first of ``msgs`` outside the bad-tick band is refused (rule 1), None if all are in.

    ``market_view(symbol)`` is the core's ``Exchange.market``; ``band`` a fixed-point fraction.
    """
    if band <= 0:
        return None
    refs: dict[str, int] = {}
    marked: dict[str, bool] = {}
    for msg in msgs:
        if not isinstance(msg, PRICE_EVENTS):
            continue
        symbol = msg.symbol
        if symbol not in refs:
            view = market_view(symbol)
            refs[symbol], marked[symbol] = _reference(view), bool(view is not None and view.mark)
        ref = refs[symbol]
        hi, lo = ref + ref * band // SCALE, ref - ref * band // SCALE
        band_text = f"{band * 100 / SCALE:g}%"
        if isinstance(msg, (Trade, MarkPrice, IndexPrice)):
            price = msg.mark if isinstance(msg, MarkPrice) else msg.price
            if ref and not lo <= price <= hi:
                kind = type(msg).__name__
                return (f"{kind} {price / SCALE:g} for {symbol} is {_percent(price, ref)} from the reference "
                        f"{ref / SCALE:g}, outside the bad-tick band of {band_text}; refused as a bad tick. "
                        'Send "force": true to move the market on purpose.')
            if isinstance(msg, MarkPrice) or (isinstance(msg, Trade) and not marked[symbol]) or not ref:
                refs[symbol] = price
                marked[symbol] = marked[symbol] or isinstance(msg, MarkPrice)
            continue
        bids = [p for p, q in msg.bids if q > 0]
        asks = [p for p, q in msg.asks if q > 0]
        if ref:
            bad_bid = next((p for p in bids if p > hi), None)
            bad_ask = next((p for p in asks if p < lo), None)
            if bad_bid is not None or bad_ask is not None:
                side, price = ("bid", bad_bid) if bad_bid is not None else ("ask", bad_ask)
                return (f"book {side} {price / SCALE:g} for {symbol} is {_percent(price, ref)} from the reference "
                        f"{ref / SCALE:g}, outside the bad-tick band of {band_text}; refused as a bad tick. "
                        'Send "force": true to move the market on purpose.')
        elif bids and asks and isinstance(msg, BookSnapshot):
            refs[symbol] = (max(bids) + min(asks)) // 2
    return None


class ManualFeed:
    """Marks a symbol stale after ``stale_after`` seconds without prices, fresh after the next one.

    A node listener (``node.add_listener(feed)``) notes every price the core takes; ``start``
    runs the watchdog. Only for sessions without a live feed: a live feed's supervisor owns
    staleness there.
    """

    def __init__(self, node: Any, symbols: Iterable[str], stale_after: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.node = node
        self.symbols = tuple(symbols)
        self.stale_after = stale_after
        self._clock = clock
        now = clock()
        self._last_price = {s: now for s in self.symbols}
        self.stale: dict[str, bool] = {s: False for s in self.symbols}
        self._freshening: set[str] = set()
        self._task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()

    def __call__(self, msg: Any, events: list) -> None:
        if isinstance(msg, PRICE_EVENTS) and msg.symbol in self._last_price:
            self._last_price[msg.symbol] = self._clock()
            if self.stale[msg.symbol] and msg.symbol not in self._freshening:
                self._freshening.add(msg.symbol)  # cannot submit from inside the consumer: right after
                self._spawn(self._set(msg.symbol, False, "fresh data", ts=msg.ts))

    async def start(self) -> None:
        self.node.add_listener(self)
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="manual-feed-watchdog")

    async def stop(self) -> None:
        self.node.remove_listener(self)
        for task in (self._task, *self._tasks):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self) -> None:
        interval = max(self.stale_after / 4.0, 0.01)
        while True:
            await asyncio.sleep(interval)
            now = self._clock()
            for s in self.symbols:
                idle = now - self._last_price[s]
                if not self.stale[s] and idle >= self.stale_after:
                    await self._set(s, True, f"no market data for {idle:.1f}s (manual feed)")

    async def _set(self, symbol: str, stale: bool, reason: str, ts: int | None = None) -> None:
        try:
            if ts is None:
                view = self.node.exchange.market(symbol)
                ts = max(view.ts, time.time_ns() // 1_000_000) if view is not None else time.time_ns() // 1_000_000
            self.stale[symbol] = stale
            await self.node.submit(FeedStatus(ts=ts, symbol=symbol, stale=stale, reason=reason))
            log.info("manual feed: %s %s (%s)", symbol, "stale" if stale else "fresh", reason)
        except Exception as exc:  # noqa: BLE001 - a stopped or failed node: the next round tries again
            log.warning("manual feed: could not mark %s %s: %s", symbol, "stale" if stale else "fresh", exc)
        finally:
            self._freshening.discard(symbol)

"""Market data from any venue ccxt.pro supports, mapped to the simulator's instruments.

    async with CcxtProFeed("binanceusdm", ["BTCUSDT"], config={...}) as feed:
        async for event in feed:
            ...

Per instrument, concurrent watchers (each a loop around one ccxt.pro call):

- ``watch_order_book`` → the first book as a ``BookSnapshot``, then each new state as a
  ``BookDelta`` of the levels that changed within the top ``book_depth`` (levels leaving that
  window are deleted). Update ids are ccxt's ``nonce`` (Binance: the diff's ``u``), chained
  through ``prev_final_update_id``;
- ``watch_trades`` → ``Trade`` (taker side = ccxt's ``side``);
- ``watch_mark_price`` where the venue has it (else the ``markPrice`` of ``watch_ticker`` when
  the venue reports one) → ``MarkPrice`` with index, funding rate and next funding time when the
  venue's payload carries them (Binance ``r``/``T``), and a ``Funding`` settlement when the next
  funding time moves past a settlement instant (``binance_wire.FundingTracker``).

Symbols: ``"BTCUSDT"`` is found among the venue's linear perpetual swaps by base/quote
(``"BTC/USDT:USDT"``), or given explicitly with ``symbol_map={"BTCUSDT": "BTC/USDT:USDT"}``.
ccxt's own reconnection is not relied on: any ccxt ``NetworkError`` ends the feed with
``FeedDisconnected`` and the runtime's loop opens a new one (with a fresh book).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any, Self

from exchange_sim.core.fixed import to_fixed
from exchange_sim.core.messages import BUY, SELL, BookDelta, BookSnapshot, MarkPrice, Trade

from .base import (
    CONNECTED,
    FeedDisconnected,
    FeedError,
    FeedFormatError,
    FeedSignal,
    FeedSpecError,
    check_symbols,
    wall_ms,
)
from .binance_wire import FundingTracker

log = logging.getLogger(__name__)


def _fx(value: Any) -> int:
    """A ccxt number (float, int or text) as fixed units, rounded to 8 decimals."""
    try:
        d = Decimal(repr(value) if isinstance(value, float) else str(value))
        return to_fixed(d.quantize(Decimal("1e-8")))
    except Exception:  # noqa: BLE001 - any unreadable number from a venue
        raise FeedFormatError(f"bad number from venue: {value!r}") from None


def _fx_or_none(value: Any) -> int | None:
    return None if value in (None, "") else _fx(value)


def _levels(rows: Any, depth: int) -> dict[int, int]:
    out: dict[int, int] = {}
    for row in list(rows)[:depth]:
        p, q = _fx(row[0]), _fx(row[1])
        if q > 0:
            out[p] = q
    return out


def _diff(old: dict[int, int], new: dict[int, int]) -> tuple[tuple[int, int], ...]:
    changed = [(p, q) for p, q in new.items() if old.get(p) != q]
    changed += [(p, 0) for p in old if p not in new]
    return tuple(sorted(changed))


class CcxtProFeed:
    """A ccxt.pro venue as an async iterator of core events (see the module docstring)."""

    def __init__(self, exchange_id: str, symbols: Sequence[str], *, config: dict[str, Any] | None = None,
                 symbol_map: dict[str, str] | None = None, book: bool = True, trades: bool = True,
                 mark: bool = True, book_depth: int = 100, exchange: Any = None) -> None:
        self.exchange_id = exchange_id
        self.symbols = check_symbols(symbols)
        self.config = dict(config or {})
        self.symbol_map = {k.upper(): v for k, v in (symbol_map or {}).items()}
        self.book, self.trades, self.mark = book, trades, mark
        self.book_depth = book_depth
        self.exchange = exchange
        self._own_exchange = exchange is None
        self.venue_symbols: dict[str, str] = {}
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.funding = FundingTracker()

    async def __aenter__(self) -> Self:
        import ccxt
        import ccxt.pro as ccxtpro

        if self.exchange is None:
            cls = getattr(ccxtpro, self.exchange_id, None)
            if cls is None:
                raise FeedSpecError(f"ccxt.pro has no exchange {self.exchange_id!r}")
            self.exchange = cls(self.config)
        try:
            await self.exchange.load_markets()
            self.venue_symbols = {s: self._venue_symbol(s) for s in self.symbols}
        except FeedError:
            await self.aclose()
            raise
        except ccxt.NetworkError as exc:
            await self.aclose()
            raise FeedDisconnected(f"{self.exchange_id}: cannot load markets: {exc}") from None
        except ccxt.BaseError as exc:
            await self.aclose()
            raise FeedSpecError(f"{self.exchange_id}: {exc}") from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the watchers and close the venue's connections (when this feed created them)."""
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.exchange is not None and self._own_exchange:
            try:
                await self.exchange.close()
            except Exception:  # closing anyway; the venue's own error is of no use here
                log.debug("%s: close failed", self.exchange_id, exc_info=True)
            self.exchange = None

    def _venue_symbol(self, symbol: str) -> str:
        """The venue's unified symbol for a simulator instrument."""
        if symbol in self.symbol_map:
            vs = self.symbol_map[symbol]
            if vs not in self.exchange.markets:
                raise FeedSpecError(f"{self.exchange_id} has no market {vs!r}")
            return vs
        candidates = []
        for vs, m in self.exchange.markets.items():
            plain = f"{m.get('base', '')}{m.get('quote', '')}".upper()
            if plain == symbol or str(m.get("id", "")).upper() == symbol:
                candidates.append((0 if (m.get("swap") and m.get("linear")) else 1, vs))
        if not candidates:
            raise FeedSpecError(f"{self.exchange_id} has no market for {symbol}")
        return min(candidates)[1]

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._run()

    async def _run(self) -> AsyncIterator[Any]:
        if not self.venue_symbols:
            raise FeedError("use 'async with CcxtProFeed(...)' before iterating")
        yield FeedSignal(ts=wall_ms(), symbol=",".join(self.symbols), kind=CONNECTED, detail=self.exchange_id)
        has = self.exchange.has
        for sym, vs in self.venue_symbols.items():
            if self.book:
                self._spawn(self._watch_book(sym, vs))
            if self.trades:
                self._spawn(self._watch_trades(sym, vs))
            if self.mark and has.get("watchMarkPrice"):
                self._spawn(self._watch_mark(sym, vs, "watch_mark_price"))
            elif self.mark and has.get("watchTicker"):
                self._spawn(self._watch_mark(sym, vs, "watch_ticker"))
        while True:
            item = await self._queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    def _spawn(self, coro: Any) -> None:
        self._tasks.append(asyncio.create_task(self._guarded(coro)))

    async def _guarded(self, coro: Any) -> None:
        import ccxt

        try:
            await coro
        except asyncio.CancelledError:
            raise
        except FeedError as exc:
            self._queue.put_nowait(exc)
        except ccxt.NetworkError as exc:
            self._queue.put_nowait(FeedDisconnected(f"{self.exchange_id}: {type(exc).__name__}: {exc}"))
        except ccxt.BaseError as exc:
            self._queue.put_nowait(FeedError(f"{self.exchange_id}: {type(exc).__name__}: {exc}"))
        except (OSError, ConnectionError) as exc:
            self._queue.put_nowait(FeedDisconnected(f"{self.exchange_id}: {exc!r}"))

    async def _watch_book(self, symbol: str, venue_symbol: str) -> None:
        bids: dict[int, int] | None = None
        asks: dict[int, int] = {}
        last_nonce = 0
        while True:
            ob = await self.exchange.watch_order_book(venue_symbol)
            ts = int(ob.get("timestamp") or wall_ms())
            nonce = int(ob.get("nonce") or 0)
            new_bids = _levels(ob["bids"], self.book_depth)
            new_asks = _levels(ob["asks"], self.book_depth)
            if bids is None:
                self._queue.put_nowait(BookSnapshot(
                    ts=ts, symbol=symbol, bids=tuple(sorted(new_bids.items(), reverse=True)),
                    asks=tuple(sorted(new_asks.items())), update_id=nonce))
            else:
                db, da = _diff(bids, new_bids), _diff(asks, new_asks)
                if db or da or nonce != last_nonce:
                    self._queue.put_nowait(BookDelta(ts=ts, symbol=symbol, bids=db, asks=da,
                                                     first_update_id=last_nonce + 1 if nonce else 0,
                                                     final_update_id=nonce, prev_final_update_id=last_nonce))
            bids, asks, last_nonce = new_bids, new_asks, nonce

    async def _watch_trades(self, symbol: str, venue_symbol: str) -> None:
        last_id = None
        while True:
            trades = await self.exchange.watch_trades(venue_symbol)
            for t in trades:
                tid = t.get("id")
                if tid is not None and tid == last_id:
                    continue
                last_id = tid
                try:
                    trade_id = int(tid) if tid is not None else 0
                except ValueError:
                    trade_id = 0
                self._queue.put_nowait(Trade(ts=int(t.get("timestamp") or wall_ms()), symbol=symbol,
                                             price=_fx(t["price"]), qty=_fx(t["amount"]),
                                             taker_side=SELL if t.get("side") == "sell" else BUY,
                                             trade_id=trade_id))

    async def _watch_mark(self, symbol: str, venue_symbol: str, method: str) -> None:
        watch = getattr(self.exchange, method)
        while True:
            tk = await watch(venue_symbol)
            info = tk.get("info") or {}
            mark = tk.get("markPrice") or (info.get("p") if info.get("e") == "markPriceUpdate" else None)
            if mark in (None, ""):
                continue
            nxt = info.get("T") if info.get("e") == "markPriceUpdate" else info.get("nextFundingTime")
            ev = MarkPrice(ts=int(tk.get("timestamp") or wall_ms()), symbol=symbol, mark=_fx(mark),
                           index=_fx_or_none(tk.get("indexPrice") or info.get("i")),
                           funding_rate=_fx_or_none(info["r"] if "r" in info else info.get("fundingRate")),
                           next_funding_ts=int(nxt) if nxt not in (None, "", 0) else None)
            for out in self.funding.on_mark(ev):
                self._queue.put_nowait(out)

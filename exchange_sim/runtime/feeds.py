"""The feed supervisor: one visible loop that keeps a market-data feed flowing into the node.

    supervisor = FeedSupervisor(node, lambda: open_feed("binance", ["BTCUSDT"]), ["BTCUSDT"])
    await supervisor.start()
    ...
    await supervisor.stop()

What it does, per feed item:

- ``FeedSignal`` (connected / gap / resync / held / released) → a ``FeedNotice``, never submitted
  to the core; ``held`` (one of the feed's connections is down) also marks the symbol stale at
  once, and it stays stale until the feed says ``released``;
- a market event → the bad-tick guard (``market_guard.MarketGuard``): dropped ticks are counted
  and announced, never submitted; a book that stays crossed makes the supervisor reopen the feed
  (a fresh snapshot: a resync);
- before the first good event of a symbol marked stale, ``FeedStatus(stale=False)`` is submitted;
  then ``await node.submit(event)``.

Around it:

- **reconnect**: when the feed raises ``FeedError`` (connection lost, bad data; any other exception
  is logged, counted under ``errors`` and treated the same) or ends while
  ``restart_on_end`` is set, every symbol is marked stale at once ("feed disconnected") and the
  feed is opened again after an exponential backoff with jitter
  (``min(backoff_max, backoff_initial × factor^n) × (1 ± jitter)``, the jitter drawn from an
  injectable ``random.Random``); the attempt counter resets once data flows again. A
  ``FeedSpecError`` (bad configuration) is not retried.
- **stale watchdog**: a symbol with no accepted update for ``stale_after`` seconds gets
  ``FeedStatus(stale=True)``: the core then holds liquidations and rejects market orders until
  fresh data arrives.
- **after a resync** the new ``BookSnapshot`` goes to the core, which never fills resting orders
  on a snapshot (the jump itself fills nothing).

Every reconnect, gap, resync, drop and stale change is a ``FeedNotice`` (kept in ``recent``,
pushed to ``subscribe()`` queues and the optional ``on_notice`` callback) and counted in
``counters``. FeedStatus timestamps are the symbol's last exchange timestamp plus the wall time
elapsed since it arrived (market time, also when replaying history).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

from exchange_sim.core.messages import FeedStatus
from feeds.base import FeedError, FeedSignal, FeedSpecError, is_market_event

from .market_guard import GuardConfig, MarketGuard

log = logging.getLogger(__name__)

# FeedNotice kinds
CONNECTED, DISCONNECTED, RECONNECT, GAP, RESYNC = "connected", "disconnected", "reconnect", "gap", "resync"
HELD, RELEASED = "held", "released"
STALE, FRESH, DROPPED, CROSSED, REANCHOR = "stale", "fresh", "dropped", "crossed", "reanchor"
ENDED, ERROR, STOPPED = "ended", "error", "stopped"
_COUNTER_OF = {DROPPED: "dropped", CROSSED: "crossed", REANCHOR: "reanchors"}


@dataclass(frozen=True, slots=True)
class FeedNotice:
    """Something the runtime should announce about a feed (publishable like a core event)."""

    ts: int
    symbol: str
    kind: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SupervisorConfig:
    """Reconnect, staleness and bad-tick settings of one supervised feed (times in seconds)."""

    stale_after: float = 10.0
    watchdog_interval: float | None = None  # default: stale_after / 4
    stale_on_disconnect: bool = True
    backoff_initial: float = 0.5
    backoff_factor: float = 2.0
    backoff_max: float = 30.0
    jitter: float = 0.25
    max_reconnects: int | None = None  # None = keep trying
    restart_on_end: bool = False  # live feeds: an ended stream is a disconnect
    guard: GuardConfig = field(default_factory=GuardConfig)
    recent_notices: int = 1000


class Submitter(Protocol):
    async def submit(self, msg: Any) -> list: ...


FeedFactory = Callable[[], Any]


class _Resync(Exception):
    """Internal: leave the current feed and open a fresh one now."""


class FeedSupervisor:
    """Drives a node from one feed (see the module docstring)."""

    def __init__(self, node: Submitter, open_feed: FeedFactory, symbols: Iterable[str],
                 config: SupervisorConfig = SupervisorConfig(), *, rng: random.Random | None = None,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 on_notice: Callable[[FeedNotice], Any] | None = None, name: str = "feed") -> None:
        self.node = node
        self.open_feed = open_feed
        self.symbols = tuple(s.upper() for s in symbols)
        self.config = config
        self.rng = rng if rng is not None else random.Random(0)
        self._sleep = sleep
        self._clock = clock
        self.on_notice = on_notice
        self.name = name
        self.guard = MarketGuard(config.guard)
        self.counters: Counter[str] = Counter()
        self.recent: deque[FeedNotice] = deque(maxlen=config.recent_notices)
        self.stale: dict[str, bool] = {s: False for s in self.symbols}
        self.running = False
        self.done = asyncio.Event()
        self.error: BaseException | None = None
        self._last_seen: dict[str, float] = {}
        self._last_ts: dict[str, int] = {}
        self._held: set[str] = set()  # symbols the feed holds (FeedSignal "held"): stale until "released"
        self._subscribers: list[asyncio.Queue[FeedNotice]] = []
        self._task: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._attempt = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the feed loop and the stale watchdog (idempotent)."""
        if self.running:
            return
        self.running = True
        self.done.clear()
        now = self._clock()
        for s in self.symbols:
            self._last_seen.setdefault(s, now)
        self._task = asyncio.create_task(self.run(), name=f"{self.name}-supervisor")
        self._watchdog = asyncio.create_task(self._watch(), name=f"{self.name}-watchdog")

    async def stop(self) -> None:
        """Stop the loop and the watchdog, closing the feed (its ``async with`` exits)."""
        self.running = False
        for task in (self._task, self._watchdog):
            if task is not None and not task.done():
                task.cancel()
        for task in (self._task, self._watchdog):
            if task is not None:
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                except Exception:
                    log.exception("feed supervisor %s: task failed", self.name)
        self._task = self._watchdog = None
        self.done.set()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def subscribe(self, maxsize: int = 1000) -> asyncio.Queue[FeedNotice]:
        """A bounded queue receiving every FeedNotice (dropped for this queue when it is full)."""
        q: asyncio.Queue[FeedNotice] = asyncio.Queue(maxsize=maxsize)
        self._subscribers.append(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[FeedNotice]) -> None:
        if q in self._subscribers:
            self._subscribers.remove(q)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before reconnect attempt ``attempt`` (0-based), jitter included."""
        c = self.config
        base = min(c.backoff_max, c.backoff_initial * c.backoff_factor ** attempt)
        return max(0.0, base * (1.0 + c.jitter * (2.0 * self.rng.random() - 1.0)))

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        """The reconnect loop: open the feed, pump it, and on failure back off and reopen."""
        try:
            while self.running:
                delay = 0.0
                try:
                    await self._pump()
                    if not self.config.restart_on_end:
                        self._notice(self._now_ts(""), "", ENDED, "the feed ended")
                        break
                    raise FeedError("the feed ended")
                except _Resync:
                    self.counters["resyncs"] += 1
                    delay = self.backoff(self._attempt)  # data flowed, so usually the first step
                    self._attempt += 1
                except FeedSpecError as exc:
                    self.error = exc
                    self.counters["errors"] += 1
                    self._notice(self._now_ts(""), "", ERROR, str(exc))
                    break
                except FeedError as exc:
                    self.counters["disconnects"] += 1
                    self._notice(self._now_ts(""), "", DISCONNECTED, str(exc))
                    delay = self.backoff(self._attempt)
                    self._attempt += 1
                except _NodeGone:
                    raise
                except Exception as exc:  # an untranslated error in a feed: say so, then retry like a drop
                    log.exception("feed %s failed", self.name)
                    self.error = exc
                    self.counters["errors"] += 1
                    self._notice(self._now_ts(""), "", ERROR, f"{type(exc).__name__}: {exc}")
                    delay = self.backoff(self._attempt)
                    self._attempt += 1
                self._held.clear()
                if self.config.stale_on_disconnect:
                    for s in self.symbols:
                        await self._set_stale(s, True, "feed disconnected")
                for s in self.symbols:
                    self.guard.reset(s)
                limit = self.config.max_reconnects
                if limit is not None and self.counters["reconnects"] >= limit:
                    self._notice(self._now_ts(""), "", ERROR, f"gave up after {limit} reconnects")
                    break
                if not self.running:
                    break
                self.counters["reconnects"] += 1
                self._notice(self._now_ts(""), "", RECONNECT, f"reopening in {delay:.2f}s")
                if delay:
                    await self._sleep(delay)
        except _NodeGone:
            pass
        finally:
            self.running = False
            self.done.set()
            if self._watchdog is not None and self._watchdog is not asyncio.current_task():
                self._watchdog.cancel()

    async def _pump(self) -> None:
        feed = self.open_feed()
        if hasattr(feed, "__aenter__"):
            async with feed as entered:
                await self._drain(entered if entered is not None else feed)
        else:
            try:
                await self._drain(feed)
            finally:
                close = getattr(feed, "aclose", None)
                if close is not None:
                    await close()

    async def _drain(self, feed: Any) -> None:
        items = feed.__aiter__()
        try:
            async for item in items:
                if isinstance(item, FeedSignal):
                    await self._signal(item)
                elif is_market_event(item):
                    await self._market(item)
                else:
                    self.counters["ignored"] += 1
        finally:
            close = getattr(items, "aclose", None)
            if close is not None:
                await close()

    async def _signal(self, sig: FeedSignal) -> None:
        kind = {"connected": CONNECTED, "gap": GAP, "resync": RESYNC}.get(sig.kind, sig.kind)
        self.counters[{CONNECTED: "connects", GAP: "gaps", RESYNC: "resyncs"}.get(kind, kind)] += 1
        self._notice(sig.ts, sig.symbol, kind, sig.detail)
        if kind == HELD and sig.symbol in self.stale:
            self._held.add(sig.symbol)
            await self._set_stale(sig.symbol, True, sig.detail)
        elif kind == RELEASED:
            self._held.discard(sig.symbol)  # the next accepted event marks it fresh

    async def _market(self, event: Any) -> None:
        self.counters["events_in"] += 1
        verdict = self.guard.check(event)
        symbol = event.symbol
        for kind, detail in verdict.notes:
            self.counters[_COUNTER_OF.get(kind, kind)] += 1
            self._notice(event.ts, symbol, kind, detail)
        if verdict.resync:
            raise _Resync()
        if verdict.event is None:
            return
        self._attempt = 0
        self._last_seen[symbol] = self._clock()
        self._last_ts[symbol] = max(self._last_ts.get(symbol, 0), int(event.ts))
        if self.stale.get(symbol) and symbol not in self._held:
            await self._set_stale(symbol, False, "fresh data")
        await self._submit(verdict.event)
        self.counters["submitted"] += 1

    async def _submit(self, msg: Any) -> list:
        from .node import NodeStopped

        try:
            return await self.node.submit(msg)
        except NodeStopped:
            self._notice(self._now_ts(getattr(msg, "symbol", "")), "", STOPPED, "node stopped")
            raise _NodeGone() from None
        except Exception:  # a journal or core failure: count it, keep the feed going
            self.counters["submit_errors"] += 1
            log.exception("submit of %s failed", type(msg).__name__)
            return []

    # ------------------------------------------------------------------ staleness
    async def _watch(self) -> None:
        interval = self.config.watchdog_interval or max(self.config.stale_after / 4.0, 0.01)
        while self.running:
            await self._sleep(interval)
            now = self._clock()
            for s in self.symbols:
                if not self.stale.get(s) and now - self._last_seen.get(s, now) >= self.config.stale_after:
                    idle = now - self._last_seen.get(s, now)
                    try:
                        await self._set_stale(s, True, f"no market data for {idle:.1f}s")
                    except _NodeGone:
                        return

    async def _set_stale(self, symbol: str, stale: bool, reason: str) -> None:
        if self.stale.get(symbol) == stale:
            return
        self.stale[symbol] = stale
        ts = self._now_ts(symbol)
        self.counters["stale" if stale else "fresh"] += 1
        self._notice(ts, symbol, STALE if stale else FRESH, reason)
        await self._submit(FeedStatus(ts=ts, symbol=symbol, stale=stale, reason=reason))

    def _now_ts(self, symbol: str) -> int:
        """Market-time ms: the symbol's (else any symbol's) last exchange ts + wall time since."""
        if symbol in self._last_ts:
            last, seen = self._last_ts[symbol], self._last_seen.get(symbol, self._clock())
        elif self._last_ts:
            symbol = max(self._last_ts, key=lambda k: self._last_ts[k])
            last, seen = self._last_ts[symbol], self._last_seen.get(symbol, self._clock())
        else:
            return time.time_ns() // 1_000_000
        return last + max(0, int((self._clock() - seen) * 1000))

    def _notice(self, ts: int, symbol: str, kind: str, detail: str) -> None:
        notice = FeedNotice(ts=ts, symbol=symbol, kind=kind, detail=detail)
        self.recent.append(notice)
        for q in tuple(self._subscribers):
            try:
                q.put_nowait(notice)
            except asyncio.QueueFull:
                self.counters["notices_dropped"] += 1
        if self.on_notice is not None:
            try:
                self.on_notice(notice)
            except Exception:
                log.exception("on_notice callback failed")
        log.info("feed %s: %s %s %s", self.name, kind, symbol, detail)


class _NodeGone(Exception):
    """Internal: the node stopped; the supervisor ends."""

"""What every feed shares: the error tree, the feed's own signals, and small helpers.

A feed is an async iterator of the core's market events (``exchange_sim.core.messages``:
``BookSnapshot``, ``BookDelta``, ``Trade``, ``MarkPrice``, ``IndexPrice``, ``Funding``).
Besides those it may yield a ``FeedSignal``: something the runtime should know and announce
(the book was resynced after a gap, the connection was (re)established, one of several
connections dropped: the symbol is *held* until it is *released*) but that the core never
sees. Consumers that only want core events filter with ``is_market_event``.

Errors: ``FeedError`` is the one root. ``FeedSpecError`` means bad configuration (never retried),
``FeedRefused`` (a kind of spec error) means the venue refused the handshake (a retired or wrong
URL), ``FeedDisconnected`` means the connection is gone (the runtime's reconnect loop opens the
feed again), ``FeedFormatError`` means data that cannot be read. Foreign errors (websockets,
aiohttp, ccxt, aiomqtt, json) are translated at the boundary with ``raise ... from None``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from exchange_sim.core.fixed import FixedPointError, to_fixed
from exchange_sim.core.messages import MARKET_EVENTS


class FeedError(Exception):
    """Root of every error raised by a feed."""


class FeedSpecError(FeedError):
    """A feed spec or option that cannot work (unknown kind, bad URL, unknown symbol): not retried."""


class FeedDisconnected(FeedError):
    """The connection to the source is gone; open the feed again to continue."""


class FeedRefused(FeedSpecError):
    """The venue refused the connection (HTTP 4xx on the handshake: a retired or wrong URL): not retried."""


class FeedFormatError(FeedError):
    """Data that cannot be understood (bad line, unknown CSV layout, bad number)."""


# kinds of FeedSignal
CONNECTED = "connected"
RESYNC = "resync"
GAP = "gap"
HELD = "held"  # one of the feed's connections is down: the symbol's data is incomplete until RELEASED
RELEASED = "released"


@dataclass(frozen=True, slots=True)
class FeedSignal:
    """A feed's note to the runtime (not a market event): connected, gap, resync, held or released."""

    ts: int
    symbol: str
    kind: str
    detail: str = ""


def is_market_event(item: Any) -> bool:
    """True for the core's market events, False for ``FeedSignal`` and anything else."""
    return isinstance(item, MARKET_EVENTS)


_FIXED_CACHE: dict[str, int] = {}
_FIXED_CACHE_SIZE = 200_000


def fixed(text: Any, what: str = "number") -> int:
    """Venue decimal text to fixed units, as a FeedFormatError when it is not a number.

    Book diffs repeat the same price and size texts over and over, so conversions are memoised
    (a bounded cache, cleared when full): the decoder's hottest call becomes a dict lookup.
    """
    if type(text) is str:
        units = _FIXED_CACHE.get(text)
        if units is not None:
            return units
    try:
        units = to_fixed(str(text))
    except FixedPointError:
        raise FeedFormatError(f"bad {what}: {text!r}") from None
    if type(text) is str:
        if len(_FIXED_CACHE) >= _FIXED_CACHE_SIZE:
            _FIXED_CACHE.clear()
        _FIXED_CACHE[text] = units
    return units


def fixed_rounded(text: Any, what: str = "number") -> int:
    """Like ``fixed`` but rounds text with more than 8 decimals (mark prices, klines of mark)."""
    from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

    try:
        d = Decimal(str(text).strip()).quantize(Decimal("1e-8"), rounding=ROUND_HALF_EVEN)
    except (InvalidOperation, ValueError):
        raise FeedFormatError(f"bad {what}: {text!r}") from None
    return fixed(d, what)


def wall_ms() -> int:
    """Wall-clock milliseconds (only for sources that carry no timestamp of their own)."""
    return time.time_ns() // 1_000_000


_SYMBOL_RE = re.compile(r"[^A-Z0-9]")


def plain_symbol(symbol: str) -> str:
    """``"BTC/USDT:USDT"`` or ``"btcusdt"`` → ``"BTCUSDT"`` (settle suffix dropped)."""
    return _SYMBOL_RE.sub("", symbol.split(":", 1)[0].upper())


def check_symbols(symbols: Iterable[str]) -> tuple[str, ...]:
    """Normalised, de-duplicated symbols in order; FeedSpecError when there are none."""
    out: list[str] = []
    for s in symbols:
        p = plain_symbol(s)
        if p and p not in out:
            out.append(p)
    if not out:
        raise FeedSpecError("a feed needs at least one symbol")
    return tuple(out)


class Pacer:
    """Sleeps so that event timestamps are replayed at ``speed`` × real time (0 = no sleeping).

    The first paced timestamp anchors the loop's clock; later ones wait until
    ``anchor + (ts - first_ts) / speed``. Timestamps going backwards never sleep.
    """

    def __init__(self, speed: float = 0.0) -> None:
        if speed < 0:
            raise FeedSpecError(f"speed must be >= 0, got {speed}")
        self.speed = speed
        self._first_ts: float | None = None
        self._anchor = 0.0

    async def wait(self, ts_ms: float) -> None:
        """Sleep until the event stamped ``ts_ms`` is due."""
        if self.speed <= 0:
            return
        loop = asyncio.get_running_loop()
        if self._first_ts is None:
            self._first_ts = ts_ms
            self._anchor = loop.time()
            return
        due = self._anchor + (ts_ms - self._first_ts) / 1000.0 / self.speed
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)


async def only_market_events(feed: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The feed without its ``FeedSignal`` items."""
    async for item in feed:
        if is_market_event(item):
            yield item

"""Order-book diffs for the websocket, on one update-id counter shared with REST ``/depth``.

The tracker keeps, per symbol, a mirror of the top ``levels`` of the core's book and a counter.
After every applied input that may have moved a symbol's book it reads
``exchange.book_levels(symbol, levels)``, compares it with the mirror and, if anything changed,
advances the counter by one and emits a ``depthUpdate`` with ``U = u = counter`` and
``pu = counter - 1`` (levels that vanished from the top are sent with quantity 0).

REST ``/depth`` answers from the same mirror with ``lastUpdateId = counter``. So any snapshot
and the diffs that follow it chain exactly the way ccxt.pro checks (``U ≤ nonce ≤ u`` or
``pu == nonce``), whatever the feed's own sequence numbers are.

Diffing costs O(levels) per change, so it is only done eagerly for symbols somebody streams
(``eager(symbol)``); other symbols are just marked dirty and refreshed when a snapshot is asked
for — one counter step covering all the changes since, which chains just as well.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from exchange_sim.core import messages as m

DEFAULT_LEVELS = 1000
# inputs that never move a book by themselves (their fills, if any, show up as OrderUpdate events)
_BOOK_NEUTRAL = (m.Trade, m.MarkPrice, m.IndexPrice, m.Funding, m.FeedStatus, m.SetLeverage, m.SetMarginType,
                 m.SetAutoAddMargin, m.AdjustIsolatedMargin)


@dataclass(frozen=True, slots=True)
class DepthDiff:
    symbol: str
    first_update_id: int
    final_update_id: int
    prev_final_update_id: int
    bids: tuple[tuple[int, int], ...]
    asks: tuple[tuple[int, int], ...]
    ts: int


@dataclass(slots=True)
class _Mirror:
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)
    update_id: int = 0
    core_update_id: int | None = None
    ts: int = 0


def _changes(old: dict[int, int], new: dict[int, int]) -> list[tuple[int, int]]:
    out = [(p, q) for p, q in new.items() if old.get(p) != q]
    out.extend((p, 0) for p in old if p not in new)
    return out


class DepthTracker:
    """Mirrors the top of each book and numbers its changes (see module doc)."""

    def __init__(self, book_levels: Callable[[str, int], Any], symbols: Iterable[str],
                 levels: int = DEFAULT_LEVELS, start_id: int = 1,
                 eager: Callable[[str], bool] = lambda symbol: True) -> None:
        self._book_levels = book_levels
        self.levels = levels
        self.eager = eager
        self._mirrors = {s: _Mirror(update_id=start_id) for s in symbols}
        self._dirty: set[str] = set()

    def symbols_touched(self, msg: object, events: list) -> set[str]:
        """Symbols whose book may have changed because of ``msg`` (market event or command)."""
        touched: set[str] = set()
        symbol = getattr(msg, "symbol", None)
        if isinstance(symbol, str) and symbol in self._mirrors and not isinstance(msg, _BOOK_NEUTRAL):
            touched.add(symbol)
        for event in events:
            if isinstance(event, (m.OrderUpdate, m.Liquidation, m.Adl)) and event.symbol in self._mirrors:
                touched.add(event.symbol)
        return touched

    def on_input(self, msg: object, events: list, ts: int) -> list[DepthDiff]:
        """Refresh the mirrors touched by ``msg`` (streamed ones now, others later); diffs to publish."""
        diffs = []
        for symbol in sorted(self.symbols_touched(msg, events)):
            if self.eager(symbol):
                diff = self.refresh(symbol, ts)
                if diff is not None:
                    diffs.append(diff)
            else:
                self._dirty.add(symbol)
                self._mirrors[symbol].ts = ts
        return diffs

    def refresh(self, symbol: str, ts: int) -> DepthDiff | None:
        """Compare the core's book with the mirror; advance the counter and return the diff if changed."""
        self._dirty.discard(symbol)
        mirror = self._mirrors[symbol]
        bids, asks, core_id = self._book_levels(symbol, self.levels)
        new_bids = dict(bids)
        new_asks = dict(asks)
        bid_changes = _changes(mirror.bids, new_bids)
        ask_changes = _changes(mirror.asks, new_asks)
        mirror.core_update_id = core_id
        if not bid_changes and not ask_changes:
            return None
        prev = mirror.update_id
        mirror.update_id = prev + 1
        mirror.bids, mirror.asks, mirror.ts = new_bids, new_asks, ts
        return DepthDiff(symbol, prev + 1, prev + 1, prev,
                         tuple(sorted(bid_changes, reverse=True)), tuple(sorted(ask_changes)), ts)

    def snapshot(self, symbol: str, limit: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int, int]:
        """(bids best first, asks best first, lastUpdateId, ts) of the mirror, ``limit`` levels each."""
        mirror = self._mirrors[symbol]
        if symbol in self._dirty:
            self.refresh(symbol, mirror.ts)
        bids = sorted(mirror.bids.items(), reverse=True)[:limit]
        asks = sorted(mirror.asks.items())[:limit]
        return bids, asks, mirror.update_id, mirror.ts

    def update_id(self, symbol: str) -> int:
        if symbol in self._dirty:
            self.refresh(symbol, self._mirrors[symbol].ts)
        return self._mirrors[symbol].update_id

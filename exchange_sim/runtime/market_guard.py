"""Bad-tick filter between the feeds and the core: what is never marked to market.

Rules (per symbol; prices compared to a *reference*, the last accepted mark price, else the last
accepted trade price, else the mid of the last accepted book snapshot):

1. A ``Trade``, ``MarkPrice`` or ``IndexPrice`` whose price lies outside ``band`` around the
   reference (``|price − ref| > band × ref``) is dropped and counted.
2. A ``BookDelta`` level that would put the top of the book outside the band (a bid above
   ``ref × (1 + band)`` or an ask below ``ref × (1 − band)``, with qty > 0) is removed from the
   delta and counted; the rest of the delta goes through (so the book stays in step with the
   venue's sequence numbers). Far-away resting levels (a bid at 1000) are normal and kept.
3. A crossed book (best bid ≥ best ask) is let through while transient; when it stays crossed
   for more than ``crossed_max_updates`` consecutive book events the guard drops the event and
   asks for a resync (``Verdict.resync``): the runtime reopens the feed, which starts with a
   fresh snapshot.
4. A ``BookSnapshot`` comes from the venue's own REST sync: accepted (and re-anchors the
   reference at its mid) unless it is crossed, in which case it is dropped and a resync asked.
5. A genuine jump is not locked out forever: after ``confirm_outliers`` consecutive dropped
   prices of a symbol that agree with each other (all within the band of the first of the run),
   the latest is accepted and becomes the reference (counted as a re-anchor).

Pure and synchronous: no clock, no I/O. ``GuardConfig.band`` is a fixed-point fraction
(``to_fixed("0.1")`` = 10 %).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sortedcontainers import SortedDict

from exchange_sim.core.fixed import SCALE
from exchange_sim.core.messages import BookDelta, BookSnapshot, IndexPrice, MarkPrice, Trade

DROPPED, CROSSED, REANCHOR = "dropped", "crossed", "reanchor"


@dataclass(frozen=True, slots=True)
class GuardConfig:
    """Bad-tick rules: ``band`` (fixed fraction, 0 disables), crossed-book and re-anchor limits."""

    band: int = SCALE // 10
    crossed_max_updates: int = 50
    confirm_outliers: int = 10


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one event: submit ``event`` (None = drop it), notes for the runtime, resync?"""

    event: Any | None
    notes: tuple[tuple[str, str], ...] = ()
    resync: bool = False


@dataclass
class _SymbolState:
    reference: int = 0
    mark_seen: bool = False
    bids: SortedDict = field(default_factory=SortedDict)
    asks: SortedDict = field(default_factory=SortedDict)
    crossed_run: int = 0
    outlier_run: int = 0
    outlier_anchor: int = 0


class MarketGuard:
    """Applies the rules of the module docstring; counts what it dropped."""

    def __init__(self, config: GuardConfig = GuardConfig()) -> None:
        self.config = config
        self._state: dict[str, _SymbolState] = {}
        self.dropped_ticks = 0
        self.dropped_levels = 0
        self.crossed_events = 0
        self.resyncs_asked = 0
        self.reanchors = 0

    def reference(self, symbol: str) -> int:
        """The current reference price of ``symbol`` (0 = none yet)."""
        st = self._state.get(symbol)
        return st.reference if st else 0

    def best(self, symbol: str) -> tuple[int, int]:
        """(best bid, best ask) of the guard's shadow book (0 when a side is empty)."""
        st = self._state.get(symbol)
        if st is None:
            return 0, 0
        bid = st.bids.peekitem(-1)[0] if st.bids else 0
        ask = st.asks.peekitem(0)[0] if st.asks else 0
        return bid, ask

    def reset(self, symbol: str) -> None:
        """Forget the shadow book of ``symbol`` (the feed is being reopened); keep the reference."""
        st = self._state.get(symbol)
        if st is not None:
            st.bids.clear()
            st.asks.clear()
            st.crossed_run = 0

    def check(self, event: Any) -> Verdict:
        """The verdict for one market event (anything else passes unchanged)."""
        symbol = getattr(event, "symbol", None)
        if symbol is None:
            return Verdict(event)
        st = self._state.setdefault(symbol, _SymbolState())
        if isinstance(event, Trade):
            return self._price(st, event, event.price, is_mark=False)
        if isinstance(event, MarkPrice):
            return self._price(st, event, event.mark, is_mark=True)
        if isinstance(event, IndexPrice):
            return self._price(st, event, event.price, is_mark=False, moves_reference=False)
        if isinstance(event, BookSnapshot):
            return self._snapshot(st, event)
        if isinstance(event, BookDelta):
            return self._delta(st, event)
        return Verdict(event)

    # ------------------------------------------------------------------ rules
    def _outside(self, price: int, ref: int) -> bool:
        band = self.config.band
        return band > 0 and ref > 0 and abs(price - ref) * SCALE > ref * band

    def _price(self, st: _SymbolState, event: Any, price: int, *, is_mark: bool,
               moves_reference: bool = True) -> Verdict:
        if price <= 0:
            self.dropped_ticks += 1
            return Verdict(None, ((DROPPED, f"{type(event).__name__} price {price} <= 0"),))
        if self._outside(price, st.reference):
            run_ok = st.outlier_run > 0 and not self._outside(price, st.outlier_anchor)
            st.outlier_run = st.outlier_run + 1 if run_ok else 1
            if not run_ok:
                st.outlier_anchor = price
            limit = self.config.confirm_outliers
            if limit > 0 and st.outlier_run >= limit:
                self.reanchors += 1
                old = st.reference
                st.reference, st.outlier_run = price, 0
                st.mark_seen = st.mark_seen or is_mark
                note = f"reference {old} -> {price} after {limit} agreeing ticks"
                return Verdict(event, ((REANCHOR, note),))
            self.dropped_ticks += 1
            note = f"{type(event).__name__} {price} outside band of {st.reference}"
            return Verdict(None, ((DROPPED, note),))
        st.outlier_run = 0
        if moves_reference and (is_mark or not st.mark_seen):
            st.reference = price
            st.mark_seen = st.mark_seen or is_mark
        return Verdict(event)

    def _snapshot(self, st: _SymbolState, event: BookSnapshot) -> Verdict:
        bids = SortedDict({p: q for p, q in event.bids if q > 0})
        asks = SortedDict({p: q for p, q in event.asks if q > 0})
        if bids and asks and bids.peekitem(-1)[0] >= asks.peekitem(0)[0]:
            self.crossed_events += 1
            self.resyncs_asked += 1
            return Verdict(None, ((CROSSED, "crossed snapshot dropped"),), resync=True)
        st.bids, st.asks, st.crossed_run, st.outlier_run = bids, asks, 0, 0
        mid = (bids.peekitem(-1)[0] + asks.peekitem(0)[0]) // 2 if bids and asks else 0
        if mid and not st.mark_seen:
            st.reference = mid
        elif mid and st.reference and self._outside(mid, st.reference):
            old, st.reference = st.reference, mid
            self.reanchors += 1
            return Verdict(event, ((REANCHOR, f"reference {old} -> {mid} from a fresh snapshot"),))
        return Verdict(event)

    def _delta(self, st: _SymbolState, event: BookDelta) -> Verdict:
        ref = st.reference
        notes: list[tuple[str, str]] = []
        bids, asks = event.bids, event.asks
        if ref > 0 and self.config.band > 0:
            hi = ref + ref * self.config.band // SCALE
            lo = ref - ref * self.config.band // SCALE
            bad_bids = [lv for lv in bids if lv[1] > 0 and lv[0] > hi]
            bad_asks = [lv for lv in asks if lv[1] > 0 and lv[0] < lo]
            if bad_bids or bad_asks:
                bids = tuple(lv for lv in bids if lv not in bad_bids)
                asks = tuple(lv for lv in asks if lv not in bad_asks)
                n = len(bad_bids) + len(bad_asks)
                self.dropped_levels += n
                notes.append((DROPPED, f"{n} book level(s) outside band of {ref}"))
                event = BookDelta(event.ts, event.symbol, bids, asks, event.first_update_id,
                                  event.final_update_id, event.prev_final_update_id)
        for side, levels in ((st.bids, bids), (st.asks, asks)):
            for p, q in levels:
                if q > 0:
                    side[p] = q
                else:
                    side.pop(p, None)
        if st.bids and st.asks and st.bids.peekitem(-1)[0] >= st.asks.peekitem(0)[0]:
            st.crossed_run += 1
            self.crossed_events += 1
            if st.crossed_run > self.config.crossed_max_updates:
                self.resyncs_asked += 1
                st.crossed_run = 0
                limit = self.config.crossed_max_updates
                notes.append((CROSSED, f"book crossed for more than {limit} updates"))
                return Verdict(None, tuple(notes), resync=True)
        else:
            st.crossed_run = 0
        return Verdict(event, tuple(notes))

"""Test helpers for feeds: a plain local order book and the expected book of the raw capture.

``expected_books`` recomputes, straight from the capture file and independently of the
``feeds`` package, the top-20 book after every diff (keyed by the diff's final update id ``u``):
snapshot from the REST line, drop diffs with ``u`` < ``lastUpdateId``, apply the rest in order.
"""

from __future__ import annotations

import functools
import gzip
import json
from decimal import Decimal
from itertools import islice
from typing import Any

from sortedcontainers import SortedDict

from exchange_sim.core.fixed import to_fixed
from exchange_sim.core.messages import BookDelta, BookSnapshot

Top = tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]


class LocalBook:
    """A book built from BookSnapshot/BookDelta events (fixed ints)."""

    def __init__(self) -> None:
        self.bids: SortedDict = SortedDict()
        self.asks: SortedDict = SortedDict()
        self.update_id = 0

    def apply(self, ev: Any) -> None:
        if isinstance(ev, BookSnapshot):
            self.bids = SortedDict({p: q for p, q in ev.bids if q})
            self.asks = SortedDict({p: q for p, q in ev.asks if q})
            self.update_id = ev.update_id
        elif isinstance(ev, BookDelta):
            for side, levels in ((self.bids, ev.bids), (self.asks, ev.asks)):
                for p, q in levels:
                    if q:
                        side[p] = q
                    else:
                        side.pop(p, None)
            self.update_id = ev.final_update_id

    def top(self, depth: int = 20) -> Top:
        bids = tuple((p, self.bids[p]) for p in islice(reversed(self.bids), depth))
        asks = tuple((p, self.asks[p]) for p in islice(self.asks, depth))
        return bids, asks


def _fx(text: str) -> int:
    return to_fixed(Decimal(text))


@functools.lru_cache(maxsize=2)
def expected_books(path: str, every: int = 1, depth: int = 20) -> dict[int, Top]:
    """{u: top-``depth`` book after the diff ending at u}, every ``every``-th applied diff and the last."""
    bids: SortedDict = SortedDict()
    asks: SortedDict = SortedDict()
    pending: list[dict[str, Any]] = []
    lid: int | None = None
    out: dict[int, Top] = {}
    applied = 0

    def apply(d: dict[str, Any]) -> None:
        nonlocal applied
        for side, key in ((bids, "b"), (asks, "a")):
            for p, q in d[key]:
                if Decimal(q) == 0:
                    side.pop(_fx(p), None)
                else:
                    side[_fx(p)] = _fx(q)
        applied += 1
        if applied % every == 0:
            out[int(d["u"])] = top()

    def top() -> Top:
        b = tuple((p, bids[p]) for p in islice(reversed(bids), depth))
        a = tuple((p, asks[p]) for p in islice(asks, depth))
        return b, a

    last: dict[str, Any] | None = None
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            msg = json.loads(line.partition(" ")[2])
            if "lastUpdateId" in msg:
                lid = int(msg["lastUpdateId"])
                bids = SortedDict({_fx(p): _fx(q) for p, q in msg["bids"]})
                asks = SortedDict({_fx(p): _fx(q) for p, q in msg["asks"]})
                for d in pending:
                    if int(d["u"]) >= lid:
                        apply(d)
                        last = d
                pending = []
                continue
            d = msg["data"]
            if d.get("e") != "depthUpdate":
                continue
            if lid is None:
                pending.append(d)
            else:
                apply(d)
                last = d
    if last is not None:
        out[int(last["u"])] = top()
    return out

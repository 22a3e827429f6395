"""A gateway's outputs in the single node's order: every shard's inputs, market events merged.

Each shard applies every market event (its journal merges the market stream) plus its own
accounts' commands. A single node would apply a market event once and say everything it caused
at once: marks, then the liquidations on every account. ``InputMerger`` gets each replica's
applied inputs as they come and releases them so that

- each shard's own order is kept (an account's frames never overtake each other), and
- a market event is released once, when every shard has applied it, with the events it caused
  on every shard (in shard order) — so its market frames come before the liquidations it caused,
  exactly once, as on one node.

A shard that started (from a snapshot) past a market event never applies it; it does not hold
that event back. While a shard fails over, market events wait for it (a second or two).
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

from .replica import Applied

Deliver = Callable[[Any, list], None]


class InputMerger:
    """Releases ``(msg, events)`` to ``deliver`` in the order described in the module doc."""

    def __init__(self, shards: tuple[str, ...], deliver: Deliver) -> None:
        self.shards = shards
        self.deliver = deliver
        self.queues: dict[str, collections.deque[tuple[Applied, list]]] = {s: collections.deque() for s in shards}
        self.started_past: dict[str, int] = dict.fromkeys(shards, 0)  # market seq a shard's replica started at

    def start(self, shard: str, market_seq: int) -> None:
        """``shard``'s replica starts following at market sequence ``market_seq``."""
        self.started_past[shard] = market_seq

    def add(self, shard: str, applied: Applied, events: list) -> None:
        self.queues[shard].append((applied, events))
        self._release()

    def _release(self) -> None:
        while True:
            for queue in self.queues.values():
                while queue and not queue[0][0].market_seq:
                    applied, events = queue.popleft()
                    self.deliver(applied.msg, events)
            heads = {s: q[0] for s, q in self.queues.items() if q}
            if not heads:
                return
            oldest = min(applied.market_seq for applied, _ in heads.values())
            ready = all(
                (s in heads and heads[s][0].market_seq == oldest) or self.started_past[s] >= oldest
                for s in self.shards)
            if not ready:
                return
            msg = None
            merged: list = []
            for s in self.shards:
                queue = self.queues[s]
                if queue and queue[0][0].market_seq == oldest:
                    applied, events = queue.popleft()
                    msg = msg or applied.msg
                    merged.extend(events)
            self.deliver(msg, merged)

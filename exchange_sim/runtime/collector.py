"""Garbage-collector policy for the simulator process: short collector passes, full ones when idle.

CPython's cyclic collector stops the whole process for a pass. Its young generations are cheap,
but a pass over the oldest generation visits every tracked object: with tens of thousands of
resting orders that took 134 ms under the 16-client benchmark (``scripts/bench/api_roundtrip.py``,
stall probe), and every request and liquidation in flight waited for it.

``CollectorPolicy`` (one per process, started by ``exchange-sim run``):

- at start: one full collection, then ``gc.freeze()`` (the recovered state moves to the permanent
  generation, which no pass visits) and larger young thresholds (fewer, still short, passes);
- every ``freeze_every`` seconds: a young collection (``gc.collect(1)``, a few ms) and
  ``gc.freeze()`` again, so the oldest generation only ever holds what survived since the last
  freeze and its passes stay short however large the exchange grows;
- when the node has applied no input for ``idle_after`` seconds (a classroom pauses often), at
  most every ``full_every`` seconds: ``gc.unfreeze()``, a full collection, ``gc.freeze()``.

The price: a garbage *cycle* that was promoted to the oldest generation before a freeze (an
object graph still alive during two young passes, dead afterwards) is frozen with the live data
and only reclaimed by the next idle full collection. Under load that never pauses, memory grows
by that garbage (small: the exchange's own state is not garbage) until the load pauses.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

YOUNG_THRESHOLDS = (50_000, 20, 50)


class CollectorPolicy:
    """Runs the policy of the module doc for ``node`` (anything with an ``applied`` counter)."""

    def __init__(self, node: Any, *, freeze_every: float = 10.0, idle_after: float = 1.0,
                 full_every: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.node = node
        self.freeze_every = freeze_every
        self.idle_after = idle_after
        self.full_every = full_every
        self._clock = clock
        self._task: asyncio.Task | None = None
        self.freezes = 0
        self.full_collections = 0

    def start(self) -> None:
        """Collect, freeze and raise the young thresholds now; then run the policy in a task."""
        gc.collect()
        gc.freeze()
        gc.set_threshold(*YOUNG_THRESHOLDS)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="collector-policy")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        tick = min(self.idle_after, self.freeze_every) / 2
        now = self._clock()
        last_freeze = last_full = last_change = now
        last_applied = self.node.applied
        while True:
            await asyncio.sleep(tick)
            now = self._clock()
            if self.node.applied != last_applied:
                last_applied, last_change = self.node.applied, now
            if now - last_change >= self.idle_after and now - last_full >= self.full_every:
                gc.unfreeze()
                gc.collect()
                gc.freeze()
                self.full_collections += 1
                last_full = last_freeze = now
            elif now - last_freeze >= self.freeze_every:
                gc.collect(1)
                gc.freeze()
                self.freezes += 1
                last_freeze = now

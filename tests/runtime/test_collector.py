"""The collector policy: the oldest generation is re-frozen while busy, fully collected when idle."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from exchange_sim.runtime.collector import YOUNG_THRESHOLDS, CollectorPolicy


class Busy:
    applied = 0


class Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def _restore_the_collector():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


async def wait_for(condition, seconds: float = 5.0) -> bool:
    for _ in range(int(seconds / 0.01)):  # bounded
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


async def test_while_inputs_flow_the_old_generation_is_refrozen_not_collected():
    node = Busy()
    policy = CollectorPolicy(node, freeze_every=0.05, idle_after=0.2, full_every=0.0)
    policy.start()
    try:
        assert gc.get_threshold() == YOUNG_THRESHOLDS and gc.get_freeze_count() > 0

        async def keep_busy():
            while True:
                node.applied += 1
                await asyncio.sleep(0.01)

        busy = asyncio.get_running_loop().create_task(keep_busy())
        assert await wait_for(lambda: policy.freezes >= 3)
        assert policy.full_collections == 0  # never a full pass while inputs keep coming
        busy.cancel()
        # idle now: one full collection reclaims garbage that had been frozen
        garbage = Cycle()
        dead = weakref.ref(garbage)
        gc.freeze()  # as if it had been promoted and frozen while still alive
        del garbage
        assert dead() is not None
        assert await wait_for(lambda: policy.full_collections >= 1)
        assert dead() is None
    finally:
        await policy.stop()

"""A gateway's market data: a core with no accounts, fed by the venue's market stream only.

Book, marks, index, funding and the feed's status are the same on every shard (each applies the
same market stream, and resting orders of accounts are not part of the public book), so a
gateway applies that stream to a core of its own that holds no account: it costs a fraction
of a shard's work per market event and nothing per order. Its ``(input, events)`` go to the
gateway's listeners (depth, klines, ticker and mark frames), exactly as a node's do.

    view = MarketView(js, layout, new_exchange, on_applied=deliver, store=snapshots)
    await view.restore()           # the newest market snapshot (object ``market-view``), if any
    await view.follow()            # every market event stored after it, then each new one
    await view.wait(market_seq)    # until that market event is applied here

Every ``SNAPSHOT_EVERY`` market events a gateway writes its view's snapshot to the object store
(any gateway may: they all hold the same state at the same sequence), so a gateway that starts
later replays only the market events after it, not the stream's whole history.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import msgspec
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError, ObjectNotFoundError

from exchange_sim.core.exchange import Exchange, SnapshotVersionError

from . import codec
from .layout import Layout
from .connect import retrying
from .replica import drop, keep_following, release, wait_until

log = logging.getLogger(__name__)

SNAPSHOT_OBJECT = "market-view"  # in the exsim-snapshots object store (the shards' objects are their names)
SNAPSHOT_EVERY = 20_000  # market events between two snapshots


class MarketSnapshot(msgspec.Struct, frozen=True):
    market_seq: int
    state: bytes  # an account-less core's snapshot


class MarketView:
    """The market stream applied to an account-less core (see module doc)."""

    def __init__(self, js: Any, layout: Layout, new_exchange: Callable[[], Exchange],
                 on_applied: Callable[[Any, list], None] | None = None, store: Any = None) -> None:
        self.js = js
        self.layout = layout
        self.ex = new_exchange()
        self.on_applied = on_applied
        self.store = store
        self.market_seq = 0
        self.snapshot_seq = 0
        self._saving: asyncio.Task | None = None
        self._sub: Any = None
        self._waiters: list[tuple[int, asyncio.Future]] = []
        self._watchdog: asyncio.Task | None = None

    def apply(self, market_seq: int, data: bytes) -> None:
        if market_seq <= self.market_seq:
            return  # a redelivery
        msg = codec.load_input(data)
        events = self.ex.apply(msg)
        self.market_seq = market_seq
        if self.on_applied is not None:
            try:
                self.on_applied(msg, events)
            except Exception:  # a listener bug must not stop the market data
                log.exception("market listener failed at %d", market_seq)
        if self._waiters:
            self._waiters = release(self._waiters, market_seq)
        if self.store is not None and market_seq - self.snapshot_seq >= SNAPSHOT_EVERY and self._saving is None:
            self._saving = asyncio.get_running_loop().create_task(self._save_in_background())

    # ------------------------------------------------------------------ snapshots

    async def restore(self) -> None:
        """Start from the newest market snapshot in the object store, if there is one this core reads."""
        if self.store is None:
            return
        try:
            result = await retrying("market snapshot", lambda: self.store.get(SNAPSHOT_OBJECT))
        except (ObjectNotFoundError, NotFoundError):
            return
        try:
            snap = msgspec.msgpack.decode(result.data, type=MarketSnapshot)
            ex = Exchange.restore(snap.state)
        except (msgspec.DecodeError, SnapshotVersionError) as exc:
            log.warning("market snapshot not used (%s): replaying the market stream", exc)
            return
        if ex.account_ids():
            log.warning("market snapshot holds accounts: not a market view's; replaying the market stream")
            return
        self.ex, self.market_seq, self.snapshot_seq = ex, snap.market_seq, snap.market_seq
        log.info("market view restored at market event %d", snap.market_seq)

    async def save_snapshot(self) -> int:
        """Write the view's snapshot now; the market sequence it stands for."""
        seq = self.market_seq
        await self.store.put(SNAPSHOT_OBJECT, msgspec.msgpack.encode(MarketSnapshot(seq, self.ex.snapshot())))
        self.snapshot_seq = seq
        return seq

    async def _save_in_background(self) -> None:
        try:
            await self.save_snapshot()
        except Exception as exc:  # noqa: BLE001 - the next threshold tries again
            log.warning("market snapshot not written: %s", exc)
            self.snapshot_seq = self.market_seq
        finally:
            self._saving = None

    async def last_stored(self) -> int:
        return (await self.js.stream_info(self.layout.market_stream)).state.last_seq

    async def follow(self) -> None:
        """Apply every stored market event, then each new one as it comes (an ordered consumer,
        followed again should it get stuck: ``replica.keep_following``)."""
        await self._subscribe()
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(keep_following(
                "market view", lambda: self.market_seq, self.last_stored, self._subscribe), name="market-view-watchdog")

    async def _subscribe(self) -> None:
        """(Re)subscribe from the next market event this view has not applied; wait until caught up."""
        await self.unfollow()
        last = await self.last_stored()

        async def on_msg(msg: Any) -> None:
            self.apply(msg.metadata.sequence.stream, msg.data)

        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.market_seq + 1)
        self._sub = await self.js.subscribe(self.layout.market_subject, stream=self.layout.market_stream, cb=on_msg,
                                            ordered_consumer=True, config=config, idle_heartbeat=1.0,
                                            pending_msgs_limit=1_000_000)
        await self.wait(last, timeout=60.0)

    async def unfollow(self) -> None:
        sub, self._sub = self._sub, None
        await drop(sub)

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        await self.unfollow()

    async def wait(self, market_seq: int, timeout: float = 10.0) -> None:
        await wait_until(self._waiters, self.market_seq, market_seq, timeout)

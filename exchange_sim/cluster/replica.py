"""A replica of one shard's core: the last snapshot plus the shard's input stream, applied in order.

The shard's leader and its standbys each hold one (gateways hold none: they ask the shard). The
core is a pure function of its inputs, so a replica that has applied input ``seq`` is in exactly
the state the leader was in after ``seq``: a standby takes over from where its replica is, and
answers a gateway's read once it has applied the sequence that gateway last wrote for the
account (read-your-writes, reads.py).

    replica = ShardReplica(js, store, layout, "s0", new_exchange)
    await replica.restore()          # last snapshot from the object store (or a fresh core)
    await replica.follow()           # apply every stored input from applied_seq + 1, as it comes
    await replica.wait_applied(seq)  # until input ``seq`` is applied
    await replica.unfollow(); await replica.catch_up()   # exactly up to the stream's last input

``answers`` remembers, per request id, the input sequence and events a command got, so a
command retried after a failover is answered, never applied twice. A snapshot carries the
input sequence, the last market sequence and the most recent answers.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError, ObjectNotFoundError

from exchange_sim.core.exchange import Exchange

from . import codec
from .connect import retrying
from .errors import ClusterError
from .layout import KIND, MARKET_SEQ, REQUEST, Layout, ShardNames

log = logging.getLogger(__name__)

ANSWERS_KEPT = 200_000  # request ids remembered in memory (a retry comes within seconds)
ANSWERS_SNAPSHOT = 5_000  # of which the newest go into a snapshot
MARKET_EVENTS_KEPT = 4_096  # market seq -> events, for a gateway asking what an injected market event did


@dataclass(frozen=True, slots=True)
class Applied:
    """One input as applied: its stream sequence, kind (cmd/mkt/pad), message and events."""

    seq: int
    kind: str
    msg: Any
    events: list
    request: str
    market_seq: int


class Snapshot(msgspec.Struct, frozen=True):
    seq: int
    market_seq: int
    answers: list[tuple[str, int, bytes]]  # (request id, seq, events json)
    state: bytes


class ShardReplica:
    """One shard's core, fed from its input stream (see module doc)."""

    def __init__(self, js: JetStreamContext, store: Any, layout: Layout, shard: str,
                 new_exchange: Callable[[], Exchange], on_applied: Callable[[Applied], None] | None = None) -> None:
        self.js = js
        self.store = store
        self.layout = layout
        self.shard = shard
        self.names = ShardNames(shard)
        self.new_exchange = new_exchange
        self.on_applied = on_applied
        self.ex: Exchange = new_exchange()
        self.applied_seq = 0
        self.market_seq = 0
        self.snapshot_seq = 0
        self.answers: collections.OrderedDict[str, tuple[int, list]] = collections.OrderedDict()
        self.market_events: collections.OrderedDict[int, list] = collections.OrderedDict()
        self._sub: Any = None
        self._waiters: list[tuple[int, asyncio.Future]] = []
        self._market_waiters: list[tuple[int, asyncio.Future]] = []

    # ------------------------------------------------------------------ snapshots

    async def restore(self) -> None:
        """Start from the shard's last snapshot in the object store, if there is one."""
        try:
            result = await retrying(f"snapshot of {self.shard}", lambda: self.store.get(self.shard))
        except (ObjectNotFoundError, NotFoundError):
            return
        snap = msgspec.msgpack.decode(result.data, type=Snapshot)
        self.ex = Exchange.restore(snap.state)
        self.applied_seq = self.snapshot_seq = snap.seq
        self.market_seq = snap.market_seq
        for request, seq, events in snap.answers:
            self.answers[request] = (seq, codec.load_events(events))
        log.info("%s: restored snapshot at input %d", self.shard, snap.seq)

    def snapshot(self) -> bytes:
        """The replica's state now, as the object store keeps it."""
        newest = list(self.answers.items())[-ANSWERS_SNAPSHOT:]
        answers = [(req, seq, codec.dump_events(events)) for req, (seq, events) in newest]
        return msgspec.msgpack.encode(Snapshot(self.applied_seq, self.market_seq, answers, self.ex.snapshot()))

    async def save_snapshot(self) -> int:
        """Write the snapshot of the state now; the input sequence it stands for."""
        data, seq = self.snapshot(), self.applied_seq
        await self.store.put(self.shard, data)
        self.snapshot_seq = seq
        return seq

    # ------------------------------------------------------------------ applying

    def apply(self, seq: int, kind: str, msg: Any, request: str = "", market_seq: int = 0) -> Applied:
        """Apply the input stored at ``seq`` (it must be the next one)."""
        if seq != self.applied_seq + 1:
            raise ClusterError(f"{self.shard}: input {seq} after {self.applied_seq}: a gap in the journal")
        events = self.ex.apply(msg)
        self.applied_seq = seq
        if request:
            self.answers[request] = (seq, events)
            if len(self.answers) > ANSWERS_KEPT:
                self.answers.popitem(last=False)
        if market_seq:
            self.market_seq = market_seq
            self.market_events[market_seq] = events
            if len(self.market_events) > MARKET_EVENTS_KEPT:
                self.market_events.popitem(last=False)
        applied = Applied(seq, kind, msg, events, request, market_seq)
        if self.on_applied is not None:
            try:
                self.on_applied(applied)
            except Exception:  # a projection bug must not stop the replica
                log.exception("%s: on_applied failed", self.shard)
        self._wake()
        return applied

    def apply_stored(self, seq: int, headers: dict | None, data: bytes) -> Applied | None:
        if seq <= self.applied_seq:
            return None  # already applied (a redelivery)
        h = headers or {}
        return self.apply(seq, h.get(KIND, "cmd"), codec.load_input(data), h.get(REQUEST, ""),
                          int(h.get(MARKET_SEQ, 0) or 0))

    def _wake(self) -> None:
        if self._waiters:
            self._waiters = release(self._waiters, self.applied_seq)
        if self._market_waiters:
            self._market_waiters = release(self._market_waiters, self.market_seq)

    async def wait_applied(self, seq: int, timeout: float = 10.0) -> None:
        await wait_until(self._waiters, self.applied_seq, seq, timeout)

    async def wait_market(self, market_seq: int, timeout: float = 10.0) -> list:
        """Wait until the market event ``market_seq`` is applied; the events it caused here."""
        await wait_until(self._market_waiters, self.market_seq, market_seq, timeout)
        return self.market_events.get(market_seq, [])

    # ------------------------------------------------------------------ following the stream

    async def follow(self) -> None:
        """Apply every input stored after ``applied_seq``, as it arrives (an ordered consumer)."""
        if self._sub is not None:
            return

        async def on_msg(msg: Any) -> None:
            try:
                self.apply_stored(msg.metadata.sequence.stream, msg.headers, msg.data)
            except Exception:
                log.exception("%s: cannot apply input %s", self.shard, msg.metadata.sequence.stream)
                raise

        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.applied_seq + 1)
        self._sub = await self.js.subscribe(self.names.input_subject, stream=self.names.input_stream, cb=on_msg,
                                            ordered_consumer=True, config=config, idle_heartbeat=1.0,
                                            pending_msgs_limit=1_000_000)

    async def unfollow(self) -> None:
        sub, self._sub = self._sub, None
        await drop(sub)

    async def last_stored(self) -> int:
        info = await self.js.stream_info(self.names.input_stream)
        return info.state.last_seq

    async def catch_up(self) -> int:
        """Apply exactly the inputs stored after ``applied_seq`` up to the stream's last one now."""
        last = await self.last_stored()
        while self.applied_seq < last:
            seq = self.applied_seq + 1
            raw = await self.js.get_msg(self.names.input_stream, seq)
            self.apply_stored(seq, raw.headers, raw.data or b"")
        return last


async def keep_following(name: str, applied: Callable[[], int], last_stored: Callable[[], Awaitable[int]],
                         refollow: Callable[[], Awaitable[None]], every: float = 1.0, stuck_after: float = 3.0) -> None:
    """Forever: if a stream holds what a follower has not applied for ``stuck_after`` seconds (its
    ordered consumer was lost with a NATS node), ``refollow()`` (catch up directly, follow again)."""
    loop = asyncio.get_running_loop()
    behind_since: float | None = None
    behind_seen = -1
    while True:
        await asyncio.sleep(every)
        try:
            last = await last_stored()
        except Exception:  # noqa: BLE001 - NATS unreachable for now: look again later
            continue
        seen = applied()
        if seen >= last:
            behind_since = None
            continue
        if behind_since is None or seen != behind_seen:
            behind_since, behind_seen = loop.time(), seen
            continue
        if loop.time() - behind_since < stuck_after:
            continue
        log.warning("%s stuck at %d of %d: following again", name, seen, last)
        try:
            await refollow()
        except Exception as exc:  # noqa: BLE001 - retried on the next round
            log.warning("%s: following again failed: %s", name, exc)
        behind_since = None


async def wait_until(waiters: list[tuple[int, asyncio.Future]], reached: int, target: int, timeout: float) -> None:
    """Wait (at most ``timeout`` s) until ``release`` of ``waiters`` reaches ``target`` (now: ``reached``)."""
    if reached >= target:
        return
    fut = asyncio.get_running_loop().create_future()
    waiters.append((target, fut))
    await asyncio.wait_for(fut, timeout)


async def drop(sub: Any) -> None:
    """Unsubscribe ``sub`` (if any); the connection may be gone, then there is nothing to undo."""
    if sub is not None:
        try:
            await sub.unsubscribe()
        except Exception:  # noqa: BLE001 - connection gone
            pass


def release(waiters: list[tuple[int, asyncio.Future]], reached: int) -> list[tuple[int, asyncio.Future]]:
    """Resolve the waiters whose target ``reached`` got to; the others, still waiting."""
    keep = []
    for target, fut in waiters:
        if reached >= target:
            if not fut.done():
                fut.set_result(None)
        else:
            keep.append((target, fut))
    return keep

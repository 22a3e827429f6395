"""A replica of one shard's core: the last snapshot plus the shard's input stream, applied in order.

The shard's leader, its standbys and every gateway hold one replica per shard they serve. The
core is a pure function of its inputs, so a replica that has applied input ``seq`` is in exactly
the state the leader was in after ``seq``: a standby takes over from where its replica is, and a
gateway answers queries from its replica once it has applied the sequence a command was
journaled at (read-your-writes).

    replica = ShardReplica(js, store, layout, "s0", new_exchange)
    await replica.restore()          # last snapshot from the object store (or a fresh core)
    await replica.follow()           # apply every stored input from applied_seq + 1, as it comes
    await replica.wait_applied(seq)  # until input ``seq`` is applied
    await replica.unfollow(); await replica.catch_up()   # exactly up to the stream's last input

``answers`` remembers, per request id, the input sequence and events a command got, so a
command retried after a failover is answered, never applied twice. A snapshot carries the
input sequence, the last market sequence and the most recent answers.

**An input the core raises on** (a bug) is refused, never half-applied: ``apply`` records it
refused (``refused``; ``unmarked`` until the stream holds its refusal marker), returns it with
``refused=True`` and no events, and sets ``broken`` (the failed ``apply`` may have changed part
of the core). The caller awaits ``rebuild()`` before the next input: the last snapshot plus
every stored input after it except the refused ones, the very computation a cold member's
recovery does, so live state equals recovered state. The leader appends a refusal marker
(kind ``refusal``, header ``Exsim-Refuses``) for each unmarked refusal before it answers;
every follower that meets a marker for an input it applied without trouble (a fixed core, or a
fault of the leader's process only) rebuilds without it (its core, and its history read model
from the snapshot's), so every member ends in the leader's state. The core being a pure function of its inputs, a bug raises on every member alike; a
member's refusal that no marker confirms is its own and becomes the journal's truth only if
that member leads (it marks it when it takes over).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError, ObjectNotFoundError

from exchange_sim.core.exchange import Exchange
from exchange_sim.journal.history import History

from . import codec
from .connect import retrying
from .errors import ClusterError
from .layout import KIND, MARKET_SEQ, REFUSAL, REFUSES, REQUEST, Layout, ShardNames

log = logging.getLogger(__name__)

ANSWERS_KEPT = 200_000  # request ids remembered in memory (a retry comes within seconds)
ANSWERS_SNAPSHOT = 5_000  # of which the newest go into a snapshot
MARKET_EVENTS_KEPT = 4_096  # market seq -> events, for gateways waiting on an injected market event


@dataclass(frozen=True, slots=True)
class Applied:
    """One input as applied: its stream sequence, kind (cmd/mkt/pad), message and events;
    ``refused`` when the core raised on it (no events: it never happened)."""

    seq: int
    kind: str
    msg: Any
    events: list
    request: str
    market_seq: int
    refused: bool = False


class Snapshot(msgspec.Struct, frozen=True):
    seq: int
    market_seq: int
    answers: list[tuple[str, int, bytes]]  # (request id, seq, events json)
    state: bytes
    history: bytes = b""  # the history read model at ``seq`` (an SQLite image), when the writer kept one


@functools.cache
def _empty_history() -> bytes:
    """The image of a history without rows."""
    empty = History.temporary()
    try:
        return empty.dump()
    finally:
        empty.close()


def owned_event(layout: Layout, shard: str, event: Any) -> bool:
    """Events of the shard's own accounts and events of no account (market status, fund changes)."""
    account = getattr(event, "account", None)
    return not isinstance(account, int) or layout.owns(shard, account)


class ShardReplica:
    """One shard's core, fed from its input stream (see module doc)."""

    def __init__(self, js: JetStreamContext, store: Any, layout: Layout, shard: str,
                 new_exchange: Callable[[], Exchange], on_applied: Callable[[Applied], None] | None = None,
                 history: History | None = None) -> None:
        self.js = js
        self.history = history  # the shard's history read model, kept here and stored with each snapshot
        self.store = store
        self.layout = layout
        self.shard = shard
        self.names = ShardNames(shard)
        self.new_exchange = new_exchange
        self.on_applied = on_applied
        self.ex: Exchange = new_exchange()
        self.core_type = type(self.ex)
        self.applied_seq = 0
        self.market_seq = 0
        self.snapshot_seq = 0
        self.answers: collections.OrderedDict[str, tuple[int, list]] = collections.OrderedDict()
        self.refused: set[int] = set()  # input seqs the core raised on (or a marker refused), since start
        self.unmarked: list[int] = []  # refused here, no refusal marker in the stream yet
        self.refused_requests: collections.OrderedDict[str, int] = collections.OrderedDict()
        self.broken = False  # a failed apply left the core half-changed: rebuild() before the next input
        self._history_stale = False  # rebuild() must derive the history again too
        self.market_events: collections.OrderedDict[int, list] = collections.OrderedDict()
        self._sub: Any = None
        self._waiters: list[tuple[int, asyncio.Future]] = []
        self._market_waiters: list[tuple[int, asyncio.Future]] = []

    # ------------------------------------------------------------------ snapshots

    async def latest_snapshot(self) -> Snapshot | None:
        """The shard's last snapshot in the object store, or None."""
        try:
            result = await retrying(f"snapshot of {self.shard}", lambda: self.store.get(self.shard))
        except (ObjectNotFoundError, NotFoundError):
            return None
        return msgspec.msgpack.decode(result.data, type=Snapshot)

    def _core_of(self, snap: Snapshot | None) -> Exchange:
        """The core of ``snap`` (a fresh one without), as this member's core type."""
        if snap is None:
            return self.new_exchange()
        ex = Exchange.restore(snap.state)
        if type(ex) is not self.core_type:  # the snapshot pickles its writer's class; ours decides
            ex.__class__ = self.core_type
        return ex

    async def restore(self) -> None:
        """Start from the shard's last snapshot in the object store, if there is one."""
        snap = await self.latest_snapshot()
        if snap is None:
            return
        self._restore(snap)
        log.info("%s: restored snapshot at input %d", self.shard, snap.seq)

    def _restore(self, snap: Snapshot) -> None:
        self.ex = self._core_of(snap)
        self.broken = False
        self.applied_seq = self.snapshot_seq = snap.seq
        self.market_seq = max(self.market_seq, snap.market_seq)
        for request, seq, events in snap.answers:
            self.answers[request] = (seq, codec.load_events(events))
        if self.history is not None and snap.history:
            self.history.load(snap.history)

    async def jump_to_snapshot(self) -> None:
        """The next input is trimmed from the stream: continue from the last snapshot (which the
        leader stored before trimming; it holds the core and the history read model)."""
        snap = await self.latest_snapshot()
        if snap is None or snap.seq < self.applied_seq:
            raise ClusterError(f"{self.shard}: inputs after {self.applied_seq} are trimmed and no snapshot covers them")
        log.warning("%s: inputs %d..%d are trimmed: continuing from the snapshot at %d", self.shard,
                    self.applied_seq + 1, snap.seq, snap.seq)
        self._restore(snap)
        self._wake()

    def snapshot(self) -> bytes:
        """The replica's state now, as the object store keeps it."""
        newest = list(self.answers.items())[-ANSWERS_SNAPSHOT:]
        answers = [(req, seq, codec.dump_events(events)) for req, (seq, events) in newest]
        history = self.history.dump() if self.history is not None else b""
        return msgspec.msgpack.encode(Snapshot(self.applied_seq, self.market_seq, answers, self.ex.snapshot(), history))

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
        if self.broken:
            raise ClusterError(f"{self.shard}: input {seq} on a half-changed core: rebuild() first")
        try:
            events = self.ex.apply(msg)
        except Exception as exc:  # noqa: BLE001 - a core bug: refuse the input (module doc)
            log.error("%s: exchange.apply raised %s on input %d (%s): refused", self.shard, type(exc).__name__,
                      seq, type(msg).__name__, exc_info=exc)
            self.broken = True
            self.refused.add(seq)
            self.unmarked.append(seq)
            if request:
                self._refuse_request(request, seq)
            return self._applied(Applied(seq, kind, msg, [], request, market_seq, refused=True))
        if request:
            self.answers[request] = (seq, events)
            if len(self.answers) > ANSWERS_KEPT:
                self.answers.popitem(last=False)
        if self.history is not None and kind != "pad":
            try:
                self.history.record_committed(msg, [e for e in events if owned_event(self.layout, self.shard, e)])
            except Exception:  # a projection bug must not stop the replica
                log.exception("%s: history failed at input %d", self.shard, seq)
        return self._applied(Applied(seq, kind, msg, events, request, market_seq))

    def _refuse_request(self, request: str, seq: int) -> None:
        self.answers.pop(request, None)
        self.refused_requests[request] = seq
        if len(self.refused_requests) > ANSWERS_KEPT:
            self.refused_requests.popitem(last=False)

    def _applied(self, applied: Applied) -> Applied:
        self.applied_seq = applied.seq
        if applied.market_seq:
            self.market_seq = applied.market_seq
            self.market_events[applied.market_seq] = applied.events
            if len(self.market_events) > MARKET_EVENTS_KEPT:
                self.market_events.popitem(last=False)
        if self.on_applied is not None:
            try:
                self.on_applied(applied)
            except Exception:  # a projection bug must not stop the replica
                log.exception("%s: on_applied failed", self.shard)
        self._wake()
        return applied

    def apply_marker(self, seq: int, refuses: int) -> None:
        """The refusal marker stored at ``seq``: input ``refuses`` never happened (module doc)."""
        if seq != self.applied_seq + 1:
            raise ClusterError(f"{self.shard}: input {seq} after {self.applied_seq}: a gap in the journal")
        self.applied_seq = seq
        if refuses in self.refused:
            if refuses in self.unmarked:
                self.unmarked.remove(refuses)
        elif refuses > self.snapshot_seq:  # applied here without trouble: undo it by a rebuild
            log.warning("%s: input %d is refused by marker %d but was applied here: rebuilding without it",
                        self.shard, refuses, seq)
            self.refused.add(refuses)
            self.broken = True
            self._history_stale = self.history is not None  # it holds the rows of an input that never happened
            request = next((r for r, (s, _) in self.answers.items() if s == refuses), "")
            if request:
                self._refuse_request(request, refuses)
        self._wake()

    def apply_stored(self, seq: int, headers: dict | None, data: bytes) -> Applied | None:
        if seq <= self.applied_seq:
            return None  # already applied (a redelivery)
        h = headers or {}
        kind = h.get(KIND, "cmd")
        if kind == REFUSAL:
            self.apply_marker(seq, int(h[REFUSES]))
            return None
        return self.apply(seq, kind, codec.load_input(data), h.get(REQUEST, ""), int(h.get(MARKET_SEQ, 0) or 0))

    async def rebuild(self) -> None:
        """A new core after a refusal: the last snapshot plus every stored input after it up to
        ``applied_seq`` except the refused ones (what a cold member's recovery computes)."""
        if not self.broken:
            return
        target = self.applied_seq
        snap = await self.latest_snapshot()
        ex = self._core_of(snap)
        start = snap.seq if snap is not None else 0
        if start >= target:  # the leader snapshotted past this point (its state has no refused input)
            assert snap is not None
            log.warning("%s: rebuilt from the snapshot at %d (inputs %d..%d were not applied here)",
                        self.shard, start, target + 1, start)
            self._restore(snap)
        else:
            history = self.history if self._history_stale else None
            if history is not None:
                history.load(snap.history if snap is not None and snap.history else _empty_history())
            async for seq, headers, data in self._stored(start + 1, target):
                if seq not in self.refused and headers.get(KIND) != REFUSAL:
                    msg = codec.load_input(data)
                    events = ex.apply(msg)
                    if history is not None and headers.get(KIND) != "pad":
                        history.record_committed(msg, [e for e in events if owned_event(self.layout, self.shard, e)])
            self.ex = ex
        self.broken = self._history_stale = False
        log.warning("%s: core rebuilt from the snapshot at %d + the stream up to %d, refused inputs %s skipped",
                    self.shard, start, self.applied_seq, sorted(s for s in self.refused if s > start))
        self._wake()

    async def _stored(self, first: int, last: int) -> AsyncIterator[tuple[int, dict, bytes]]:
        """The stored inputs ``first..last``: (seq, headers, payload), read by one ordered consumer."""
        if first > last:
            return
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=first)
        sub = await self.js.subscribe(self.names.input_subject, stream=self.names.input_stream, ordered_consumer=True,
                                      config=config, pending_msgs_limit=1_000_000)
        try:
            while True:
                msg = await sub.next_msg(timeout=10)
                seq = msg.metadata.sequence.stream
                if seq != first:
                    raise ClusterError(f"{self.shard}: input {seq} where {first} was expected (trimmed?)")
                yield seq, msg.headers or {}, msg.data
                if seq >= last:
                    return
                first += 1
        finally:
            await sub.unsubscribe()

    def _wake(self) -> None:
        if self._waiters:
            self._waiters = _release(self._waiters, self.applied_seq)
        if self._market_waiters:
            self._market_waiters = _release(self._market_waiters, self.market_seq)

    async def wait_applied(self, seq: int, timeout: float = 10.0) -> None:
        if self.applied_seq >= seq:
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((seq, fut))
        await asyncio.wait_for(fut, timeout)

    async def wait_market(self, market_seq: int, timeout: float = 10.0) -> list:
        """Wait until the market event ``market_seq`` is applied; the events it caused here."""
        if self.market_seq < market_seq:
            fut = asyncio.get_running_loop().create_future()
            self._market_waiters.append((market_seq, fut))
            await asyncio.wait_for(fut, timeout)
        return self.market_events.get(market_seq, [])

    # ------------------------------------------------------------------ following the stream

    async def follow(self) -> None:
        """Apply every input stored after ``applied_seq``, as it arrives (an ordered consumer)."""
        if self._sub is not None:
            return

        async def on_msg(msg: Any) -> None:
            try:
                if msg.metadata.sequence.stream > self.applied_seq + 1:  # the inputs between are trimmed
                    await self.jump_to_snapshot()
                self.apply_stored(msg.metadata.sequence.stream, msg.headers, msg.data)
                if self.broken:
                    await self.rebuild()
            except Exception:
                log.exception("%s: cannot apply input %s", self.shard, msg.metadata.sequence.stream)
                raise

        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.applied_seq + 1)
        self._sub = await self.js.subscribe(self.names.input_subject, stream=self.names.input_stream, cb=on_msg,
                                            ordered_consumer=True, config=config, idle_heartbeat=1.0,
                                            pending_msgs_limit=1_000_000)

    async def unfollow(self) -> None:
        if self._sub is not None:
            sub, self._sub = self._sub, None
            try:
                await sub.unsubscribe()
            except Exception:  # noqa: BLE001 - the connection may be gone; nothing to undo
                pass

    async def keep_following(self, every: float = 1.0, stuck_after: float = 3.0) -> None:
        """Forever: if the stream holds inputs this replica has not applied for ``stuck_after``
        seconds (its consumer was lost with a NATS node), catch up directly and follow again."""
        loop = asyncio.get_running_loop()
        behind_since: float | None = None
        behind_seen = -1
        while True:
            await asyncio.sleep(every)
            try:
                last = await self.last_stored()
            except Exception:  # noqa: BLE001 - NATS unreachable for now: look again later
                continue
            if self.applied_seq >= last:
                behind_since = None
                continue
            seen = self.applied_seq
            if behind_since is None or seen != behind_seen:
                behind_since, behind_seen = loop.time(), seen
                continue
            if loop.time() - behind_since < stuck_after:
                continue
            log.warning("%s: replica stuck at %d of %d: following again", self.shard, seen, last)
            try:
                await self.unfollow()
                await self.catch_up()
                await self.follow()
            except Exception as exc:  # noqa: BLE001 - retried on the next round
                log.warning("%s: following again failed: %s", self.shard, exc)
            behind_since = None

    async def last_stored(self) -> int:
        info = await self.js.stream_info(self.names.input_stream)
        return info.state.last_seq

    async def catch_up(self) -> int:
        """Apply exactly the inputs stored after ``applied_seq`` up to the stream's last one now."""
        info = await self.js.stream_info(self.names.input_stream)
        last = info.state.last_seq
        if self.applied_seq < last and self.applied_seq + 1 < info.state.first_seq:
            await self.jump_to_snapshot()
        while self.applied_seq < last:
            seq = self.applied_seq + 1
            raw = await self.js.get_msg(self.names.input_stream, seq)
            self.apply_stored(seq, raw.headers, raw.data or b"")
            if self.broken:
                await self.rebuild()
        return last


def _release(waiters: list[tuple[int, asyncio.Future]], reached: int) -> list[tuple[int, asyncio.Future]]:
    """Resolve the waiters whose target ``reached`` got to; the others, still waiting."""
    keep = []
    for target, fut in waiters:
        if reached >= target:
            if not fut.done():
                fut.set_result(None)
        else:
            keep.append((target, fut))
    return keep

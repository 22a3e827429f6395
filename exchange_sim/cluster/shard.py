"""A shard process: standby until it holds the shard's lease, then the shard's sequencer.

    shard = ShardProcess(urls, layout, "s0", member="s0-a", new_exchange=...)
    await shard.run()               # until stop(); SIGKILL-safe by construction

**Standby.** Restore the last snapshot, follow the input stream (a hot replica), and try to
create the lease key in ``exsim-leases`` every ``lease_ttl / 4``. The key exists while a leader
renews it; it vanishes ``lease_ttl`` after the leader's last renewal (the bucket's max age).

**Leader.** Stop following, apply exactly what the stream holds (``catch_up``), then merge two
inputs into the shard's input stream: the venue's market stream (from the last market sequence
the journal holds + 1) and the command subject (request/reply). Each batch is appended with
``Nats-Expected-Last-Sequence`` = the sequence this process last saw, so if anyone else wrote
(a second leader after a failover) the append is refused and this process steps down and
catches up before it may lead again. Only after JetStream acknowledged an input (stored on a
majority of the NATS nodes) is it applied to the core and answered (with the account's state
after it, ``account_state.py``); then its events are published per account on
``exsim.events.<shard>.<account>`` and the user-data frames they make on
``exsim.user.<shard>.<account>`` (user_frames.py). A new account's shard goes into the
``exsim-accounts`` bucket before the creation is answered (placement.py).

**Reads.** Every member, leader or standby, answers gateways' reads (reads.py) from its
replica and the read models it feeds (history, event log).

A command carries a request id (header ``Exsim-Request``): a retry of a journaled command is
answered from ``replica.answers`` with the sequence and events it already got, never applied
again. A ``CreateAccount`` is preceded by placeholder accounts so the core numbers the new
account with an id this shard owns (``layout.py``). Snapshots go to the object store every
``snapshot_every`` inputs, with the shard's history read model (closed orders, fills, income,
liquidations: every member keeps one, fed by its replica).

**Trimming** (``trim``, on by default): after storing a snapshot the leader purges the input
stream up to the *previous* snapshot's sequence, so the stream holds between one and two
snapshot intervals of inputs. Nothing needs the purged inputs: a member or gateway that
restores, or that lags behind the trimmed point, continues from the last snapshot (core, answers
and history read model); the interval kept spares a follower that is only a little behind
(a standby, a gateway) that jump, and the refusal rebuild replays from the last snapshot only.

**A core bug** (``Exchange.apply`` raises on an input already in the stream): the replica
refuses it and the leader rebuilds its core without it (``replica.py``), applies the rest of
the batch, appends a refusal marker for it (``Exsim-Refuses: <seq>``, with expected-last-
sequence like every append) and only then answers the command's requester with the error
``refused`` (the gateway's client gets −1000); the traceback is in the log and the leader keeps
serving. A retry under the same request id gets the same refusal; the client's own retry (a new
request) is a new input. If the leader dies between the input and its marker, the next leader's
core raises on it too while catching up and appends the marker itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError

from exchange_sim.core import messages as m
from exchange_sim.core.exchange import Exchange
from exchange_sim.journal.history import History

from . import account_state, codec, connect, fund
from .errors import ClusterError, WriterRefused
from .layout import (
    EXPECTED_LAST_SEQ, KIND, MARKET_SEQ, MSG_ID, REFUSAL, REFUSES, REQUEST, WRONG_LAST_SEQUENCE, Layout, ShardNames,
)
from .placement import Placement
from .reads import ShardReads
from .replica import ShardReplica
from .user_frames import UserFrames, public_subject, user_subject

log = logging.getLogger(__name__)

MAX_BATCH = 256


class ShardProcess:
    """One member (leader or standby) of a shard (see module doc)."""

    def __init__(self, urls: list[str], layout: Layout, shard: str, member: str,
                 new_exchange: Callable[[], Exchange], *, snapshot_every: int = 20_000, trim: bool = True) -> None:
        self.urls = urls
        self.layout = layout
        self.shard = shard
        self.member = member
        self.names = ShardNames(shard)
        self.new_exchange = new_exchange
        self.lease_ttl = layout.lease_ttl
        self.snapshot_every = snapshot_every
        self.trim = trim
        self.history = History.temporary()  # the shard's history read model (replica.py), in each snapshot
        self.nc: Any = None
        self.js: Any = None
        self.kv: dict[str, Any] = {}
        self.replica: ShardReplica | None = None
        self.reads: ShardReads | None = None
        self.frames: UserFrames | None = None
        self.placement: Placement | None = None
        self.leading = False
        self.took_over_at: float | None = None  # monotonic time this member became leader
        self._stop = asyncio.Event()
        self._lease_rev = 0
        self._inbox: asyncio.Queue | None = None

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        self.nc = await connect.connect(self.urls, f"shard-{self.member}")
        self.js = self.nc.jetstream()
        await connect.market_stream(self.js, self.layout)
        await connect.input_stream(self.js, self.layout, self.shard)
        self.kv = await connect.buckets(self.js, self.layout)
        await connect.agreed_layout(self.kv["layout"], self.layout)
        await connect.agreed_core(self.js, self.layout, self.new_exchange())
        self.replica = replica = ShardReplica(self.js, self.kv["snapshots"], self.layout, self.shard,
                                              self.new_exchange, history=self.history)
        self.reads = ShardReads(replica, self.layout)
        replica.on_applied = self.reads.on_applied
        self.frames = UserFrames(lambda: replica.ex)
        self.placement = await Placement.open(self.js, self.layout)
        await self.replica.restore()

    async def run(self) -> None:
        """Standby, leader when the lease is free, until ``stop()``."""
        if self.replica is None:
            await self.open()
        assert self.replica is not None and self.reads is not None
        await connect.retrying(f"catch up {self.shard}", self.replica.catch_up)  # before answering reads
        await self.reads.serve(self.nc)
        log.info("%s: %s standing by at input %d", self.shard, self.member, self.replica.applied_seq)
        while not self._stop.is_set():
            try:
                await self.replica.follow()
                if await self._acquire_lease():
                    try:
                        await self._lead()
                    finally:
                        self.leading = False
                    continue
            except Exception as exc:  # noqa: BLE001 - NATS trouble (a node lost, elections): step down, retry
                log.warning("%s: %s stepped down: %s: %s", self.shard, self.member, type(exc).__name__, exc)
            try:
                await asyncio.wait_for(self._stop.wait(), self.lease_ttl / 4)
            except asyncio.TimeoutError:
                pass

    def stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        self.stop()
        if self.nc is not None:
            await self.nc.drain()
        self.history.close()

    # ------------------------------------------------------------------ the lease

    async def _acquire_lease(self) -> bool:
        """Create the lease key (nobody holds it), or renew it if this member still holds it."""
        leases = self.kv["leases"]
        try:
            if self._lease_rev:
                try:
                    self._lease_rev = await leases.update(self.shard, self.member.encode(), last=self._lease_rev)
                    return True
                except (KeyWrongLastSequenceError, KeyNotFoundError):
                    self._lease_rev = 0  # someone else's now, or lapsed: create it like anyone
            self._lease_rev = await leases.create(self.shard, self.member.encode())
            return True
        except (KeyWrongLastSequenceError, APIError):
            return False
        except Exception as exc:  # noqa: BLE001 - NATS unreachable for now: stay standby
            log.debug("%s: lease attempt failed: %s", self.shard, exc)
            return False

    async def _renew_forever(self) -> None:
        """Renew the lease every ttl/3; on any failure give it up (stop leading)."""
        while self.leading:
            await asyncio.sleep(self.lease_ttl / 3)
            try:
                self._lease_rev = await self.kv["leases"].update(self.shard, self.member.encode(),
                                                                last=self._lease_rev)
                await self._publish_float()
            except (KeyWrongLastSequenceError, KeyNotFoundError, APIError) as exc:
                log.warning("%s: %s lost its lease: %s", self.shard, self.member, exc)
                self._lease_rev = 0
                self._give_up()
                return
            except Exception as exc:  # noqa: BLE001 - a reconnect; retried until the lease would lapse
                log.debug("%s: renewal failed: %s", self.shard, exc)

    def _give_up(self) -> None:
        self.leading = False
        if self._inbox is not None:
            self._inbox.put_nowait(None)

    # ------------------------------------------------------------------ leading

    async def _lead(self) -> None:
        replica = self.replica
        assert replica is not None
        await replica.unfollow()
        await replica.catch_up()
        await self._mark_refusals()  # a refusal the last leader did not live to mark
        self.leading = True
        self.took_over_at = time.monotonic()
        log.info("%s: %s leads from input %d (market %d)", self.shard, self.member, replica.applied_seq,
                 replica.market_seq)
        self._inbox = inbox = asyncio.Queue()
        renew = asyncio.get_running_loop().create_task(self._renew_forever(), name=f"lease-{self.shard}")

        async def on_command(msg: Any) -> None:
            inbox.put_nowait(("cmd", 0, msg.data, msg))

        commands = await self.nc.subscribe(self.names.command_subject, queue="leader", cb=on_command,
                                           pending_msgs_limit=500_000)

        async def on_market(msg: Any) -> None:
            inbox.put_nowait(("mkt", msg.metadata.sequence.stream, msg.data, None))

        market = await self.js.subscribe(
            self.layout.market_subject, stream=self.layout.market_stream, cb=on_market, ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=replica.market_seq + 1),
            idle_heartbeat=1.0, pending_msgs_limit=1_000_000)
        stop_wait = asyncio.get_running_loop().create_task(self._stop.wait())
        try:
            while self.leading and not self._stop.is_set():
                get = asyncio.ensure_future(inbox.get())
                done, _ = await asyncio.wait({get, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    break
                first = get.result()
                if first is None:
                    break
                batch = [first]
                while not inbox.empty() and len(batch) < MAX_BATCH:
                    item = inbox.get_nowait()
                    if item is None:
                        self.leading = False
                        break
                    batch.append(item)
                await self.sequence(batch, inbox)
                if replica.applied_seq - replica.snapshot_seq >= self.snapshot_every:
                    previous = replica.snapshot_seq
                    await replica.save_snapshot()
                    if self.trim and previous:
                        await self._trim(previous)
        finally:
            self.leading = False
            stop_wait.cancel()
            renew.cancel()
            for sub in (commands, market):
                try:
                    await sub.unsubscribe()
                except Exception:  # noqa: BLE001 - connection gone
                    pass
            self._inbox = None

    async def sequence(self, batch: list, inbox: asyncio.Queue) -> None:
        """Append a batch to the input stream (expected-last-sequence), then apply and answer it.

        ``batch`` items are ``("cmd", 0, payload, nats_msg)`` or ``("mkt", market_seq, payload, None)``.
        Raises ``WriterRefused`` (after applying the prefix that was stored) when an append is
        refused: someone else wrote to the stream since this member last saw it.
        """
        replica = self.replica
        assert replica is not None
        planned: list[tuple[str, Any, str, int, Any]] = []  # (kind, msg, request, market seq, reply msg)
        again: dict[str, list] = {}  # request id -> replies of repeats within this batch (a retry racing its first)
        last_market = replica.market_seq
        creating = False
        for kind, market_seq, data, reply in batch:
            if kind == "mkt":
                if market_seq <= last_market:
                    continue  # already journaled (a redelivery after a restart of the consumer)
                last_market = market_seq
                planned.append(("mkt", codec.load_input(data), "", market_seq, None))
                continue
            request = (reply.headers or {}).get(REQUEST, "")
            known = replica.answers.get(request) if request else None
            if known is not None:
                await self._answer(reply, known[0], known[1], _loads_or_none(data))
                continue
            if request and request in replica.refused_requests:
                await self._refuse(reply, "refused", REFUSED_TEXT)
                continue
            if request in again:
                again[request].append(reply)
                continue
            if request:
                again[request] = []
            try:
                msg = codec.load_input(data)
            except (ValueError, TypeError) as exc:
                await self._refuse(reply, "bad-input", str(exc)[:200])
                continue
            if type(msg) not in _COMMAND_TYPES:
                await self._refuse(reply, "bad-input", f"not a command: {type(msg).__name__}")
                continue
            if isinstance(msg, m.CreateAccount):
                if creating:  # one creation per batch, so the padding below is exact
                    inbox.put_nowait((kind, market_seq, data, reply))
                    continue
                creating = True
                last_id = max(replica.ex.account_ids(), default=0)
                target = self.layout.next_owned_id(self.shard, last_id)
                for _ in range(last_id + 1, target):
                    planned.append(("pad", m.CreateAccount(ts=msg.ts, name=""), "", 0, None))
            planned.append(("cmd", msg, request, 0, reply))
        if not planned:
            return
        base = replica.applied_seq
        acks = await asyncio.gather(*(self._append(base + i, p) for i, p in enumerate(planned)),
                                    return_exceptions=True)
        stored = 0
        fund_moved = False
        for i, ack in enumerate(acks):
            if isinstance(ack, BaseException) or getattr(ack, "seq", None) != base + i + 1:
                break
            stored += 1
        refused: list[Any] = []  # replies to refused commands: answered once their markers are stored
        for i in range(stored):
            kind, msg, request, market_seq, reply = planned[i]
            await replica.rebuild()  # (only after a refusal) the core without the refused input
            applied = replica.apply(base + i + 1, kind, msg, request, market_seq)
            if applied.refused:
                refused.extend(r for r in (reply, *again.get(request, ())) if r is not None)
                continue
            if isinstance(msg, m.CreateAccount):
                await self._place(applied.events)
            if reply is not None:
                for each in (reply, *again.get(request, ())):
                    await self._answer(each, applied.seq, applied.events, msg)
            await self._publish_events(applied.events)
            fund_moved = fund_moved or any(type(e) in _FUND_EVENTS for e in applied.events)
        await replica.rebuild()
        if fund_moved:
            await self._publish_float()  # after the rebuild: the float without any refused input
        if stored < len(planned):
            failure = acks[stored]
            self.leading = False
            raise WriterRefused(f"append {base + stored + 1} refused: {failure!r}")
        await self._mark_refusals()
        for reply in refused:
            await self._refuse(reply, "refused", REFUSED_TEXT)

    async def _mark_refusals(self) -> None:
        """Append a refusal marker for every input refused here and not marked yet (module doc)."""
        replica = self.replica
        assert replica is not None
        await replica.rebuild()
        for refuses in list(replica.unmarked):
            headers = {EXPECTED_LAST_SEQ: str(replica.applied_seq), KIND: REFUSAL, REFUSES: str(refuses),
                       MSG_ID: f"r:{refuses}"}
            try:
                ack = await self.js.publish(self.names.input_subject, b"", timeout=5.0,
                                            stream=self.names.input_stream, headers=headers)
            except APIError as exc:
                self.leading = False
                if getattr(exc, "err_code", None) == WRONG_LAST_SEQUENCE:
                    raise WriterRefused(str(exc)) from None
                raise
            if ack.seq != replica.applied_seq + 1:  # a duplicate id: someone marked it already
                self.leading = False
                raise WriterRefused(f"refusal marker of {refuses} stored at {ack.seq}, not {replica.applied_seq + 1}")
            replica.apply_marker(ack.seq, refuses)
            log.error("%s: input %d refused (the core raised on it); marker at %d", self.shard, refuses, ack.seq)

    async def _trim(self, upto: int) -> None:
        """Purge the inputs up to ``upto`` (the previous snapshot's) from the input stream (module doc)."""
        try:
            await self.js.purge_stream(self.names.input_stream, seq=upto + 1)
        except Exception as exc:  # noqa: BLE001 - not trimmed this time; the next snapshot tries again
            log.warning("%s: trimming the inputs up to %d failed: %s", self.shard, upto, exc)
            return
        log.info("%s: inputs up to %d trimmed (snapshot at %d)", self.shard, upto, self.replica.snapshot_seq
                 if self.replica else 0)

    async def _append(self, expected_last: int, planned: tuple) -> Any:
        kind, msg, request, market_seq, _ = planned
        headers = {EXPECTED_LAST_SEQ: str(expected_last), KIND: kind}
        if request:
            headers[REQUEST] = request
            headers[MSG_ID] = f"c:{request}"
        if market_seq:
            headers[MARKET_SEQ] = str(market_seq)
            headers[MSG_ID] = f"m:{market_seq}"
        try:
            return await self.js.publish(self.names.input_subject, codec.dump_input(msg), timeout=5.0,
                                         stream=self.names.input_stream, headers=headers)
        except APIError as exc:
            if getattr(exc, "err_code", None) == WRONG_LAST_SEQUENCE:
                raise WriterRefused(str(exc)) from None
            raise

    async def _answer(self, reply: Any, seq: int, events: list, msg: Any = None) -> None:
        """The command's sequence and events, and the state of its account now (read-your-writes)."""
        if reply is not None and reply.reply:
            replica = self.replica
            assert replica is not None and self.reads is not None
            account = _account_of(msg, events)
            state = None
            if account is not None and self.layout.owns(self.shard, account):
                touched = tuple(dict.fromkeys(e.order_id for e in events
                                              if isinstance(e, m.OrderUpdate) and e.account == account))
                state = account_state.state_of(replica.ex, None, account, self.shard, replica.applied_seq,
                                               touched=touched)
            await self.nc.publish(reply.reply, codec.dump_reply(seq, events, account_state.encode(state)))

    async def _place(self, events: list) -> None:
        """Record where a new account lives (``exsim-accounts``) before anyone is told it exists."""
        assert self.placement is not None
        for event in events:
            if isinstance(event, m.AccountCreated) and self.layout.owns(self.shard, event.account):
                await self.placement.record(event.account, self.shard)

    async def _refuse(self, reply: Any, kind: str, text: str) -> None:
        if reply is not None and reply.reply:
            await self.nc.publish(reply.reply, codec.dump_error(kind, text))

    async def _publish_float(self) -> None:
        """The fund service keeps this shard's insurance fund float in its band (cluster/fund.py)."""
        replica = self.replica
        assert replica is not None
        await self.nc.publish(fund.float_subject(self.shard),
                              fund.float_report(replica.applied_seq, replica.ex.insurance_fund))

    async def _publish_events(self, events: list) -> None:
        """Each event to ``exsim.events.<shard>.<account>`` (events of placeholders are dropped), the
        user-data frames they make to ``exsim.user.<shard>.<account>``, liquidations to
        ``exsim.public.<shard>`` (user_frames.py)."""
        owned = []
        for event in events:
            account = getattr(event, "account", None)
            if isinstance(account, int) and self.layout.owns(self.shard, account):
                owned.append(event)
                data = m.dumps(event).encode()
                await self.nc.publish(self.names.events_subject(account), data)
                if isinstance(event, m.Liquidation):
                    await self.nc.publish(public_subject(self.shard), data)
        if owned and self.frames is not None:
            for account, frame in self.frames.frames(owned):
                await self.nc.publish(user_subject(self.shard, account), frame)


_COMMAND_TYPES = frozenset(m.COMMANDS)
_FUND_EVENTS = (m.InsuranceFundChange, m.InsuranceFundTransferred)
REFUSED_TEXT = "the simulator hit an internal error applying it; it was refused and nothing of it was kept"


def _account_of(msg: Any, events: list) -> int | None:
    """The account whose state a command's answer carries (a new account: the one created)."""
    if isinstance(msg, m.CreateAccount):
        return next((e.account for e in events if isinstance(e, m.AccountCreated)), None)
    if isinstance(msg, m.Transfer):
        return msg.from_account
    account = getattr(msg, "account", None)
    return account if isinstance(account, int) else None


def _loads_or_none(data: bytes) -> Any:
    try:
        return codec.load_input(data)
    except (ValueError, TypeError):
        return None


def check_member_name(member: str) -> str:
    if not member or any(c in member for c in " .*>"):
        raise ClusterError(f"bad member name {member!r}")
    return member

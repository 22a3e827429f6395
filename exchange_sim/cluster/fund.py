"""The venue's insurance fund service: one fund, shared by every shard through their floats.

    exchange-sim cluster fund --nats URLS --member fund-a      # and a fund-b standby elsewhere

On Binance the insurance fund is venue-wide. Here it is split in two places that always add up:

- the **service's balance**, kept by this process in its own journal, the replicated JetStream
  stream ``FUND`` (subject ``exsim.fund.journal``), written by the leader only, each append
  with ``Nats-Expected-Last-Sequence`` (a zombie leader is refused, as a shard's is);
- each shard core's **float** (``core/venue_fund.py``): the slice its liquidations pay from and
  its fees go to, core state like any other (snapshot + input stream). In cluster mode a core
  starts with an empty float.

**Venue-wide fund = service balance + every float + what is in transit** (``venue_total``). The
first leader journals ``open`` with the venue's initial balance (``--initial``, the single
node's ``insurance_fund``). Shard leaders publish their float (``exsim.fund.float.<shard>``:
the input sequence and the balance) after every input that changed it and on every lease
renewal. The service keeps each float within ``[low, high]``: below ``low`` it grants up to
``target`` (as far as its balance goes), above ``high`` it sweeps back down to ``target``.

**A transfer is two steps, debit first, each journaled, idempotent by its ref:**

1. the service journals its intent: ``grant`` (its balance is debited now) or ``sweep`` (nothing
   yet); the ref is ``fund-<that entry's sequence>``, unique on the venue;
2. it sends the shard ``InsuranceFundTransfer(ts, ±amount, ref)`` on ``exsim.cmd.<shard>``
   (request id = ref) until the shard's leader answers; the shard journals it in its own input
   stream and its core applies it once (a repeated ref is refused as a duplicate, which tells
   the service it *was* applied);
3. it journals ``done`` (a sweep's amount is credited to the service now) or, if the shard
   refused it (a sweep larger than the float has become), ``undo`` (a grant's debit returns).

A crash anywhere leaves an intent without its ``done``/``undo`` in the service's journal: the next
leader (``FundBook`` rebuilt from the journal) resends exactly those, and the shard's answer
settles them. Nothing is doubled (the ref) or lost (the intent is journaled before the shard is
asked, the credit only after the shard answered). While a transfer is in transit the money is in
neither place for a moment; ``venue_total`` counts it once by asking whether the shard's core has
applied the ref (``FundFloat.applied``): a pending grant not yet applied, a pending sweep
applied but not yet credited. Gateways follow the ``FUND`` stream (``FundFollower``) and report
``venue_total`` as ``/sim/v1/insurance-fund``: they hold no shard, so they ask each shard for its
float and the refs it applied (the read ``fund``: reads.py), then catch the book up to the
journal's end, so the book is never behind the floats.

Before the first grants reach a shard (seconds after a cold start) its float is empty: a
liquidation there that needs the fund deleverages instead, as a single node with an empty fund.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from nats.js.api import ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import APIError

from exchange_sim.core import messages as m
from exchange_sim.core.fixed import fmt_trim
from exchange_sim.core.venue_fund import TRANSFER_DUPLICATE

from . import connect
from .errors import WriterRefused
from .layout import EXPECTED_LAST_SEQ, PREFIX, WRONG_LAST_SEQUENCE, Layout
from .services import Lease, ask_shard, serve

log = logging.getLogger(__name__)

FUND_STREAM = "FUND"
FUND_SUBJECT = f"{PREFIX}.fund.journal"
LEASE_KEY = "fund"  # in the lease bucket, beside the shards' leases
GRANT, SWEEP, DONE, UNDO, OPEN = "grant", "sweep", "done", "undo", "open"


def float_subject(shard: str) -> str:
    return f"{PREFIX}.fund.float.{shard}"


def float_report(seq: int, balance: int) -> bytes:
    """What a shard leader publishes: its input sequence and its float after it."""
    return b'{"seq":%d,"balance":%d}' % (seq, balance)


class FundEntry(msgspec.Struct, frozen=True, omit_defaults=True):
    """One line of the fund service's journal (see module doc)."""

    op: str
    ref: str = ""
    shard: str = ""
    amount: int = 0  # always >= 0: a grant's or a sweep's size, the open balance


class FundBook:
    """The service's state, a pure function of its journal: balance and transfers in flight."""

    def __init__(self) -> None:
        self.seq = 0
        self.balance = 0
        self.opened = False
        self.pending: dict[str, FundEntry] = {}
        self.granted: dict[str, int] = {}  # shard -> grants applied there, less sweeps from there
        self.done: dict[str, FundEntry] = {}  # ref -> the intent of a transfer that completed

    def apply(self, seq: int, entry: FundEntry) -> None:
        self.seq = seq
        if entry.op == OPEN and not self.opened:
            self.opened = True
            self.balance += entry.amount
        elif entry.op in (GRANT, SWEEP):
            self.pending[entry.ref] = entry
            if entry.op == GRANT:
                self.balance -= entry.amount
        elif entry.op in (DONE, UNDO):
            intent = self.pending.pop(entry.ref, None)  # a second done (a zombie's) changes nothing
            if intent is not None and (intent.op, entry.op) in ((SWEEP, DONE), (GRANT, UNDO)):
                self.balance += intent.amount
            if intent is not None and entry.op == DONE:
                sign = 1 if intent.op == GRANT else -1
                self.granted[intent.shard] = self.granted.get(intent.shard, 0) + sign * intent.amount
                self.done[entry.ref] = intent


def venue_total(book: FundBook, floats: Mapping[str, tuple[int, Iterable[str] | Mapping[str, int]]]) -> int:
    """The venue's fund: service balance + every float (``shard -> (float, refs applied)``) + in transit.

    Exact whatever the floats' view lags behind the book (a gateway's replica of a shard may not
    have applied a transfer the book already calls done): each transfer is counted once, from
    whether the float has applied its ref."""
    total = book.balance + sum(balance for balance, _ in floats.values())
    for ref, intent in itertools.chain(book.pending.items(), book.done.items()):
        applied = ref in floats.get(intent.shard, (0, ()))[1]
        if intent.op == GRANT and not applied:
            total += intent.amount  # left the service, not in the float (as seen) yet
        elif intent.op == SWEEP and applied and ref in book.pending:
            total += intent.amount  # left the float, not credited to the service yet
        elif intent.op == SWEEP and not applied and ref in book.done:
            total -= intent.amount  # credited to the service, still in the float as seen
    return total


async def fund_stream(js: Any, layout: Layout) -> None:
    await connect.retrying("fund stream", lambda: js.add_stream(StreamConfig(
        name=FUND_STREAM, subjects=[FUND_SUBJECT], num_replicas=layout.replicas, storage=StorageType.FILE)))


async def read_book(js: Any) -> FundBook:
    """The fund book as the journal holds it now."""
    book = FundBook()
    last = (await connect.retrying("fund stream info", lambda: js.stream_info(FUND_STREAM))).state.last_seq
    for seq in range(1, last + 1):
        raw = await connect.retrying("fund journal", functools.partial(js.get_msg, FUND_STREAM, seq))
        book.apply(seq, msgspec.json.decode(raw.data, type=FundEntry))
    return book


class FundFollower:
    """A live ``FundBook`` following the ``FUND`` stream (gateways: the venue's fund)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.book = FundBook()
        self.js: Any = None
        self._sub: Any = None

    async def start(self, js: Any) -> None:
        self.js = js
        await fund_stream(self.js, self.layout)
        self.book = await read_book(self.js)

        async def on_msg(msg: Any) -> None:
            seq = msg.metadata.sequence.stream
            if seq > self.book.seq:
                self.book.apply(seq, msgspec.json.decode(msg.data, type=FundEntry))

        self._sub = await self.js.subscribe(
            FUND_SUBJECT, stream=FUND_STREAM, cb=on_msg, ordered_consumer=True, idle_heartbeat=1.0,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.book.seq + 1))

    async def caught_up(self) -> None:
        """The book up to the journal's last entry as of now (a gateway reads the floats first, then
        this: so the book is never behind the floats it is added to)."""
        last = (await connect.retrying("fund stream info", lambda: self.js.stream_info(FUND_STREAM))).state.last_seq
        while self.book.seq < last:
            seq = self.book.seq + 1
            raw = await connect.retrying("fund journal", functools.partial(self.js.get_msg, FUND_STREAM, seq))
            if seq == self.book.seq + 1:  # (unless the subscription applied it meanwhile)
                self.book.apply(seq, msgspec.json.decode(raw.data, type=FundEntry))

    async def stop(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:  # noqa: BLE001 - connection gone
                pass


class FundService:
    """One member (leader or standby) of the fund service (see module doc)."""

    def __init__(self, urls: list[str], layout: Layout, member: str, *, initial: int, target: int,
                 low: int | None = None, high: int | None = None, every: float = 0.25) -> None:
        self.urls = urls
        self.layout = layout
        self.member = member
        self.initial = initial
        self.target = target
        self.low = target // 2 if low is None else low
        self.high = target * 2 if high is None else high
        self.every = every
        self.book = FundBook()
        self.floats: dict[str, tuple[int, int]] = {}  # shard -> (input seq, float), as last reported
        self.settled_at: dict[str, int] = {}  # shard -> the input seq of its last transfer
        self.leading = False
        self.transfers = 0
        self.nc: Any = None
        self.js: Any = None
        self.lease: Lease | None = None
        self._stop = asyncio.Event()

    async def open(self) -> None:
        self.nc = await connect.connect(self.urls, f"fund-{self.member}")
        self.js = self.nc.jetstream()
        await fund_stream(self.js, self.layout)
        kv = await connect.buckets(self.js, self.layout)
        await connect.agreed_layout(kv["layout"], self.layout)
        self.lease = Lease(kv["leases"], LEASE_KEY, self.member)

        async def on_float(msg: Any) -> None:
            shard = msg.subject.rsplit(".", 1)[-1]
            report = msgspec.json.decode(msg.data)
            if report["seq"] >= self.floats.get(shard, (0, 0))[0]:
                self.floats[shard] = (report["seq"], report["balance"])

        await self.nc.subscribe(float_subject("*"), cb=on_float)

    async def run(self) -> None:
        """Standby, leader while holding the lease, until ``stop()``."""
        if self.nc is None:
            await self.open()
        assert self.lease is not None
        await serve(self.lease, self._lead, self._stop, self.layout.lease_ttl)

    def stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        self.stop()
        if self.nc is not None:
            await self.nc.drain()

    async def _lead(self) -> None:
        assert self.lease is not None
        self.book = await read_book(self.js)
        self.leading = True
        renew = asyncio.get_running_loop().create_task(self.lease.keep(self.layout.lease_ttl), name="fund-lease")
        log.info("fund: %s leads at journal %d, balance %s, %d in transit", self.member, self.book.seq,
                 fmt_trim(self.book.balance), len(self.book.pending))
        self.floats.clear()  # act on reports sent after this leader read the journal, not before
        try:
            if not self.book.opened:
                await self._append(FundEntry(OPEN, amount=self.initial))
            for ref in list(self.book.pending):  # a previous leader's transfers in transit: settle them
                await self._complete(ref)
            print(f"fund {self.member} leads", flush=True)
            while self._leads():
                await self.rebalance()
                try:
                    await asyncio.wait_for(self._stop.wait(), self.every)
                except asyncio.TimeoutError:
                    pass
        finally:
            self.leading = False
            renew.cancel()

    def _leads(self) -> bool:
        return self.leading and not self._stop.is_set() and self.lease is not None and self.lease.held

    async def rebalance(self) -> None:
        """One grant or sweep per shard whose (fresh) float left the band."""
        for shard in self.layout.shards:
            seq, balance = self.floats.get(shard, (-1, 0))
            if seq < self.settled_at.get(shard, 0):
                continue  # no report yet, or one from before our last transfer
            if balance < self.low and self.book.balance > 0:
                amount = min(self.target - balance, self.book.balance)
                await self.transfer(GRANT, shard, amount)
            elif balance > self.high:
                await self.transfer(SWEEP, shard, balance - self.target)

    async def transfer(self, op: str, shard: str, amount: int) -> None:
        ref = f"fund-{self.book.seq + 1}"
        await self._append(FundEntry(op, ref, shard, amount))
        await self._complete(ref)

    async def _complete(self, ref: str) -> None:
        """Ask the shard to apply a journaled intent until it answers; journal the outcome."""
        intent = self.book.pending[ref]
        amount = intent.amount if intent.op == GRANT else -intent.amount
        msg = m.InsuranceFundTransfer(ts=int(time.time() * 1000), amount=amount, ref=ref)
        answer = await ask_shard(self.nc, intent.shard, msg, ref, self._leads)
        if answer is None:
            return  # stepped down: the next leader settles it
        applied = False
        if isinstance(answer[0], int):
            seq, events = answer
            first = events[0] if events else None
            applied = isinstance(first, m.InsuranceFundTransferred) or (
                isinstance(first, m.CommandRejected) and first.code == TRANSFER_DUPLICATE[0])
            self.settled_at[intent.shard] = seq
            if isinstance(first, m.InsuranceFundTransferred):
                self.floats[intent.shard] = (seq, first.balance)
        await self._append(FundEntry(DONE if applied else UNDO, ref))
        self.transfers += 1
        log.info("fund: %s %s %s %s %s (service balance %s)", ref, intent.op, fmt_trim(intent.amount),
                 "to" if intent.op == GRANT else "from", intent.shard, fmt_trim(self.book.balance))
        if not applied:
            log.warning("fund: %s refused by %s: %s", ref, intent.shard, answer)

    async def _append(self, entry: FundEntry) -> None:
        """Journal one entry after the last one this leader saw (else: someone else leads now)."""
        expected = self.book.seq
        try:
            ack = await self.js.publish(FUND_SUBJECT, msgspec.json.encode(entry), stream=FUND_STREAM, timeout=5.0,
                                        headers={EXPECTED_LAST_SEQ: str(expected)})
        except APIError as exc:
            if getattr(exc, "err_code", None) == WRONG_LAST_SEQUENCE:
                self.leading = False
                raise WriterRefused(f"fund journal {expected + 1} refused") from None
            raise
        self.book.apply(ack.seq, entry)

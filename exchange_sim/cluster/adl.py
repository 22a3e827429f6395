"""The venue's ADL coordinator: deleverages every shard's positions against a shard's ADL claim.

Runs in the fund service's process (``exchange-sim cluster fund``), with its own lease key
``adl`` (one leader, any standbys; a standby holds nothing: on taking over it restores every
shard's last snapshot and follows its stream to the end). In cluster mode a shard's core that cannot cover a bankrupt
remainder from its float records an ADL claim instead of ranking only its own accounts
(``core/adl_claims.py``). The coordinator holds a replica of every shard (snapshot + input
stream, the same pure core as the shard's: ``replica.py``), so everything it decides from is
journaled state:

- **open claims**: ``liquidation.claims.open_claims`` of each shard's replica;
- **what a claim got**: the parts (``AutoDeleverage`` refs ``<shard>:<claim>:<n>``) applied on
  every shard, with the quantity each closed (``liquidation.claims.parts``);
- **the venue's ranking**: each replica's ``adl_candidates`` (Binance's PnL% × margin ratio, the
  same score a single node computes), merged by (-score, account, side). Account ids are
  venue-unique, so the order is the single node's. Each shard applies the market stream on its
  own, so the replicas may stand a few market events apart when the coordinator ranks; what it
  decides is journaled as inputs, so replay never depends on when it looked.

For each open claim (oldest first) it sends the top candidate's shard ``AutoDeleverage`` for
``min(left, its qty)``, waits until its replica applied it, and repeats until the claim is filled
or no profitable position is left anywhere; then it sends the claim's shard ``CloseAdlClaim``
(the unfilled rest goes to that shard's float). Each input is journaled by the receiving shard
before it acts, and each is idempotent (a ref applied once is refused; the close by claim id).

**The window**: from the liquidation to the last part, a claim is open, i.e. the venue carries
``qty`` more of the bankrupt side's counterparties than positions on that side: one round trip
per part (milliseconds), seconds if the coordinator fails over. **Recovery**: a new leader
waits one request timeout (a part the old leader sent is journaled by then, or never), builds
its replicas up to the end of every stream, and continues from the parts they hold: the next
part's number is the count already applied, so nothing is deleveraged twice.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from exchange_sim.core import messages as m
from exchange_sim.core.exchange import Exchange
from exchange_sim.core.fixed import fmt_trim

from . import connect
from .layout import Layout
from .replica import ShardReplica, keep_following
from .services import ASK_TIMEOUT_S, Lease, ask_shard, serve

log = logging.getLogger(__name__)

LEASE_KEY = "adl"
MAX_PARTS = 1000  # per claim and round: a bound, never reached (each part closes a whole position)


def venue_candidates(replicas: dict[str, ShardReplica], layout: Layout, symbol: str, long_side: bool,
                     exclude: int) -> list[tuple[int, int, str, int]]:
    """The venue's ADL ranking of one side of ``symbol``: ``(-score, account, position side, qty)``."""
    merged = []
    for shard, replica in replicas.items():
        for neg_score, account, side, pos in replica.ex.liquidation.adl_candidates(symbol, long_side):
            if account != exclude and layout.owns(shard, account) and pos.qty:
                merged.append((neg_score, account, side, abs(pos.qty)))
    merged.sort(key=lambda r: r[:3])
    return merged


def claim_parts(replicas: dict[str, ShardReplica], key: str) -> tuple[int, int]:
    """(parts applied, quantity they closed) of the claim ``<shard>:<claim>`` over every shard."""
    count = closed = 0
    prefix = key + ":"
    for replica in replicas.values():
        for ref, qty in replica.ex.liquidation.claims.parts.items():
            if ref.startswith(prefix):
                count += 1
                closed += qty
    return count, closed


class AdlCoordinator:
    """One member (leader or standby) of the ADL coordinator (see module doc)."""

    def __init__(self, nc: Any, layout: Layout, member: str, new_exchange: Callable[[], Exchange], *,
                 every: float = 0.25) -> None:
        self.nc = nc
        self.layout = layout
        self.member = member
        self.new_exchange = new_exchange
        self.every = every
        self.replicas: dict[str, ShardReplica] = {}
        self.lease: Lease | None = None
        self.js: Any = None
        self.kv: dict[str, Any] = {}
        self.parts = 0
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    async def open(self) -> None:
        self.js = js = self.nc.jetstream()
        self.kv = kv = await connect.buckets(js, self.layout)
        self.lease = Lease(kv["leases"], LEASE_KEY, self.member)
        for shard in self.layout.shards:
            await connect.input_stream(js, self.layout, shard)

    async def _replicas(self) -> None:
        """Every shard's last snapshot, then its stream followed to the end (a standby holds none)."""
        self.replicas = {}
        for shard in self.layout.shards:
            replica = ShardReplica(self.js, self.kv["snapshots"], self.layout, shard, self.new_exchange)
            await replica.restore()
            await replica.follow()
            await replica.wait_applied(await replica.last_stored(), timeout=300)
            self.replicas[shard] = replica
            watchdog = keep_following(f"adl: {shard} replica", lambda r=replica: r.applied_seq,
                                      replica.last_stored, functools.partial(_follow_again, replica))
            self._tasks.append(asyncio.get_running_loop().create_task(watchdog, name=f"adl-{shard}"))

    async def run(self) -> None:
        if self.lease is None:
            await self.open()
        assert self.lease is not None
        await serve(self.lease, self._lead, self._stop, self.layout.lease_ttl)

    def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()

    def _leads(self) -> bool:
        return not self._stop.is_set() and self.lease is not None and self.lease.held

    async def _lead(self) -> None:
        assert self.lease is not None
        renew = asyncio.get_running_loop().create_task(self.lease.keep(self.layout.lease_ttl), name="adl-lease")
        try:
            await asyncio.sleep(ASK_TIMEOUT_S)  # a part the previous leader sent is journaled by now, or never
            await self._replicas()
            log.info("adl: %s leads", self.member)
            while self._leads():
                await self.settle_open_claims()
                try:
                    await asyncio.wait_for(self._stop.wait(), self.every)
                except asyncio.TimeoutError:
                    pass
        finally:
            renew.cancel()
            for task in self._tasks:
                task.cancel()
            self._tasks = []
            for replica in self.replicas.values():
                await replica.unfollow()
            self.replicas = {}

    async def settle_open_claims(self) -> None:
        claims = sorted((shard, claim_id, claim) for shard, r in self.replicas.items()
                        for claim_id, claim in list(r.ex.liquidation.claims.open_claims.items()))
        for shard, claim_id, claim in claims:
            if self._leads():
                await self.settle(shard, claim_id, claim)

    async def settle(self, shard: str, claim_id: int, claim: Any) -> None:
        """Deleverage the venue against one claim in rank order, then close it on its shard."""
        key = f"{shard}:{claim_id}"
        for _ in range(MAX_PARTS):
            count, closed = claim_parts(self.replicas, key)
            left = claim.qty - closed
            if left <= 0:
                break
            ranked = venue_candidates(self.replicas, self.layout, claim.symbol, claim.side == m.SELL, claim.account)
            if not ranked:
                break
            _, account, position_side, qty = ranked[0]
            ref = f"{key}:{count + 1}"
            target = self.layout.shard_of(account)
            msg = m.AutoDeleverage(ts=_now(), account=account, symbol=claim.symbol, side=claim.side,
                                   position_side=position_side, qty=min(left, qty), price=claim.price,
                                   counterparty=claim.account, ref=ref)
            if not await self._send(target, msg, ref):
                return
            self.parts += 1
        else:
            log.warning("adl: claim %s still open after %d parts", key, MAX_PARTS)
            return
        left = claim.qty - claim_parts(self.replicas, key)[1]
        await self._send(shard, m.CloseAdlClaim(ts=_now(), claim=claim_id, qty=max(0, left)), f"adl-close:{key}")
        log.info("adl: claim %s (%s %s at %s) settled, %s left to the float", key, claim.symbol,
                 fmt_trim(claim.qty), fmt_trim(claim.price), fmt_trim(max(0, left)))

    async def _send(self, shard: str, msg: Any, request: str) -> bool:
        """Ask ``shard`` to apply ``msg``; wait until our replica applied it. False: stepped down."""
        answer = await ask_shard(self.nc, shard, msg, request, self._leads)
        if answer is None:
            return False
        if not isinstance(answer[0], int):
            raise RuntimeError(f"{shard} refused {type(msg).__name__}: {answer}")
        await self.replicas[shard].wait_applied(answer[0])
        return True


async def _follow_again(replica: ShardReplica) -> None:
    """A replica whose consumer was lost (with a NATS node): catch up directly, follow again."""
    await replica.unfollow()
    await replica.catch_up()
    await replica.follow()


def _now() -> int:
    return int(time.time() * 1000)

"""Venue-wide auto-deleveraging, the core's side (cluster mode: ``ExchangeConfig.venue_adl``).

On one node ADL ranks every account of the venue (``LiquidationEngine._auto_deleverage``). A
shard's core sees only its own accounts, so with ``venue_adl`` a liquidation its fund float
cannot cover closes the bankrupt remainder at the bankruptcy price exactly as before, and
instead of deleveraging locally records an **ADL claim**: ``AdlClaim(account, claim, symbol,
side, qty, price)`` (``side`` is the order side that closes the positions to deleverage). The
venue's coordinator (exchange_sim/cluster/adl.py) ranks the profitable positions of every shard
by the venue's ranking (``adl_candidates``) and sends, in rank order, the shard of each one

    AutoDeleverage(ts, account, symbol, side, position_side, qty, price, counterparty, ref)

which closes up to ``qty`` of that position at ``price`` (no fee, open orders cancelled, an
``Adl`` event: what a local ADL does), idempotent by ``ref`` (``<shard>:<claim>:<part>``; the
quantity each ref closed is core state, so the coordinator reads what a claim got from the
shards' replicas). When the claim is filled, or no position on the venue is left to take it,
the coordinator sends the claim's own shard ``CloseAdlClaim(ts, claim, qty)``: the ``qty`` left is
taken over by the float as a local ADL's leftover is (the claim's fund loss × that part of it) and
the claim is closed (``AdlClaimClosed``). Open claims are core state too (snapshot + journal).

Until the coordinator has acted, a claim is **open**: the venue is short of ``qty`` of the other
side for that moment (one coordinator round trip per part; seconds if the coordinator fails
over). Every input here is journaled in its shard's stream, so replay and standbys reproduce it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .accounts import Position, leg_key
from .ledger import Ledger
from .messages import BUY, SELL, AdlClaim, AdlClaimClosed, AutoDeleverage, CloseAdlClaim, CommandRejected


class LiquidationEngine(Protocol):
    """What a claim needs of ``liquidation.LiquidationEngine`` (which owns the claims)."""

    ledger: Ledger

    def deleverage(self, out: list, pos: Position, take: int, price: int, counterparty: int, now: int) -> int: ...

    def take_over(self, out: list, change: int, symbol: str, account: int, now: int) -> None: ...

ADL_REF_DUPLICATE = (-4116, "ADL ref is duplicated.")
CLAIM_UNKNOWN = (-1102, "No open ADL claim with that id.")


@dataclass(slots=True)
class Claim:
    account: int
    symbol: str
    side: str  # the order side that closes the positions to deleverage
    qty: int
    price: int
    fund_pnl: int  # what the fund would have paid to take the whole claim over


class AdlClaims:
    """Open ADL claims of this core and the coordinator's parts applied here (see module doc)."""

    def __init__(self) -> None:
        self.open_claims: dict[int, Claim] = {}
        self.next_claim = 0
        self.parts: dict[str, int] = {}  # ref -> quantity it closed here

    def open(self, symbol: str, bankrupt_long: bool, qty: int, price: int, fund_pnl: int, account: int,
             now: int) -> AdlClaim:
        self.next_claim += 1
        side = BUY if bankrupt_long else SELL  # a bankrupt long is deleveraged against shorts
        self.open_claims[self.next_claim] = Claim(account, symbol, side, qty, price, fund_pnl)
        return AdlClaim(now, account, self.next_claim, symbol, side, qty, price)

    def deleverage(self, engine: LiquidationEngine, msg: AutoDeleverage, now: int) -> list:
        if msg.ref in self.parts:
            return [_rejected(msg, ADL_REF_DUPLICATE)]
        if msg.qty <= 0 or msg.price <= 0 or msg.side not in (BUY, SELL) or not msg.ref:
            return [_rejected(msg, (-1102, "AutoDeleverage needs a side, a positive qty and price, a ref."))]
        acct = engine.ledger.accounts[msg.account]
        pos = acct.positions.get(leg_key(msg.symbol, msg.position_side))
        out: list = []
        take = 0
        if pos is not None and pos.qty and (pos.qty > 0) == (msg.side == SELL):
            take = engine.deleverage(out, pos, min(msg.qty, abs(pos.qty)), msg.price, msg.counterparty, now)
        self.parts[msg.ref] = take  # 0: the position went meanwhile; the coordinator takes the next one
        return out

    def close(self, engine: LiquidationEngine, msg: CloseAdlClaim, now: int) -> list:
        claim = self.open_claims.pop(msg.claim, None)
        if claim is None:
            return [CommandRejected(msg.ts, None, "CloseAdlClaim", *CLAIM_UNKNOWN)]
        left = max(0, min(msg.qty, claim.qty))
        change = claim.fund_pnl * left // claim.qty
        out: list = []
        engine.take_over(out, change, claim.symbol, claim.account, now)
        out.append(AdlClaimClosed(now, claim.account, msg.claim, claim.symbol, left, change))
        return out


def _rejected(msg: AutoDeleverage, err: tuple[int, str]) -> CommandRejected:
    return CommandRejected(msg.ts, msg.account, "AutoDeleverage", err[0], err[1], "", msg.symbol)

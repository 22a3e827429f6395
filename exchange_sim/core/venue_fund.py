"""This core's slice of a venue-wide insurance fund (cluster mode; exchange_sim/cluster/fund.py).

On one node the core's ``LiquidationEngine.insurance_fund`` *is* the venue's fund. In a cluster
each shard's core holds a **float**: its slice of the fund, which its liquidations pay from and
its clearance fees and gains go to, exactly as on one node. The venue's fund service keeps every
float within a band by grants and sweeps, and each one enters the core as an input journaled in
the shard's own stream, so a replay, a standby and a recovery reproduce it exactly:

    InsuranceFundTransfer(ts, amount, ref)   # amount > 0: a grant into the float; < 0: a sweep out

- ``ref`` is the fund service's id of the transfer; a ref applied once is refused the next time
  (``TRANSFER_DUPLICATE``), so the service may resend a transfer it is unsure of (after its own
  crash or a lost reply) and learns, either way, that it was applied exactly once;
- a sweep larger than the float is refused (``FLOAT_INSUFFICIENT``) and changes nothing (the
  float moved between the service's look at it and the sweep: the service undoes its intent);
- an applied transfer answers ``InsuranceFundTransferred(ts, ref, amount, balance)``; it is not
  an ``InsuranceFundChange`` (those are the fund's gains and losses, venue-wide: a transfer only
  moves money between the service and a float).

The refs applied are core state (snapshot + journal); transfers are rare (a float leaves its
band), so the set stays small.
"""

from __future__ import annotations

from .liquidation import LiquidationEngine
from .messages import CommandRejected, InsuranceFundTransfer, InsuranceFundTransferred

TRANSFER_INVALID = (-1102, "Transfer needs a non-zero amount and a ref.")
TRANSFER_DUPLICATE = (-4116, "Transfer ref is duplicated.")
FLOAT_INSUFFICIENT = (-2019, "Insurance fund float is insufficient for the sweep.")


class FundFloat:
    """Applies the fund service's transfers to the liquidation engine's fund (see module doc)."""

    def __init__(self, liquidation: LiquidationEngine) -> None:
        self.liquidation = liquidation
        self.applied: dict[str, int] = {}  # ref -> amount

    @property
    def balance(self) -> int:
        return self.liquidation.insurance_fund

    def transfer(self, msg: InsuranceFundTransfer, now: int) -> list:
        err = None
        if not msg.amount or not msg.ref:
            err = TRANSFER_INVALID
        elif msg.ref in self.applied:
            err = TRANSFER_DUPLICATE
        elif msg.amount < 0 and self.balance + msg.amount < 0:
            err = FLOAT_INSUFFICIENT
        if err is not None:
            return [CommandRejected(msg.ts, None, "InsuranceFundTransfer", err[0], err[1])]
        self.liquidation.insurance_fund += msg.amount
        self.applied[msg.ref] = msg.amount
        return [InsuranceFundTransferred(now, msg.ref, msg.amount, self.balance)]

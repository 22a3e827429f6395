"""The few ``/sapi`` (wallet) calls a futures bot makes: system status, universal transfer, key rights.

- ``GET /sapi/v1/system/status`` → ``{"status": 0, "msg": "normal"}`` (ccxt ``fetch_status``);
- ``POST /sapi/v1/asset/transfer`` (``type`` MAIN_UMFUTURE or UMFUTURE_MAIN, ``asset`` USDT,
  ``amount``) → ``{"tranId"}`` (ccxt ``transfer("USDT", x, "spot", "future")``): moves money
  between the account's **funding (spot) wallet**, kept here per account and starting at 0, and
  its futures wallet (a core ``Deposit`` / ``Withdraw``, journaled like any other command, so
  the futures side is refused exactly when the venue would refuse a withdrawal);
- ``GET /sapi/v1/asset/transfer`` (``type`` required, ``startTime``, ``endTime``, ``current``,
  ``size`` ≤ 100) → ``{"total", "rows": [{asset, amount, type, status, tranId, timestamp}]}``,
  newest first (ccxt ``fetch_transfers``);
- ``GET /sapi/v1/account/apiRestrictions`` → the key's rights: reading, futures, universal
  transfer; no withdrawals, spot or margin trading.

The funding wallet lives in memory: a restart keeps the futures wallet (journaled) and forgets
the funding wallet and the transfer list. Other transfer types answer −1130 as the venue does
for a type the account cannot use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from exchange_sim.core import messages as m

from . import errors, wire
from .auth import Caller
from .context import ApiContext, public, signed
from .errors import ApiError
from .params import Params

TO_FUTURES, TO_SPOT = "MAIN_UMFUTURE", "UMFUTURE_MAIN"
TRANSFER_TYPES = (TO_FUTURES, TO_SPOT)
ASSETS = ("USDT",)
INSUFFICIENT = (-5002, "You have insufficient balance.")


@dataclass(frozen=True, slots=True)
class WalletTransfer:
    tran_id: int
    account: int
    kind: str
    asset: str
    amount: int
    ts: int


@dataclass
class FundingWallets:
    """Per-account funding (spot) wallet balances and the transfers between it and futures."""

    balances: dict[int, int] = field(default_factory=dict)
    transfers: list[WalletTransfer] = field(default_factory=list)
    next_id: int = 1

    def balance(self, account: int) -> int:
        return self.balances.get(account, 0)

    def record(self, account: int, kind: str, asset: str, amount: int, ts: int) -> WalletTransfer:
        change = -amount if kind == TO_FUTURES else amount
        self.balances[account] = self.balance(account) + change
        row = WalletTransfer(self.next_id, account, kind, asset, amount, ts)
        self.next_id += 1
        self.transfers.append(row)
        return row


async def system_status(ctx: ApiContext, params: Params) -> dict:
    return {"status": 0, "msg": "normal"}


async def transfer(ctx: ApiContext, caller: Caller, wallets: FundingWallets) -> dict:
    p = caller.params
    kind = p.choice("type", TRANSFER_TYPES, required=True)
    asset = p.choice("asset", ASSETS, required=True, code=errors.INVALID_PARAMETER)
    amount = p.decimal("amount", required=True)
    assert kind is not None and asset is not None and amount is not None
    now = ctx.now()
    if kind == TO_FUTURES:
        if wallets.balance(caller.account) < amount:
            raise ApiError(*INSUFFICIENT)
        await ctx.submit(m.Deposit(ts=now, account=caller.account, amount=amount))
    else:
        try:
            await ctx.submit(m.Withdraw(ts=now, account=caller.account, amount=amount))
        except ApiError as exc:
            if exc.code in (-2018, -2019, -4050):
                raise ApiError(*INSUFFICIENT) from None
            raise
    row = wallets.record(caller.account, kind, asset, amount, now)
    return {"tranId": row.tran_id}


async def transfer_history(ctx: ApiContext, caller: Caller, wallets: FundingWallets) -> dict:
    p = caller.params
    kind = p.choice("type", TRANSFER_TYPES, required=True)
    start = p.integer("startTime", lo=0)
    end = p.integer("endTime", lo=0)
    current = p.integer("current", default=1, lo=1)
    size = p.integer("size", default=10, lo=1, hi=100)
    assert current is not None and size is not None
    rows = [t for t in reversed(wallets.transfers) if t.account == caller.account and t.kind == kind
            and (start is None or t.ts >= start) and (end is None or t.ts <= end)]
    page = rows[(current - 1) * size: current * size]
    return {"total": len(rows), "rows": [
        {"asset": t.asset, "amount": wire.money(t.amount), "type": t.kind, "status": "CONFIRMED",
         "tranId": t.tran_id, "timestamp": t.ts} for t in page]}


async def api_restrictions(ctx: ApiContext, caller: Caller) -> dict:
    return {"ipRestrict": False, "createTime": 0, "enableReading": True, "enableFutures": True,
            "enableSpotAndMarginTrading": False, "enableWithdrawals": False, "enableInternalTransfer": True,
            "permitsUniversalTransfer": True, "enableVanillaOptions": False, "enableMargin": False,
            "enablePortfolioMarginTrading": False, "enableFixApiTrade": False, "enableFixReadOnly": False}


def add_routes(app: web.Application) -> None:
    """Install the routes; the funding wallets belong to this application."""
    wallets = FundingWallets()
    app[WALLETS] = wallets

    async def do_transfer(ctx: ApiContext, caller: Caller) -> dict:
        return await transfer(ctx, caller, wallets)

    async def list_transfers(ctx: ApiContext, caller: Caller) -> dict:
        return await transfer_history(ctx, caller, wallets)

    r = app.router
    r.add_get("/sapi/v1/system/status", public(system_status))
    r.add_post("/sapi/v1/asset/transfer", signed(do_transfer, 900))
    r.add_get("/sapi/v1/asset/transfer", signed(list_transfers, 1))
    r.add_get("/sapi/v1/account/apiRestrictions", signed(api_restrictions, 1))


WALLETS = web.AppKey("exchange_sim_funding_wallets", FundingWallets)

__all__ = ["WALLETS", "FundingWallets", "add_routes"]

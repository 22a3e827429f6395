"""The few ``/sapi`` (wallet) calls a futures bot makes: system status, universal transfer, key rights.

- ``GET /sapi/v1/system/status`` → ``{"status": 0, "msg": "normal"}`` (ccxt ``fetch_status``);
- ``POST /sapi/v1/asset/transfer`` (``type`` MAIN_UMFUTURE or UMFUTURE_MAIN, ``asset`` USDT,
  ``amount``) → ``{"tranId"}`` (ccxt ``transfer("USDT", x, "spot", "future")``): a core
  ``UniversalTransfer`` between the account's **spot (funding) wallet**, which starts at 0 and
  holds only what came out of futures, and its futures wallet. The core owns both wallets (its
  ledger), so the transfer is journaled, acknowledged only once durable, and survives a restart
  like any other command; −5002 when the source wallet cannot pay (futures: above max withdraw);
- ``GET /sapi/v1/asset/transfer`` (``type`` required, ``startTime``, ``endTime``, ``current``,
  ``size`` ≤ 100) → ``{"total", "rows": [{asset, amount, type, status, tranId, timestamp}]}``,
  newest first (ccxt ``fetch_transfers``), read from the history store (``journal.history``:
  the journal's SQLite file, or a temporary one without a journal), so it is complete and on
  disk, not in memory;
- ``GET /sapi/v1/account/apiRestrictions`` → the key's rights: reading, futures, universal
  transfer; no withdrawals, spot or margin trading;
- ``GET /api/v3/account`` → the spot account: its one balance (USDT, the spot wallet, nothing
  locked: there is no spot trading) (ccxt ``fetch_balance({"type": "spot"})``).

Other transfer types answer −1130 as the venue does for a type the account cannot use.
"""

from __future__ import annotations

from aiohttp import web

from exchange_sim.core import messages as m

from . import errors, wire
from .auth import Caller
from .context import ApiContext, public, signed
from .params import Params

ASSETS = ("USDT",)


async def system_status(ctx: ApiContext, params: Params) -> dict:
    return {"status": 0, "msg": "normal"}


async def transfer(ctx: ApiContext, caller: Caller) -> dict:
    p = caller.params
    kind = p.choice("type", m.UNIVERSAL_TRANSFER_KINDS, required=True)
    p.choice("asset", ASSETS, required=True, code=errors.INVALID_PARAMETER)
    amount = p.decimal("amount", required=True)
    assert kind is not None and amount is not None
    events = await ctx.submit(m.UniversalTransfer(ts=ctx.now(), account=caller.account, kind=kind, amount=amount))
    done = next(e for e in events if isinstance(e, m.WalletTransfer))
    return {"tranId": done.tran_id}


async def transfer_history(ctx: ApiContext, caller: Caller) -> dict:
    p = caller.params
    kind = p.choice("type", m.UNIVERSAL_TRANSFER_KINDS, required=True)
    start = p.integer("startTime", lo=0)
    end = p.integer("endTime", lo=0)
    current = p.integer("current", default=1, lo=1)
    size = p.integer("size", default=10, lo=1, hi=100)
    assert kind is not None and current is not None and size is not None
    total, rows = ctx.history.wallet_transfers(caller.account, kind, start=start, end=end,
                                               offset=(current - 1) * size, limit=size)
    return {"total": total, "rows": [
        {"asset": ASSETS[0], "amount": wire.money(t.amount), "type": t.kind, "status": "CONFIRMED",
         "tranId": t.tran_id, "timestamp": t.ts} for t in rows]}


async def api_restrictions(ctx: ApiContext, caller: Caller) -> dict:
    return {"ipRestrict": False, "createTime": 0, "enableReading": True, "enableFutures": True,
            "enableSpotAndMarginTrading": False, "enableWithdrawals": False, "enableInternalTransfer": True,
            "permitsUniversalTransfer": True, "enableVanillaOptions": False, "enableMargin": False,
            "enablePortfolioMarginTrading": False, "enableFixApiTrade": False, "enableFixReadOnly": False}


async def spot_account(ctx: ApiContext, caller: Caller) -> dict:
    return {"makerCommission": 0, "takerCommission": 0, "buyerCommission": 0, "sellerCommission": 0,
            "canTrade": False, "canWithdraw": False, "canDeposit": False, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": ctx.now(), "accountType": "SPOT",
            "balances": [{"asset": ASSETS[0], "free": wire.money(ctx.ex.spot_wallet(caller.account)),
                          "locked": wire.money(0)}],
            "permissions": ["SPOT"], "uid": caller.account}


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/sapi/v1/system/status", public(system_status))
    r.add_post("/sapi/v1/asset/transfer", signed(transfer, 900))
    r.add_get("/sapi/v1/asset/transfer", signed(transfer_history, 1))
    r.add_get("/sapi/v1/account/apiRestrictions", signed(api_restrictions, 1))
    r.add_get("/api/v3/account", signed(spot_account, 20))


__all__ = ["add_routes"]

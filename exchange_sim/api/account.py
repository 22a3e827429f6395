"""Account endpoints: balances, positions, income, and the per-symbol settings.

``/fapi/v2|v3/account``, ``/fapi/v2|v3/balance``, ``/fapi/v2|v3/positionRisk``, ``/fapi/v1/income``,
``/fapi/v1/leverage``, ``/fapi/v1/marginType``, ``/fapi/v1/positionMargin``,
``/fapi/v1/positionSide/dual``, ``/fapi/v1/leverageBracket``, ``/fapi/v1/commissionRate``,
``/fapi/v1/multiAssetsMargin``. Settings are commands to the core; it refuses with the venue's
codes (−4046 same margin type, −4047/−4048 orders/position open, −4067/−4068, −4051, ...).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from exchange_sim.core import messages as m
from exchange_sim.core.fixed import fmt_trim

from . import errors, wire
from .auth import Caller
from .context import ApiContext, signed
from .errors import ApiError
from .paging import page_of

LEVERAGE_RE = re.compile(r"[0-9]{1,4}")
INCOME_TYPES = ("TRANSFER", "WELCOME_BONUS", "REALIZED_PNL", "FUNDING_FEE", "COMMISSION", "INSURANCE_CLEAR",
                "REFERRAL_KICKBACK", "COMMISSION_REBATE", "API_REBATE", "CONTEST_REWARD", "CROSS_COLLATERAL_TRANSFER",
                "OPTIONS_PREMIUM_FEE", "OPTIONS_SETTLE_PROFIT", "INTERNAL_TRANSFER", "AUTO_EXCHANGE",
                "DELIVERED_SETTELMENT", "COIN_SWAP_DEPOSIT", "COIN_SWAP_WITHDRAW", "POSITION_LIMIT_INCREASE_FEE")


def _view(ctx: ApiContext, caller: Caller) -> Any:
    view = ctx.ex.account_view(caller.account)
    if view is None:  # the key outlived its account (cannot happen unless the core was replaced)
        raise errors.bad_api_key()
    return view


async def account_info(ctx: ApiContext, caller: Caller) -> dict:
    return wire.account(_view(ctx, caller), ctx.instruments, ctx.now())


async def balance(ctx: ApiContext, caller: Caller) -> list:
    return wire.balance(_view(ctx, caller), ctx.now())


async def position_risk_v3(ctx: ApiContext, caller: Caller) -> list:
    inst = caller.params.symbol(ctx.instruments, required=False)
    return [wire.position_risk(p, ctx.instruments[p.symbol])
            for p in ctx.ex.positions(caller.account, inst.symbol if inst else None) if p.qty != 0]


async def position_risk_v2(ctx: ApiContext, caller: Caller) -> list:
    inst = caller.params.symbol(ctx.instruments, required=False)
    symbols = [inst.symbol] if inst else list(ctx.instruments)
    hedge = ctx.ex.hedge_mode(caller.account)
    rows = []
    for symbol in symbols:
        sym_inst = ctx.instruments[symbol]
        open_by_side = {p.position_side: p for p in ctx.ex.positions(caller.account, symbol) if p.qty != 0}
        for side in ((m.LONG, m.SHORT) if hedge else (m.BOTH,)):
            pos = open_by_side.get(side)
            if pos is not None:
                rows.append(wire.position_risk(pos, sym_inst, v2=True))
            else:
                rows.append(wire.empty_position(sym_inst, side, ctx.ex.leverage(caller.account, symbol, side),
                                                ctx.ex.is_isolated(caller.account, symbol),
                                                ctx.ex.market(symbol).mark))
    return rows


async def income(ctx: ApiContext, caller: Caller) -> list:
    p = caller.params
    inst = p.symbol(ctx.instruments, required=False)
    income_type = p.choice("incomeType", INCOME_TYPES)
    page = page_of(p, limit_default=100, limit_max=1000, max_span_ms=None, paged=True)
    rows = ctx.history.income(caller.account, page, symbol=inst.symbol if inst else None, income_type=income_type)
    return [{"symbol": r.symbol, "incomeType": r.income_type, "income": wire.money(r.amount), "asset": wire.ASSET,
             "info": r.info, "time": r.ts, "tranId": r.tran_id, "tradeId": r.info if r.income_type in ("REALIZED_PNL", "COMMISSION") else ""}
            for r in rows]


async def set_leverage(ctx: ApiContext, caller: Caller) -> dict:
    p = caller.params
    inst = p.symbol(ctx.instruments)
    assert inst is not None
    raw = p.text("leverage", required=True)
    if raw is None or not LEVERAGE_RE.fullmatch(raw) or not 1 <= int(raw) <= inst.max_leverage:  # ASCII only
        raise ApiError(errors.INVALID_LEVERAGE, f"Leverage {str(raw)[:8]} is not valid")
    leverage = int(raw)
    position_side = p.choice("positionSide", (m.BOTH, m.LONG, m.SHORT), default=m.BOTH)
    await ctx.submit(m.SetLeverage(ts=ctx.now(), account=caller.account, symbol=inst.symbol, leverage=leverage,
                                   position_side=position_side or m.BOTH))
    return {"leverage": leverage, "maxNotionalValue": fmt_trim(inst.max_notional(leverage)), "symbol": inst.symbol}


async def set_margin_type(ctx: ApiContext, caller: Caller) -> dict:
    p = caller.params
    inst = p.symbol(ctx.instruments)
    assert inst is not None
    margin_type = p.choice("marginType", ("ISOLATED", "CROSSED", "CROSS"), required=True,
                           code=errors.INVALID_MARGIN_TYPE, msg="Invalid marginType.")
    await ctx.submit(m.SetMarginType(ts=ctx.now(), account=caller.account, symbol=inst.symbol,
                                     isolated=margin_type == "ISOLATED"))
    return {"code": 200, "msg": "success"}


async def position_margin(ctx: ApiContext, caller: Caller) -> dict:
    p = caller.params
    inst = p.symbol(ctx.instruments)
    assert inst is not None
    amount = p.decimal("amount", required=True)
    kind = p.choice("type", ("1", "2"), required=True)
    position_side = p.choice("positionSide", (m.BOTH, m.LONG, m.SHORT), default=m.BOTH)
    assert amount is not None
    await ctx.submit(m.AdjustIsolatedMargin(ts=ctx.now(), account=caller.account, symbol=inst.symbol,
                                            amount=amount, add=kind == "1", position_side=position_side or m.BOTH))
    return {"amount": float(fmt_trim(amount)), "code": 200, "msg": "Successfully modify position margin.",
            "type": int(kind or 1)}


async def get_position_mode(ctx: ApiContext, caller: Caller) -> dict:
    return {"dualSidePosition": bool(ctx.ex.hedge_mode(caller.account))}


async def set_position_mode(ctx: ApiContext, caller: Caller) -> dict:
    dual = caller.params.choice("dualSidePosition", ("true", "false", "TRUE", "FALSE", "True", "False"),
                                required=True)
    await ctx.submit(m.SetPositionMode(ts=ctx.now(), account=caller.account, hedge=(dual or "").lower() == "true"))
    return {"code": 200, "msg": "success"}


async def leverage_bracket(ctx: ApiContext, caller: Caller) -> Any:
    inst = caller.params.symbol(ctx.instruments, required=False)
    if inst is not None:
        return wire.leverage_brackets(inst)
    return [wire.leverage_brackets(i) for i in ctx.instruments.values()]


async def adl_quantile(ctx: ApiContext, caller: Caller) -> list:
    """ADL lights (0-5) per open position's side: BOTH in one-way mode, LONG/SHORT in hedge mode."""
    inst = caller.params.symbol(ctx.instruments, required=False)
    rows: dict[str, dict[str, int]] = {}
    for pos in ctx.ex.positions(caller.account, inst.symbol if inst else None):
        if pos.qty:
            rows.setdefault(pos.symbol, {})[pos.position_side] = pos.adl_quantile
    return [{"symbol": symbol, "adlQuantile": sides} for symbol, sides in sorted(rows.items())]


async def symbol_config(ctx: ApiContext, caller: Caller) -> list:
    """``GET /fapi/v1/symbolConfig``: margin type and leverage per symbol (ccxt fetch_leverages/margin_modes)."""
    inst = caller.params.symbol(ctx.instruments, required=False)
    rows = []
    for sym in ([inst] if inst else list(ctx.instruments.values())):
        leverage = ctx.ex.leverage(caller.account, sym.symbol)
        rows.append({"symbol": sym.symbol,
                     "marginType": "ISOLATED" if ctx.ex.is_isolated(caller.account, sym.symbol) else "CROSSED",
                     "isAutoAddMargin": "false", "leverage": leverage,
                     "maxNotionalValue": fmt_trim(sym.max_notional(leverage))})
    return rows


async def account_config(ctx: ApiContext, caller: Caller) -> dict:
    view = _view(ctx, caller)
    return {"feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": True,
            "dualSidePosition": bool(view.hedge_mode), "updateTime": view.update_ts, "multiAssetsMargin": False,
            "tradeGroupId": -1}


async def commission_rate(ctx: ApiContext, caller: Caller) -> dict:
    inst = caller.params.symbol(ctx.instruments)
    assert inst is not None
    return {"symbol": inst.symbol, "makerCommissionRate": fmt_trim(inst.maker_fee),
            "takerCommissionRate": fmt_trim(inst.taker_fee)}


async def multi_assets_margin(ctx: ApiContext, caller: Caller) -> dict:
    return {"multiAssetsMargin": False}


def add_routes(app: web.Application) -> None:
    r = app.router
    for v in ("v2", "v3"):
        r.add_get(f"/fapi/{v}/account", signed(account_info, 5))
        r.add_get(f"/fapi/{v}/balance", signed(balance, 5))
    r.add_get("/fapi/v3/positionRisk", signed(position_risk_v3, 5))
    r.add_get("/fapi/v2/positionRisk", signed(position_risk_v2, 5))
    b = "/fapi/v1"
    r.add_get(f"{b}/income", signed(income, 30))
    r.add_post(f"{b}/leverage", signed(set_leverage, 1))
    r.add_post(f"{b}/marginType", signed(set_margin_type, 1))
    r.add_post(f"{b}/positionMargin", signed(position_margin, 1))
    r.add_get(f"{b}/positionSide/dual", signed(get_position_mode, 30))
    r.add_post(f"{b}/positionSide/dual", signed(set_position_mode, 1))
    r.add_get(f"{b}/leverageBracket", signed(leverage_bracket, 1))
    r.add_get(f"{b}/commissionRate", signed(commission_rate, 20))
    r.add_get(f"{b}/adlQuantile", signed(adl_quantile, 5))
    r.add_get(f"{b}/symbolConfig", signed(symbol_config, 5))
    r.add_get(f"{b}/accountConfig", signed(account_config, 5))
    r.add_get(f"{b}/multiAssetsMargin", signed(multi_assets_margin, 30))

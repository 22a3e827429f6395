"""Trade endpoints: orders and conditional (algo) orders, their queries and the account's trades.

``/fapi/v1/order`` (POST new, GET query, DELETE cancel, PUT modify), ``openOrder``, ``openOrders``,
``allOrders``, ``allOpenOrders`` (DELETE), ``userTrades``; and the algo service that ccxt uses for
stop, take-profit and trailing orders: ``/fapi/v1/algoOrder`` (POST/GET/DELETE),
``openAlgoOrders``, ``allAlgoOrders``, ``algoOpenOrders`` (DELETE). For older bots, conditional
types are also accepted on ``/fapi/v1/order`` (the pre-2025 venue behaviour).

Parameters are validated here (presence, syntax, tick/step precision); business rules (margin,
reduce-only, position side, notional, price bands) are the core's, which answers with the venue's
code. An order id that is not the caller's is "unknown" (−2011/−2013): a key never sees another
account's orders.
"""

from __future__ import annotations

import json
from dataclasses import replace

from aiohttp import web

from exchange_sim.core import messages as m
from exchange_sim.core.instruments import Instrument
from exchange_sim.core.views import OrderView

from . import errors, wire
from .auth import Caller
from .context import ApiContext, signed
from .errors import ApiError
from .paging import page_of, take
from .params import Params

SIDES = (m.BUY, m.SELL)
POSITION_SIDES = (m.BOTH, m.LONG, m.SHORT)
TIFS = (m.GTC, m.IOC, m.FOK, m.GTX)
WORKING_TYPES = (m.MARK_PRICE, m.CONTRACT_PRICE)
PRICED = {m.LIMIT, m.STOP, m.TAKE_PROFIT}
TRIGGERED = {m.STOP, m.STOP_MARKET, m.TAKE_PROFIT, m.TAKE_PROFIT_MARKET}
# the venue's documented parameters of a new order / algo order; any other one is refused (−1104),
# e.g. the ``stopLoss``/``takeProfit`` dicts ccxt forwards verbatim (binanceusdm cannot attach them)
SIGNING = frozenset({"recvWindow", "timestamp", "signature"})
ORDER_PARAMS = SIGNING | {"symbol", "side", "positionSide", "type", "timeInForce", "quantity", "reduceOnly", "price",
                          "newClientOrderId", "stopPrice", "closePosition", "activationPrice", "callbackRate",
                          "workingType", "priceProtect", "newOrderRespType", "priceMatch",
                          "selfTradePreventionMode", "goodTillDate"}
ALGO_PARAMS = SIGNING | {"algoType", "symbol", "side", "positionSide", "type", "timeInForce", "quantity", "price",
                         "triggerPrice", "workingType", "priceMatch", "closePosition", "priceProtect", "reduceOnly",
                         "activatePrice", "callbackRate", "clientAlgoId", "newOrderRespType",
                         "selfTradePreventionMode", "goodTillDate",
                         "stopPrice"}  # ccxt.pro's algoOrder.place sends it beside triggerPrice: ignored


# ----------------------------------------------------------------------------- parsing a new order


def parse_new_order(ctx: ApiContext, caller: Caller, *, algo: bool) -> m.PlaceOrder:
    """A ``PlaceOrder`` from the venue's parameters (algo: the algoOrder endpoint's names)."""
    p = caller.params
    sent = p.keys()
    read = [k for k in sent if k in (ALGO_PARAMS if algo else ORDER_PARAMS)]
    if len(read) != len(sent):
        raise ApiError(errors.UNREAD_PARAMETERS, f"Not all sent parameters were read; read '{len(read)}' "
                       f"parameter(s) but was sent '{len(sent)}'.")
    inst = p.symbol(ctx.instruments)
    assert inst is not None
    if algo:
        p.choice("algoType", ("CONDITIONAL",), required=True)
    side = p.choice("side", SIDES, required=True, code=errors.INVALID_SIDE, msg="Invalid side.")
    order_type = p.choice("type", m.ORDER_TYPES, required=True, code=errors.INVALID_ORDER_TYPE,
                          msg="Invalid orderType.")
    if algo and order_type not in m.CONDITIONAL_TYPES:
        raise ApiError(errors.INVALID_ORDER_TYPE, "Invalid orderType.")
    position_side = p.choice("positionSide", POSITION_SIDES, default=m.BOTH)
    close_position = p.boolean("closePosition")
    reduce_only = p.boolean("reduceOnly")
    price_protect = p.boolean("priceProtect")
    working_type = p.choice("workingType", WORKING_TYPES, default=m.CONTRACT_PRICE)
    client_id = p.client_id("clientAlgoId" if algo else "newClientOrderId") or ""
    tif = p.choice("timeInForce", TIFS, code=errors.INVALID_TIF, msg="Invalid timeInForce.")
    if order_type == m.LIMIT and tif is None:
        raise errors.mandatory("timeInForce")
    if close_position and order_type not in (m.STOP_MARKET, m.TAKE_PROFIT_MARKET):
        raise ApiError(errors.PARAM_NOT_REQUIRED, "Parameter 'closePosition' sent when not required.")
    if close_position and reduce_only:
        raise ApiError(errors.PARAM_NOT_REQUIRED, "Parameter 'reduceOnly' sent when not required.")
    qty = p.quantity(inst, required=not close_position)
    if close_position and qty is not None:
        raise ApiError(errors.PARAM_NOT_REQUIRED, "Parameter 'quantity' sent when not required.")
    price = p.price(inst, required=order_type in PRICED) if order_type in PRICED else None
    if order_type not in PRICED and "price" in p:
        raise ApiError(errors.PARAM_NOT_REQUIRED, "Parameter 'price' sent when not required.")
    trigger_name = "triggerPrice" if algo else "stopPrice"
    stop_price = p.price(inst, trigger_name, required=order_type in TRIGGERED) if order_type in TRIGGERED else None
    callback_rate = activation = None
    if order_type == m.TRAILING_STOP_MARKET:
        callback_rate = p.decimal("callbackRate", required=True, max_decimals=2)  # range: the core's (−2007)
        activation = p.price(inst, "activatePrice" if algo else "activationPrice", required=False)
    return m.PlaceOrder(
        ts=ctx.now(), account=caller.account, symbol=inst.symbol, side=side or m.BUY,
        order_type=order_type or m.MARKET, qty=qty or 0, price=price or 0, stop_price=stop_price or 0,
        time_in_force=tif or m.GTC, reduce_only=reduce_only, close_position=close_position,
        position_side=position_side or m.BOTH, working_type=working_type or m.CONTRACT_PRICE,
        callback_rate=callback_rate or 0, activation_price=activation or 0, client_order_id=client_id,
        price_protect=price_protect,
    )


def _order_view(ctx: ApiContext, account: int, order_id: int) -> OrderView:
    """The order's view after the core took the command (−2013 should it not know the order)."""
    view = ctx.ex.order(account, order_id=order_id)
    if view is None:
        raise ApiError(-2013, "Order does not exist.")
    return view


def _placed_id(events: list, cmd: m.PlaceOrder) -> int:
    """The id of the order ``cmd`` created: its first OrderUpdate (by client id when one was given)."""
    for event in events:
        if isinstance(event, m.OrderUpdate) and event.account == cmd.account and (
                not cmd.client_order_id or event.client_order_id == cmd.client_order_id):
            return event.order_id
    raise ApiError(errors.NEW_ORDER_REJECTED, "Order was not accepted.")


def _find(ctx: ApiContext, caller: Caller, inst: Instrument, *, id_name: str, client_name: str,
          missing: ApiError, conditional: bool | None) -> OrderView:
    """The caller's order named by id or client id on ``inst`` (else ``missing``)."""
    p = caller.params
    order_id = p.integer(id_name, lo=1)
    client_id = p.text(client_name)
    if order_id is None and client_id is None:
        raise ApiError(errors.MANDATORY_PARAM,
                       f"Param '{client_name}' or '{id_name}' must be sent, but both were empty/null!")
    view = _order_named(ctx, caller.account, order_id or 0, client_id or "")
    if view is None or view.account != caller.account or view.symbol != inst.symbol:
        raise missing
    if conditional is not None and view.conditional != conditional:
        raise missing
    if order_id is not None and client_id is not None and view.client_order_id != client_id:
        raise missing
    return view


def _history_orders(ctx: ApiContext, caller: Caller, *, conditional: bool) -> list[OrderView]:
    """allOrders / allAlgoOrders: the live open orders (core) and the closed ones (history), paged."""
    p = caller.params
    inst = p.symbol(ctx.instruments, required=False)
    symbol = inst.symbol if inst else None
    page = page_of(p, limit_default=500, limit_max=1000, from_name="algoId" if conditional else "orderId")
    wide = replace(page, limit=page.offset + page.limit, offset=0)
    closed = ctx.history.orders(caller.account, wide, symbol=symbol, conditional=conditional)
    live = [v for v in ctx.ex.open_orders(caller.account, symbol) if v.conditional == conditional
            and (page.from_id is None or v.order_id >= page.from_id)
            and (page.start is None or v.create_ts >= page.start) and (page.end is None or v.create_ts <= page.end)]
    return take(closed + live, page, key=lambda v: v.order_id)


def _order_named(ctx: ApiContext, account: int, order_id: int, client_id: str) -> OrderView | None:
    """An order of ``account``: live or recently closed in the core, else from the history store."""
    view = ctx.ex.order(account, order_id=order_id, client_order_id=client_id)
    if view is None:
        view = ctx.history.order(account, order_id=order_id, client_order_id=client_id)
    return view


# ----------------------------------------------------------------------------- orders


async def new_order(ctx: ApiContext, caller: Caller) -> dict:
    cmd = parse_new_order(ctx, caller, algo=False)
    resp_type = caller.params.choice("newOrderRespType", ("ACK", "RESULT"), default="ACK")
    events = await ctx.submit(cmd)
    view = _order_view(ctx, caller.account, _placed_id(events, cmd))
    inst = ctx.instruments[cmd.symbol]
    out = wire.order(view, inst)
    if resp_type == "ACK" and view.status not in ("NEW",):
        out = dict(out, status="NEW", executedQty=wire.qty(inst, 0), cumQty=wire.qty(inst, 0),
                   cumQuote=wire.money(0), avgPrice="0.00")
    return out


async def query_order(ctx: ApiContext, caller: Caller) -> dict:
    inst = caller.params.symbol(ctx.instruments)
    assert inst is not None
    view = _find(ctx, caller, inst, id_name="orderId", client_name="origClientOrderId",
                 missing=errors.no_such_order(), conditional=None)
    return wire.order(view, inst)


async def query_open_order(ctx: ApiContext, caller: Caller) -> dict:
    inst = caller.params.symbol(ctx.instruments)
    assert inst is not None
    view = _find(ctx, caller, inst, id_name="orderId", client_name="origClientOrderId",
                 missing=errors.no_such_order(), conditional=None)
    if view.status not in ("NEW", "PARTIALLY_FILLED"):
        raise ApiError(-2013, "Order does not exist.")
    return wire.order(view, inst)


async def cancel_order(ctx: ApiContext, caller: Caller) -> dict:
    inst = caller.params.symbol(ctx.instruments)
    assert inst is not None
    view = _find(ctx, caller, inst, id_name="orderId", client_name="origClientOrderId",
                 missing=errors.unknown_order(), conditional=None)
    await ctx.submit(m.CancelOrder(ts=ctx.now(), account=caller.account, symbol=inst.symbol,
                                   order_id=view.order_id))
    return wire.order(_order_view(ctx, caller.account, view.order_id), inst)


async def modify_order(ctx: ApiContext, caller: Caller) -> dict:
    """PUT /fapi/v1/order: new price and quantity for a resting LIMIT order (ccxt ``edit_order``)."""
    p = caller.params
    inst = p.symbol(ctx.instruments)
    assert inst is not None
    side = p.choice("side", SIDES, required=True, code=errors.INVALID_SIDE, msg="Invalid side.")
    qty = p.quantity(inst)
    price = p.price(inst)
    view = _find(ctx, caller, inst, id_name="orderId", client_name="origClientOrderId",
                 missing=ApiError(-2013, "Order does not exist."), conditional=False)
    await ctx.submit(m.ModifyOrder(ts=ctx.now(), account=caller.account, symbol=inst.symbol, side=side or m.BUY,
                                   qty=qty or 0, price=price or 0, order_id=view.order_id))
    return wire.order(_order_view(ctx, caller.account, view.order_id), inst)


async def open_orders(ctx: ApiContext, caller: Caller) -> list:
    inst = caller.params.symbol(ctx.instruments, required=False)
    views = ctx.ex.open_orders(caller.account, inst.symbol if inst else None)
    return [wire.order(v, ctx.instruments[v.symbol]) for v in views if not v.conditional]


async def all_orders(ctx: ApiContext, caller: Caller) -> list:
    return [wire.order(v, ctx.instruments[v.symbol]) for v in _history_orders(ctx, caller, conditional=False)]


async def cancel_all_open_orders(ctx: ApiContext, caller: Caller) -> dict:
    inst = caller.params.symbol(ctx.instruments)
    assert inst is not None
    await ctx.submit(m.CancelAllOrders(ts=ctx.now(), account=caller.account, symbol=inst.symbol, which="REGULAR"))
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


async def user_trades(ctx: ApiContext, caller: Caller) -> list:
    p = caller.params
    inst = p.symbol(ctx.instruments, required=False)
    order_id = p.integer("orderId", lo=0)
    page = page_of(p, limit_default=500, limit_max=1000, from_name="fromId", from_id_alone=True)
    rows = ctx.history.trades(caller.account, page, symbol=inst.symbol if inst else None, order_id=order_id)
    return [wire.user_trade(t, ctx.instruments[t.symbol]) for t in rows]


async def force_orders(ctx: ApiContext, caller: Caller) -> list:
    """The account's forced closes: liquidation orders (``autoclose-``) and ADL closes (``adl_autoclose``)."""
    p = caller.params
    inst = p.symbol(ctx.instruments, required=False)
    kind = p.choice("autoCloseType", ("LIQUIDATION", "ADL"))
    page = page_of(p, limit_default=50, limit_max=100)
    views = ctx.history.orders(caller.account, page, symbol=inst.symbol if inst else None,
                               force=(kind,) if kind else ("LIQUIDATION", "ADL"))
    return [dict(wire.order(v, ctx.instruments[v.symbol]), type="LIMIT", origType="LIMIT") for v in views]


# ----------------------------------------------------------------------------- batches

MAX_BATCH_NEW, MAX_BATCH_CANCEL = 5, 10


def _json_list(p: Params, *names: str) -> list | None:
    for name in names:
        raw = p.raw(name)
        if raw is None:
            continue
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            raise errors.invalid_param(names[0]) from None
        if not isinstance(value, list):
            raise errors.invalid_param(names[0])
        return value
    return None


async def new_batch(ctx: ApiContext, caller: Caller) -> list:
    """``POST /fapi/v1/batchOrders``: up to 5 orders, each answered by the order or its own error."""
    orders = _json_list(caller.params, "batchOrders")
    if orders is None:
        raise errors.mandatory("batchOrders")
    if not 1 <= len(orders) <= MAX_BATCH_NEW:
        raise errors.invalid_param("batchOrders")
    out: list[dict] = []
    for item in orders:
        if not isinstance(item, dict) or not all(isinstance(k, str) for k in item):
            out.append(errors.invalid_param("batchOrders").body())
            continue
        try:
            one = Caller(caller.account, caller.api_key,
                         Params((k, v if isinstance(v, str) else json.dumps(v)) for k, v in item.items()))
            ctx.limiter.order(f"key:{caller.api_key}")
            out.append(await new_order(ctx, one))
        except ApiError as exc:
            if exc.status >= 500:
                raise
            out.append(exc.body())
    return out


async def cancel_batch(ctx: ApiContext, caller: Caller) -> list:
    """``DELETE /fapi/v1/batchOrders``: up to 10 ids (``orderIdList``) or client ids, each answered alone."""
    p = caller.params
    inst = p.symbol(ctx.instruments)
    assert inst is not None
    ids = _json_list(p, "orderIdList", "orderidlist")
    client_ids = _json_list(p, "origClientOrderIdList", "origclientorderidlist")
    if ids is None and client_ids is None:
        raise ApiError(errors.MANDATORY_PARAM,
                       "Param 'origClientOrderIdList' or 'orderIdList' must be sent, but both were empty/null!")
    keys = [("orderId", str(i)) for i in ids or []] + [("origClientOrderId", str(c)) for c in client_ids or []]
    if not 1 <= len(keys) <= MAX_BATCH_CANCEL:
        raise errors.invalid_param("orderIdList")
    out: list[dict] = []
    for name, value in keys:
        try:
            one = Caller(caller.account, caller.api_key, Params([("symbol", inst.symbol), (name, value)]))
            out.append(await cancel_order(ctx, one))
        except ApiError as exc:
            if exc.status >= 500:
                raise
            out.append(exc.body())
    return out


# ----------------------------------------------------------------------------- algo (conditional) orders


def _find_algo(ctx: ApiContext, caller: Caller, missing: ApiError) -> OrderView:
    p = caller.params
    algo_id = p.integer("algoId", lo=1)
    client_id = p.text("clientAlgoId")
    if algo_id is None and client_id is None:
        raise ApiError(errors.MANDATORY_PARAM, "Param 'clientAlgoId' or 'algoId' must be sent, but both were empty/null!")
    view = _order_named(ctx, caller.account, algo_id or 0, client_id or "")
    if view is None or view.account != caller.account or not view.conditional:
        raise missing
    inst = p.symbol(ctx.instruments, required=False)
    if inst is not None and inst.symbol != view.symbol:
        raise missing
    return view


async def new_algo_order(ctx: ApiContext, caller: Caller) -> dict:
    cmd = parse_new_order(ctx, caller, algo=True)
    events = await ctx.submit(cmd)
    view = _order_view(ctx, caller.account, _placed_id(events, cmd))
    return wire.algo_order(view, ctx.instruments[cmd.symbol])


async def query_algo_order(ctx: ApiContext, caller: Caller) -> dict:
    view = _find_algo(ctx, caller, errors.no_such_order())
    return wire.algo_order(view, ctx.instruments[view.symbol])


async def cancel_algo_order(ctx: ApiContext, caller: Caller) -> dict:
    view = _find_algo(ctx, caller, errors.unknown_order())
    await ctx.submit(m.CancelOrder(ts=ctx.now(), account=caller.account, symbol=view.symbol, order_id=view.order_id))
    return {"algoId": view.order_id, "clientAlgoId": view.client_order_id, "code": "200", "msg": "success"}


async def open_algo_orders(ctx: ApiContext, caller: Caller) -> list:
    p = caller.params
    inst = p.symbol(ctx.instruments, required=False)
    return [wire.algo_order(v, ctx.instruments[v.symbol])
            for v in ctx.ex.open_orders(caller.account, inst.symbol if inst else None) if v.conditional]


async def all_algo_orders(ctx: ApiContext, caller: Caller) -> list:
    return [wire.algo_order(v, ctx.instruments[v.symbol]) for v in _history_orders(ctx, caller, conditional=True)]


async def cancel_algo_open_orders(ctx: ApiContext, caller: Caller) -> dict:
    inst = caller.params.symbol(ctx.instruments)
    assert inst is not None
    await ctx.submit(m.CancelAllOrders(ts=ctx.now(), account=caller.account, symbol=inst.symbol,
                                       which="CONDITIONAL"))
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


def add_routes(app: web.Application) -> None:
    r = app.router
    b = "/fapi/v1"
    r.add_post(f"{b}/order", signed(new_order, 1, order=True))
    r.add_get(f"{b}/order", signed(query_order, 1))
    r.add_delete(f"{b}/order", signed(cancel_order, 1))
    r.add_put(f"{b}/order", signed(modify_order, 1, order=True))
    r.add_get(f"{b}/openOrder", signed(query_open_order, 1))
    r.add_get(f"{b}/openOrders", signed(open_orders, 1))
    r.add_get(f"{b}/allOrders", signed(all_orders, 5))
    r.add_delete(f"{b}/allOpenOrders", signed(cancel_all_open_orders, 1))
    r.add_get(f"{b}/userTrades", signed(user_trades, 5))
    r.add_get(f"{b}/forceOrders", signed(force_orders, 20))
    r.add_post(f"{b}/batchOrders", signed(new_batch, 5))
    r.add_delete(f"{b}/batchOrders", signed(cancel_batch, 1))
    r.add_post(f"{b}/algoOrder", signed(new_algo_order, 1, order=True))
    r.add_get(f"{b}/algoOrder", signed(query_algo_order, 1))
    r.add_delete(f"{b}/algoOrder", signed(cancel_algo_order, 1))
    r.add_get(f"{b}/openAlgoOrders", signed(open_algo_orders, 1))
    r.add_get(f"{b}/allAlgoOrders", signed(all_algo_orders, 5))
    r.add_delete(f"{b}/algoOpenOrders", signed(cancel_algo_open_orders, 1))


__all__ = ["add_routes", "parse_new_order"]

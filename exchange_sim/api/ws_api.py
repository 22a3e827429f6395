"""The websocket API (``ws-fapi``): the REST trade and account calls over one websocket.

``GET /ws-fapi/v1`` upgrades to a websocket; each text message is a request

    {"id": "7", "method": "order.place", "params": {"symbol": ..., "apiKey": K, "timestamp": T,
     "signature": S, ...}}

and gets one answer with the same ``id``: ``{"id", "status": 200, "result": ..., "rateLimits": [...]}``
or ``{"id", "status": 400|401|429|503, "error": {"code", "msg"}}`` (the REST endpoint's code and
message). Signing as the venue's websocket API: ``signature`` = HMAC-SHA256 of every other
parameter sorted by name, ``key=value`` joined by ``&`` (booleans as ``true``/``false``), with
``apiKey`` among them; ``timestamp``/``recvWindow`` as for REST.

Methods (what ccxt.pro's ``create_order_ws``, ``cancel_order_ws``, ``edit_order_ws``,
``fetch_order_ws``, ``fetch_balance_ws``, ``fetch_positions_ws`` send): ``order.place``,
``algoOrder.place``, ``order.cancel``, ``algoOrder.cancel``, ``order.modify``, ``order.status``,
``account.status`` / ``v2/account.status``, ``account.balance`` / ``v2/account.balance``,
``account.position`` / ``v2/account.position``. Each is the REST handler itself (``orders``,
``account``), so parameters, errors, rate limits and the journal are the same.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from . import account, errors, orders
from .auth import Caller, verify_signed
from .context import CTX, ApiContext
from .errors import ApiError
from .params import Params

log = logging.getLogger(__name__)

Handler = Callable[[ApiContext, Caller], Awaitable[Any]]
# method -> (REST handler, request weight, counts as an order)
METHODS: dict[str, tuple[Handler, int, bool]] = {
    "order.place": (orders.new_order, 1, True),
    "algoOrder.place": (orders.new_algo_order, 1, True),
    "order.cancel": (orders.cancel_order, 1, False),
    "algoOrder.cancel": (orders.cancel_algo_order, 1, False),
    "order.modify": (orders.modify_order, 1, True),
    "order.status": (orders.query_order, 1, False),
    "account.status": (account.account_info, 5, False),
    "v2/account.status": (account.account_info, 5, False),
    "account.balance": (account.balance, 5, False),
    "v2/account.balance": (account.balance, 5, False),
    "account.position": (account.position_risk_v2, 5, False),
    "v2/account.position": (account.position_risk_v3, 5, False),
}
WS_ONLY_PARAMS = ("apiKey", "returnRateLimits")
MAX_MESSAGE = 64 * 1024
SESSIONS = web.AppKey("exchange_sim_ws_api_sessions", set)  # open sessions, closed at shutdown


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def signed_payload(params: dict[str, Any]) -> str:
    """The text the venue's websocket API signs: every parameter but ``signature``, sorted."""
    return "&".join(f"{k}={_text(params[k])}" for k in sorted(params) if k != "signature")


def _caller(ctx: ApiContext, params: dict[str, Any]) -> Caller:
    """Authenticate ``params`` like a signed REST request (same codes), minus the ws-only names."""
    key = params.get("apiKey")
    signature = params.get("signature")
    if not isinstance(key, str):
        raise errors.mandatory("apiKey")
    if not isinstance(signature, str):
        raise errors.mandatory("signature")
    verified = verify_signed(signed_payload(params) + "&signature=" + signature, "", {"X-MBX-APIKEY": key},
                             ctx.ex, ctx.now())
    pairs = [(k, _text(v)) for k, v in params.items() if k not in WS_ONLY_PARAMS and k != "signature"]
    return Caller(verified.account, verified.api_key, Params(pairs))


async def answer(ctx: ApiContext, request: dict[str, Any], address: str) -> dict[str, Any]:
    """One request's answer (see module doc); never raises for a client's mistake."""
    rid = request.get("id")
    method = request.get("method")
    params = request.get("params", {})
    who = f"ip:{address}"
    try:
        if not isinstance(method, str) or method not in METHODS:
            raise ApiError(errors.PATH_INVALID, f"Unknown method '{method}'.")
        if not isinstance(params, dict):
            raise errors.invalid_param("params")
        handler, weight, is_order = METHODS[method]
        try:
            caller = _caller(ctx, params)
        except ApiError:
            ctx.limiter.request(who, weight)  # refused requests count per address, as on REST
            raise
        who = f"key:{caller.api_key}"
        ctx.limiter.request(who, weight)
        if is_order:
            ctx.limiter.order(who)
        await ctx.prepare(caller.account, handler.__name__, caller.params)
        result = await handler(ctx, caller)
    except ApiError as exc:
        return {"id": rid, "status": exc.status, "error": exc.body()}
    return {"id": rid, "status": 200, "result": result, "rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
         "limit": ctx.config.rate_limits.request_weight_per_minute, "count": ctx.limiter.used_weight(who)}]}


async def serve(request: web.Request) -> web.StreamResponse:
    """``/ws-fapi/v1``: answer requests until the client goes away."""
    ctx = request.app[CTX]
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_MESSAGE)
    if not ws.can_prepare(request).ok:
        raise ApiError(errors.PATH_INVALID, "This endpoint only accepts websocket connections.")
    await ws.prepare(request)
    address = request.remote or ""
    sessions = request.app[SESSIONS]
    sessions.add(ws)
    try:
        await _session(ctx, ws, address)
    finally:
        sessions.discard(ws)
    return ws


async def _session(ctx: ApiContext, ws: web.WebSocketResponse, address: str) -> None:
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            continue
        try:
            req = json.loads(msg.data)
        except ValueError:
            await ws.send_json({"id": None, "status": 400, "error": {"code": -1000, "msg": "Invalid JSON."}})
            continue
        if not isinstance(req, dict):
            await ws.send_json({"id": None, "status": 400, "error": {"code": -1000, "msg": "Invalid request."}})
            continue
        try:
            reply = await answer(ctx, req, address)
        except Exception as exc:  # noqa: BLE001 - a bug must not end the session (logged without params)
            log.error("ws-api %s failed: %s", req.get("method"), type(exc).__name__, exc_info=exc)
            reply = {"id": req.get("id"), "status": 500, "error": errors.unknown_error().body()}
        await ws.send_json(reply)


async def _close_sessions(app: web.Application) -> None:
    sessions: set[web.WebSocketResponse] = app[SESSIONS]
    for ws in list(sessions):
        await ws.close(code=1001, message=b"server shutdown")


def add_routes(app: web.Application) -> None:
    app[SESSIONS] = set()
    app.on_shutdown.append(_close_sessions)
    app.router.add_get("/ws-fapi/v1", serve)


__all__ = ["METHODS", "add_routes", "answer", "signed_payload"]

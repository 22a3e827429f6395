"""User-data streams: listenKey endpoints, ``/private/ws?listenKey=``, and the events pushed there.

``POST /fapi/v1/listenKey`` (API key only, no signature) opens or returns the account's key,
``PUT`` keeps it alive, ``DELETE`` closes it. A websocket on ``/private/ws?listenKey=K`` (or the
legacy ``/ws/K``) then receives, for that account only, what the venue sends; ``&events=E1/E2``
keeps only those events, and ``/private/stream?listenKey=K1&events=..&listenKey=K2&events=..``
carries several keys on one connection, each message wrapped ``{"stream": <listenKey>, "data"}``.
No SUBSCRIBE of market streams on ``/private``. The events:

- ``ORDER_TRADE_UPDATE`` for orders (liquidation orders: ``o = "LIQUIDATION"``, client id
  ``autoclose-…``; ADL closes: client id ``adl_autoclose…``), ``ALGO_UPDATE`` for conditional ones;
- ``ACCOUNT_UPDATE`` (``a.m`` = reason, ``B`` = wallet, ``P`` = changed positions) once per reason
  and input;
- ``MARGIN_CALL`` with the positions at risk.

The publisher is a node listener and commit hook (``stage``, ``on_commit``): once a batch is
stored it turns the batch's events into frames and queues them on each connection that wants
them (its writer task sends them, so a slow client never blocks the core); a batch whose commit
failed is forgotten. No task runs between the commit and the connections' queues. What it reads
from the exchange (wallet totals, marks) is the state after the batch.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from exchange_sim.core import messages as m
from exchange_sim.core.fixed import SCALE

from . import errors, wire
from .context import CTX, ApiContext, keyed
from .errors import ApiError
from .params import Params
from .streams import WS_CLOSE_TIMEOUT, WS_HEARTBEAT, Connection, UserFeed, serve_connection

log = logging.getLogger(__name__)

ACCOUNT_UPDATE_REASONS = {
    "DEPOSIT", "WITHDRAW", "ORDER", "FUNDING_FEE", "WITHDRAW_REJECT", "ADJUSTMENT", "INSURANCE_CLEAR",
    "ADMIN_DEPOSIT", "ADMIN_WITHDRAW", "MARGIN_TRANSFER", "MARGIN_TYPE_CHANGE", "ASSET_TRANSFER",
    "OPTIONS_PREMIUM_FEE", "OPTIONS_SETTLE_PROFIT", "AUTO_EXCHANGE",
}
_REASON_MAP = {"LIQUIDATION_FEE": "INSURANCE_CLEAR", "INSURANCE_TOP_UP": "INSURANCE_CLEAR",
               "TRANSFER": "MARGIN_TRANSFER", "ISOLATED_MARGIN": "MARGIN_TRANSFER", "AUTO_ADD_MARGIN": "MARGIN_TRANSFER",
               "LIQUIDATION": "ORDER", "ADL": "ORDER", "RESET": "ADJUSTMENT"}


def account_update_reason(reason: str) -> str:
    if reason in ACCOUNT_UPDATE_REASONS:
        return reason
    return _REASON_MAP.get(reason, "ADJUSTMENT")


# ----------------------------------------------------------------------------- listenKey REST


async def open_listen_key(ctx: ApiContext, account: int, params: Params) -> dict:
    return {"listenKey": ctx.listen_keys.open(account, ctx.now())}


async def keepalive_listen_key(ctx: ApiContext, account: int, params: Params) -> dict:
    key = ctx.listen_keys.keepalive(account, ctx.now())
    if key is None:
        raise ApiError(errors.INVALID_LISTEN_KEY, "This listenKey does not exist.")
    return {"listenKey": key}


async def close_listen_key(ctx: ApiContext, account: int, params: Params) -> dict:
    key = ctx.listen_keys.close(account)
    if key is not None:
        ctx.hub.disconnect_listen_key(key)
    return {}


async def private_ws(request: web.Request) -> web.StreamResponse:
    """``/private/ws?listenKey=K[&events=E1/E2]``, ``/private/stream?listenKey=K1&events=..&listenKey=K2..``."""
    users: list[tuple[str, frozenset[str] | None]] = []
    for name, value in request.query.items():  # in order: each events= belongs to the listenKey before it
        if name == "listenKey":
            users.append((value, None))
        elif name == "events" and users:
            users[-1] = (users[-1][0], frozenset(e for e in value.split("/") if e) or None)
    if not users or not all(key for key, _ in users):
        raise ApiError(errors.MANDATORY_PARAM,
                       "Mandatory parameter 'listenKey' was not sent, was empty/null, or malformed.")
    stream_mode = request.path.rstrip("/").endswith("/stream")
    if len(users) > 1 and not stream_mode:
        raise ApiError(errors.INVALID_PARAMETER, "Several listenKeys need stream mode: /private/stream?listenKey=...")
    return await _serve_private(request, users, combined=stream_mode, route="private")


async def _serve_private(request: web.Request, users: list[tuple[str, frozenset[str] | None]], *,
                         combined: bool = False, route: str = "") -> web.StreamResponse:
    ctx = request.app[CTX]
    ws = web.WebSocketResponse(timeout=WS_CLOSE_TIMEOUT, heartbeat=WS_HEARTBEAT, max_msg_size=64 * 1024)
    await ws.prepare(request)
    feeds = []
    for key, events in users:
        account = ctx.listen_keys.account_of(key, ctx.now())
        if account is None:
            await ws.send_json({"error": {"code": errors.INVALID_LISTEN_KEY, "msg": "This listenKey does not exist."}})
            await ws.close(code=1008, message=b"invalid listenKey")
            return ws
        feeds.append(UserFeed(account, key, events))
    conn = Connection(ws=ws, combined=combined, route=route, users=tuple(feeds))
    return await serve_connection(request, ctx.hub, conn)


def is_listen_key(ctx: ApiContext, text: str) -> bool:
    return len(text) == 64 and ctx.listen_keys.account_of(text, ctx.now()) is not None


# ----------------------------------------------------------------------------- the publisher


class UserStreamPublisher:
    """Turns the core's events into user-data frames per account (see module doc)."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self._staged: list[tuple[Any, list]] = []  # applied inputs whose batch is not committed yet

    def stage(self, msg: Any, events: list) -> None:
        """A node listener: note what an applied input produced, until its batch's commit."""
        self._staged.append((msg, events))

    def on_commit(self, stored: bool) -> None:
        """A node commit hook: send the stored batch's frames (queued per connection); forget a failed one's."""
        staged, self._staged = self._staged, []
        if not stored:
            return
        for msg, events in staged:
            try:
                self.publish(events)
            except Exception:  # a bug here must not stop the stream for everyone
                log.exception("user stream publisher failed on %s", type(msg).__name__)

    def publish(self, events: list) -> None:
        hub = self.ctx.hub
        now = self.ctx.now()
        groups: dict[tuple[int, str], list] = {}
        for event in events:
            account = getattr(event, "account", None)
            if not isinstance(account, int) or not hub.wants_account(account):
                continue
            if isinstance(event, m.OrderUpdate):
                if event.exec_type == "NEW" and event.client_order_id.startswith(("autoclose-", "adl_autoclose")):
                    continue  # the venue shows forced closes by their fills only
                if event.order_type in m.CONDITIONAL_TYPES:
                    hub.publish_account(account, self.algo_update(event, now))
                else:
                    hub.publish_account(account, self.order_trade_update(event, now))
            elif isinstance(event, (m.BalanceUpdate, m.PositionUpdate)):
                groups.setdefault((account, account_update_reason(event.reason)), []).append(event)
            elif isinstance(event, m.MarginCall) and event.level == "MARGIN_CALL":  # not the WARNING level
                hub.publish_account(account, self.margin_call(event, now))
        for (account, reason), grouped in groups.items():
            hub.publish_account(account, self.account_update(account, reason, grouped, now))

    # ------------------------------------------------------------------ frames

    def _inst(self, symbol: str) -> Any:
        return self.ctx.instruments[symbol]

    def order_trade_update(self, ev: m.OrderUpdate, now: int) -> dict:
        inst = self._inst(ev.symbol)
        liquidation = ev.client_order_id.startswith("autoclose-")
        order_type = "LIQUIDATION" if liquidation else ev.order_type
        o: dict[str, Any] = {
            "s": ev.symbol, "c": ev.client_order_id, "S": ev.side, "o": order_type, "f": ev.time_in_force,
            "q": wire.qty(inst, ev.qty), "p": wire.price(inst, ev.price),
            "ap": wire.price(inst, ev.avg_price) if ev.avg_price else "0",
            "sp": wire.price(inst, ev.stop_price), "x": ev.exec_type, "X": ev.status, "i": ev.order_id,
            "l": wire.qty(inst, ev.last_qty), "z": wire.qty(inst, ev.filled_qty),
            "L": wire.price(inst, ev.last_price), "T": ev.ts, "t": ev.trade_id, "b": "0", "a": "0",
            "m": ev.is_maker, "R": ev.reduce_only, "wt": ev.working_type, "ot": order_type, "ps": ev.position_side,
            "cp": ev.close_position, "rp": wire.money(ev.realized_pnl), "pP": False, "si": 0, "ss": 0,
            "V": "NONE", "pm": "NONE", "gtd": 0,
        }
        if ev.exec_type == "TRADE":
            o["N"] = wire.ASSET
            o["n"] = wire.money(ev.commission)
        return {"e": "ORDER_TRADE_UPDATE", "E": now, "T": ev.ts, "o": o}

    def algo_update(self, ev: m.OrderUpdate, now: int) -> dict:
        inst = self._inst(ev.symbol)
        status = "EXPIRED" if ev.exec_type == "EXPIRED" else wire.ALGO_STATUS.get(ev.status, ev.status)
        view = self.ctx.ex.order(ev.account, order_id=ev.order_id)
        actual = view.triggered_order_id if view is not None else 0
        return {"e": "ALGO_UPDATE", "T": ev.ts, "E": now, "o": {
            "caid": ev.client_order_id, "aid": ev.order_id, "at": "CONDITIONAL", "o": ev.order_type, "s": ev.symbol,
            "S": ev.side, "ps": ev.position_side, "f": ev.time_in_force, "q": wire.qty(inst, ev.qty), "X": status,
            "ai": str(actual) if actual else "", "ap": wire.price(inst, ev.avg_price) if ev.avg_price else "0",
            "aq": wire.qty(inst, ev.filled_qty), "act": "0", "tp": wire.price(inst, ev.stop_price),
            "p": wire.price(inst, ev.price), "V": "NONE", "wt": ev.working_type, "pm": "NONE",
            "cp": ev.close_position, "pP": False, "R": ev.reduce_only, "tt": ev.ts if status == "TRIGGERED" else 0,
            "gtd": 0, "rm": ev.reason,
        }}

    def account_update(self, account: int, reason: str, events: list, now: int) -> dict:
        view = self.ctx.ex.account_view(account)
        balances = [e for e in events if isinstance(e, m.BalanceUpdate)]
        cross_wallet = balances[-1].wallet if balances else (view.cross_wallet if view else 0)
        wallet = view.wallet_balance if view is not None else cross_wallet
        B = [{"a": wire.ASSET, "wb": wire.money(wallet), "cw": wire.money(cross_wallet),
              "bc": wire.money(sum(e.change for e in balances))}]
        latest: dict[tuple[str, str], m.PositionUpdate] = {}
        for e in events:
            if isinstance(e, m.PositionUpdate):
                latest[(e.symbol, e.position_side)] = e
        P = []
        for (symbol, side), e in latest.items():
            inst = self._inst(symbol)
            mark = self.ctx.ex.market(symbol).mark
            upnl = (mark - e.entry_price) * e.qty // SCALE if e.qty and mark else 0
            P.append({"s": symbol, "pa": wire.qty(inst, e.qty), "ep": wire.price(inst, e.entry_price),
                      "bep": wire.price(inst, e.entry_price), "cr": "0", "up": wire.money(upnl),
                      "mt": "isolated" if e.isolated else "cross", "iw": wire.money(e.isolated_wallet), "ps": side})
        last_ts = events[-1].ts if events else now
        return {"e": "ACCOUNT_UPDATE", "E": now, "T": last_ts, "a": {"m": reason, "B": B, "P": P}}

    def margin_call(self, ev: m.MarginCall, now: int) -> dict:
        positions = []
        for p in ev.positions:
            inst = self._inst(p.symbol)
            positions.append({"s": p.symbol, "ps": p.position_side, "pa": wire.qty(inst, p.qty),
                              "mt": "ISOLATED" if p.isolated else "CROSSED", "iw": wire.money(p.isolated_wallet),
                              "mp": wire.price(inst, p.mark), "up": wire.money(p.unrealized_pnl),
                              "mm": wire.money(p.maintenance_margin)})
        out: dict[str, Any] = {"e": "MARGIN_CALL", "E": now, "p": positions}
        if not ev.symbol:
            out["cw"] = wire.money(ev.cross_wallet)
        return out


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/fapi/v1/listenKey", keyed(open_listen_key))
    r.add_put("/fapi/v1/listenKey", keyed(keepalive_listen_key))
    r.add_delete("/fapi/v1/listenKey", keyed(close_listen_key))
    r.add_get("/private/ws", private_ws)
    r.add_get("/private/stream", private_ws)

"""The admin ("instructor") API under ``/sim/v1`` — a stable contract tests and lessons script against.

Every request needs ``Authorization: Bearer <admin token>``. Bodies are JSON; amounts and prices
are decimal strings (or JSON numbers). Errors have the venue's shape ``{"code", "msg"}``.

- ``POST /sim/v1/accounts`` ``{"name", "deposit", "parent"}`` → ``{"accountId", "apiKey", "apiSecret", ...}``
- ``GET /sim/v1/accounts``; ``GET /sim/v1/accounts/{id}`` (wallets, positions with liquidation
  prices, orders, margin ratio)
- ``POST /sim/v1/accounts/{id}/deposit`` / ``withdraw`` ``{"amount"}``; ``POST /sim/v1/transfers``
  ``{"from", "to", "amount"}``; ``POST /sim/v1/accounts/{id}/reset`` ``{"deposit"?}``
- ``POST /sim/v1/market`` ``{"events": [...]}``: market events applied in order before the answer:
  ``{"type": "book", "symbol", "bids": [["p", "q"]], "asks": [...]}``, ``{"type": "trade", "symbol",
  "price", "qty", "side"}``, ``{"type": "mark", "symbol", "price", "index"?, "fundingRate"?,
  "nextFundingTime"?}``, ``{"type": "index", "symbol", "price"}``, ``{"type": "funding", "symbol",
  "rate"}``, ``{"type": "status", "symbol", "stale", "reason"?}``. All are validated before any is
  applied. Guarded like a live feed (``runtime/manual_feed.py``): a price (or a book top) outside
  the bad-tick band around the market's current price refuses the request (−1130, saying which
  event and how far); ``"force": true`` moves the market on purpose.
- ``GET /sim/v1/events?account=&type=&since=&afterSeq=&limit=``: the core's event log, oldest first,
  the newest ``limit`` (default 1000) matching events, or with ``afterSeq`` (an event number) the
  oldest ``limit`` after it (paging forward); ``since`` is a timestamp (ms, ``ts >= since``). With a journal it is the journal's event log: it survives a restart
  and an event keeps its ``seq``; without one (``--no-journal``) the last events in memory.
- ``GET /sim/v1/insurance-fund``; ``GET /sim/v1/status`` (node and stream counters; ``journal``:
  ``enabled``, ``failed``, ``failure`` (why writes are refused) and ``stats``).

API keys and secrets are generated here (``secrets.token_hex``), outside the deterministic core,
and travel inside ``CreateAccount`` so a journal replay rebuilds the same accounts.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from exchange_sim.core import messages as m
from exchange_sim.core.fixed import SCALE, fmt_trim
from exchange_sim.core.views import AccountView
from exchange_sim.runtime.manual_feed import off_band

from . import errors, wire
from .auth import check_admin_token
from .context import CTX, MAX_BODY, ApiContext
from .errors import ApiError
from .params import MAX_ADMIN_AMOUNT, Params, ascii_int, fixed_from_json, load_json

MAX_MARKET_EVENTS = 10_000
MAX_QUERY_NUMBER = 10**15
# a market event's ts (and nextFundingTime) must be a plausible epoch-ms: 2000-01-01 .. 2100-01-01
MIN_TS_MS, MAX_TS_MS = 946_684_800_000, 4_102_444_800_000
MAX_FUNDING_RATE = SCALE  # |rate| <= 100%


def _bad(name: str) -> ApiError:
    return errors.invalid_param(name)


async def _body(request: web.Request) -> dict:
    raw = await request.read() if request.can_read_body else b""
    if not raw.strip():
        return {}
    try:
        data = load_json(raw, MAX_BODY)
    except ValueError as exc:
        raise ApiError(errors.INVALID_PARAMETER, f"Request {exc}.") from None
    if not isinstance(data, dict):
        raise ApiError(errors.INVALID_PARAMETER, "Request body must be a JSON object.")
    return data


def _account_id(ctx: ApiContext, raw: Any, name: str = "id") -> int:
    number = ascii_int(raw)
    if number is None or ctx.ex.account_view(number) is None:
        raise ApiError(errors.INVALID_PARAMETER, f"Unknown account {str(raw)[:20]!s}.", 404)
    return number


def _symbol(ctx: ApiContext, raw: Any) -> str:
    if not isinstance(raw, str) or raw.upper() not in ctx.instruments:
        raise errors.invalid_symbol()
    return raw.upper()


def admin(handler: Callable[[ApiContext, web.Request], Awaitable[Any]]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def endpoint(request: web.Request) -> web.Response:
        ctx = request.app[CTX]
        check_admin_token(request.headers.get("Authorization"), ctx.admin_token)
        await ctx.prepare(None, f"admin:{handler.__name__}", Params(request.match_info.items()))
        return web.json_response(await handler(ctx, request))

    return endpoint


# ----------------------------------------------------------------------------- accounts


def _position_json(ctx: ApiContext, p: Any) -> dict:
    inst = ctx.instruments[p.symbol]
    return {
        "symbol": p.symbol, "positionSide": p.position_side, "positionAmt": wire.qty(inst, p.qty),
        "entryPrice": wire.price(inst, p.entry_price), "markPrice": wire.price(inst, p.mark),
        "unrealizedProfit": wire.money(p.unrealized_pnl), "notional": wire.money(p.notional),
        "leverage": p.leverage, "marginType": "isolated" if p.isolated else "cross",
        "isolatedWallet": wire.money(p.isolated_wallet), "initialMargin": wire.money(p.initial_margin),
        "maintMargin": wire.money(p.maintenance_margin),
        "liquidationPrice": wire.price_rounded(inst, p.liquidation_price) if p.liquidation_price > 0 else None,
        "bankruptcyPrice": wire.price_rounded(inst, p.bankruptcy_price) if p.bankruptcy_price > 0 else None,
        "marginRatio": fmt_trim(p.margin_ratio), "autoAddMargin": p.auto_add_margin, "adlQuantile": p.adl_quantile,
        "updateTime": p.update_ts,
    }


def _view(ctx: ApiContext, aid: int) -> AccountView:
    """The account's view (404 for an account the core does not know)."""
    view = ctx.ex.account_view(aid)
    if view is None:
        raise ApiError(errors.INVALID_PARAMETER, f"Unknown account {aid}.", 404)
    return view


def _account_summary(ctx: ApiContext, aid: int) -> dict:
    v = _view(ctx, aid)
    return {
        "accountId": v.account, "name": v.name, "parent": v.parent, "hedgeMode": v.hedge_mode,
        "walletBalance": wire.money(v.wallet_balance), "crossWallet": wire.money(v.cross_wallet),
        "unrealizedProfit": wire.money(v.unrealized_pnl), "marginBalance": wire.money(v.margin_balance),
        "availableBalance": wire.money(v.available_balance), "openPositions": len(v.positions),
        "spotWallet": wire.money(ctx.ex.spot_wallet(aid)),
    }


async def create_account(ctx: ApiContext, request: web.Request) -> dict:
    body = await _body(request)
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > 64:
        raise _bad("name")
    deposit = fixed_from_json(body.get("deposit", "0"), "deposit")
    parent = body.get("parent")
    if parent is not None:
        parent = _account_id(ctx, parent, "parent")
    api_key, api_secret = secrets.token_hex(32), secrets.token_hex(32)
    events = await ctx.submit(m.CreateAccount(ts=ctx.now(), name=name, parent=parent, deposit=deposit,
                                              api_key=api_key, api_secret=api_secret))
    created = next(e for e in events if isinstance(e, m.AccountCreated))
    return {"accountId": created.account, "name": name, "parent": parent, "apiKey": api_key, "apiSecret": api_secret}


async def list_accounts(ctx: ApiContext, request: web.Request) -> list:
    return [_account_summary(ctx, aid) for aid in ctx.ex.account_ids()]


async def show_account(ctx: ApiContext, request: web.Request) -> dict:
    aid = _account_id(ctx, request.match_info["id"])
    v = _view(ctx, aid)
    out = _account_summary(ctx, aid)
    out.update({
        "maintMargin": wire.money(v.maintenance_margin),
        "positionInitialMargin": wire.money(v.position_initial_margin),
        "openOrderInitialMargin": wire.money(v.open_order_initial_margin),
        "crossMarginRatio": fmt_trim(v.cross_margin_ratio), "maxWithdrawAmount": wire.money(v.max_withdraw),
        "children": ctx.ex.children(aid),
        "positions": [_position_json(ctx, p) for p in v.positions],
        "orders": [dict(wire.order(o, ctx.instruments[o.symbol]), conditional=o.conditional)
                   for o in ctx.ex.open_orders(aid)],
        "updateTime": v.update_ts,
    })
    return out


async def deposit(ctx: ApiContext, request: web.Request) -> dict:
    aid = _account_id(ctx, request.match_info["id"])
    body = await _body(request)
    amount = fixed_from_json(body.get("amount"), "amount")
    if amount <= 0:
        raise _bad("amount")
    await ctx.submit(m.Deposit(ts=ctx.now(), account=aid, amount=amount))
    return _account_summary(ctx, aid)


async def withdraw(ctx: ApiContext, request: web.Request) -> dict:
    aid = _account_id(ctx, request.match_info["id"])
    body = await _body(request)
    amount = fixed_from_json(body.get("amount"), "amount")
    if amount <= 0:
        raise _bad("amount")
    await ctx.submit(m.Withdraw(ts=ctx.now(), account=aid, amount=amount))
    return _account_summary(ctx, aid)


async def transfer(ctx: ApiContext, request: web.Request) -> dict:
    body = await _body(request)
    src = _account_id(ctx, body.get("from"), "from")
    dst = _account_id(ctx, body.get("to"), "to")
    amount = fixed_from_json(body.get("amount"), "amount")
    if amount <= 0:
        raise _bad("amount")
    await ctx.submit(m.Transfer(ts=ctx.now(), from_account=src, to_account=dst, amount=amount))
    return {"from": _account_summary(ctx, src), "to": _account_summary(ctx, dst)}


async def reset(ctx: ApiContext, request: web.Request) -> dict:
    aid = _account_id(ctx, request.match_info["id"])
    body = await _body(request)
    amount = fixed_from_json(body["deposit"], "deposit") if body.get("deposit") is not None else None
    await ctx.submit(m.ResetAccount(ts=ctx.now(), account=aid, deposit=amount))
    return _account_summary(ctx, aid)


# ----------------------------------------------------------------------------- market injection


def _price(ctx: ApiContext, symbol: str, raw: Any, name: str) -> int:
    """A positive price within the instrument's PRICE_FILTER maximum (−1130 otherwise)."""
    inst = ctx.instruments[symbol]
    price = fixed_from_json(raw, name, limit=inst.max_price or MAX_ADMIN_AMOUNT)
    if price <= 0:
        raise _bad(name)
    return price


def _epoch_ms(raw: Any, name: str) -> int:
    """A plausible epoch-ms timestamp (2000..2100), else −1130: SQLite and the core keep 64-bit times."""
    if isinstance(raw, bool) or not isinstance(raw, int) or not MIN_TS_MS <= raw <= MAX_TS_MS:
        raise _bad(name)
    return raw


def _levels(ctx: ApiContext, symbol: str, raw: Any, name: str) -> tuple[tuple[int, int], ...]:
    if not isinstance(raw, list) or len(raw) > 5000:
        raise _bad(name)
    out = []
    for level in raw:
        if not isinstance(level, (list, tuple)) or len(level) != 2:
            raise _bad(name)
        out.append((_price(ctx, symbol, level[0], name), fixed_from_json(level[1], name)))
    return tuple(out)


def market_event(ctx: ApiContext, raw: Any, now: int) -> Any:
    """One admin market event (see module doc) as a core market event; −1130/−1121 if malformed."""
    if not isinstance(raw, dict):
        raise _bad("events")
    kind = raw.get("type")
    symbol = _symbol(ctx, raw.get("symbol"))
    ts = _epoch_ms(raw["ts"], "ts") if "ts" in raw else now
    if kind == "book":
        bids = tuple(sorted(_levels(ctx, symbol, raw.get("bids", []), "bids"), reverse=True))
        asks = tuple(sorted(_levels(ctx, symbol, raw.get("asks", []), "asks")))
        return m.BookSnapshot(ts=ts, symbol=symbol, bids=tuple(lv for lv in bids if lv[1] > 0),
                              asks=tuple(lv for lv in asks if lv[1] > 0))
    if kind == "delta":
        return m.BookDelta(ts=ts, symbol=symbol, bids=_levels(ctx, symbol, raw.get("bids", []), "bids"),
                           asks=_levels(ctx, symbol, raw.get("asks", []), "asks"))
    if kind == "trade":
        price = _price(ctx, symbol, raw.get("price"), "price")
        qty = fixed_from_json(raw.get("qty"), "qty")
        side = raw.get("side", m.BUY)
        side = side.upper() if isinstance(side, str) else side
        if qty <= 0 or side not in (m.BUY, m.SELL):
            raise _bad("trade")
        return m.Trade(ts=ts, symbol=symbol, price=price, qty=qty, taker_side=side)
    if kind == "mark":
        price = _price(ctx, symbol, raw.get("price"), "price")
        index = _price(ctx, symbol, raw["index"], "index") if raw.get("index") is not None else None
        rate = (fixed_from_json(raw["fundingRate"], "fundingRate", allow_negative=True, limit=MAX_FUNDING_RATE)
                if raw.get("fundingRate") is not None else None)
        nft = raw.get("nextFundingTime")
        if nft is not None:
            nft = _epoch_ms(nft, "nextFundingTime")
        return m.MarkPrice(ts=ts, symbol=symbol, mark=price, index=index, funding_rate=rate, next_funding_ts=nft)
    if kind == "index":
        return m.IndexPrice(ts=ts, symbol=symbol, price=_price(ctx, symbol, raw.get("price"), "price"))
    if kind == "funding":
        return m.Funding(ts=ts, symbol=symbol, rate=fixed_from_json(raw.get("rate"), "rate", allow_negative=True,
                                                                    limit=MAX_FUNDING_RATE))
    if kind == "status":
        stale = raw.get("stale")
        reason = raw.get("reason", "")
        if not isinstance(stale, bool) or not isinstance(reason, str):
            raise _bad("stale")
        return m.FeedStatus(ts=ts, symbol=symbol, stale=stale, reason=reason[:200])
    raise _bad("type")


async def inject_market(ctx: ApiContext, request: web.Request) -> dict:
    body = await _body(request)
    raw_events = body.get("events")
    if not isinstance(raw_events, list) or len(raw_events) > MAX_MARKET_EVENTS:
        raise _bad("events")
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise _bad("force")
    now = ctx.now()
    msgs = [market_event(ctx, raw, now) for raw in raw_events]
    if not force:
        why = off_band(msgs, ctx.ex.market, ctx.config.bad_tick_band)
        if why is not None:
            raise ApiError(errors.INVALID_PARAMETER, why)
    caused = []
    for msg in msgs:
        for event in await ctx.apply(msg):
            caused.append(dict(wire.readable(m.encode(event))))
    return {"applied": len(msgs), "events": caused}


# ----------------------------------------------------------------------------- logs and status


async def events_log(ctx: ApiContext, request: web.Request) -> dict:
    q = request.query

    def number(name: str) -> int | None:
        raw = q.get(name)
        if raw is None or raw == "":
            return None
        number = ascii_int(raw)
        if number is None or number > MAX_QUERY_NUMBER:
            raise _bad(name)
        return number

    account = number("account")
    since = number("since")
    after = number("afterSeq")
    limit = number("limit") or 1000
    kinds = None
    if q.get("type"):
        kinds = {k.strip().replace("_", "").lower() for k in q["type"].split(",") if k.strip()}
    rows = await _logged(ctx, account, kinds, since, after, min(limit, 10_000))
    return {"events": [dict(ev.body, seq=ev.seq) for ev in rows]}


async def _logged(ctx: ApiContext, *query: Any) -> list:
    """The event log's rows: ``query_async`` for a log kept elsewhere (a cluster's shards)."""
    fetch = getattr(ctx.event_log, "query_async", None)
    return await fetch(*query) if fetch is not None else ctx.event_log.query(*query)


async def insurance_fund(ctx: ApiContext, request: web.Request) -> dict:
    changes = await _logged(ctx, None, {"insurancefundchange"}, None, None, 100)
    return {"asset": wire.ASSET, "balance": wire.money(ctx.ex.insurance_fund),
            "recentChanges": [dict(ev.body, seq=ev.seq) for ev in changes]}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def journal_status(journal: Any) -> dict:
    """The session journal's health: ``failed`` + ``failure`` (why writes are refused) and its stats."""
    if journal is None:
        return {"enabled": False}
    failure = getattr(journal, "failure", None)
    out: dict[str, Any] = {"enabled": True, "failed": failure is not None, "failure": failure}
    path = getattr(journal, "path", None)
    if path is not None:
        out["path"] = str(path)
    stats = getattr(journal, "stats", None)
    if callable(stats):
        try:
            values = stats()
        except Exception as exc:  # noqa: BLE001 - a broken file must not break the status page
            out["statsError"] = f"{type(exc).__name__}: {exc}"
        else:
            fields = getattr(values, "__dataclass_fields__", None)
            if fields is not None:
                out["stats"] = {_camel(name): getattr(values, name) for name in fields}
    return out


async def status(ctx: ApiContext, request: web.Request) -> dict:
    return {"applied": ctx.node.applied, "subscribers": ctx.node.subscriber_count,
            "connections": len(ctx.hub.connections), "droppedConnections": ctx.hub.dropped_connections,
            "accounts": len(ctx.ex.account_ids()), "serverTime": ctx.now(),
            "journal": journal_status(getattr(ctx.node, "journal", None))}


def add_routes(app: web.Application) -> None:
    r = app.router
    b = "/sim/v1"
    r.add_post(f"{b}/accounts", admin(create_account))
    r.add_get(f"{b}/accounts", admin(list_accounts))
    r.add_get(f"{b}/accounts/{{id}}", admin(show_account))
    r.add_post(f"{b}/accounts/{{id}}/deposit", admin(deposit))
    r.add_post(f"{b}/accounts/{{id}}/withdraw", admin(withdraw))
    r.add_post(f"{b}/accounts/{{id}}/reset", admin(reset))
    r.add_post(f"{b}/transfers", admin(transfer))
    r.add_post(f"{b}/market", admin(inject_market))
    r.add_get(f"{b}/events", admin(events_log))
    r.add_get(f"{b}/insurance-fund", admin(insurance_fund))
    r.add_get(f"{b}/status", admin(status))

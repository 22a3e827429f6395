"""Play a lesson on a running simulator, so a class watches it on the dashboard.

    client = AdminClient("http://127.0.0.1:8765", token)
    play_live(lesson_scenario("cross-vs-isolated"), client, step_seconds=1.0)

Uses only the stable contracts: the admin API (``POST /sim/v1/accounts``, ``POST /sim/v1/market``)
to create a class (a parent account and one sub-account per lesson account) and to move the
market, and the Binance-compatible REST API with each account's own key (signed as the venue
signs: HMAC-SHA256 of the query) to set margin type and leverage and to open the positions.
Best run with ``exchange-sim run --feed manual``: on top of a live feed the next real mark
overrides the lesson's path.

``AdminClient`` is also what ``exchange-sim accounts ...`` uses. Standard library HTTP only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .scenario import Scenario

DEEP_QTY = "1000000"


class AdminApiError(Exception):
    """The simulator refused a request or could not be reached; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Credentials:
    account: int
    api_key: str
    api_secret: str


class AdminClient:
    """A tiny synchronous client of the simulator's admin API and signed Binance REST API."""

    def __init__(self, base_url: str, admin_token: str | None, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.admin_token = admin_token
        self.timeout = timeout

    # ------------------------------------------------------------------ transport

    def _request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Accept": "application/json", **(headers or {})}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as res:
                text = res.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            try:
                parsed = json.loads(detail)
                detail = parsed.get("msg") or parsed.get("error") or detail
                code = parsed.get("code")
                if code is not None:
                    detail = f"{code} {detail}"
            except (ValueError, AttributeError):
                pass
            raise AdminApiError(f"{method} {path}: HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AdminApiError(f"cannot reach the simulator at {self.base_url} ({reason}); "
                                "is `exchange-sim run` running?") from None
        return json.loads(text) if text else None

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        if not self.admin_token:
            raise AdminApiError("an admin token is needed: pass --admin-token or set EXSIM_ADMIN_TOKEN "
                                "(the server prints its token at start)")
        return self._request(method, path, body, {"Authorization": f"Bearer {self.admin_token}"})

    def signed(self, creds: Credentials, method: str, path: str, params: dict[str, Any]) -> Any:
        """A venue-signed request with ``creds`` (parameters in the query string)."""
        query = dict(params, timestamp=int(time.time() * 1000), recvWindow=10_000)
        text = urllib.parse.urlencode(query)
        signature = hmac.new(creds.api_secret.encode(), text.encode(), hashlib.sha256).hexdigest()
        return self._request(method, f"{path}?{text}&signature={signature}", None,
                             {"X-MBX-APIKEY": creds.api_key})

    # ------------------------------------------------------------------ admin contract

    def create_account(self, name: str, deposit: str = "0", parent: int | None = None) -> Credentials:
        body: dict[str, Any] = {"name": name, "deposit": deposit}
        if parent is not None:
            body["parent"] = parent
        out = self.admin("POST", "/sim/v1/accounts", body)
        return Credentials(int(out["accountId"]), str(out["apiKey"]), str(out["apiSecret"]))

    def accounts(self) -> Any:
        return self.admin("GET", "/sim/v1/accounts")

    def account(self, account: int) -> Any:
        return self.admin("GET", f"/sim/v1/accounts/{account}")

    def deposit(self, account: int, amount: str) -> Any:
        return self.admin("POST", f"/sim/v1/accounts/{account}/deposit", {"amount": amount})

    def reset(self, account: int) -> Any:
        return self.admin("POST", f"/sim/v1/accounts/{account}/reset", {})

    def market(self, events: list[dict[str, Any]], *, force: bool = False) -> Any:
        """Inject market events; ``force`` moves the market past the bad-tick band on purpose."""
        body: dict[str, Any] = {"events": events, "force": True} if force else {"events": events}
        return self.admin("POST", "/sim/v1/market", body)


def _book(symbol: str, bid: str, ask: str) -> dict[str, Any]:
    return {"type": "book", "symbol": symbol, "bids": [[bid, DEEP_QTY]], "asks": [[ask, DEEP_QTY]]}


def _plus_tick(price: str, tick: str) -> str:
    from decimal import Decimal

    return str(Decimal(price) + Decimal(tick))


def play_live(scenario: Scenario, client: AdminClient, *, step_seconds: float = 1.0,
              on_step: Callable[[int, dict[str, str]], None] | None = None,
              sleep: Callable[[float], None] = time.sleep) -> dict[str, Credentials]:
    """Create the lesson's class on the server, open its positions, then play the path."""
    from exchange_sim.profiles import profile_data

    ticks = {s: str(d["tick_size"]) for s, d in profile_data()["symbols"].items()}
    sells = {pp.symbol for a in scenario.accounts for pp in a.positions if pp.side == "SELL"}
    start = []
    for symbol, price in sorted(scenario.start_prices.items()):
        tick = ticks[symbol]
        if symbol in sells:
            start.append(_book(symbol, price, _plus_tick(price, tick)))
        else:
            start.append(_book(symbol, _plus_tick(price, "-" + tick), price))
        start.append({"type": "mark", "symbol": symbol, "price": price})
    client.market(start, force=True)  # the lesson sets its own market, wherever the session was

    stamp = time.strftime("%H%M%S")
    parent = client.create_account(f"lesson {scenario.name} {stamp}", "0")
    creds: dict[str, Credentials] = {}
    for plan in scenario.accounts:
        c = client.create_account(f"{plan.label}", plan.deposit, parent.account)
        creds[plan.label] = c
        for pos in plan.positions:
            if pos.isolated:
                client.signed(c, "POST", "/fapi/v1/marginType", {"symbol": pos.symbol, "marginType": "ISOLATED"})
            client.signed(c, "POST", "/fapi/v1/leverage", {"symbol": pos.symbol, "leverage": pos.leverage})
            client.signed(c, "POST", "/fapi/v1/order", {"symbol": pos.symbol, "side": pos.side, "type": "MARKET",
                                                         "quantity": pos.qty})
    for step, prices in enumerate(scenario.path, start=1):
        sleep(step_seconds)
        events = []
        for symbol, price in sorted(prices.items()):
            events.append(_book(symbol, price, _plus_tick(price, ticks[symbol])))
            events.append({"type": "mark", "symbol": symbol, "price": price})
            events.append({"type": "trade", "symbol": symbol, "price": price, "qty": "0.001", "side": "SELL"})
        client.market(events, force=True)  # a scripted move, however steep, is deliberate
        if on_step is not None:
            on_step(step, prices)
    return creds


async def play_on_node(scenario: Scenario, node: Any, *, step_seconds: float = 1.0,
                       now_ms: Callable[[], int] | None = None,
                       pause: Callable[[float], Awaitable[Any]] | None = None) -> dict[str, int]:
    """Play ``scenario`` straight into a running node (the dashboard's "play lesson" button).

    Creates a class (parent account + one sub-account per lesson account, keys generated here,
    outside the core), opens the positions against a one-level book at the start prices, then
    moves book, last price and mark along the path, ``step_seconds`` apart. Only for a simulator
    without a live feed (``--feed manual``): it replaces the books. Returns {label: account id}.
    """
    import asyncio
    import secrets

    from exchange_sim.core import messages as m
    from exchange_sim.core.fixed import to_fixed

    from .scenario import DEEP, step_book

    clock = now_ms or (lambda: int(time.time() * 1000))
    wait = pause or asyncio.sleep
    instruments = node.exchange.instruments

    async def command(msg: Any) -> list[Any]:
        events = await node.submit(msg)
        rejected = [e for e in events if isinstance(e, m.CommandRejected)]
        if rejected:
            raise AdminApiError(f"lesson {scenario.name}: {type(msg).__name__} rejected: "
                                f"{rejected[0].code} {rejected[0].msg}")
        return events

    async def new_account(name: str, deposit: str, parent: int | None) -> int:
        events = await command(m.CreateAccount(ts=clock(), name=name, parent=parent, deposit=to_fixed(deposit),
                                               api_key=secrets.token_hex(32), api_secret=secrets.token_hex(32)))
        return next(e.account for e in events if isinstance(e, m.AccountCreated))

    sells = {pp.symbol for a in scenario.accounts for pp in a.positions if pp.side == m.SELL}
    for symbol, text in sorted(scenario.start_prices.items()):
        p, tick = to_fixed(text), instruments[symbol].tick_size
        bids, asks = (((p, DEEP),), ((p + tick, DEEP),)) if symbol in sells else (((p - tick, DEEP),), ((p, DEEP),))
        await node.submit(m.BookSnapshot(ts=clock(), symbol=symbol, bids=bids, asks=asks,
                                         update_id=node.exchange.market(symbol).book_update_id + 1))
        await node.submit(m.MarkPrice(ts=clock(), symbol=symbol, mark=p))
    parent = await new_account(f"lesson {scenario.name} {time.strftime('%H:%M:%S')}", "0", None)
    ids: dict[str, int] = {}
    for plan in scenario.accounts:
        aid = ids[plan.label] = await new_account(plan.label, plan.deposit, parent)
        for pos in plan.positions:
            if pos.isolated:
                await command(m.SetMarginType(ts=clock(), account=aid, symbol=pos.symbol, isolated=True))
            await command(m.SetLeverage(ts=clock(), account=aid, symbol=pos.symbol, leverage=pos.leverage))
            await command(m.PlaceOrder(ts=clock(), account=aid, symbol=pos.symbol, side=pos.side,
                                       order_type=m.MARKET, qty=to_fixed(pos.qty)))
    for prices in scenario.path:
        await wait(step_seconds)
        for symbol, text in sorted(prices.items()):
            price, ts = to_fixed(text), clock()
            bids, asks = step_book(price, instruments[symbol])
            await node.submit(m.BookSnapshot(ts=ts, symbol=symbol, bids=bids, asks=asks,
                                             update_id=node.exchange.market(symbol).book_update_id + 1))
            await node.submit(m.Trade(ts=ts, symbol=symbol, price=price, qty=to_fixed("0.001"), taker_side=m.SELL))
            await node.submit(m.MarkPrice(ts=ts, symbol=symbol, mark=price))
    return ids

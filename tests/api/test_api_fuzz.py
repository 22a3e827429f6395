"""Fuzzing every route: random and malformed parameters and bodies, signed correctly or not.

Whatever arrives, the answer is the venue's JSON error shape with a 4xx status (never a 5xx, never
a traceback), and a refused request leaves the core and the history store exactly as they were.
``test_every_route_of_the_app`` enumerates the application's own route table (REST public,
private and admin, the dashboard's pages and POSTs, the websocket paths), so a route added later
is fuzzed too. ``FIGURES`` counts requests, 5xx answers and state changes of refused requests;
the module prints them at the end (``pytest -s``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import quote, urlencode

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.api_server import ADMIN_TOKEN, SimThread, business_state, seed_book

PARAM_NAMES = [
    "symbol", "side", "type", "quantity", "price", "timeInForce", "stopPrice", "triggerPrice", "algoType", "orderId",
    "origClientOrderId", "newClientOrderId", "clientAlgoId", "algoId", "reduceOnly", "closePosition", "positionSide",
    "callbackRate", "activatePrice", "activationPrice", "workingType", "leverage", "marginType", "amount",
    "dualSidePosition", "limit", "startTime", "endTime", "fromId", "interval", "incomeType", "newOrderRespType",
    "priceProtect", "listenKey", "page", "autoCloseType", "orderIdList", "batchOrders", "origClientOrderIdList",
]
GOOD_VALUES = [
    "BTCUSDT", "ETHUSDT", "btcusdt", "BUY", "SELL", "MARKET", "LIMIT", "STOP", "STOP_MARKET", "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET", "GTC", "IOC", "FOK", "GTX", "BOTH", "LONG", "SHORT", "true",
    "false", "CONDITIONAL", "ISOLATED", "CROSSED", "MARK_PRICE", "CONTRACT_PRICE", "1", "2", "0.001", "0.01", "1",
    "59000", "60000.1", "61000", "1m", "1h", "RESULT", "ACK", "5", "100", "1000", "9" * 19, "9223372036854775808",
    "²", "１０", "abc\n", "0.002\n",
]
numbers = st.one_of(
    st.integers(min_value=-10**30, max_value=10**30).map(str),
    st.decimals(allow_nan=True, allow_infinity=True, places=None).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
values = st.one_of(st.sampled_from(GOOD_VALUES), numbers, st.text(max_size=40),
                   st.sampled_from(["", " ", "null", "None", "[]", "{}", "%00", "\x00", "😀", "1e5", "-0", "0x10"]))
params = st.dictionaries(st.one_of(st.sampled_from(PARAM_NAMES), st.text(min_size=1, max_size=12)), values,
                         max_size=8)
signing = st.sampled_from(["good", "good", "good", "bad_signature", "none", "unknown_key", "stale", "no_key",
                           "garbage_signature"])


FIGURES = {"requests": 0, "5xx": 0, "refused": 0, "state changes": 0}
DASHBOARD: list = []


def _install_dashboard(app):
    from exchange_sim.api.context import CTX
    from exchange_sim.dashboard.server import add_routes

    DASHBOARD.append(add_routes(app, app[CTX].node, admin_token=ADMIN_TOKEN, shock_moves_book=True))


def fingerprint(sim) -> tuple:
    """The core's business state and every row of the history store."""
    return business_state(sim.exchange), sim.server.ctx.history.fingerprint()


@pytest.fixture(scope="module")
def fuzz_sim():
    with SimThread(extra_routes=[_install_dashboard]) as st_:
        sim = st_.sim
        st_.run(seed_book(sim, "BTCUSDT", "60000"))
        st_.run(seed_book(sim, "ETHUSDT", "3000", spread="1"))
        account = st_.run(sim.create_account("fuzz", deposit="100000"))
        routes = sorted({(r.method, r.resource.canonical) for r in sim.server.app.router.routes()
                         if r.method in ("GET", "POST", "PUT", "DELETE") and r.resource is not None
                         and "{" not in r.resource.canonical and not r.resource.canonical.startswith("/sim/")
                         and "ws" not in r.resource.canonical and r.resource.canonical != "/stream"
                         and r.resource.canonical.startswith("/fapi")})
        with requests.Session() as session:
            yield st_, account, routes, session
    print(f"\nfuzz figures: {FIGURES}")


def send(session, base, method, path, query_params, mode, account):
    ts = int(time.time() * 1000) - (120_000 if mode == "stale" else 0)
    items = [("timestamp", str(ts))] + [(k, v) for k, v in query_params.items() if k != "timestamp"]
    payload = urlencode(items, quote_via=quote, safe="")
    headers = {}
    secret = account["apiSecret"]
    if mode != "no_key":
        headers["X-MBX-APIKEY"] = "Z" * 64 if mode == "unknown_key" else account["apiKey"]
    if mode in ("good", "stale", "unknown_key", "no_key"):
        payload += "&signature=" + hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    elif mode == "bad_signature":
        payload += "&signature=" + "a" * 64
    elif mode == "garbage_signature":
        payload += "&signature=%FF%FE" + quote(str(query_params)[:20], safe="")
    if method in ("GET", "DELETE"):
        return session.request(method, f"{base}{path}?{payload}", headers=headers, timeout=10)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    return session.request(method, base + path, data=payload.encode("utf-8", "surrogatepass"), headers=headers,
                           timeout=10)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=st.data(), query_params=params, mode=signing)
def test_random_requests_never_500_and_refusals_change_nothing(fuzz_sim, data, query_params, mode):
    sim_thread, account, routes, session = fuzz_sim
    method, path = data.draw(st.sampled_from(routes))
    before = sim_thread.call(business_state, sim_thread.sim.exchange)
    resp = send(session, sim_thread.sim.url, method, path, query_params, mode, account)
    assert resp.status_code != 500, (method, path, query_params, resp.text)
    body = resp.json()
    if resp.status_code >= 400:
        assert set(body) == {"code", "msg"} and isinstance(body["code"], int) and body["code"] < 0
        assert sim_thread.call(business_state, sim_thread.sim.exchange) == before, (method, path, query_params)
    if method != "GET":  # public endpoints are all GETs; everything else needs a valid key (and signature)
        refused = ("unknown_key", "no_key") if path == "/fapi/v1/listenKey" else (
            "bad_signature", "unknown_key", "stale", "no_key", "garbage_signature")
        if mode in refused:
            assert resp.status_code >= 400, (method, path, mode)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw_query=st.text(max_size=120), raw_body=st.binary(max_size=200),
       method=st.sampled_from(["GET", "POST", "DELETE", "PUT"]),
       path=st.sampled_from(["/fapi/v1/order", "/fapi/v1/algoOrder", "/fapi/v3/account", "/fapi/v1/depth",
                             "/fapi/v1/leverage", "/fapi/v1/listenKey", "/sim/v1/market", "/sim/v1/accounts"]))
def test_raw_garbage_never_500(fuzz_sim, raw_query, raw_body, method, path):
    sim_thread, account, _routes, session = fuzz_sim
    before = sim_thread.call(business_state, sim_thread.sim.exchange)
    resp = session.request(method, f"{sim_thread.sim.url}{path}?{quote(raw_query, safe='=&')}", data=raw_body,
                           headers={"X-MBX-APIKEY": account["apiKey"], "Authorization": "Bearer nope"}, timeout=10)
    assert resp.status_code != 500, (method, path, raw_query, raw_body, resp.text)
    body = resp.json()
    if resp.status_code >= 400:
        assert set(body) == {"code", "msg"}
        assert sim_thread.call(business_state, sim_thread.sim.exchange) == before


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(st.dictionaries(st.sampled_from(["type", "symbol", "price", "qty", "side", "bids", "asks",
                                                         "rate", "index", "ts", "stale", "fundingRate"]),
                                        st.one_of(values, st.integers(), st.booleans(), st.none(),
                                                  st.lists(st.lists(values, max_size=3), max_size=3))),
                       max_size=4),
       extra=st.one_of(st.none(), st.integers(), st.text(max_size=10)))
def test_admin_market_injection_fuzz(fuzz_sim, events, extra):
    sim_thread, _account, _routes, session = fuzz_sim
    body = {"events": events} if extra is None else {"events": events, "x": extra}
    resp = session.post(f"{sim_thread.sim.url}/sim/v1/market", json=body,
                        headers={"Authorization": f"Bearer {sim_thread.sim.admin_token}"}, timeout=10)
    assert resp.status_code in (200, 400), resp.text


ADMIN_KEYS = ["name", "deposit", "parent", "amount", "from", "to", "events", "accounts", "symbol", "percent",
              "seconds", "steps", "step_seconds", "type", "price", "qty", "side", "bids", "asks", "ts", "index",
              "fundingRate", "nextFundingTime", "rate", "stale", "reason"]
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**40, max_value=10**40),
              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20), st.sampled_from(GOOD_VALUES),
              st.sampled_from(["²", "１０", "-5", "1e30", "0.002\n", "book", "mark", "trade", "funding"])),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(ADMIN_KEYS), st.text(max_size=8)), inner,
                                            max_size=5)),
    max_leaves=12)
near_values = st.one_of(st.sampled_from(["1", "100", "0", "-5", "²", "１０", "1e30", "0.002\n", "60000", "NaN"]),
                        st.integers(min_value=-10**40, max_value=10**40), st.floats(), st.none(), st.booleans())
near_valid = st.one_of(  # admin and dashboard bodies one field away from valid
    st.fixed_dictionaries({"amount": near_values}),
    st.fixed_dictionaries({"name": st.text(max_size=70), "deposit": near_values, "parent": near_values}),
    st.fixed_dictionaries({"from": near_values, "to": near_values, "amount": near_values}),
    st.fixed_dictionaries({"deposit": near_values}),
    st.fixed_dictionaries({"accounts": st.lists(near_values, max_size=3), "deposit": near_values}),
    st.fixed_dictionaries({"symbol": st.sampled_from(["BTCUSDT", "btcusdt", "X"]), "percent": near_values,
                           "seconds": near_values, "steps": near_values}),
    st.fixed_dictionaries({"name": st.sampled_from(["leverage", "nope", ""]), "step_seconds": near_values}),
    st.fixed_dictionaries({"events": st.lists(st.fixed_dictionaries(
        {"type": st.sampled_from(["mark", "trade", "book", "index", "funding", "status", "delta", "x"]),
         "symbol": st.sampled_from(["BTCUSDT", "ETHUSDT", "²"]), "price": near_values, "qty": near_values,
         "rate": near_values, "ts": near_values, "bids": st.lists(st.lists(near_values, max_size=2), max_size=2),
         "stale": near_values}), max_size=3)}),
)
raw_bodies = st.one_of(st.binary(max_size=64), st.sampled_from([b"[" * 5000, b"{" * 3000, b"null", b"[]", b""]))
path_values = {"id": ["1", "2", "999", "\u00b2", "abc", "-1", "1.5", "0"],
               "name": ["app.js", "style.css", "../server.py", ".hidden.js", "x.svg", "index.html"],
               "tail": ["btcusdt@depth", "", "x", "btcusdt@aggTrade/ethusdt@markPrice"]}


def _app_routes(sim) -> list[tuple[str, str]]:
    """Every (method, path template) of the running application."""
    out = set()
    for route in sim.server.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        template = info.get("formatter") or info.get("path")
        if template and route.method in ("GET", "POST", "PUT", "DELETE"):
            out.add((route.method, template))
    return sorted(out)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data(), mode=signing, token=st.sampled_from(["good", "good", "good", "bad", "none"]))
def test_every_route_of_the_app(fuzz_sim, data, mode, token):
    sim_thread, account, _routes, session = fuzz_sim
    sim = sim_thread.sim
    routes = _app_routes(sim)
    assert len(routes) > 60 and ("POST", "/dashboard/api/shock") in routes and ("GET", "/sim/v1/events") in routes
    method, template = data.draw(st.sampled_from(routes))
    path = template
    for name, choices in path_values.items():
        path = path.replace("{" + name + "}", quote(data.draw(st.sampled_from(choices)), safe="/@"))
    before = sim_thread.call(fingerprint, sim)
    if path.startswith(("/sim/", "/dashboard")):
        headers = {} if token == "none" else {
            "Authorization": f"Bearer {ADMIN_TOKEN if token == 'good' else 'wrong'}", "Content-Type": "application/json"}
        body = data.draw(st.one_of(json_values, near_valid, near_valid).map(lambda v: json.dumps(v).encode())
                         | raw_bodies)
        query = data.draw(st.dictionaries(st.sampled_from(["account", "type", "since", "afterSeq", "limit", "x"]),
                                          values, max_size=3))
        resp = session.request(method, f"{sim.url}{path}?{urlencode(query)}", data=body if method != "GET" else None,
                               headers=headers, timeout=10)
    else:
        resp = send(session, sim.url, method, path, data.draw(params), mode, account)
    FIGURES["requests"] += 1
    if resp.status_code >= 500:
        FIGURES["5xx"] += 1
    assert resp.status_code < 500, (method, path, resp.status_code, resp.text[:300])
    if path == "/dashboard/api/shock" and resp.status_code == 200:
        sim_thread.run(_cancel_shocks())  # a shock plays out in the background: stop it before the next example
    if resp.status_code >= 400:
        FIGURES["refused"] += 1
        changed = sim_thread.call(fingerprint, sim) != before
        FIGURES["state changes"] += changed
        assert not changed, (method, path)
        if not path.startswith("/dashboard") and path != "/":
            reply = resp.json()
            assert set(reply) == {"code", "msg"} and isinstance(reply["code"], int) and reply["code"] < 0, reply


async def _cancel_shocks() -> None:
    import asyncio

    for hub in DASHBOARD:
        tasks = list(hub._shocks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

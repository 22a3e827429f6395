"""Fuzzing every REST endpoint: random and malformed parameters, signed correctly or not.

Whatever arrives, the answer is the venue's JSON error shape with a 4xx status (never a 500, never
a traceback), and a refused request leaves the core exactly as it was.
"""

from __future__ import annotations

import time
from urllib.parse import quote, urlencode

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_sim.client import signature
from tests.support.api_server import SimThread, business_state, seed_book

PARAM_NAMES = [
    "symbol", "side", "type", "quantity", "price", "timeInForce", "stopPrice", "triggerPrice", "algoType", "orderId",
    "origClientOrderId", "newClientOrderId", "clientAlgoId", "algoId", "reduceOnly", "closePosition", "positionSide",
    "callbackRate", "activatePrice", "activationPrice", "workingType", "leverage", "marginType", "amount",
    "dualSidePosition", "limit", "startTime", "endTime", "fromId", "interval", "incomeType", "newOrderRespType",
    "priceProtect", "listenKey",
]
GOOD_VALUES = [
    "BTCUSDT", "ETHUSDT", "btcusdt", "BUY", "SELL", "MARKET", "LIMIT", "STOP", "STOP_MARKET", "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET", "GTC", "IOC", "FOK", "GTX", "BOTH", "LONG", "SHORT", "true",
    "false", "CONDITIONAL", "ISOLATED", "CROSSED", "MARK_PRICE", "CONTRACT_PRICE", "1", "2", "0.001", "0.01", "1",
    "59000", "60000.1", "61000", "1m", "1h", "RESULT", "ACK", "5", "100", "1000",
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


@pytest.fixture(scope="module")
def fuzz_sim():
    with SimThread() as st_:
        sim = st_.sim
        st_.run(seed_book(sim, "BTCUSDT", "60000"))
        st_.run(seed_book(sim, "ETHUSDT", "3000", spread="1"))
        account = st_.run(sim.create_account("fuzz", deposit="100000"))
        routes = sorted({(r.method, r.resource.canonical) for r in sim.server.app.router.routes()
                         if r.method in ("GET", "POST", "PUT", "DELETE") and r.resource is not None
                         and "{" not in r.resource.canonical and not r.resource.canonical.startswith("/sim/")
                         and "ws" not in r.resource.canonical and r.resource.canonical != "/stream"})
        with requests.Session() as session:
            yield st_, account, routes, session


def send(session, base, method, path, query_params, mode, account):
    ts = int(time.time() * 1000) - (120_000 if mode == "stale" else 0)
    items = [("timestamp", str(ts))] + [(k, v) for k, v in query_params.items() if k != "timestamp"]
    payload = urlencode(items, quote_via=quote, safe="")
    headers = {}
    secret = account["apiSecret"]
    if mode != "no_key":
        headers["X-MBX-APIKEY"] = "Z" * 64 if mode == "unknown_key" else account["apiKey"]
    if mode in ("good", "stale", "unknown_key", "no_key"):
        payload += "&signature=" + signature(secret, payload)
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

"""Bad input gets the venue's error and changes nothing: the cases issue 14 found, one by one.

Each case is sent to a running simulator (REST, admin API and dashboard in one app); the answer
must be the venue's ``{"code", "msg"}`` (or the dashboard's ``{"error"}``) with a 4xx status, and
the core's state (``business_state``) and the history store must be what they were.
"""

from __future__ import annotations

import logging

import aiohttp
import pytest

from exchange_sim.api.context import CTX
from exchange_sim.dashboard.server import add_routes as add_dashboard
from tests.support.api_client import raw, signed
from tests.support.api_server import ADMIN_TOKEN, business_state, running_sim, seed_book

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def bench():
    dashboard = []

    def install(app):
        dashboard.append(add_dashboard(app, app[CTX].node, admin_token=ADMIN_TOKEN))

    async with running_sim(extra_routes=[install]) as sim:
        await seed_book(sim)
        alice = await sim.create_account("alice", deposit="10000")
        async with aiohttp.ClientSession() as http:
            yield sim, alice, http


def unchanged(sim):
    return business_state(sim.exchange), sim.server.ctx.history.fingerprint()


async def admin(http, sim, method, path, body=None, *, data=None):
    async with http.request(method, sim.url + path, json=body, data=data,
                            headers=dict(ADMIN, **({"Content-Type": "application/json"} if data else {}))) as r:
        return r.status, await r.json(content_type=None)


@pytest.mark.parametrize("leverage", ["²", "１０", "10\n", "٣", "1e1", "-5"])
async def test_leverage_takes_ascii_digits_only(bench, leverage):
    sim, alice, http = bench
    before = unchanged(sim)
    status, body = await signed(http, sim.url, "POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": leverage},
                                alice["apiKey"], alice["apiSecret"])
    assert status == 400 and body["code"] == -4028, body
    assert unchanged(sim) == before


@pytest.mark.parametrize("name,value", [("limit", "²"), ("limit", "１０"), ("startTime", "１"), ("orderId", "²"),
                                        ("fromId", "1\n")])
async def test_unicode_digits_in_integers_are_refused(bench, name, value):
    sim, alice, http = bench
    path = "/fapi/v1/userTrades" if name == "fromId" else "/fapi/v1/allOrders"
    status, body = await signed(http, sim.url, "GET", path, {"symbol": "BTCUSDT", name: value},
                                alice["apiKey"], alice["apiSecret"])
    assert status == 400 and body["code"] == -1100, body


async def test_unicode_digits_in_admin_ids_and_queries(bench):
    sim, alice, http = bench
    before = unchanged(sim)
    for path in ("/sim/v1/accounts/²", "/sim/v1/accounts/１"):
        status, body = await admin(http, sim, "GET", path)
        assert status == 404 and body["code"] == -1130, body
    for query in ("limit=²", "since=１０", "account=²", "afterSeq=1%0A"):
        status, body = await admin(http, sim, "GET", "/sim/v1/events?" + query)
        assert status == 400 and body["code"] == -1130, (query, body)
    for body_ in ({"name": "x", "parent": "²"}, {"name": "x", "parent": "１"}):
        status, body = await admin(http, sim, "POST", "/sim/v1/accounts", body_)
        assert status == 404 and body["code"] == -1130, body
    for pair in ({"from": "²", "to": alice["accountId"], "amount": "1"},
                 {"from": alice["accountId"], "to": "１", "amount": "1"}):
        status, body = await admin(http, sim, "POST", "/sim/v1/transfers", pair)
        assert status == 404 and body["code"] == -1130, body
    assert unchanged(sim) == before


async def test_admin_amounts_prices_and_times_are_bounded(bench):
    sim, alice, http = bench
    aid = alice["accountId"]
    before = unchanged(sim)
    for amount in (10**40, int("9" * 4000), "1" + "0" * 20, "100000000000", -5, "-5", "5\n", float("1e30")):
        status, body = await admin(http, sim, "POST", f"/sim/v1/accounts/{aid}/deposit", {"amount": amount})
        assert status == 400 and body["code"] == -1130, (str(amount)[:30], body)
    for event in ({"type": "mark", "symbol": "BTCUSDT", "price": 10**30},
                  {"type": "mark", "symbol": "BTCUSDT", "price": "1000000000000"},
                  {"type": "trade", "symbol": "BTCUSDT", "price": "60000", "qty": "1", "ts": 10**30},
                  {"type": "mark", "symbol": "BTCUSDT", "price": "60000", "ts": 5},
                  {"type": "mark", "symbol": "BTCUSDT", "price": "60000", "nextFundingTime": 10**30},
                  {"type": "funding", "symbol": "BTCUSDT", "rate": "2"},
                  {"type": "book", "symbol": "BTCUSDT", "bids": [["60000", 10**30]], "asks": []}):
        status, body = await admin(http, sim, "POST", "/sim/v1/market", {"events": [event]})
        assert status == 400 and body["code"] == -1130, (event, body)
    assert unchanged(sim) == before
    status, body = await admin(http, sim, "POST", f"/sim/v1/accounts/{aid}/deposit", {"amount": "10000000000"})
    assert status == 200, body  # the bound itself is accepted
    status, body = await admin(http, sim, "POST", "/dashboard/api/shock", {"symbol": "BTCUSDT", "percent": -1,
                                                                          "seconds": 0, "steps": 1})
    assert status == 200 and body["from"] == 60000.0, body  # the refused 10^30 mark left shocks working


async def test_dashboard_refuses_deep_or_huge_json_and_bad_numbers(bench):
    sim, alice, http = bench
    before = unchanged(sim)
    for path in ("/dashboard/api/shock", "/dashboard/api/reset", "/dashboard/api/lesson", "/sim/v1/market",
                 "/sim/v1/accounts"):
        for data in (b"[" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000, b'{"x": "' + b"a" * 5_000_000 + b'"}'):
            status, body = await admin(http, sim, "POST", path, data=data)
            assert 400 <= status < 500, (path, status, body)
    for shock in ({"symbol": "BTCUSDT", "percent": "１０"}, {"symbol": "BTCUSDT", "percent": "NaN"},
                  {"symbol": "BTCUSDT", "percent": 5, "steps": "²"}, {"symbol": "BTCUSDT", "percent": 1e308}):
        status, body = await admin(http, sim, "POST", "/dashboard/api/shock", shock)
        assert status == 400 and "error" in body, (shock, body)
    status, body = await admin(http, sim, "POST", "/dashboard/api/reset",
                               {"accounts": [alice["accountId"]], "deposit": "-5"})
    assert status == 400 and "deposit" in body["error"], body
    assert unchanged(sim) == before


@pytest.mark.parametrize("name,value", [("newClientOrderId", "abc\n"), ("quantity", "0.002\n"),
                                        ("price", "50000\n"), ("quantity", "０.００２")])
async def test_a_trailing_newline_or_wide_digit_is_not_part_of_a_value(bench, name, value):
    sim, alice, http = bench
    before = unchanged(sim)
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.002",
             "price": "50000", name: value}
    status, body = await signed(http, sim.url, "POST", "/fapi/v1/order", order, alice["apiKey"], alice["apiSecret"])
    assert status == 400 and body["code"] == -1100, body
    assert unchanged(sim) == before


async def test_an_overlong_line_gets_the_venues_json_and_no_traceback(bench, caplog):
    sim, alice, http = bench
    caplog.set_level(logging.DEBUG)
    status, body = await raw(http, sim.url, "GET", "/fapi/v1/depth", query="symbol=BTCUSDT&x=" + "a" * 9000)
    assert status == 400 and body["code"] == -1100, body
    status, body = await raw(http, sim.url, "GET", "/fapi/v1/time", headers={"X-Junk": "b" * 9000})
    assert status == 400 and body["code"] == -1100, body
    status, body = await signed(http, sim.url, "GET", "/fapi/v3/account", {"pad": "c" * 9000},
                                alice["apiKey"], alice["apiSecret"])
    assert status == 400 and body["code"] == -1100, body
    status, _text = await raw(http, sim.url, "GET", "/fapi/v1/time", headers={"X-Junk": "d" * 70_000})
    assert status == 400  # past the parser's own limit: aiohttp's answer, but one log line
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)


@pytest.mark.parametrize("path,name", [("/fapi/v1/order", "orderId"), ("/fapi/v1/allOrders", "orderId"),
                                       ("/fapi/v1/allOrders", "startTime"), ("/fapi/v1/userTrades", "fromId"),
                                       ("/fapi/v1/userTrades", "orderId"), ("/fapi/v1/income", "endTime"),
                                       ("/fapi/v1/forceOrders", "startTime"), ("/fapi/v1/algoOrder", "algoId")])
async def test_ids_and_times_past_64_bits_find_nothing_and_never_overflow(bench, path, name):
    sim, alice, http = bench
    status, body = await signed(http, sim.url, "GET", path, {"symbol": "BTCUSDT", name: "9" * 19},
                                alice["apiKey"], alice["apiSecret"])
    assert status in (200, 400), body
    assert body == [] or body["code"] in (-2013, -1130), body

"""The admin (instructor) API contract: accounts, money movements, market injection, event log."""

from __future__ import annotations

import aiohttp
import pytest

from exchange_sim.core.fixed import to_fixed
from tests.support.api_client import raw


async def test_accounts_create_list_show(sim):
    status, alice = await sim.admin("POST", "/sim/v1/accounts", {"name": "alice", "deposit": "1000"})
    assert status == 200 and alice["accountId"] == 1 and len(alice["apiKey"]) == 64 and len(alice["apiSecret"]) == 64
    status, sub = await sim.admin("POST", "/sim/v1/accounts", {"name": "alice-sub", "deposit": 50, "parent": 1})
    assert status == 200 and sub["parent"] == 1
    assert sim.exchange.account_by_api_key(alice["apiKey"]) == 1
    status, listed = await sim.admin("GET", "/sim/v1/accounts")
    assert [(a["accountId"], a["name"], a["walletBalance"]) for a in listed] == [
        (1, "alice", "1000.00000000"), (2, "alice-sub", "50.00000000")]
    status, shown = await sim.admin("GET", "/sim/v1/accounts/1")
    assert status == 200 and shown["children"] == [2] and shown["positions"] == [] and shown["orders"] == []
    assert "apiSecret" not in shown
    status, missing = await sim.admin("GET", "/sim/v1/accounts/99")
    assert status == 404 and missing["code"] == -1130
    status, _bad_parent = await sim.admin("POST", "/sim/v1/accounts", {"name": "x", "parent": 99})
    assert status == 404
    status, bad_deposit = await sim.admin("POST", "/sim/v1/accounts", {"name": "x", "deposit": "-5"})
    assert (status, bad_deposit["code"]) == (400, -1130)
    assert len(sim.exchange.account_ids()) == 2


async def test_deposit_withdraw_transfer_reset(sim, market):
    parent = await sim.create_account("teacher", deposit="1000")
    child = await sim.create_account("student", deposit="0", parent=parent["accountId"])
    status, after = await sim.admin("POST", f"/sim/v1/accounts/{child['accountId']}/deposit", {"amount": "25.5"})
    assert status == 200 and after["walletBalance"] == "25.50000000"
    status, moved = await sim.admin("POST", "/sim/v1/transfers",
                                    {"from": parent["accountId"], "to": child["accountId"], "amount": "100"})
    assert status == 200 and moved["to"]["walletBalance"] == "125.50000000"
    assert moved["from"]["walletBalance"] == "900.00000000"
    status, refused = await sim.admin("POST", "/sim/v1/transfers",
                                      {"from": parent["accountId"], "to": child["accountId"], "amount": "1000000"})
    assert status == 400 and refused["code"] < 0
    status, body = await sim.admin("POST", f"/sim/v1/accounts/{child['accountId']}/withdraw", {"amount": "0.5"})
    assert status == 200 and body["walletBalance"] == "125.00000000"
    status, body = await sim.admin("POST", f"/sim/v1/accounts/{child['accountId']}/reset", {"deposit": "500"})
    assert status == 200 and body["walletBalance"] == "500.00000000"
    status, body = await sim.admin("POST", f"/sim/v1/accounts/{child['accountId']}/deposit", {"amount": "abc"})
    assert (status, body["code"]) == (400, -1130)
    assert sim.exchange.account_view(child["accountId"]).wallet_balance == to_fixed("500")


async def test_market_injection_is_all_or_nothing(sim):
    good = {"type": "mark", "symbol": "BTCUSDT", "price": "60000"}
    for bad in ({"type": "mark", "symbol": "NOPE", "price": "1"}, {"type": "warp", "symbol": "BTCUSDT"},
                {"type": "trade", "symbol": "BTCUSDT", "price": "1", "qty": "0", "side": "BUY"},
                {"type": "book", "symbol": "BTCUSDT", "bids": [["x", "1"]], "asks": []}, "junk"):
        status, body = await sim.admin("POST", "/sim/v1/market", {"events": [good, bad]})
        assert status == 400 and body["code"] in (-1130, -1121), bad
    assert sim.exchange.market("BTCUSDT").mark == 0
    status, body = await sim.admin("POST", "/sim/v1/market", {"events": [good]})
    assert status == 200 and body["applied"] == 1
    assert sim.exchange.market("BTCUSDT").mark == to_fixed("60000")
    async with aiohttp.ClientSession() as s:
        status, body = await raw(s, sim.url, "POST", "/sim/v1/market", body="{not json",
                                 headers={"Authorization": f"Bearer {sim.admin_token}"})
        assert (status, body["code"]) == (400, -1130)


async def test_event_log_filters(sim, market, clients):
    alice = await sim.create_account("alice", deposit="100000")
    bob = await sim.create_account("bob", deposit="100000")
    await clients.async_(alice).create_order("BTC/USDT:USDT", "market", "buy", 0.01)
    await clients.async_(bob).create_order("BTC/USDT:USDT", "limit", "buy", 0.01, 59000)
    status, log = await sim.admin("GET", f"/sim/v1/events?account={alice['accountId']}")
    assert status == 200 and log["events"]
    assert {e["account"] for e in log["events"]} == {alice["accountId"]}
    status, log = await sim.admin("GET", "/sim/v1/events?type=OrderUpdate")
    assert {e["type"] for e in log["events"]} == {"OrderUpdate"}
    assert {e["account"] for e in log["events"]} == {alice["accountId"], bob["accountId"]}
    assert log["events"][0]["price"] == "0"  # money fields are decimal text
    last = log["events"][-1]["seq"]
    status, log = await sim.admin("GET", f"/sim/v1/events?afterSeq={last}")
    assert log["events"] == []
    status, log = await sim.admin("GET", "/sim/v1/events?since=99999999999999")
    assert log["events"] == []
    status, body = await sim.admin("GET", "/sim/v1/events?account=abc")
    assert (status, body["code"]) == (400, -1130)
    status, fund = await sim.admin("GET", "/sim/v1/insurance-fund")
    assert status == 200 and fund["balance"] == "1000000.00000000"
    status, st = await sim.admin("GET", "/sim/v1/status")
    assert status == 200 and st["accounts"] == 2 and st["applied"] > 0


@pytest.mark.parametrize("path", ["/nope", "/fapi/v1/nope", "/sim/v1/nope"])
async def test_unknown_paths_are_venue_errors(sim, path):
    async with aiohttp.ClientSession() as s:
        status, body = await raw(s, sim.url, "GET", path)
    assert status == 404 and body["code"] == -5000


async def test_a_generated_admin_token_is_announced_and_works():
    from exchange_sim.api import ApiConfig, ApiServer
    from exchange_sim.core.exchange import Exchange, ExchangeConfig
    from exchange_sim.profiles import load_profile
    from exchange_sim.runtime import Node

    said: list[str] = []
    async with Node(Exchange(load_profile(), ExchangeConfig())) as node:
        server = ApiServer(node, ApiConfig(port=0), announce=said.append)
        async with server, aiohttp.ClientSession() as s:
            assert server.url.startswith("http://127.0.0.1:")
            assert len(said) == 1 and server.admin_token in said[0]
            status, _ = await raw(s, server.url, "GET", "/sim/v1/accounts",
                                  headers={"Authorization": f"Bearer {server.admin_token}"})
            assert status == 200
            status, body = await raw(s, server.url, "GET", "/ws")  # plain HTTP on a websocket path
            assert status == 400 and body["code"] == -5000

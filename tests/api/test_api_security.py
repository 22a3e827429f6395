"""Authentication, isolation between keys, the admin token and rate limits, with the venue's codes."""

from __future__ import annotations

import aiohttp
import ccxt
import ccxt.async_support as ccxt_async
import pytest

from exchange_sim.api import RateLimits
from exchange_sim.api.auth import RateLimiter
from tests.support.api_client import now_ms, raw, signed
from tests.support.api_server import ccxt_config, running_sim, seed_book

BTC = "BTC/USDT:USDT"


@pytest.fixture
async def two_traders(market, sim):
    alice = await sim.create_account("alice", deposit="10000")
    bob = await sim.create_account("bob", deposit="10000")
    return alice, bob


async def test_a_key_cannot_read_or_cancel_another_accounts_orders(two_traders, sim, clients):
    alice, bob = two_traders
    alice_client, bob_client = clients.async_(alice), clients.async_(bob)
    order = await alice_client.create_order(BTC, "limit", "buy", 0.01, 59000)
    stop = await alice_client.create_order(BTC, "market", "sell", 0.01, None, {"stopPrice": 50000})
    with pytest.raises(ccxt.OrderNotFound):
        await bob_client.fetch_order(order["id"], BTC)
    with pytest.raises(ccxt.OrderNotFound):
        await bob_client.cancel_order(order["id"], BTC)
    with pytest.raises(ccxt.OrderNotFound):
        await bob_client.fetch_order(stop["id"], BTC, {"trigger": True})
    with pytest.raises(ccxt.OrderNotFound):
        await bob_client.cancel_order(stop["id"], BTC, {"trigger": True})
    with pytest.raises(ccxt.OrderNotFound):  # by client order id too
        await bob_client.fetch_order(None, BTC, {"clientOrderId": order["clientOrderId"]})
    assert await bob_client.fetch_open_orders(BTC) == []
    assert await bob_client.fetch_open_orders(BTC, params={"trigger": True}) == []
    await bob_client.cancel_all_orders(BTC)
    assert await bob_client.fetch_my_trades(BTC) == []
    assert [o["id"] for o in await alice_client.fetch_open_orders(BTC)] == [order["id"]]
    assert (await alice_client.fetch_order(order["id"], BTC))["status"] == "open"


async def test_signature_timestamp_and_key_failures(two_traders, sim):
    alice, bob = two_traders
    before = sim.exchange.snapshot()
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}
    async with aiohttp.ClientSession() as s:
        ok = await signed(s, sim.url, "GET", "/fapi/v3/account", {}, alice["apiKey"], alice["apiSecret"])
        assert ok[0] == 200
        # bad signature
        status, body = await signed(s, sim.url, "POST", "/fapi/v1/order", order, alice["apiKey"], alice["apiSecret"],
                                    signature="0" * 64)
        assert (status, body["code"]) == (400, -1022)
        # signed with another account's secret
        status, body = await signed(s, sim.url, "POST", "/fapi/v1/order", order, alice["apiKey"], bob["apiSecret"])
        assert (status, body["code"]) == (400, -1022)
        # stale timestamp / replay of an old request outside recvWindow
        status, body = await signed(s, sim.url, "POST", "/fapi/v1/order", order, alice["apiKey"], alice["apiSecret"],
                                    timestamp=now_ms() - 20_000, recv_window=10_000)
        assert (status, body["code"]) == (400, -1021)
        # from the future
        status, body = await signed(s, sim.url, "POST", "/fapi/v1/order", order, alice["apiKey"], alice["apiSecret"],
                                    timestamp=now_ms() + 5_000)
        assert (status, body["code"]) == (400, -1021)
        # recvWindow above the venue's maximum
        status, body = await signed(s, sim.url, "GET", "/fapi/v3/account", {}, alice["apiKey"], alice["apiSecret"],
                                    recv_window=70_000)
        assert body["code"] == -1131
        # unknown key, malformed key, no key
        status, body = await signed(s, sim.url, "GET", "/fapi/v3/account", {}, "A" * 64, alice["apiSecret"])
        assert (status, body["code"]) == (401, -2015)
        status, body = await signed(s, sim.url, "GET", "/fapi/v3/account", {}, "bad key!", alice["apiSecret"])
        assert (status, body["code"]) == (401, -2014)
        status, body = await raw(s, sim.url, "GET", "/fapi/v3/account", query=f"timestamp={now_ms()}")
        assert (status, body["code"]) == (401, -2014)
        # no signature at all
        status, body = await raw(s, sim.url, "GET", "/fapi/v3/account", query=f"timestamp={now_ms()}",
                                 headers={"X-MBX-APIKEY": alice["apiKey"]})
        assert (status, body["code"]) == (400, -1102)
        # an honest request replayed verbatim after its window has passed
        stale_ts = now_ms() - 6_000
        status, body = await signed(s, sim.url, "POST", "/fapi/v1/order", order, alice["apiKey"], alice["apiSecret"],
                                    timestamp=stale_ts, recv_window=5_000)
        assert body["code"] == -1021
        # listenKey needs a real key
        status, body = await raw(s, sim.url, "POST", "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": "B" * 64})
        assert (status, body["code"]) == (401, -2015)
    assert sim.exchange.snapshot() == before


async def test_ccxt_maps_auth_failures(two_traders, sim, clients):
    alice, _ = two_traders
    wrong_secret = clients.async_({"apiKey": alice["apiKey"], "apiSecret": "f" * 64})
    with pytest.raises(ccxt.AuthenticationError):
        await wrong_secret.fetch_balance()
    unknown_key = clients.async_({"apiKey": "C" * 64, "apiSecret": alice["apiSecret"]})
    with pytest.raises(ccxt.AuthenticationError):
        await unknown_key.fetch_balance()
    skewed = clients.async_(alice)
    skewed.nonce = lambda: now_ms() - 120_000
    with pytest.raises(ccxt.InvalidNonce):
        await skewed.fetch_balance()


async def test_admin_api_needs_the_token(sim):
    for token in ("", "wrong", sim.admin_token + "x"):
        status, body = await sim.admin("POST", "/sim/v1/accounts", {"name": "mallory", "deposit": "1000000"},
                                       token=token)
        assert (status, body["code"]) == (401, -2015)
        status, body = await sim.admin("GET", "/sim/v1/accounts", token=token)
        assert status == 401
    async with aiohttp.ClientSession() as s:
        status, body = await raw(s, sim.url, "POST", "/sim/v1/market", body='{"events": []}')
        assert (status, body["code"]) == (401, -2015)
    assert sim.exchange.account_ids() == []


async def test_secrets_are_never_logged(sim, caplog):
    caplog.set_level("DEBUG")
    account = await sim.create_account("alice", deposit="10")
    async with aiohttp.ClientSession() as s:
        await signed(s, sim.url, "GET", "/fapi/v3/account", {}, account["apiKey"], account["apiSecret"])
        await signed(s, sim.url, "GET", "/fapi/v3/account", {}, account["apiKey"], "0" * 64)
    text = caplog.text
    assert account["apiSecret"] not in text and sim.admin_token not in text


async def test_public_weight_counts_per_address_whatever_key_is_sent():
    """700 depth calls from one address: as many 429s with a made-up key per request as without a key."""
    async with running_sim(rate_limits=RateLimits(request_weight_per_minute=2400)) as sim:
        await seed_book(sim)
        async with aiohttp.ClientSession() as s:
            refused = {}
            for label, key_of in (("no key", lambda i: None), ("made-up key per request", lambda i: f"K{i:063d}")):
                count = 0
                for i in range(700):
                    key = key_of(i)
                    async with s.get(sim.url + "/fapi/v1/depth?symbol=BTCUSDT&limit=500",
                                     headers={"X-MBX-APIKEY": key} if key else {}) as resp:
                        count += resp.status == 429
                refused[label] = count
                sim.server.ctx.limiter = RateLimiter(sim.server.ctx.limiter.limits, sim.server.ctx.clock)
    assert refused["no key"] > 200 and refused["made-up key per request"] == refused["no key"], refused


async def test_rate_limit_answers_429_with_the_venue_code():
    async with running_sim(rate_limits=RateLimits(request_weight_per_minute=30, orders_per_10s=3,
                                                   orders_per_minute=100)) as sim:
        await seed_book(sim)
        alice = await sim.create_account("alice", deposit="100000")
        async with aiohttp.ClientSession() as s:
            codes = []
            for _ in range(5):
                status, body = await signed(s, sim.url, "POST", "/fapi/v1/order",
                                            {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.01",
                                             "price": "58000", "timeInForce": "GTC"},
                                            alice["apiKey"], alice["apiSecret"])
                codes.append((status, body.get("code") if isinstance(body, dict) else None))
            assert codes[:3] == [(200, None)] * 3 and codes[3] == (429, -1015)
            statuses = []
            for _ in range(40):
                status, body = await raw(s, sim.url, "GET", "/fapi/v1/time")
                statuses.append(status)
            assert statuses[-1] == 429 and body["code"] == -1003
            async with s.get(sim.url + "/fapi/v1/time", headers={"X-MBX-APIKEY": "fresh-key"}) as resp:
                assert resp.status == 429  # public weight is per address: a made-up key is no way around it
        client = ccxt_async.binanceusdm(ccxt_config(sim.url, alice["apiKey"], alice["apiSecret"]))
        try:
            for _ in range(40):
                try:
                    await client.fetch_balance()
                except ccxt.DDoSProtection:  # what ccxt raises for the venue's 429
                    break
            else:
                raise AssertionError("never rate limited")
        finally:
            await client.close()
        assert len(sim.exchange.open_orders(alice["accountId"])) == 3

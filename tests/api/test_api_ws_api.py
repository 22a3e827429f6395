"""The websocket API (``/ws-fapi/v1``) through ccxt.pro's ``*_ws`` calls, with the README's config.

The same account is read back through REST (and the core): an order placed over the websocket is
the same order REST sees, a refusal is the REST refusal (code, message, nothing changed).
"""

from __future__ import annotations

import json

import aiohttp
import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import pytest

from exchange_sim.api.auth import sign
from exchange_sim.api.ws_api import signed_payload
from tests.api.test_api_clients import readme_config
from tests.support.api_server import business_state

BTC = "BTC/USDT:USDT"


@pytest.fixture
async def pro(market, sim):
    alice = await sim.create_account("alice", deposit="10000")
    ex = ccxt_pro.binanceusdm(readme_config(sim.url, alice["apiKey"], alice["apiSecret"]))
    await ex.load_markets()
    yield ex, alice
    await ex.close()


async def test_orders_over_the_websocket_api(pro, sim):
    ex, alice = pro
    bought = await ex.create_order_ws(BTC, "market", "buy", 0.02)
    assert bought["status"] == "closed" and bought["filled"] == 0.02 and bought["average"] == 60010
    resting = await ex.create_order_ws(BTC, "limit", "sell", 0.01, 61000)
    assert resting["status"] == "open"
    rest = ccxt_async.binanceusdm(readme_config(sim.url, alice["apiKey"], alice["apiSecret"]))
    try:
        await _same_account_through_rest(ex, rest, resting)
    finally:
        await rest.close()


async def _same_account_through_rest(ex, rest, resting):
    assert [o["id"] for o in await rest.fetch_open_orders(BTC)] == [resting["id"]]  # the same order
    moved = await ex.edit_order_ws(resting["id"], BTC, "limit", "sell", 0.01, 61500)
    assert moved["price"] == 61500
    assert (await ex.fetch_order_ws(resting["id"], BTC))["price"] == 61500
    canceled = await ex.cancel_order_ws(resting["id"], BTC)
    assert canceled["status"] == "canceled"
    stop = await ex.create_order_ws(BTC, "market", "sell", 0.02, None, {"stopPrice": 55000, "reduceOnly": True})
    assert stop["info"]["orderType"] == "STOP_MARKET"
    assert [o["id"] for o in await rest.fetch_open_orders(BTC, params={"trigger": True})] == [stop["id"]]
    (position,) = [p for p in await ex.fetch_positions_ws([BTC]) if p["contracts"]]
    assert position["contracts"] == 0.02 and position["side"] == "long"
    balance = await ex.fetch_balance_ws()  # account.status: ccxt.pro reads the margin balance (REST: the wallet)
    raw = (await rest.fapiPrivateV3GetAccount())["assets"][0]
    assert float(raw["walletBalance"]) == pytest.approx(10000 - 0.6001)  # minus the taker fee
    assert balance["USDT"]["total"] == pytest.approx(float(raw["marginBalance"]))
    by_balance = await ex.fetch_balance_ws({"method": "account.balance"})  # ... and here the wallet balance
    assert by_balance["USDT"]["total"] == pytest.approx(float(raw["walletBalance"]))


async def test_refusals_are_the_rest_refusals(pro, sim):
    ex, _ = pro
    before = business_state(sim.exchange)
    with pytest.raises(ccxt.InsufficientFunds):  # -2019
        await ex.create_order_ws(BTC, "market", "buy", 50)
    with pytest.raises(ccxt.ExchangeError, match="-4024"):  # PERCENT_PRICE
        await ex.create_order_ws(BTC, "limit", "buy", 0.01, 30000)
    with pytest.raises(ccxt.OrderNotFound):
        await ex.cancel_order_ws("12345", BTC)
    assert business_state(sim.exchange) == before


async def test_signature_and_method_are_checked(pro, sim):
    _, alice = pro
    params = {"apiKey": alice["apiKey"], "timestamp": 1, "symbol": "BTCUSDT"}
    async with aiohttp.ClientSession() as s, s.ws_connect(sim.ws_url.replace("/ws", "/ws-fapi/v1")) as ws:
        await ws.send_json({"id": "a", "method": "account.balance", "params": dict(params, signature="00" * 32)})
        bad = json.loads((await ws.receive()).data)
        assert bad["id"] == "a" and bad["error"]["code"] == -1022
        good = dict(params, timestamp=int(sim.server.ctx.now()))
        good["signature"] = sign(alice["apiSecret"], signed_payload(good))
        await ws.send_json({"id": "b", "method": "account.balance", "params": good})
        ok = json.loads((await ws.receive()).data)
        assert ok["status"] == 200 and ok["result"][0]["asset"] == "USDT"
        await ws.send_json({"id": "c", "method": "order.teleport", "params": good})
        assert json.loads((await ws.receive()).data)["status"] == 400
        await ws.send_str("not json")
        assert json.loads((await ws.receive()).data)["error"]["code"] == -1000


async def test_websocket_orders_are_journaled_like_rest_orders(tmp_path):
    """An order placed over the websocket API is a journaled input: a new node recovering the file
    has it, with the same id."""
    from exchange_sim.api import ApiConfig, ApiServer
    from exchange_sim.journal import Journal, recover
    from tests.support.journal_session import genesis, start_journaled_node

    journal = Journal(tmp_path / "s.db")
    exchange, node = await start_journaled_node(journal)
    server = ApiServer(node, ApiConfig(port=0, admin_token="t"), announce=None)
    await server.start()
    try:
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer t"}) as session:
            book = {"type": "book", "symbol": "BTCUSDT", "bids": [["59990", "5"]], "asks": [["60010", "5"]]}
            mark = {"type": "mark", "symbol": "BTCUSDT", "price": "60000"}
            async with session.post(server.url + "/sim/v1/market", json={"events": [book, mark]}) as r:
                assert r.status == 200
            async with session.post(server.url + "/sim/v1/accounts", json={"name": "a", "deposit": "10000"}) as r:
                alice = await r.json()
        ex = ccxt_pro.binanceusdm(readme_config(server.url, alice["apiKey"], alice["apiSecret"]))
        try:
            placed = await ex.create_order_ws(BTC, "limit", "buy", 0.01, 59000)
        finally:
            await ex.close()
    finally:
        await server.stop()
        await node.stop()
    journal.close()
    again = Journal(tmp_path / "s.db")
    try:
        recovered, _ = recover(again, genesis)
        (order,) = recovered.open_orders(alice["accountId"])
        assert str(order.order_id) == placed["id"] and order.price == 59000 * 10**8
    finally:
        again.close()

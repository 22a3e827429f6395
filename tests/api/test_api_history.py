"""History endpoints read the history store: nothing acknowledged falls out, paging is the venue's.

The core here keeps only 5 closed orders, fills and income rows per account (``history_limit``);
a real ccxt client must still find every order, fill and income row, and paging from an id must
give the oldest rows from that id (what a bot paging forward relies on).
"""

from __future__ import annotations

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from exchange_sim.core.exchange import ExchangeConfig
from tests.support.api_server import ccxt_config, running_sim, seed_book

BTC = "BTC/USDT:USDT"
ORDERS = 12


@pytest.fixture
async def traded():
    async with running_sim(config=ExchangeConfig(history_limit=5)) as sim:
        await seed_book(sim, "BTCUSDT", "60000", qty="50")
        alice = await sim.create_account("alice", deposit="100000")
        client = ccxt_async.binanceusdm(ccxt_config(sim.url, alice["apiKey"], alice["apiSecret"]))
        try:
            placed = [(await client.create_order(BTC, "market", "buy", 0.002))["id"] for _ in range(ORDERS)]
            yield sim, client, [int(i) for i in placed]
        finally:
            await client.close()


async def test_every_acknowledged_order_fill_and_income_row_stays_queryable(traded):
    sim, client, placed = traded
    aid = sim.exchange.account_ids()[0]
    assert len(sim.exchange.trades(aid)) < ORDERS  # the core really forgot some: the store must answer
    first = await client.fetch_order(str(placed[0]), BTC)
    assert first["status"] == "closed" and first["filled"] == 0.002
    orders = await client.fetch_orders(BTC)
    assert [int(o["id"]) for o in orders] == placed
    trades = await client.fetch_my_trades(BTC)
    assert sorted(int(t["order"]) for t in trades) == placed  # one fill each (same-ms fills: any order)
    ledger = await client.fetch_ledger("USDT")
    assert [e["type"] for e in ledger].count("commission") == ORDERS and len(ledger) == ORDERS + 1  # + the deposit


async def test_paging_from_an_id_gives_the_oldest_rows_from_it(traded):
    sim, client, placed = traded
    page = await client.fapiPrivateGetAllOrders({"symbol": "BTCUSDT", "orderId": placed[0], "limit": 3})
    assert [o["orderId"] for o in page] == placed[:3]
    page = await client.fapiPrivateGetAllOrders({"symbol": "BTCUSDT", "orderId": placed[3], "limit": 3})
    assert [o["orderId"] for o in page] == placed[3:6]
    assert [o["orderId"] for o in await client.fapiPrivateGetAllOrders({"symbol": "BTCUSDT", "limit": 3})] == \
        placed[-3:]
    trades = await client.fapiPrivateGetUserTrades({"symbol": "BTCUSDT"})
    ids = [t["id"] for t in trades]
    page = await client.fapiPrivateGetUserTrades({"symbol": "BTCUSDT", "fromId": ids[1], "limit": 3})
    assert [t["id"] for t in page] == ids[1:4]
    income = await client.fapiPrivateGetIncome({"limit": 4})
    page2 = await client.fapiPrivateGetIncome({"limit": 4, "page": 2})
    everything = await client.fapiPrivateGetIncome({"limit": 1000})
    assert [r["tranId"] for r in page2 + income] == [r["tranId"] for r in everything][-8:]
    status, log = await sim.admin("GET", "/sim/v1/events?afterSeq=0&limit=3")
    assert status == 200 and [e["seq"] for e in log["events"]] == [1, 2, 3]


async def test_the_venues_window_and_combination_rules(traded):
    _sim, client, placed = traded
    week = 7 * 24 * 3600 * 1000
    with pytest.raises(ccxt.BaseError, match="-1127"):
        await client.fapiPrivateGetAllOrders({"symbol": "BTCUSDT", "startTime": 1, "endTime": week + 2})
    with pytest.raises(ccxt.BaseError, match="-1128"):
        await client.fapiPrivateGetUserTrades({"symbol": "BTCUSDT", "fromId": 1, "startTime": 1})
    with pytest.raises(ccxt.BaseError, match="-1130"):
        await client.fapiPrivateGetAllOrders({"symbol": "BTCUSDT", "limit": 1001})
    start = (await client.fetch_order(str(placed[0]), BTC))["timestamp"]
    window = await client.fapiPrivateGetAllOrders({"symbol": "BTCUSDT", "startTime": start, "endTime": start + week})
    assert [o["orderId"] for o in window] == placed


async def test_with_a_journal_the_history_survives_a_restart(tmp_path):
    from exchange_sim.api import ApiConfig, ApiServer
    from exchange_sim.journal import Journal
    from tests.support.journal_session import start_journaled_node

    placed = []
    for restart in (False, True):
        journal = Journal(tmp_path / "s.db")
        _exchange, node = await start_journaled_node(journal)
        server = ApiServer(node, ApiConfig(port=0, admin_token="t"), announce=None)
        await server.start()
        try:
            assert server.ctx.history is journal.history  # the journal's tables, no second store
            if not restart:
                status, _ = await _admin(server, "/sim/v1/market", {"events": [
                    {"type": "book", "symbol": "BTCUSDT", "bids": [["59990", "5"]], "asks": [["60010", "5"]]},
                    {"type": "mark", "symbol": "BTCUSDT", "price": "60000"}]})
                assert status == 200
                status, alice = await _admin(server, "/sim/v1/accounts", {"name": "alice", "deposit": "100000"})
                keys = alice["apiKey"], alice["apiSecret"]
            client = ccxt_async.binanceusdm(ccxt_config(server.url, *keys))
            try:
                if not restart:
                    placed = [int((await client.create_order(BTC, "market", "buy", 0.002))["id"]) for _ in range(4)]
                assert [int(o["id"]) for o in await client.fetch_orders(BTC)] == placed
                assert len(await client.fetch_my_trades(BTC)) == 4
            finally:
                await client.close()
        finally:
            await server.stop()
            await node.stop()
            journal.close()


async def _admin(server, path, body):
    import aiohttp

    async with aiohttp.ClientSession() as http, http.post(server.url + path, json=body,
                                                          headers={"Authorization": "Bearer t"}) as r:
        return r.status, await r.json()

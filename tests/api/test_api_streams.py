"""Websocket streams through ccxt.pro (market and user data), and the raw SUBSCRIBE protocol."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

BTC = "BTC/USDT:USDT"
BOUND = 10  # seconds: a safety bound so a broken stream fails the test instead of hanging it


async def until(condition, rounds: int = 1000) -> None:
    """Yield to the loop until ``condition()`` holds (bounded number of rounds)."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never became true")


def private_futures(client):
    return [h for url, c in client.clients.items() if "/private/ws" in url for h in c.futures]


def streamed(sim, stream):
    return lambda: sim.server.ctx.hub.wants(stream)


async def test_watch_trades_ticker_and_mark_price(market, clients, sim):
    client = clients.pro()
    await client.load_markets()
    trades = asyncio.ensure_future(client.watch_trades(BTC))
    ticker = asyncio.ensure_future(client.watch_ticker(BTC))
    mark = asyncio.ensure_future(client.watch_mark_price(BTC))
    for stream in ("btcusdt@trade", "btcusdt@miniTicker", "btcusdt@markPrice@1s"):
        await until(streamed(sim, stream))
    await sim.market([{"type": "trade", "symbol": "BTCUSDT", "price": "60100", "qty": "0.5", "side": "SELL"},
                      {"type": "mark", "symbol": "BTCUSDT", "price": "60050", "index": "60040"}])
    got = await asyncio.wait_for(trades, BOUND)
    assert got[-1]["price"] == 60100 and got[-1]["amount"] == 0.5 and got[-1]["side"] == "sell"
    tick = await asyncio.wait_for(ticker, BOUND)
    assert tick["last"] == 60100 and tick["high"] == 60100 and tick["open"] == 60000
    marked = await asyncio.wait_for(mark, BOUND)
    assert marked["markPrice"] == 60050 and marked["indexPrice"] == 60040


async def test_watch_order_book_chains_with_the_rest_snapshot(market, clients, sim):
    client = clients.pro()
    await client.load_markets()
    book = await asyncio.wait_for(client.watch_order_book(BTC), BOUND)
    assert book["bids"][0] == [59990.0, 50.0]
    for i in range(5):  # several diffs in a row: every one must chain (pu == previous u)
        update = asyncio.ensure_future(client.watch_order_book(BTC))
        await asyncio.sleep(0)
        await sim.market([{"type": "delta", "symbol": "BTCUSDT", "bids": [[str(59995 + i), "1"]],
                           "asks": [["60010", str(40 - i)]]}])
        book = await asyncio.wait_for(update, BOUND)
        assert book["bids"][0] == [59995.0 + i, 1.0]
    await until(lambda: client.orderbooks[BTC]["nonce"] == sim.server.ctx.depth.update_id("BTCUSDT"))
    rest = await client.fetch_order_book(BTC, 1000)
    ws_book = client.orderbooks[BTC]
    assert ws_book["bids"][:10] == rest["bids"][:10] and ws_book["asks"][:10] == rest["asks"][:10]
    assert ws_book["bids"][0] == [59999.0, 1.0] and ws_book["asks"][0] == [60010.0, 36.0]
    # a whole new snapshot deletes levels on the stream (qty 0)
    await sim.market([{"type": "book", "symbol": "BTCUSDT", "bids": [["50000", "1"]], "asks": [["70000", "1"]]}])
    await until(lambda: client.orderbooks[BTC]["nonce"] == sim.server.ctx.depth.update_id("BTCUSDT"))
    assert client.orderbooks[BTC]["bids"][:] == [[50000.0, 1.0]]
    assert client.orderbooks[BTC]["asks"][:] == [[70000.0, 1.0]]


async def test_user_data_streams(market, clients, sim):
    alice = await sim.create_account("alice", deposit="100000")
    client = clients.pro(alice)
    await client.load_markets()
    aid = alice["accountId"]
    snapshot = await asyncio.wait_for(client.watch_positions([BTC]), BOUND)  # REST snapshot first
    assert snapshot == []
    orders = asyncio.ensure_future(client.watch_orders(BTC))
    my_trades = asyncio.ensure_future(client.watch_my_trades(BTC))
    balance = asyncio.ensure_future(client.watch_balance())
    positions = asyncio.ensure_future(client.watch_positions([BTC]))
    await until(lambda: sim.server.ctx.hub.wants_account(aid))
    await until(lambda: len(private_futures(client)) >= 4)  # all four watchers are waiting
    placed = await client.create_order(BTC, "market", "buy", 0.1)
    got_orders = await asyncio.wait_for(orders, BOUND)
    assert got_orders[-1]["id"] == placed["id"]
    got_trades = await asyncio.wait_for(my_trades, BOUND)
    assert got_trades[-1]["order"] == placed["id"] and got_trades[-1]["amount"] == 0.1
    assert got_trades[-1]["fee"]["cost"] == pytest.approx(3.0005)
    got_balance = await asyncio.wait_for(balance, BOUND)
    assert got_balance["USDT"]["total"] == pytest.approx(100000 - 3.0005)
    got_positions = await asyncio.wait_for(positions, BOUND)
    assert got_positions[-1]["contracts"] == 0.1 and got_positions[-1]["side"] == "long"
    assert got_positions[-1]["entryPrice"] == 60010
    # conditional orders arrive as ALGO_UPDATE
    orders = asyncio.ensure_future(client.watch_orders(BTC))
    stop = await client.create_order(BTC, "market", "sell", 0.1, None, {"stopPrice": 50000, "reduceOnly": True})
    got_orders = await asyncio.wait_for(orders, BOUND)
    assert got_orders[-1]["id"] == stop["id"] and got_orders[-1]["triggerPrice"] == 50000
    assert got_orders[-1]["status"] == "open"


async def test_a_key_only_hears_its_own_account(market, clients, sim):
    alice = await sim.create_account("alice", deposit="100000")
    bob = await sim.create_account("bob", deposit="100000")
    alice_client = clients.pro(alice)
    bob_client = clients.async_(bob)
    await alice_client.load_markets()
    watching = asyncio.ensure_future(alice_client.watch_orders(BTC))
    await until(lambda: sim.server.ctx.hub.wants_account(alice["accountId"]))
    await bob_client.create_order(BTC, "limit", "buy", 0.01, 59000)  # must not reach alice's stream
    mine = await alice_client.create_order(BTC, "limit", "buy", 0.01, 59100)
    got = await asyncio.wait_for(watching, BOUND)
    assert [o["id"] for o in got] == [mine["id"]]


async def test_raw_subscribe_protocol(market, sim):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(sim.ws_url) as ws:
            await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade", "btcusdt@bookTicker"],
                                          "id": 7}))
            assert json.loads((await ws.receive(BOUND)).data) == {"result": None, "id": 7}
            await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 8}))
            assert json.loads((await ws.receive(BOUND)).data) == {"result": ["btcusdt@aggTrade", "btcusdt@bookTicker"],
                                                                 "id": 8}
            await ws.send_str("not json")
            assert json.loads((await ws.receive(BOUND)).data)["error"]["code"] == 3
            await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["nonsense"], "id": 9}))
            assert json.loads((await ws.receive(BOUND)).data) == {
                "error": {"code": 2, "msg": "Invalid request: unknown stream 'nonsense'"}, "id": 9}
            await ws.send_str(json.dumps({"method": "FLY", "id": 10}))
            assert json.loads((await ws.receive(BOUND)).data)["error"]["code"] == 2
            await sim.market([{"type": "trade", "symbol": "BTCUSDT", "price": "60001", "qty": "0.2", "side": "BUY"},
                              {"type": "delta", "symbol": "BTCUSDT", "bids": [["59999", "3"]], "asks": []}])
            agg = json.loads((await ws.receive(BOUND)).data)
            assert agg["e"] == "aggTrade" and agg["p"] == "60001.00" and agg["q"] == "0.200" and agg["m"] is False
            book_ticker = json.loads((await ws.receive(BOUND)).data)
            assert book_ticker["e"] == "bookTicker" and book_ticker["b"] == "59999.00" and book_ticker["B"] == "3.000"
            await ws.send_str(json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 11}))
            assert json.loads((await ws.receive(BOUND)).data) == {"result": None, "id": 11}
        async with session.ws_connect(f"{sim.url.replace('http', 'ws')}/stream?streams=btcusdt@trade") as ws:
            await until(streamed(sim, "btcusdt@trade"))
            await sim.market([{"type": "trade", "symbol": "BTCUSDT", "price": "60002", "qty": "0.1", "side": "SELL"}])
            wrapped = json.loads((await ws.receive(BOUND)).data)
            assert wrapped["stream"] == "btcusdt@trade" and wrapped["data"]["m"] is True
        async with session.ws_connect(f"{sim.url.replace('http', 'ws')}/private/ws?listenKey=bogus") as ws:
            error = json.loads((await ws.receive(BOUND)).data)
            assert error["error"]["code"] == -1125


async def test_partial_depth_kline_and_mark_price_array_streams(market, sim):
    async with aiohttp.ClientSession() as session:
        url = f"{sim.url.replace('http', 'ws')}/ws/btcusdt@depth5@100ms/btcusdt@kline_1m/!markPrice@arr@1s"
        async with session.ws_connect(url) as ws:
            await until(streamed(sim, "btcusdt@kline_1m"))
            await sim.market([{"type": "delta", "symbol": "BTCUSDT", "bids": [["59995", "2"]], "asks": []},
                              {"type": "trade", "symbol": "BTCUSDT", "price": "60003", "qty": "0.3", "side": "BUY"},
                              {"type": "mark", "symbol": "BTCUSDT", "price": "60001"}])
            depth = json.loads((await ws.receive(BOUND)).data)
            assert depth["e"] == "depthUpdate" and len(depth["b"]) == 5 and depth["b"][0] == ["59995.00", "2.000"]
            assert depth["u"] == sim.server.ctx.depth.update_id("BTCUSDT")
            kline = json.loads((await ws.receive(BOUND)).data)
            assert kline["e"] == "kline" and kline["k"]["c"] == "60003.00" and kline["k"]["i"] == "1m"
            marks = json.loads((await ws.receive(BOUND)).data)
            assert isinstance(marks, list) and marks[0]["e"] == "markPriceUpdate" and marks[0]["p"] == "60001.00"


async def test_a_client_that_does_not_read_is_disconnected_not_waited_for(market, sim, monkeypatch):
    from exchange_sim.api import streams

    monkeypatch.setattr(streams, "SEND_QUEUE", 3)
    url = f"{sim.url.replace('http', 'ws')}/ws/btcusdt@trade"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await until(streamed(sim, "btcusdt@trade"))
        hub = sim.server.ctx.hub
        (conn,) = [c for c in hub.connections if "btcusdt@trade" in c.streams]
        for _ in range(conn.queue.maxsize):
            conn.queue.put_nowait("{}")  # as if the client had stopped reading: the send queue is full
        hub.publish("btcusdt@trade", {"e": "trade"})  # no await in between: the writer cannot drain
        assert hub.dropped_connections == 1 and conn not in hub.connections
        while not ws.closed:
            msg = await ws.receive(BOUND)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                break


async def test_listen_key_lifecycle(market, sim):
    alice = await sim.create_account("alice", deposit="10")
    headers = {"X-MBX-APIKEY": alice["apiKey"]}
    async with aiohttp.ClientSession() as session:
        async with session.post(sim.url + "/fapi/v1/listenKey", headers=headers) as resp:
            key = (await resp.json())["listenKey"]
        async with session.post(sim.url + "/fapi/v1/listenKey", headers=headers) as resp:
            assert (await resp.json())["listenKey"] == key  # one live key per account, like the venue
        async with session.put(sim.url + "/fapi/v1/listenKey", headers=headers) as resp:
            assert resp.status == 200 and (await resp.json())["listenKey"] == key
        async with session.ws_connect(f"{sim.url.replace('http', 'ws')}/ws/{key}") as ws:  # legacy private path
            await until(lambda: sim.server.ctx.hub.wants_account(alice["accountId"]))
            async with session.delete(sim.url + "/fapi/v1/listenKey", headers=headers) as resp:
                assert resp.status == 200
            msg = await ws.receive(BOUND)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        async with session.put(sim.url + "/fapi/v1/listenKey", headers=headers) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == -1125


async def test_full_ticker_and_bids_asks_streams(market, clients, sim):
    client = clients.pro()
    await client.load_markets()
    ticker = asyncio.ensure_future(client.watch_ticker(BTC, {"name": "ticker"}))
    bids_asks = asyncio.ensure_future(client.watch_bids_asks([BTC]))
    for stream in ("btcusdt@ticker", "btcusdt@bookTicker"):
        await until(streamed(sim, stream))
    await sim.market([{"type": "delta", "symbol": "BTCUSDT", "bids": [["59998", "4"]], "asks": []},
                      {"type": "trade", "symbol": "BTCUSDT", "price": "60020", "qty": "1", "side": "BUY"}])
    full = await asyncio.wait_for(ticker, BOUND)
    assert full["last"] == 60020 and full["change"] == 20 and full["vwap"] is not None
    best = await asyncio.wait_for(bids_asks, BOUND)
    assert best[BTC]["bid"] == 59998 and best[BTC]["bidVolume"] == 4 and best[BTC]["ask"] == 60010


async def test_an_unrefreshed_listen_key_expires_and_its_stream_is_told():
    from tests.support.api_server import running_sim

    now = [1_800_000_000_000]
    async with running_sim(clock=lambda: now[0]) as sim:
        alice = await sim.create_account("alice", deposit="10")
        headers = {"X-MBX-APIKEY": alice["apiKey"]}
        async with aiohttp.ClientSession() as session:
            async with session.post(sim.url + "/fapi/v1/listenKey", headers=headers) as resp:
                key = (await resp.json())["listenKey"]
            async with session.ws_connect(f"{sim.url.replace('http', 'ws')}/private/ws?listenKey={key}") as ws:
                await until(lambda: sim.server.ctx.hub.wants_account(alice["accountId"]))
                now[0] += 30 * 60 * 1000
                assert sim.server.sweep_listen_keys() == []  # still alive after 30 minutes
                now[0] += 31 * 60 * 1000
                assert sim.server.sweep_listen_keys() == [key]
                farewell = json.loads((await ws.receive(BOUND)).data)
                assert farewell == {"e": "listenKeyExpired", "E": now[0], "listenKey": key}
            async with session.put(sim.url + "/fapi/v1/listenKey", headers=headers) as resp:
                assert (await resp.json())["code"] == -1125

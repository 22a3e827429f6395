"""The simulator's websocket routes mirror the venue's: /public, /market, /private, and the legacy root.

Real ccxt.pro clients configured with the simulator's base URL (``.../ws``, which ccxt rewrites
to ``/public/ws/<n>``, ``/market/ws/<n>`` and ``/private/ws?listenKey=``) and with a legacy root
URL; raw websockets for the venue's rules (a stream on the wrong route refused, listenKey and
events on /private, several listenKeys in stream mode).
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

import aiohttp

from tests.support.feeds_scripted import wait_until as until

BTC = "BTC/USDT:USDT"
BOUND = 10  # seconds: a safety bound so a broken stream fails the test instead of hanging it


async def frame(ws) -> dict:
    msg = await ws.receive(BOUND)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def listen_key(session, sim, account) -> str:
    async with session.post(sim.url + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": account["apiKey"]}) as resp:
        return (await resp.json())["listenKey"]


async def test_ccxt_pro_with_the_base_url_uses_the_public_market_and_private_routes(market, clients, sim):
    alice = await sim.create_account("alice", deposit="100000")
    client = clients.pro(alice)
    await client.load_markets()
    book = await asyncio.wait_for(client.watch_order_book(BTC), BOUND)
    assert book["bids"][0] == [59990.0, 50.0]
    mark = asyncio.ensure_future(client.watch_mark_price(BTC))
    trades = asyncio.ensure_future(client.watch_trades(BTC))
    orders = asyncio.ensure_future(client.watch_orders(BTC))
    await until(lambda: sim.server.ctx.hub.wants("btcusdt@markPrice@1s") and sim.server.ctx.hub.wants("btcusdt@trade")
                and sim.server.ctx.hub.wants_account(alice["accountId"]))
    paths = {urlsplit(url).path.rsplit("/", 1)[0] if "/ws/" in url else urlsplit(url).path
             for url in client.clients if url.startswith("ws")}
    assert paths == {"/public/ws", "/market/ws", "/private/ws"}, list(client.clients)
    assert {c.route for c in sim.server.ctx.hub.connections} == {"public", "market", "private"}
    await sim.market([{"type": "trade", "symbol": "BTCUSDT", "price": "60100", "qty": "0.5", "side": "SELL"},
                      {"type": "mark", "symbol": "BTCUSDT", "price": "60050", "index": "60040"}])
    assert (await asyncio.wait_for(mark, BOUND))["markPrice"] == 60050
    assert (await asyncio.wait_for(trades, BOUND))[-1]["price"] == 60100
    placed = await client.create_order(BTC, "market", "buy", 0.1)
    assert (await asyncio.wait_for(orders, BOUND))[-1]["id"] == placed["id"]


async def test_ccxt_pro_on_the_legacy_root_still_gets_its_book_and_marks(market, clients, sim):
    # an URL ccxt does not rewrite: it then opens <base>/ws/<n> for every stream, as before the split
    legacy = sim.url.replace("http://", "ws://") + "/ws/"
    client = clients.pro(urls={"api": {**clients.pro().urls["api"], "ws": {"linear": legacy}}})
    await client.load_markets()
    book = await asyncio.wait_for(client.watch_order_book(BTC), BOUND)
    assert book["asks"][0][0] == 60010.0
    mark = asyncio.ensure_future(client.watch_mark_price(BTC))
    await until(lambda: sim.server.ctx.hub.wants("btcusdt@markPrice@1s"))
    await sim.market([{"type": "mark", "symbol": "BTCUSDT", "price": "60070", "index": "60060"}])
    assert (await asyncio.wait_for(mark, BOUND))["markPrice"] == 60070
    assert all(urlsplit(url).path.startswith("/ws/") for url in client.clients if url.startswith("ws"))
    assert {c.route for c in sim.server.ctx.hub.connections} == {""}  # legacy: any stream on one connection


async def test_a_stream_on_the_wrong_route_is_refused_and_the_legacy_root_takes_any(market, sim):
    ws_base = sim.url.replace("http://", "ws://")
    async with aiohttp.ClientSession() as session:
        async with session.get(ws_base.replace("ws://", "http://") + "/public/stream?streams=btcusdt@markPrice@1s",
                               headers={"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}) as resp:
            body = await resp.json()
            assert resp.status == 400 and body["code"] == -1130 and "use /market" in body["msg"]
        async with session.ws_connect(ws_base + "/market/ws") as ws:
            await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms"], "id": 1}))
            error = await frame(ws)
            assert error["id"] == 1 and error["error"]["code"] == 2 and "/public" in error["error"]["msg"]
            await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 2}))
            assert await frame(ws) == {"result": None, "id": 2}
        async with (session.ws_connect(ws_base + "/public/stream?streams=btcusdt@trade") as public,
                    session.ws_connect(ws_base + "/market/ws/btcusdt@markPrice@1s") as market_ws,
                    session.ws_connect(ws_base + "/stream?streams=btcusdt@trade/btcusdt@markPrice@1s") as legacy):
            await until(lambda: len(sim.server.ctx.hub.connections) == 3)
            await sim.market([{"type": "trade", "symbol": "BTCUSDT", "price": "60100", "qty": "0.5", "side": "SELL"},
                              {"type": "mark", "symbol": "BTCUSDT", "price": "60050", "index": "60040"}])
            wrapped = await frame(public)
            assert wrapped["stream"] == "btcusdt@trade" and wrapped["data"]["p"] == "60100.00"
            raw = await frame(market_ws)
            assert raw["e"] == "markPriceUpdate" and "stream" not in raw
            assert {(await frame(legacy))["stream"] for _ in range(2)} == {"btcusdt@trade", "btcusdt@markPrice@1s"}


async def test_private_needs_a_listen_key_filters_events_and_takes_several_keys_in_stream_mode(market, clients, sim):
    alice = await sim.create_account("alice", deposit="100000")
    bob = await sim.create_account("bob", deposit="100000")
    ws_base = sim.url.replace("http://", "ws://")
    async with aiohttp.ClientSession() as session:
        for query in ("", "?listenKey=", "?events=ORDER_TRADE_UPDATE"):
            async with session.get(sim.url + "/private/ws" + query) as resp:
                assert resp.status == 400 and (await resp.json())["code"] == -1102
        key_a, key_b = await listen_key(session, sim, alice), await listen_key(session, sim, bob)
        async with session.get(f"{sim.url}/private/ws?listenKey={key_a}&listenKey={key_b}") as resp:
            assert resp.status == 400 and "stream mode" in (await resp.json())["msg"]
        both = (f"{ws_base}/private/stream?listenKey={key_a}&events=ORDER_TRADE_UPDATE"
                f"&listenKey={key_b}&events=ACCOUNT_UPDATE/MARGIN_CALL")
        async with (session.ws_connect(f"{ws_base}/private/ws?listenKey={key_a}&events=ACCOUNT_UPDATE") as only_a,
                    session.ws_connect(both) as shared):
            await until(lambda: sim.server.ctx.hub.wants_account(bob["accountId"]))
            await shared.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 5}))
            assert (await frame(shared))["error"]["code"] == 2  # no market streams on /private
            await clients.async_(alice).create_order(BTC, "market", "buy", 0.1)
            got = await frame(shared)
            assert got["stream"] == key_a and got["data"]["e"] == "ORDER_TRADE_UPDATE"
            got = await frame(only_a)
            assert got["e"] == "ACCOUNT_UPDATE" and "stream" not in got
            await clients.async_(bob).create_order(BTC, "market", "sell", 0.1)
            got = await frame(shared)
            while got["stream"] == key_a:  # the rest of alice's order updates (and only those)
                assert got["data"]["e"] == "ORDER_TRADE_UPDATE"
                got = await frame(shared)
            # bob's order updates (sent before his account update) were not asked for
            assert got["stream"] == key_b and got["data"]["e"] == "ACCOUNT_UPDATE"
            # alice's key closes: the shared connection stays open for bob's
            async with session.delete(sim.url + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": alice["apiKey"]}):
                pass
            assert (await only_a.receive(BOUND)).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert not shared.closed and sim.server.ctx.hub.wants_account(bob["accountId"])
            assert not sim.server.ctx.hub.wants_account(alice["accountId"])

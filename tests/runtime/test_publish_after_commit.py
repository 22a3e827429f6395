"""Publish only what is stored: when a batch's commit fails, none of its frames leave.

A real server (node + group-committing SQLite journal + API) with websocket clients on the
market streams (``@markPrice``, ``@trade``, ``@depth``, ``@forceOrder``) and the user-data
stream. First a stored batch: its frames arrive (the control). Then the journal's next COMMIT
is made to fail inside SQLite (``journal_faults.fail_next_commit``) and a mark that liquidates
an account is injected: the request is refused, no frame of that batch reaches any client, and
the journal indeed does not hold the liquidation.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp

from exchange_sim.api import ApiConfig, ApiServer, RateLimits
from exchange_sim.core import messages as m
from exchange_sim.core.fixed import to_fixed
from exchange_sim.journal import Journal, JournalConfig, recover
from exchange_sim.runtime import Node
from tests.support.journal_faults import fail_next_commit
from tests.support.journal_session import genesis

F = to_fixed
QUIET_S = 0.5  # how long a stream must stay silent after the failed commit
STREAMS = "btcusdt@markPrice/btcusdt@trade/btcusdt@depth/btcusdt@forceOrder"


async def frames_within(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> list:
    out = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        try:
            msg = await ws.receive(left)
        except TimeoutError:
            break
        if msg.type == aiohttp.WSMsgType.TEXT:
            out.append(json.loads(msg.data))
    return out


async def test_frames_of_a_batch_whose_commit_failed_never_leave(tmp_path):
    db = tmp_path / "s.db"
    journal = Journal(db, JournalConfig(snapshot_every=0, group_commit=True))
    exchange, _ = recover(journal, genesis)
    node = Node(exchange, journal)
    node.add_listener(journal.record)
    await node.start()
    server = ApiServer(node, ApiConfig(port=0, admin_token="t", rate_limits=RateLimits(10**5, 10**5, 10**5)),
                       announce=None)
    await server.start()
    auth = {"Authorization": "Bearer t"}
    hub = server.ctx.hub
    try:
        async with aiohttp.ClientSession() as http:
            async def market(events: list) -> int:
                async with http.post(server.url + "/sim/v1/market", json={"events": events}, headers=auth) as r:
                    return r.status

            async with http.post(server.url + "/sim/v1/accounts", json={"name": "bob", "deposit": "100"},
                                 headers=auth) as resp:
                bob = await resp.json()
            aid = bob["accountId"]
            assert await market([{"type": "book", "symbol": "BTCUSDT", "bids": [["59990", "5"]],
                                  "asks": [["60000", "5"]]},
                                 {"type": "mark", "symbol": "BTCUSDT", "price": "60000"}]) == 200
            await node.submit(m.SetLeverage(ts=1, account=aid, symbol="BTCUSDT", leverage=20))
            await node.submit(m.PlaceOrder(ts=2, account=aid, symbol="BTCUSDT", side="BUY", order_type="MARKET",
                                           qty=F("0.02")))
            async with http.post(server.url + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": bob["apiKey"]}) as r:
                key = (await r.json())["listenKey"]
            ws_base = server.url.replace("http", "ws")
            public = await http.ws_connect(f"{ws_base}/stream?streams={STREAMS}")
            private = await http.ws_connect(f"{ws_base}/private/ws?listenKey={key}")
            for _ in range(1000):
                if hub.wants("btcusdt@forceOrder") and hub.wants_account(aid):
                    break
                await asyncio.sleep(0.005)

            # the control: stored batches are published (the book falls away, the mark not yet)
            assert await market([{"type": "mark", "symbol": "BTCUSDT", "price": "59995"},
                                 {"type": "trade", "symbol": "BTCUSDT", "price": "59995", "qty": "0.01",
                                  "side": "SELL"},
                                 {"type": "book", "symbol": "BTCUSDT", "bids": [["54990", "5"]],
                                  "asks": [["55010", "5"]]}]) == 200
            control = await frames_within(public, QUIET_S)
            assert {f["stream"] for f in control} >= {"btcusdt@markPrice", "btcusdt@trade", "btcusdt@depth"}
            await frames_within(private, 0.1)

            # the mark that liquidates bob (forceOrder, trades, depth, ORDER_TRADE_UPDATE...) is not stored
            fail_next_commit(journal)
            status = await market([{"type": "mark", "symbol": "BTCUSDT", "price": "55000"}])
            assert status == 503 and node.failure is not None
            assert not [p for p in node.exchange.positions(aid) if p.qty]  # the core did liquidate bob
            assert await frames_within(public, QUIET_S) == []
            assert await frames_within(private, 0.1) == []
            await public.close()
            await private.close()
    finally:
        await server.stop()
        await node.stop()
        journal.close()
    with Journal(db) as stored:
        recovered, _ = recover(stored)
        (position,) = [p for p in recovered.positions(aid) if p.qty]
        assert position.qty == F("0.02")  # the liquidation that was never announced was never stored

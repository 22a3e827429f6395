"""The Binance stand-in keeps the venue's rules since 2026-04-23 (what every feed test runs against).

Checked with a plain websockets client: the retired root paths answer 404, a stream on the wrong
route is refused (handshake or SUBSCRIBE), /private needs a listenKey and takes several
listenKey/events pairs in stream mode, and both routes serve ws mode and stream mode.
"""

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.fake_binance import FakeBinance


async def status_of(url: str) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, open_timeout=5):
            pass
    return refused.value.response.status_code


async def test_retired_paths_wrong_routes_and_private_rules():
    async with FakeBinance(max_diffs=10) as fb:  # fewer frames than a client queues unread: quick closes
        root = fb.ws_url
        for legacy in ("/ws", "/ws/btcusdt@depth", "/stream?streams=btcusdt@depth@100ms"):
            assert await status_of(root + legacy) == 404
        assert await status_of(root + "/public/stream?streams=btcusdt@depth/btcusdt@markPrice@1s") == 400
        assert await status_of(root + "/market/ws/btcusdt@depth@100ms") == 400
        assert await status_of(root + "/private/ws") == 400  # no listenKey
        assert await status_of(root + "/private/stream?events=ORDER_TRADE_UPDATE") == 400
        assert [s for _, s, _ in fb.refusals] == [404, 404, 404, 400, 400, 400, 400]
        assert "not served on /public" in fb.refusals[3][2]

        async with connect(root + "/market/ws", open_timeout=5) as ws:  # ws mode + SUBSCRIBE
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms"], "id": 1}))
            error = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert error["id"] == 1 and error["error"]["code"] == 2 and "/market" in error["error"]["msg"]
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@markPrice@1s"], "id": 2}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"result": None, "id": 2}
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 3}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"result": ["btcusdt@markPrice@1s"], "id": 3}

        async with connect(root + "/public/ws/btcusdt@depth@100ms", open_timeout=5) as ws:  # raw payloads
            first = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert first["e"] == "depthUpdate" and "stream" not in first
        async with connect(root + "/public/stream?streams=btcusdt@trade", open_timeout=5) as ws:
            await fb.inject("trade", fb.trade_payload("61000.00"))
            wrapped = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert wrapped["stream"] == "btcusdt@trade" and wrapped["data"]["e"] == "trade"

        url = (root + "/private/stream?listenKey=k1&events=ORDER_TRADE_UPDATE"
               "&listenKey=k2&events=ACCOUNT_UPDATE/MARGIN_CALL")
        async with connect(url, open_timeout=5), connect(root + "/private/ws?listenKey=k3", open_timeout=5):
            pass
        assert fb.private_subscriptions == [[("k1", ("ORDER_TRADE_UPDATE",)), ("k2", ("ACCOUNT_UPDATE", "MARGIN_CALL"))],
                                            [("k3", ())]]

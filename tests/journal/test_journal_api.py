"""A journal that cannot write, behind the real REST API: the order is refused (-1001, HTTP 503).

The file turns read-only under the running server (every write fails with SQLITE_READONLY, as
on a full disk); the order is not acknowledged, not applied, and after a restart exactly the
acknowledged orders exist.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.parse

import aiohttp

from exchange_sim.api import ApiConfig, ApiServer
from exchange_sim.core.fixed import to_fixed
from exchange_sim.core.messages import BookSnapshot, MarkPrice
from exchange_sim.journal import Journal, recover
from exchange_sim.runtime.node import Node
from tests.support.journal_faults import make_read_only
from tests.support.journal_session import genesis, observable_state

F = to_fixed
TOKEN = "journal-api-test-token"


def signed(secret: str, params: dict) -> str:
    query = urllib.parse.urlencode({**params, "timestamp": int(time.time() * 1000), "recvWindow": 60000})
    return query + "&signature=" + hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()


async def test_write_failure_refuses_orders_through_the_api_and_keeps_what_was_acknowledged(tmp_path):
    journal = Journal(tmp_path / "s.db")
    exchange, _ = recover(journal, genesis)
    node = Node(exchange, journal)
    node.add_listener(journal.record)
    await node.start()
    server = ApiServer(node, ApiConfig(port=0, admin_token=TOKEN), announce=None)
    await server.start()
    try:
        await node.submit(BookSnapshot(1, "BTCUSDT", ((F("59999.9"), F("5")),), ((F("60000"), F("5")),), 1))
        await node.submit(MarkPrice(2, "BTCUSDT", F("60000")))
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{server.url}/sim/v1/accounts", json={"name": "bot", "deposit": "10000"},
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                account = await r.json()
            key, secret = account["apiKey"], account["apiSecret"]
            order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                     "quantity": "0.01", "price": "59000"}
            async with http.post(f"{server.url}/fapi/v1/order?{signed(secret, {**order, 'newClientOrderId': 'kept'})}",
                                 headers={"X-MBX-APIKEY": key}) as r:
                assert r.status == 200
                kept = await r.json()
            before = observable_state(node.exchange)

            make_read_only(journal)
            lost = {**order, "newClientOrderId": "lost"}
            async with http.post(f"{server.url}/fapi/v1/order?{signed(secret, lost)}",
                                 headers={"X-MBX-APIKEY": key}) as r:
                assert r.status == 503
                assert (await r.json())["code"] == -1001
            assert observable_state(node.exchange) == before
    finally:
        await server.stop()
        await node.stop()
        journal.close()
    with Journal(tmp_path / "s.db") as reopened:
        recovered, _ = recover(reopened)
    assert observable_state(recovered) == before
    assert recovered.order(account["accountId"], kept["orderId"]).client_order_id == "kept"
    assert [o.client_order_id for o in recovered.all_orders(account["accountId"])] == ["kept"]

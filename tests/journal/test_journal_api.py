"""The journal behind the real API.

A journal that cannot write: the order is refused (-1001, HTTP 503). The file turns read-only
under the running server (every write fails with SQLITE_READONLY, as on a full disk); the order is
not acknowledged, not applied, and after a restart exactly the acknowledged orders exist.

The event log (``GET /sim/v1/events``) is the journal's: the real server (``exchange-sim run``)
drives a liquidation, is stopped (cleanly, then with SIGKILL) and restarted on the same file, and
lists the same events with the same numbers; ``afterSeq`` and ``since`` reach across restarts.
"""

from __future__ import annotations

import aiohttp

from exchange_sim.api import ApiConfig, ApiServer
from exchange_sim.client import signed_query
from exchange_sim.core.fixed import to_fixed
from exchange_sim.core.messages import BookSnapshot, MarkPrice
from exchange_sim.journal import Journal, recover
from tests.support.journal_faults import make_read_only
from tests.support.journal_server import RestClient, SimServer
from tests.support.journal_session import observable_state, start_journaled_node

F = to_fixed
TOKEN = "journal-api-test-token"


def signed(secret: str, params: dict) -> str:
    return signed_query(secret, params, recv_window=60000)


async def test_write_failure_refuses_orders_through_the_api_and_keeps_what_was_acknowledged(tmp_path):
    journal = Journal(tmp_path / "s.db")
    exchange, node = await start_journaled_node(journal)
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


# ----------------------------------------------------------------------------- the event log across restarts


def _drive_to_liquidation(admin: RestClient, trader: RestClient) -> None:
    """A 50x cross long of 0.3 BTC, then the mark walks down 20 at a time until it is liquidated."""
    def market(price: int) -> None:
        admin.admin("POST", "/sim/v1/market", {"events": [
            {"type": "book", "symbol": "BTCUSDT", "bids": [[str(price - 10), "5"]], "asks": [[str(price + 10), "5"]]},
            {"type": "mark", "symbol": "BTCUSDT", "price": str(price)}]})

    market(60000)
    trader.signed("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 50})
    trader.signed("POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.3"})
    for price in range(57400, 55000, -20):  # bounded: liquidation comes near 56,930
        market(price)
        if not trader.signed("GET", "/fapi/v2/positionRisk", {"symbol": "BTCUSDT"})[0]["positionAmt"].strip("0.-"):
            return
    raise AssertionError("the long was never liquidated")


def _events(client: RestClient, query: str = "") -> list[dict]:
    return client.admin("GET", "/sim/v1/events" + query)["events"]


def test_event_log_survives_restarts_with_the_same_numbers(tmp_path):
    db = tmp_path / "session.db"
    server = SimServer(db, "manual", tmp_path)
    server.start()
    try:
        admin = RestClient(server.wait_listening())
        account = admin.admin("POST", "/sim/v1/accounts", {"name": "trader", "deposit": "1000"})
        admin.admin("POST", "/sim/v1/accounts", {"name": "bystander", "deposit": "50"})
        _drive_to_liquidation(admin, RestClient(server.url, account["apiKey"], account["apiSecret"]))
        before = _events(admin, "?limit=10000")
        story = _events(admin, f"?account={account['accountId']}&type=MarginCall,Liquidation")
        kinds = [e["type"] for e in story]
        assert "MarginCall" in kinds and kinds[-1] == "Liquidation", kinds
        assert kinds.index("MarginCall") < len(kinds) - 1
        seqs = [e["seq"] for e in before]
        assert seqs == list(range(1, len(seqs) + 1))  # numbered from 1 without gaps
        status = admin.admin("GET", "/sim/v1/status")["journal"]
        assert status["enabled"] and not status["failed"] and status["failure"] is None
        assert status["stats"]["events"] == len(before) and status["stats"]["lastSeq"] > 0
        assert server.terminate() == 0

        for restart in ("clean stop", "SIGKILL"):
            server.start()
            admin = RestClient(server.wait_listening())
            assert _events(admin, "?limit=10000") == before, restart
            assert _events(admin, f"?account={account['accountId']}&type=MarginCall,Liquidation") == story
            assert _events(admin, "?type=margin_call") == [e for e in before if e["type"] == "MarginCall"]
            # afterSeq and since (ms) reach across the restart; new events continue the numbering
            call = next(e for e in story if e["type"] == "MarginCall")
            assert _events(admin, f"?afterSeq={call['seq']}&limit=10000") == [e for e in before
                                                                             if e["seq"] > call["seq"]]
            since = _events(admin, f"?since={call['ts']}&limit=10000")
            assert since == [e for e in before if e["ts"] >= call["ts"]] and call in since
            admin.admin("POST", f"/sim/v1/accounts/{account['accountId']}/deposit", {"amount": "10"})
            after = _events(admin, f"?afterSeq={before[-1]['seq']}")
            assert after and [e["seq"] for e in after] == list(range(before[-1]["seq"] + 1,
                                                                     before[-1]["seq"] + 1 + len(after)))
            assert all(e["account"] == account["accountId"] for e in after)
            assert _events(admin, "?limit=10000")[:len(before)] == before
            before = _events(admin, "?limit=10000")
            if restart == "clean stop":
                server.kill()
    finally:
        if server.proc is not None:
            server.terminate()

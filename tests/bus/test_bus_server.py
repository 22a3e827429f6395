"""The whole simulator with EXSIM_MQTT_URL set: a client's liquidation arrives on the broker."""

from __future__ import annotations

import asyncio

from tests.support.journal_server import RestClient, SimServer
from tests.support.mqtt_broker import Collector, unique_prefix


async def test_exchange_sim_run_publishes_to_the_broker_from_the_environment(tmp_path, mqtt_url):
    prefix = unique_prefix()
    (tmp_path / "config.toml").write_text(f'[mqtt]\ntopic_prefix = "{prefix}"\n')
    server = SimServer(tmp_path / "s.db", "manual", tmp_path, env={"EXSIM_MQTT_URL": mqtt_url})
    async with Collector(mqtt_url, prefix) as sub:
        server.start()
        try:
            url = await asyncio.to_thread(server.wait_listening)
            admin = RestClient(url)

            def market(*events: dict) -> None:
                admin.admin("POST", "/sim/v1/market", {"events": list(events)})

            def scenario() -> int:
                market({"type": "book", "symbol": "BTCUSDT", "bids": [["59999.9", "50"]], "asks": [["60000", "50"]]},
                       {"type": "mark", "symbol": "BTCUSDT", "price": "60000"})
                created = admin.admin("POST", "/sim/v1/accounts", {"name": "student", "deposit": "1000"})
                trader = RestClient(url, created["apiKey"], created["apiSecret"])
                trader.signed("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 50})
                trader.signed("POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                                         "quantity": "0.1"})
                for price in ("55000", "50400", "50300", "50250", "50200"):
                    market({"type": "mark", "symbol": "BTCUSDT", "price": price})
                return created["accountId"]

            account = await asyncio.to_thread(scenario)
            await sub.wait_for(lambda s: len(s.on(f"account/{account}/liquidation")) == 1
                               and any(p["level"] == "MARGIN_CALL" for p in s.on(f"account/{account}/margin_call")))
            await sub.wait_for(lambda s: any(p["liquidations"] == 1 for p in s.on(f"account/{account}/summary")))
        finally:
            await asyncio.to_thread(server.kill)
    calls = [p["seq"] for p in sub.on(f"account/{account}/margin_call")]
    assert calls == list(range(1, len(calls) + 1))
    assert sub.on(f"account/{account}/liquidation")[0]["seq"] == 1
    assert [p["seq"] for p in sub.on("market/BTCUSDT/mark")] == [1, 2, 3, 4, 5, 6]
    assert sub.on(f"account/{account}/fill")[0]["qty"] == "0.1"

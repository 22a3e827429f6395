"""The MQTT publisher behind the real node and core: a liquidation on the bus, an outage survived."""

from __future__ import annotations

import asyncio

from exchange_sim.bus import BusConfig, MqttPublisher
from exchange_sim.core.fixed import to_fixed
from exchange_sim.core.messages import (
    BookSnapshot,
    CreateAccount,
    Deposit,
    MarkPrice,
    PlaceOrder,
    SetLeverage,
)
from exchange_sim.runtime.node import Node
from tests.support.journal_session import genesis
from tests.support.mqtt_broker import Collector, unique_prefix

F = to_fixed
T0 = 1_722_800_000_000


def config(url: str, prefix: str) -> BusConfig:
    return BusConfig.from_url(url, topic_prefix=prefix, backoff_min=0.05, backoff_max=0.5, publish_timeout=2.0)


async def open_long(node: Node, ts: int) -> int:
    """An account 50x long 0.1 BTC at 60,000 with 1,000 USDT: liquidated near 50,200."""
    await node.submit(BookSnapshot(ts, "BTCUSDT", ((F("59999.9"), F("50")),), ((F("60000"), F("50")),), 1))
    await node.submit(MarkPrice(ts + 1, "BTCUSDT", F("60000")))
    created = (await node.submit(CreateAccount(ts + 2, "student", None, F("1000"), "k1", "s1")))[0]
    await node.submit(SetLeverage(ts + 3, created.account, "BTCUSDT", 50))
    await node.submit(PlaceOrder(ts + 4, created.account, "BTCUSDT", "BUY", "MARKET", qty=F("0.1")))
    return created.account


async def test_a_liquidation_arrives_as_margin_calls_and_a_liquidation_with_contiguous_seqs(mqtt_url):
    prefix = unique_prefix()
    node = Node(genesis())
    await node.start()
    publisher = MqttPublisher(config(mqtt_url, prefix), account_view=node.exchange.account_view)
    publisher.attach(node)  # as `exchange-sim run` wires it: a listener and commit hook of the node
    async with Collector(mqtt_url, prefix) as sub, publisher:
        account = await open_long(node, T0)
        seen = []
        for i, price in enumerate(("55000", "50400", "50300", "50250", "50200")):
            seen.extend(type(e).__name__ for e in await node.submit(MarkPrice(T0 + 10 + i, "BTCUSDT", F(price))))
        assert "Liquidation" in seen and seen.count("MarginCall") >= 2
        calls = seen.count("MarginCall")
        await sub.wait_for(lambda s: len(s.on(f"account/{account}/liquidation")) == 1
                           and len(s.on(f"account/{account}/margin_call")) == calls)
        await sub.wait_for(lambda s: any(p["liquidations"] == 1 for p in s.on(f"account/{account}/summary")))
    await node.stop()
    margin_calls = sub.on(f"account/{account}/margin_call")
    assert [p["seq"] for p in margin_calls] == list(range(1, calls + 1))
    assert all(p["type"] == "MarginCall" for p in margin_calls)
    assert "MARGIN_CALL" in {p["level"] for p in margin_calls}
    (liquidation,) = sub.on(f"account/{account}/liquidation")
    assert liquidation["seq"] == 1 and liquidation["symbol"] == "BTCUSDT" and liquidation["qty"] == "0.1"
    assert liquidation["side"] == "SELL"
    summary = sub.on(f"account/{account}/summary")[-1]
    assert summary["positions"] == [] and summary["margin"]["wallet_balance"] == summary["wallet"]
    marks = [p["seq"] for p in sub.on("market/BTCUSDT/mark")]
    assert marks == list(range(1, len(marks) + 1)) and len(marks) == 6
    assert [p["seq"] for p in sub.on(f"account/{account}/order")] == list(range(1, len(sub.on(f"account/{account}/order")) + 1))


async def test_broker_stopped_mid_run_the_node_keeps_accepting_and_publishing_resumes(mosquitto):
    prefix = unique_prefix()
    node = Node(genesis())
    await node.start()
    publisher = MqttPublisher(config(mosquitto.url, prefix), node.subscribe())
    async with Collector(mosquitto.url, prefix) as sub, publisher:
        account = await open_long(node, T0)
        await sub.wait_for(lambda s: len(s.on(f"account/{account}/position")) == 1)

        mosquitto.stop()
        for _ in range(200):  # bounded wait for the publisher to notice
            if not publisher.status.connected:
                break
            await asyncio.sleep(0.05)
        assert not publisher.status.connected
        for i, price in enumerate(("55000", "50400", "50300", "50250", "50200")):  # the liquidation, unseen
            await asyncio.wait_for(node.submit(MarkPrice(T0 + 10 + i, "BTCUSDT", F(price))), timeout=5)
        assert node.exchange.positions(account) == []  # the simulator carried on
        assert publisher.status.buffered > 0

        mosquitto.start()
        await sub.wait_connected(2)
        for _ in range(400):  # bounded: backoff is at most 0.5 s
            if publisher.status.connected and publisher.status.buffered == 0:
                break
            await asyncio.sleep(0.05)
        assert publisher.status.connected and publisher.status.buffered == 0 and publisher.status.dropped == 0
        await node.submit(Deposit(T0 + 100, account, F("5")))
        await sub.wait_for(lambda s: any(p["change"] == "5" for p in s.on(f"account/{account}/balance")))
        async with Collector(mosquitto.url, prefix) as late:  # what happened during the outage got there
            await late.wait_for(lambda s: len(s.on(f"account/{account}/summary")) == 1)
    await node.stop()
    summary = late.on(f"account/{account}/summary")[0]
    assert summary["liquidations"] == 1 and summary["positions"] == []
    balances = [p["seq"] for p in sub.on(f"account/{account}/balance")]
    assert balances == sorted(set(balances)) and balances[-1] > len(balances) - 1


async def test_an_attached_publisher_sends_nothing_of_a_batch_whose_commit_failed(mqtt_url, tmp_path):
    """Publish after commit: the liquidating mark's batch cannot be stored, so nothing of it reaches MQTT."""
    from exchange_sim.journal import Journal, JournalConfig, recover
    from tests.support.journal_faults import fail_next_commit

    prefix = unique_prefix()
    journal = Journal(tmp_path / "s.db", JournalConfig(snapshot_every=0, group_commit=True))
    exchange, _ = recover(journal, genesis)
    node = Node(exchange, journal)
    node.add_listener(journal.record)
    await node.start()
    publisher = MqttPublisher(config(mqtt_url, prefix), account_view=lambda aid: node.exchange.account_view(aid))
    publisher.attach(node)
    try:
        async with Collector(mqtt_url, prefix) as sub, publisher:
            account = await open_long(node, T0)
            await node.submit(MarkPrice(T0 + 10, "BTCUSDT", F("59000")))  # the control: stored, published
            await sub.wait_for(lambda s: len(s.on("market/BTCUSDT/mark")) == 2
                               and len(s.on(f"account/{account}/position")) == 1)
            fail_next_commit(journal)
            try:
                await node.submit(MarkPrice(T0 + 11, "BTCUSDT", F("50000")))  # liquidates: not stored
            except Exception:  # noqa: BLE001 - the commit failed: this is the point
                pass
            assert node.failure is not None and node.exchange.positions(account) == []  # the core did liquidate
            await asyncio.sleep(0.5)  # anything published would have arrived by now
            assert sub.on(f"account/{account}/liquidation") == []
            assert len(sub.on("market/BTCUSDT/mark")) == 2
            assert publisher.status.buffered == 0
    finally:
        await node.stop()
        publisher.detach(node)
        journal.close()

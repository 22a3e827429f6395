"""The MQTT publisher against a real mosquitto: delivery, sequence numbers, outage and bound."""

from __future__ import annotations

import asyncio
import json
import logging

from exchange_sim.bus import BusConfig, MqttPublisher
from exchange_sim.core import messages as m
from tests.support.mqtt_broker import Collector, Mosquitto, free_port, unique_prefix

FIX = 10**8


def balance(account: int, wallet: int, ts: int) -> m.BalanceUpdate:
    return m.BalanceUpdate(ts=ts, account=account, wallet=wallet * FIX, change=FIX, reason="DEPOSIT")


def trade(ts: int) -> m.Trade:
    return m.Trade(ts=ts, symbol="BTCUSDT", price=60_000 * FIX, qty=FIX // 100, trade_id=ts)


def config(url: str, prefix: str, **options) -> BusConfig:
    return BusConfig.from_url(url, topic_prefix=prefix, backoff_min=0.05, backoff_max=0.5, publish_timeout=2.0,
                              **options)


def seqs(payloads) -> list[int]:
    return [p["seq"] for p in payloads]


async def test_events_from_the_node_queue_arrive_in_order_with_contiguous_seqs(mqtt_url):
    prefix = unique_prefix()
    queue: asyncio.Queue = asyncio.Queue(maxsize=1000)  # what node.subscribe() returns
    async with Collector(mqtt_url, prefix) as sub:
        async with MqttPublisher(config(mqtt_url, prefix), queue) as publisher:
            for i in range(1, 31):
                queue.put_nowait((trade(i), []))
                queue.put_nowait((m.Deposit(ts=i, account=4, amount=FIX), [balance(4, 100 + i, i)]))
            await sub.wait_for(lambda s: len(s.on("account/4/balance")) == 30 and len(s.on("market/BTCUSDT/trade")) == 30
                               and len(s.on("account/4/summary")) == 30)
            assert publisher.status.connected and publisher.status.dropped == 0
        await sub.wait_for(lambda s: any(p["online"] is False for p in s.on("status")))
    assert seqs(sub.on("account/4/balance")) == list(range(1, 31))
    assert seqs(sub.on("market/BTCUSDT/trade")) == list(range(1, 31))
    assert [p["wallet"] for p in sub.on("account/4/balance")] == [str(100 + i) for i in range(1, 31)]
    assert sub.on("account/4/summary")[-1]["wallet"] == "130"
    assert sub.on("status")[0] == {"online": True, "epoch": publisher.mapper.epoch}


async def test_retained_summary_is_what_a_late_subscriber_sees(mqtt_url):
    prefix = unique_prefix()
    async with MqttPublisher(config(mqtt_url, prefix)) as publisher:
        publisher.offer(m.Deposit(ts=1, account=9, amount=FIX), [balance(9, 55, 1)])
        async with Collector(mqtt_url, prefix) as early:
            publisher.offer(m.Deposit(ts=2, account=9, amount=FIX), [balance(9, 56, 2)])
            # the broker holds seq 2's summary once a subscriber has seen it live (the summary may
            # leave after the balance line: waiting for the balance alone raced it)
            await early.wait_for(lambda s: any(p["seq"] == 2 for p in s.on("account/9/summary")))
        async with Collector(mqtt_url, prefix) as late:
            await late.wait_for(lambda s: len(s.on("account/9/summary")) == 1)
    ((_topic, payload, retained),) = [x for x in late.messages if x[0].endswith("/summary")]
    assert retained and payload["wallet"] == "56" and payload["seq"] == 2


async def test_broker_outage_the_simulator_carries_on_and_publishing_resumes(mosquitto, caplog):
    caplog.set_level(logging.INFO, logger="exchange_sim.bus")
    prefix = unique_prefix()
    url = mosquitto.url
    async with Collector(url, prefix) as sub:
        async with MqttPublisher(config(url, prefix)) as publisher:
            publisher.offer(m.Deposit(ts=1, account=1, amount=FIX), [balance(1, 10, 1)])
            await sub.wait_for(lambda s: len(s.on("account/1/balance")) == 1)

            mosquitto.stop()
            for _ in range(200):  # bounded wait for the publisher to notice (it watches the connection)
                if not publisher.status.connected:
                    break
                await asyncio.sleep(0.05)
            assert not publisher.status.connected and publisher.status.outages == 1
            for i in range(2, 7):  # the exchange keeps producing; offer never waits
                publisher.offer(m.Deposit(ts=i, account=1, amount=FIX), [balance(1, 10 + i, i)])
            assert publisher.status.buffered >= 5

            mosquitto.start()
            await sub.wait_connected(2)
            for _ in range(400):  # bounded: the backoff is at most 0.5 s
                if publisher.status.connected and publisher.status.buffered == 0:
                    break
                await asyncio.sleep(0.05)
            assert publisher.status.connected and publisher.status.buffered == 0
            publisher.offer(m.Deposit(ts=7, account=1, amount=FIX), [balance(1, 17, 7)])
            await sub.wait_for(lambda s: any(p["seq"] == 7 for p in s.on("account/1/balance")))
        async with Collector(url, prefix) as late:  # the outage's messages reached the restarted broker
            await late.wait_for(lambda s: len(s.on("account/1/summary")) == 1)
    assert late.on("account/1/summary")[0]["wallet"] == "17"
    received = seqs(sub.on("account/1/balance"))
    assert received[0] == 1 and received[-1] == 7 and received == sorted(set(received))
    assert publisher.status.dropped == 0
    text = caplog.text
    assert "down" in text and "carries on" in text and "up again" in text


async def test_unreachable_broker_buffer_stays_bounded_dropping_the_oldest(caplog):
    caplog.set_level(logging.WARNING, logger="exchange_sim.bus")
    port = free_port()  # nothing listens here
    states: list[bool] = []
    publisher = MqttPublisher(config(f"mqtt://127.0.0.1:{port}", unique_prefix(), buffer_size=10),
                              on_status=lambda up, text: states.append(up))
    async with publisher:
        for i in range(1, 101):
            publisher.offer(m.Deposit(ts=i, account=2, amount=FIX), [balance(2, i, i)])
        status = publisher.status
        assert status.buffered == 10 and status.dropped == 190  # 200 offered (balance + summary per input)
        kept = [json.loads(o.payload)["ts"] for o in publisher._buffer]
        assert kept == [96, 96, 97, 97, 98, 98, 99, 99, 100, 100]  # the newest survive
        for _ in range(200):
            if publisher.status.outages:
                break
            await asyncio.sleep(0.05)
    assert publisher.status.outages == 1 and states[:1] == [False]
    assert "down" in caplog.text


async def test_username_password_and_tls(tmp_path):
    broker = Mosquitto(tmp_path, users={"sim": "s3cret", "reader": "r3ad"}, tls=True)
    broker.start()
    try:
        prefix = unique_prefix()
        url = f"mqtts://sim:s3cret@127.0.0.1:{broker.tls_port}"
        async with (Collector(broker.url, prefix, username="reader", password="r3ad") as sub,
                    MqttPublisher(config(url, prefix, tls_ca_file=broker.ca_file)) as publisher):
            publisher.offer(m.Deposit(ts=1, account=5, amount=FIX), [balance(5, 1, 1)])
            await sub.wait_for(lambda s: len(s.on("account/5/balance")) == 1)
            assert publisher.config.tls and publisher.status.connected
    finally:
        broker.stop()


async def test_a_refused_login_is_reported_and_retried_not_fatal(tmp_path):
    broker = Mosquitto(tmp_path, users={"sim": "s3cret"})
    broker.start()
    states: list[tuple[bool, str]] = []
    try:
        url = f"mqtt://sim:wrong@127.0.0.1:{broker.port}"
        async with MqttPublisher(config(url, unique_prefix()), on_status=lambda up, text: states.append((up, text))) as p:
            p.offer(m.Deposit(ts=1, account=5, amount=FIX), [balance(5, 1, 1)])
            for _ in range(200):
                if p.status.outages:
                    break
                await asyncio.sleep(0.05)
            assert not p.status.connected and p.status.buffered == 2
    finally:
        broker.stop()
    assert states and states[0][0] is False and "authori" in states[0][1].lower()

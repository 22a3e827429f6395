"""MQTT tick ingest against a real mosquitto broker."""

import asyncio
import json
import uuid

import aiomqtt
import pytest

from exchange_sim.core.fixed import to_fixed
from exchange_sim.core.messages import BookDelta, BookSnapshot, Funding, IndexPrice, MarkPrice, Trade, dumps
from exchange_sim.runtime.feeds import FeedSupervisor, SupervisorConfig
from feeds import FeedSpecError, open_feed
from feeds.base import FeedSignal
from feeds.mqtt import MqttFeed, parse_payload, parse_url
from tests.support.feeds_scripted import RecordingNode, wait_until

F = to_fixed

TICKS = [
    {"type": "book", "symbol": "BTCUSDT", "bids": [["59999.9", "1.5"]], "asks": [["60000.1", "2"]],
     "ts": 1000, "update_id": 42},
    {"type": "trade", "symbol": "BTCUSDT", "price": "60000.1", "qty": "0.010", "side": "BUY", "ts": 1001,
     "id": 7},
    {"type": "mark", "symbol": "BTC/USDT:USDT", "mark": "60000.5", "index": 60001, "funding_rate": "0.0001",
     "next_funding_ts": 28800000, "ts": 1002},
    {"type": "index", "symbol": "BTCUSDT", "price": "60001.0", "ts": 1003},
    {"type": "book", "snapshot": False, "symbol": "BTCUSDT", "bids": [["59999.9", "0"]], "asks": [],
     "ts": 1004, "first_update_id": 43, "final_update_id": 43, "prev_final_update_id": 42},
    {"type": "funding", "symbol": "BTCUSDT", "rate": "-0.0002", "ts": 28800000},
]
EXPECTED = [
    BookSnapshot(1000, "BTCUSDT", ((F("59999.9"), F("1.5")),), ((F("60000.1"), F("2")),), 42),
    Trade(1001, "BTCUSDT", F("60000.1"), F("0.01"), "BUY", 7),
    MarkPrice(1002, "BTCUSDT", F("60000.5"), F("60001"), F("0.0001"), 28800000),
    IndexPrice(1003, "BTCUSDT", F("60001")),
    BookDelta(1004, "BTCUSDT", ((F("59999.9"), 0),), (), 43, 43, 42),
    Funding(28800000, "BTCUSDT", F("-0.0002")),
]


def test_the_documented_tick_form_parses():
    assert parse_payload(json.dumps(TICKS), 0) == EXPECTED
    assert parse_payload(dumps(EXPECTED[1]), 0) == [EXPECTED[1]]  # recorder lines are accepted too
    assert parse_url("mqtt://127.0.0.1:1999/a/b/#") == ("127.0.0.1", 1999, "a/b/#")
    with pytest.raises(FeedSpecError):
        parse_url("http://x/y")
    with pytest.raises(FeedSpecError):
        parse_url("mqtt://host:1883")


async def _publish(url: str, topic: str, payloads: list) -> None:
    host, port, _ = parse_url(url + "/x")
    async with aiomqtt.Client(host, port) as client:
        for p in payloads:
            await client.publish(topic, p if isinstance(p, (bytes, str)) else json.dumps(p), qos=1)


async def test_ticks_from_a_real_broker(mqtt_url):
    prefix = f"exsim-feed-test-{uuid.uuid4().hex[:8]}"
    feed = open_feed(f"{mqtt_url}/{prefix}/#", ["BTCUSDT"])
    assert isinstance(feed, MqttFeed)
    got = []
    async with feed:
        async def run():
            async for ev in feed:
                if not isinstance(ev, FeedSignal):
                    got.append(ev)
                    if len(got) == len(EXPECTED):
                        return

        task = asyncio.create_task(run())
        await _publish(mqtt_url, f"{prefix}/BTCUSDT", [b"not json", {"type": "trade", "symbol": "ETHUSDT",
                                                                     "price": "1", "qty": "1"},
                                                       {"type": "warp", "symbol": "BTCUSDT"}, *TICKS])
        await asyncio.wait_for(task, 20)
    assert got == EXPECTED
    assert feed.bad_messages == 2  # the non-JSON and the unknown type; ETHUSDT is just not ours


async def test_broker_restart_is_a_reconnect_for_the_supervisor(own_mosquitto):
    prefix = f"exsim-feed-test-{uuid.uuid4().hex[:8]}"
    url = f"{own_mosquitto.url}/{prefix}/#"
    node = RecordingNode()
    sup = FeedSupervisor(node, lambda: MqttFeed(url, ["BTCUSDT"], timeout=2), ["BTCUSDT"],
                         SupervisorConfig(backoff_initial=0.05, backoff_max=0.2, stale_after=30))
    async with sup:
        await wait_until(lambda: sup.counters["connects"] >= 1, 10, "subscribed")
        await _publish(own_mosquitto.url, f"{prefix}/t", [TICKS[1]])
        await wait_until(lambda: len(node.submitted) == 1, 10, "first tick")
        own_mosquitto.stop()
        await wait_until(lambda: sup.counters["disconnects"] >= 1, 20, "the disconnect")
        own_mosquitto.start()
        await wait_until(lambda: sup.counters["connects"] >= 2, 20, "the reconnect")
        await _publish(own_mosquitto.url, f"{prefix}/t", [dict(TICKS[1], ts=2000, id=8)])
        await wait_until(lambda: any(getattr(m, "trade_id", 0) == 8 for m in node.submitted), 10,
                         "second tick")
    kinds = [n.kind for n in sup.recent]
    assert "disconnected" in kinds and "reconnect" in kinds and "stale" in kinds and "fresh" in kinds
    assert [type(m).__name__ for m in node.submitted] == ["Trade", "FeedStatus", "FeedStatus", "Trade"]

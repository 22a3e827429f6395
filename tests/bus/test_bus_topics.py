"""Topic mapping and payloads of the MQTT bus (pure: no broker)."""

from __future__ import annotations

import json
import typing

import pytest

from exchange_sim.bus import BusConfig, BusConfigError, TopicMapper
from exchange_sim.bus.topics import COUNT_FIELDS, RESERVED
from exchange_sim.core import messages as m

FIX = 10**8
COMMANDS = set(m.COMMANDS)
MARKET = set(m.MARKET_EVENTS)
ALL = dict(m._REGISTRY)  # every message type the codec knows
EVENTS = [cls for cls in ALL.values() if cls not in COMMANDS and cls not in MARKET
          and cls is not m.MarginCallPosition]


def sample(cls: type) -> object:
    """An instance of ``cls`` with a plausible value in every field."""
    hints = typing.get_type_hints(cls)
    values = {}
    for name, hint in hints.items():
        text = str(hint)
        if name == "symbol":
            values[name] = "BTCUSDT"
        elif hint is int or text.startswith("int |") or text == "typing.Optional[int]":
            values[name] = 7 if name in COUNT_FIELDS else 123 * FIX // 10
        elif hint is bool:
            values[name] = True
        elif hint is str:
            values[name] = "X"
        else:
            values[name] = ()
    return cls(**values)


def decode(out) -> dict:
    return json.loads(out.payload)


def test_every_core_event_type_is_published_somewhere():
    mapper = TopicMapper("p", epoch=1)
    for cls in EVENTS:
        outs = mapper.messages_for(None, [sample(cls)])
        assert outs, cls.__name__
        assert decode(outs[0])["type"] == cls.__name__
        assert outs[0].topic.startswith("p/")


def test_market_inputs_go_to_market_topics_at_qos0():
    mapper = TopicMapper("exchange-sim", epoch=1)
    expect = {m.Trade: "trade", m.BookSnapshot: "book", m.BookDelta: "book", m.MarkPrice: "mark",
              m.IndexPrice: "mark", m.Funding: "funding"}
    for cls, leaf in expect.items():
        (out,) = mapper.messages_for(sample(cls), [])
        assert out.topic == f"exchange-sim/market/BTCUSDT/{leaf}"
        assert out.qos == 0 and not out.retain
    assert TopicMapper("x", 1, publish_market=False).messages_for(sample(m.Trade), []) == []


def test_account_events_topics_qos1_and_fill():
    mapper = TopicMapper("exchange-sim", epoch=1)
    fill = m.OrderUpdate(ts=1, account=3, order_id=9, client_order_id="c", symbol="BTCUSDT", side="BUY",
                         position_side="BOTH", order_type="MARKET", time_in_force="GTC", status="FILLED",
                         exec_type="TRADE", price=0, stop_price=0, qty=FIX, filled_qty=FIX,
                         avg_price=60_000 * FIX, last_qty=FIX, last_price=60_000 * FIX, trade_id=4)
    outs = mapper.messages_for(sample(m.PlaceOrder), [fill])
    topics = [o.topic for o in outs]
    assert topics == ["exchange-sim/account/3/order", "exchange-sim/account/3/fill",
                      "exchange-sim/account/3/summary"]
    assert all(o.qos == 1 for o in outs)
    assert [o.retain for o in outs] == [False, False, True]
    body = decode(outs[1])
    assert body["qty"] == "1" and body["avg_price"] == "60000" and body["order_id"] == 9
    assert body["trade_id"] == 4 and body["ts"] == 1 and body["reduce_only"] is False


def test_seq_counts_per_topic_from_one():
    mapper = TopicMapper("p", epoch=5)
    trade = m.Trade(ts=1, symbol="ETHUSDT", price=3000 * FIX, qty=FIX)
    mark = m.MarkPrice(ts=1, symbol="ETHUSDT", mark=3000 * FIX)
    seqs = [(o.topic, decode(o)["seq"]) for msg in (trade, mark, trade, trade, mark)
            for o in mapper.messages_for(msg, [])]
    assert seqs == [("p/market/ETHUSDT/trade", 1), ("p/market/ETHUSDT/mark", 1), ("p/market/ETHUSDT/trade", 2),
                    ("p/market/ETHUSDT/trade", 3), ("p/market/ETHUSDT/mark", 2)]
    assert all(decode(o)["epoch"] == 5 for o in mapper.messages_for(trade, []))


def test_money_is_decimal_text_and_levels_are_pairs():
    mapper = TopicMapper("p", 1)
    book = m.BookSnapshot(ts=2, symbol="BTCUSDT", bids=((60_000_10_000_000, 25_000_000),), asks=(), update_id=77)
    body = decode(mapper.messages_for(book, [])[0])
    assert body["bids"] == [["60000.1", "0.25"]] and body["asks"] == [] and body["update_id"] == 77
    call = m.MarginCall(ts=3, account=2, symbol="", level="MARGIN_CALL", margin_ratio=85_000_000,
                        cross_wallet=-5 * FIX,
                        positions=(m.MarginCallPosition("BTCUSDT", "BOTH", -FIX, False, 0, 61_000 * FIX,
                                                        -1000 * FIX, 300 * FIX),))
    body = decode(mapper.messages_for(None, [call])[0])
    assert body["margin_ratio"] == "0.85" and body["cross_wallet"] == "-5"
    assert body["positions"][0]["qty"] == "-1" and body["positions"][0]["maintenance_margin"] == "300"


def test_every_int_field_is_classified_and_no_field_uses_a_reserved_name():
    """A new int field must be decided on: money (decimal text) or an id/count/timestamp (COUNT_FIELDS)."""
    money_like = set()
    for cls in ALL.values():
        for name, hint in typing.get_type_hints(cls).items():
            assert name not in RESERVED, f"{cls.__name__}.{name} collides with the bus's own payload keys"
            if "int" in str(hint) and name not in COUNT_FIELDS:
                money_like.add(name)
    known_money = {
        "price", "qty", "mark", "index", "funding_rate", "rate", "deposit", "amount", "stop_price",
        "callback_rate", "activation_price", "take_profit_price", "stop_loss_price", "filled_qty",
        "avg_price", "last_qty", "last_price", "commission", "realized_pnl", "wallet", "change",
        "entry_price", "isolated_wallet", "unrealized_pnl", "maintenance_margin", "margin_ratio",
        "cross_wallet", "spot_wallet", "bankruptcy_price", "fee", "loss", "balance", "bids", "asks",
    }
    assert money_like <= known_money, f"classify these int fields in bus.topics: {money_like - known_money}"


def test_summary_follows_wallet_positions_and_orders():
    mapper = TopicMapper("p", 1)
    events = [
        m.BalanceUpdate(ts=5, account=1, wallet=1000 * FIX, change=1000 * FIX, reason="DEPOSIT"),
        m.PositionUpdate(ts=6, account=1, symbol="BTCUSDT", position_side="BOTH", qty=-FIX // 2,
                         entry_price=50_000 * FIX, isolated=False, isolated_wallet=0, leverage=20, reason="ORDER"),
        m.Liquidation(ts=7, account=1, symbol="BTCUSDT", position_side="BOTH", side="BUY", qty=FIX // 2,
                      price=51_000 * FIX, mark=51_000 * FIX, bankruptcy_price=51_900 * FIX, fee=FIX, loss=0,
                      partial=False, isolated=False),
        m.CommandRejected(ts=8, account=2, command="PlaceOrder", code=-2019, msg="Margin is insufficient."),
    ]
    outs = mapper.messages_for(None, events)
    summaries = [decode(o) for o in outs if o.topic.endswith("/summary")]
    assert len(summaries) == 1  # one per touched account; a rejection touches nothing
    s = summaries[0]
    assert s["type"] == "AccountSummary" and s["account"] == 1 and s["wallet"] == "1000"
    assert s["liquidations"] == 1 and s["ts"] == 7
    assert s["positions"] == [{"symbol": "BTCUSDT", "position_side": "BOTH", "qty": "-0.5", "entry_price": "50000",
                               "isolated": False, "isolated_wallet": "0", "leverage": 20}]
    assert [o.topic for o in outs if "rejected" in o.topic] == ["p/account/2/rejected"]


def test_config_from_url_and_settings():
    c = BusConfig.from_url("mqtts://bob:s%40cret@broker.example:8884", topic_prefix="lab")
    assert (c.host, c.port, c.tls, c.username, c.password, c.topic_prefix) == (
        "broker.example", 8884, True, "bob", "s@cret", "lab")
    assert c.url == "mqtts://broker.example:8884"  # never the password
    assert BusConfig.from_url("mqtt://127.0.0.1").port == 1883
    assert BusConfig.from_url("mqtts://h").port == 8883

    class MqttSettings:  # the shape of exchange_sim.config.MqttSettings
        url = "mqtt://127.0.0.1:1999"
        topic_prefix = "sim"
        username = "u"
        password = "p"
        tls = False

    c = BusConfig.from_settings(MqttSettings())
    assert (c.port, c.topic_prefix, c.username, c.password, c.tls) == (1999, "sim", "u", "p", False)
    MqttSettings.url = None
    assert BusConfig.from_settings(MqttSettings()) is None
    for bad in ("http://h:1", "mqtt://h:99999", "mqtt://h:1/topic", "mqtt://"):
        with pytest.raises(BusConfigError):
            BusConfig.from_url(bad)
    with pytest.raises(BusConfigError, match="prefix"):
        BusConfig.from_url("mqtt://h", topic_prefix="a/#")

"""Which route serves which stream, and the merge of the routes' messages (pure, no event loop)."""

import pytest

from feeds.binance_routes import MARKET, PUBLIC, RouteMerger, event_time, route_of, routed_url


@pytest.mark.parametrize(("stream", "route"), [
    ("btcusdt@depth", PUBLIC), ("btcusdt@depth@100ms", PUBLIC), ("btcusdt@depth20@500ms", PUBLIC),
    ("btcusdt@bookTicker", PUBLIC), ("!bookTicker", PUBLIC), ("btcusdt@rpiDepth@500ms", PUBLIC),
    ("btcusdt@trade", PUBLIC),
    ("btcusdt@aggTrade", MARKET), ("btcusdt@markPrice@1s", MARKET), ("!markPrice@arr", MARKET),
    ("btcusdt@kline_1m", MARKET), ("btcusdt_perpetual@continuousKline_1m", MARKET),
    ("btcusdt@miniTicker", MARKET), ("btcusdt@ticker", MARKET), ("btcusdt@forceOrder", MARKET),
    ("!forceOrder@arr", MARKET), ("btcusdt@compositeIndex", MARKET), ("!contractInfo", MARKET),
    ("!assetIndex@arr", MARKET),
])
def test_the_venue_routes(stream, route):
    """The venue's notice (depth, bookTicker, rpiDepth public; the rest market) plus ccxt's trade."""
    assert route_of(stream) == route


def msg(e, tag=""):
    return {"stream": "x", "data": {"E": e, "tag": tag}}


def tags(pairs):
    return [(route, m["data"]["tag"]) for route, m in pairs]


def test_equal_event_times_go_public_first_and_each_route_keeps_its_order():
    m = RouteMerger(window=10.0)
    m.push(MARKET, 100, msg(100, "mark100"), now=0.0)
    m.push(PUBLIC, 100, msg(100, "diff100"), now=0.0)
    m.push(PUBLIC, 99, msg(99, "trade99"), now=0.0)  # out of E order within its route: stays after
    assert tags(m.pop_ready(0.0)) == [(PUBLIC, "diff100"), (PUBLIC, "trade99")]
    assert m.held() == 1  # mark100 waits: public (at E=100) may still send another E=100, which goes first
    m.push(PUBLIC, 101, msg(101, "diff101"), now=0.0)
    assert tags(m.pop_ready(0.0)) == [(MARKET, "mark100")]  # public passed 100: nothing earlier can come


def test_a_message_waits_for_the_other_route_at_most_the_window():
    m = RouteMerger(window=0.5)
    m.push(PUBLIC, 200, msg(200, "diff200"), now=1.0)
    assert m.pop_ready(1.0) == [] and m.deadline() == 1.5  # market has sent nothing yet
    m.push(MARKET, 150, msg(150, "mark150"), now=1.1)
    assert tags(m.pop_ready(1.1)) == [(MARKET, "mark150")]  # earlier: out first, diff200 still waits
    assert tags(m.pop_ready(1.49)) == []
    assert tags(m.pop_ready(1.5)) == [(PUBLIC, "diff200")]  # market quiet (marks come every second)


def test_a_route_that_is_down_is_not_waited_for_and_is_waited_for_again_when_back():
    m = RouteMerger(window=5.0)
    m.push(MARKET, 10, msg(10, "mark10"), now=0.0)
    m.push(PUBLIC, 11, msg(11, "diff11"), now=0.0)
    assert tags(m.pop_ready(0.0)) == [(MARKET, "mark10")]
    m.down(MARKET)
    assert tags(m.pop_ready(0.0)) == [(PUBLIC, "diff11")]
    m.up(MARKET)
    m.push(PUBLIC, 12, msg(12, "diff12"), now=1.0)
    assert m.pop_ready(1.0) == []  # back, but nothing from it since: it may still send E < 12
    m.push(MARKET, 13, msg(13, "mark13"), now=1.0)
    assert tags(m.pop_ready(1.0)) == [(PUBLIC, "diff12")] and tags(m.drain()) == [(MARKET, "mark13")]


def test_event_time_and_urls():
    assert event_time({"stream": "s", "data": {"e": "trade", "E": 5, "T": 4}}) == 5
    assert event_time({"e": "depthUpdate", "T": 7}) == 7 and event_time({"result": None, "id": 1}) == 0
    assert routed_url("wss://fstream.binance.com", "/public", ["btcusdt@depth", "ethusdt@depth"]) == (
        "wss://fstream.binance.com/public/stream?streams=btcusdt@depth/ethusdt@depth")

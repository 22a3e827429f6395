"""The API's own projections without a server: depth diff chain, market statistics, signatures."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_sim.api.auth import SlidingWindow, sign, split_signature
from exchange_sim.api.depth import DepthTracker
from exchange_sim.api.market_stats import DAY, MINUTE, MarketStats
from exchange_sim.api.streams import Connection, StreamHub, handle_request, normalize_stream
from exchange_sim.core import messages as m
from exchange_sim.core.exchange import Exchange, ExchangeConfig
from exchange_sim.core.fixed import to_fixed
from exchange_sim.profiles import load_profile

TICK = to_fixed("0.1")
LOT = to_fixed("0.001")

level = st.tuples(st.integers(1, 40).map(lambda i: to_fixed("60000") - i * TICK * 10),
                  st.integers(0, 5).map(lambda q: q * LOT * 100))
ask_level = st.tuples(st.integers(1, 40).map(lambda i: to_fixed("60000") + i * TICK * 10),
                      st.integers(0, 5).map(lambda q: q * LOT * 100))
book_event = st.one_of(
    st.builds(lambda b, a: ("snapshot", tuple(sorted({p: q for p, q in b if q}.items(), reverse=True)),
                            tuple(sorted({p: q for p, q in a if q}.items()))),
              st.lists(level, max_size=8), st.lists(ask_level, max_size=8)),
    st.builds(lambda b, a: ("delta", tuple(dict(b).items()), tuple(dict(a).items())),
              st.lists(level, max_size=4), st.lists(ask_level, max_size=4)),
)


@settings(max_examples=150, deadline=None)
@given(events=st.lists(book_event, min_size=1, max_size=25), join_at=st.integers(0, 25),
       eager=st.booleans())
def test_depth_diffs_chain_from_any_snapshot_and_rebuild_the_book(events, join_at, eager):
    ex = Exchange(load_profile(), ExchangeConfig())
    tracker = DepthTracker(ex.book_levels, ex.instruments, levels=100, eager=lambda s: eager)
    client_bids: dict[int, int] | None = None
    client_asks: dict[int, int] = {}
    nonce = 0
    for i, (kind, bids, asks) in enumerate(events):
        if i == join_at:  # a client takes the REST snapshot here, then follows the diffs
            b, a, nonce, _ = tracker.snapshot("BTCUSDT", 1000)
            client_bids, client_asks = dict(b), dict(a)
        msg = (m.BookSnapshot(ts=i, symbol="BTCUSDT", bids=bids, asks=asks) if kind == "snapshot"
               else m.BookDelta(ts=i, symbol="BTCUSDT", bids=bids, asks=asks))
        events_out = ex.apply(msg)
        for diff in tracker.on_input(msg, events_out, i):
            if client_bids is None:
                continue
            assert diff.final_update_id >= nonce and (diff.first_update_id <= nonce or diff.prev_final_update_id == nonce)
            for side, changes in ((client_bids, diff.bids), (client_asks, diff.asks)):
                for price, qty in changes:
                    if qty:
                        side[price] = qty
                    else:
                        side.pop(price, None)
            nonce = diff.final_update_id
    b, a, last, _ = tracker.snapshot("BTCUSDT", 1000)
    core_bids, core_asks, _ = ex.book_levels("BTCUSDT", 100)
    assert b == list(core_bids) and a == list(core_asks)
    if client_bids is not None and eager:
        assert nonce == last
        assert sorted(client_bids.items(), reverse=True) == b and sorted(client_asks.items()) == a


def test_market_stats_window_and_klines():
    stats = MarketStats()
    t0 = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE
    trades = [(t0, "100", "1", m.BUY), (t0 + 30_000, "110", "2", m.SELL), (t0 + MINUTE, "90", "1", m.BUY),
              (t0 + 5 * MINUTE, "95", "3", m.BUY)]
    for ts, price, qty, side in trades:
        stats.on_input(m.Trade(ts=ts, symbol="BTCUSDT", price=to_fixed(price), qty=to_fixed(qty), taker_side=side), [])
    day = stats.stats_24h("BTCUSDT", t0 + 6 * MINUTE)
    assert (day.open, day.high, day.low, day.last) == tuple(to_fixed(x) for x in ("100", "110", "90", "95"))
    assert day.volume == to_fixed("7") and day.count == 4 and day.last_id == 4
    assert day.quote_volume == to_fixed("100") + to_fixed("220") + to_fixed("90") + to_fixed("285")
    five = stats.klines("BTCUSDT", "5m", None, None, 10)
    assert [c.trades for c in five] == [3, 1] and five[0].close == to_fixed("90")
    assert stats.stats_24h("BTCUSDT", t0 + DAY + 10 * MINUTE).volume == 0  # the window moved past them
    assert stats.stats_24h("ETHUSDT", t0) is None
    stats.on_input(m.MarkPrice(ts=t0, symbol="BTCUSDT", mark=to_fixed("99")), [])
    stats.on_input(m.Funding(ts=t0 + 1, symbol="BTCUSDT", rate=to_fixed("0.0001")), [])
    (record,) = stats.funding_history("BTCUSDT")
    assert record.mark == to_fixed("99") and record.rate == to_fixed("0.0001")


def test_signature_is_split_only_when_last():
    assert split_signature("a=1&b=2&signature=ff") == ("a=1&b=2", "ff")
    assert split_signature("signature=ff") == ("", "ff")
    assert split_signature("a=1&b=2") == ("a=1&b=2", None)
    assert split_signature("a=1&signature=ff&b=2") == ("a=1&signature=ff&b=2", None)
    # Binance's documented example (USDⓈ-M "SIGNED endpoint examples")
    secret = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
    payload = ("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC&recvWindow=5000"
               "&timestamp=1591702613943")
    assert sign(secret, payload) == "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"


def test_sliding_window_forgets_old_hits():
    window = SlidingWindow(limit=3, window_ms=1000)
    assert all(window.take("k", t) for t in (0, 10, 20))
    assert not window.take("k", 500)
    assert window.take("k", 1001)  # the first hit left the window
    assert window.used("other", 0) == 0


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                      max_size=4), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(request=st.one_of(
    st.text(max_size=80),
    st.fixed_dictionaries({"method": st.sampled_from(["SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS",
                                                      "SET_PROPERTY", "GET_PROPERTY", "NOPE"]) | st.text(max_size=5)},
                          optional={"params": json_values, "id": json_values}).map(json.dumps),
    json_values.map(json.dumps)))
def test_any_websocket_request_gets_a_result_or_an_error(request):
    hub = StreamHub()
    conn = Connection(ws=None)  # type: ignore[arg-type]  # handle_request never touches the socket
    hub.add(conn)
    reply = handle_request(hub, conn, request)
    assert set(reply) in ({"result", "id"}, {"error", "id"})
    if "error" in reply:
        assert isinstance(reply["error"]["code"], int) and isinstance(reply["error"]["msg"], str)
    json.dumps(reply)  # always serializable
    assert all(normalize_stream(s) == s for s in conn.streams)

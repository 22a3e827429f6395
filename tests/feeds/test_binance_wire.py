"""The U/u/pu book-sync rules, funding settlements and Binance message parsing (no I/O)."""

from exchange_sim.core.fixed import to_fixed
from exchange_sim.core.messages import BookDelta, BookSnapshot, Funding, MarkPrice, Trade
from feeds.binance_wire import DepthSync, FundingTracker, WireDecoder, mark_price, trade

F = to_fixed


def delta(U, u, pu, bids=((1, 1),)):
    return BookDelta(ts=u, symbol="BTCUSDT", bids=tuple(bids), asks=(), first_update_id=U, final_update_id=u,
                     prev_final_update_id=pu)


def snap(lid):
    return BookSnapshot(ts=0, symbol="BTCUSDT", bids=((F("100"), F("1")),), asks=((F("101"), F("1")),),
                        update_id=lid)


def test_diffs_before_the_snapshot_are_buffered_and_the_straddling_one_applied_first():
    s = DepthSync("BTCUSDT")
    assert s.push_diff(delta(1, 5, 0)) == []
    assert s.push_diff(delta(6, 10, 5)) == []
    assert s.push_diff(delta(11, 15, 10)) == []
    out = s.push_snapshot(snap(12))
    assert [type(e).__name__ for e in out] == ["BookSnapshot", "BookDelta"]
    assert out[1].final_update_id == 15 and s.synced and s.last_final == 15
    assert s.push_diff(delta(16, 20, 15))[0].final_update_id == 20


def test_snapshot_waits_for_a_diff_that_reaches_it():
    s = DepthSync("BTCUSDT")
    assert s.push_snapshot(snap(12)) == []
    assert s.push_diff(delta(1, 11, 0)) == []  # older than the snapshot: dropped
    out = s.push_diff(delta(12, 14, 11))
    assert [e.__class__ for e in out] == [BookSnapshot, BookDelta]


def test_pu_equal_to_last_update_id_also_syncs():
    s = DepthSync("BTCUSDT")
    s.push_snapshot(snap(12))
    assert len(s.push_diff(delta(13, 14, 12))) == 2


def test_snapshot_older_than_every_diff_asks_for_another():
    s = DepthSync("BTCUSDT")
    s.push_diff(delta(20, 25, 19))
    assert s.push_snapshot(snap(12)) == []
    assert s.needs_snapshot and not s.synced
    assert len(s.push_snapshot(snap(22))) == 2


def test_a_gap_loses_sync_and_a_fresh_snapshot_resyncs():
    s = DepthSync("BTCUSDT")
    s.push_diff(delta(10, 15, 9))
    s.push_snapshot(snap(12))
    assert s.push_diff(delta(21, 25, 20)) == []  # pu 20 != 15: gap
    assert s.gaps == 1 and s.needs_snapshot and not s.synced
    s.push_diff(delta(26, 30, 25))
    out = s.push_snapshot(snap(27))
    assert isinstance(out[0], BookSnapshot) and out[1].final_update_id == 30
    assert s.resyncs == 2


def test_a_duplicate_old_diff_is_ignored_when_synced():
    s = DepthSync("BTCUSDT")
    s.push_diff(delta(10, 15, 9))
    s.push_snapshot(snap(12))
    assert s.push_diff(delta(10, 14, 9)) == [] and s.synced and s.gaps == 0


def test_funding_settles_when_the_next_funding_time_moves_past_it():
    ft = FundingTracker()
    t0 = 1_722_844_800_000
    m1 = MarkPrice(t0 - 2000, "BTCUSDT", F("60000"), funding_rate=F("0.0001"), next_funding_ts=t0)
    m2 = MarkPrice(t0 - 1000, "BTCUSDT", F("60000"), funding_rate=F("0.00012"), next_funding_ts=t0)
    m3 = MarkPrice(ts=t0 + 1000, symbol="BTCUSDT", mark=F("60010"), funding_rate=F("0.00005"),
                   next_funding_ts=t0 + 8 * 3600_000)
    assert ft.on_mark(m1) == [m1]
    assert ft.on_mark(m2) == [m2]
    assert ft.on_mark(m3) == [Funding(ts=t0, symbol="BTCUSDT", rate=F("0.00012")), m3]
    assert ft.on_mark(m3) == [m3]


def test_message_parsing():
    t = trade({"e": "trade", "E": 5, "T": 4, "s": "BTCUSDT", "t": 7, "p": "61800.30", "q": "0.006",
               "X": "MARKET", "m": True})
    assert t == Trade(ts=4, symbol="BTCUSDT", price=F("61800.3"), qty=F("0.006"), taker_side="SELL",
                      trade_id=7)
    assert trade({"e": "trade", "E": 5, "T": 4, "s": "BTCUSDT", "t": 7, "p": "1", "q": "1", "X": "ADL",
                  "m": True}) is None
    agg = trade({"e": "aggTrade", "E": 5, "T": 4, "s": "BTCUSDT", "a": 9, "p": "1.5", "q": "2", "m": False})
    assert agg.trade_id == 9 and agg.taker_side == "BUY"
    m = mark_price({"e": "markPriceUpdate", "E": 9, "s": "BTCUSDT", "p": "61800.12345678", "i": "61801.1",
                    "P": "61800", "r": "0.00010000", "T": 1723190400000})
    assert m == MarkPrice(ts=9, symbol="BTCUSDT", mark=F("61800.12345678"), index=F("61801.1"),
                          funding_rate=F("0.0001"), next_funding_ts=1723190400000)


def test_decoder_filters_symbols_and_unwraps_combined_streams():
    d = WireDecoder(("BTCUSDT",))
    msg = {"stream": "ethusdt@trade", "data": {"e": "trade", "E": 1, "T": 1, "s": "ETHUSDT", "t": 1, "p": "1",
                                               "q": "1", "m": False}}
    assert d.feed(msg) == []
    msg["data"]["s"] = "BTCUSDT"
    assert isinstance(d.feed(msg)[0], Trade)

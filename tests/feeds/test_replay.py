"""Replay of the raw capture, Binance archive CSVs and recorder output."""

import gzip
import itertools
import json

import pytest

from exchange_sim.core.fixed import fmt_trim, to_fixed
from exchange_sim.core.messages import BookDelta, BookSnapshot, Funding, IndexPrice, MarkPrice, Trade, dumps
from feeds import FeedFormatError, FeedSpecError
from feeds.base import FeedSignal
from feeds.klines import Bar, path
from feeds.replay import Replay
from tests.support.fake_binance import CAPTURE
from tests.support.feeds_book import LocalBook, expected_books
from tests.support.shared_data import SHARED_DATA

F = to_fixed
DATA = str(SHARED_DATA)
KLINES = f"{DATA}/binance-usdm_BTCUSDT_1m_2024-08-05T0500-0759Z.csv"
FUNDING = f"{DATA}/binance-usdm_BTCUSDT_funding_8h_2022-01-01_2025-10-27.csv"
MARK8H = f"{DATA}/binance-usdm_BTCUSDT_markprice_8h_2022-01-01_2025-10-28.csv"


def test_raw_capture_builds_the_recorded_book_at_every_checkpoint():
    expected = expected_books(CAPTURE, 1)
    book = LocalBook()
    events = list(Replay(CAPTURE).events())
    snaps = [e for e in events if isinstance(e, BookSnapshot)]
    assert len(snaps) == 1 and snaps[0].update_id == 5123107852948
    first = next(e for e in events if isinstance(e, BookDelta))
    assert first.first_update_id <= 5123107852948 <= first.final_update_id  # diff #5 straddles
    checked = 0
    for ev in events:
        book.apply(ev)
        if isinstance(ev, BookDelta):
            assert book.top() == expected[ev.final_update_id], ev.final_update_id
            checked += 1
    assert checked == len(expected) == 6547
    assert sum(isinstance(e, Trade) for e in events) == 21313
    assert not any(isinstance(e, FeedSignal) for e in events)


def _first_lines(n):
    with gzip.open(CAPTURE, "rt", encoding="utf-8") as fh:
        return [next(fh) for _ in range(n)]


def test_plain_text_capture_gap_waits_for_the_next_snapshot_and_resyncs_on_it(tmp_path):
    lines = _first_lines(3000)
    diffs = [i for i, line in enumerate(lines) if "depthUpdate" in line]
    snap_line = next(i for i, line in enumerate(lines) if "lastUpdateId" in line)
    later = [i for i in diffs if i > snap_line]
    dropped, resync_at = later[3], later[40]
    uncut = tmp_path / "uncut.jsonl"
    uncut.write_text("".join(lines))
    # the venue's book right after diff `resync_at`, as a REST snapshot line
    book = LocalBook()
    u_k = int(json.loads(lines[resync_at].split(" ", 1)[1])["data"]["u"])
    for ev in Replay(str(uncut)).events():
        book.apply(ev)
        if isinstance(ev, BookDelta) and ev.final_update_id == u_k:
            break
    snapshot = {"lastUpdateId": u_k, "E": 1, "T": 1,
                "bids": [[fmt_trim(p), fmt_trim(q)] for p, q in book.bids.items()],
                "asks": [[fmt_trim(p), fmt_trim(q)] for p, q in book.asks.items()]}
    cut = [line for i, line in enumerate(lines) if i != dropped]
    cut.insert(cut.index(lines[resync_at]) + 1, f"1 {json.dumps(snapshot)}\n")
    p = tmp_path / "cut.jsonl"
    p.write_text("".join(cut))
    events = list(Replay(str(p)).events())
    signals = [e for e in events if isinstance(e, FeedSignal)]
    assert [s.kind for s in signals] == ["gap", "resync"]
    between = events[events.index(signals[0]):events.index(signals[1])]
    assert not any(isinstance(e, BookDelta) for e in between)  # nothing applied on a broken book
    expected = expected_books(CAPTURE, 1)
    replayed = LocalBook()
    checked = 0
    for ev in events[events.index(signals[1]):]:
        replayed.apply(ev)
        if isinstance(ev, BookDelta):
            assert replayed.top() == expected[ev.final_update_id]
            checked += 1
    assert checked > 50


def test_recorder_format_roundtrip(tmp_path):
    evs = [Trade(1, "BTCUSDT", F("60000"), F("0.1"), "SELL", 3),
           MarkPrice(2, "BTCUSDT", F("60001"), F("60002"),
                                                                          F("0.0001"), 10),
           Funding(3, "BTCUSDT", F("0.0001"))]
    p = tmp_path / "rec.jsonl.gz"
    with gzip.open(p, "wt", encoding="utf-8") as fh:
        fh.write("".join(dumps(e) + "\n" for e in evs))
    assert list(Replay(str(p)).events()) == evs


def test_klines_path_visits_the_nearer_extreme_first():
    bar = Bar(open_time=0, duration=60_000, open=100, high=110, low=95, close=105)
    assert [p for _, p in path(bar)] == [100, 95, 110, 105]
    bar = Bar(open_time=0, duration=60_000, open=100, high=103, low=90, close=95)
    assert [p for _, p in path(bar)] == [100, 103, 90, 95]
    assert [t for t, _ in path(bar)] == [0, 20_000, 40_000, 59_999]


def test_crash_day_klines_reach_each_low_inside_its_minute():
    events = list(Replay(KLINES).events())
    marks = [e for e in events if isinstance(e, MarkPrice)]
    trades = [e for e in events if isinstance(e, Trade)]
    assert len(marks) == 180 * 4 and len(trades) == 180 * 4
    lowest = min(marks, key=lambda m: m.mark)
    assert lowest.mark == F("48888.0")
    assert (lowest.ts - 1722834000000) // 60_000 == 84  # 06:24 UTC
    assert all(a.ts <= b.ts for a, b in itertools.pairwise(marks))


def test_klines_with_a_synthetic_book():
    events = list(Replay(KLINES, speed=0, options=__import__("feeds.klines", fromlist=["x"]).PathOptions(
        book_levels=3)).events())
    books = [e for e in events if isinstance(e, BookSnapshot)]
    assert len(books) == 720
    b = books[0]
    assert b.bids[0][0] < F("53505.2") < b.asks[0][0] and len(b.bids) == 3


def test_funding_and_mark_klines_merge_by_time():
    events = list(Replay([FUNDING, MARK8H]).events())
    assert sum(isinstance(e, Funding) for e in events) == 4188
    assert sum(isinstance(e, MarkPrice) for e in events) == 4189 * 4
    assert all(a.ts <= b.ts for a, b in itertools.pairwise(events))
    low = min(e.rate for e in events if isinstance(e, Funding))
    assert low == F("-0.00119172")


@pytest.mark.parametrize("name,text,cls,check", [
    ("BTCUSDT-trades-2024-08-05.csv",
     "id,price,qty,quote_qty,time,is_buyer_maker\n1,60000.1,0.5,30000.05,1722816000000,true\n",
     Trade, lambda e: e.taker_side == "SELL" and e.price == F("60000.1") and e.trade_id == 1),
    ("BTCUSDT-trades-2024-08-05.csv", "1,60000.1,0.5,30000.05,1722816000000,false\n",
     Trade, lambda e: e.taker_side == "BUY"),
    ("BTCUSDT-aggTrades-2024-08-05.csv",
     ("agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
     "7,60000.1,0.5,1,2,1722816000000123,false\n"),
     Trade, lambda e: e.ts == 1722816000000 and e.trade_id == 7),
    ("BTCUSDT-bookTicker-2024-08-05.csv",
     ("update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time\n"
     "5,60000.0,1.5,60000.1,2.5,1722816000000,1722816000001\n"),
     BookSnapshot, lambda e: e.bids == ((F("60000"), F("1.5")),) and e.update_id == 5),
    ("BTCUSDT-fundingRate-2024-08.csv", ("calc_time,funding_interval_hours,last_funding_rate\n"
     "1722816000000,8,0.00010000\n"), Funding, lambda e: e.rate == F("0.0001")),
    ("BTCUSDT-markPriceKlines-1m-2024-08-05.csv",
     ("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
     "taker_buy_quote_volume,ignore\n1722816000000,100,110,95,105,0,1722816059999,0,0,0,0,0\n"),
     MarkPrice, lambda e: e.mark == F("100")),
    ("BTCUSDT-indexPriceKlines-1m-2024-08-05.csv",
     "1722816000000,100,110,95,105,0,1722816059999,0,0,0,0,0\n",
     IndexPrice, lambda e: e.price == F("100")),
])
def test_archive_layouts_are_detected(tmp_path, name, text, cls, check):
    p = tmp_path / name
    p.write_text(text)
    events = list(Replay(str(p)).events())
    assert events and isinstance(events[0], cls) and events[0].symbol == "BTCUSDT"
    assert check(events[0])


def test_unknown_layout_and_missing_files_are_clear_errors(tmp_path):
    p = tmp_path / "BTCUSDT-x.csv"
    p.write_text("foo,bar\n1,2\n")
    with pytest.raises(FeedFormatError):
        list(Replay(str(p)).events())
    with pytest.raises(FeedSpecError):
        Replay(str(tmp_path / "missing.csv"))
    q = tmp_path / "no-symbol.csv"
    q.write_text("id,price,qty,quote_qty,time,is_buyer_maker\n1,1,1,1,1,true\n")
    with pytest.raises(FeedSpecError):
        list(Replay(str(q)).events())
    assert next(iter(Replay(str(q), symbol="ETHUSDT").events())).symbol == "ETHUSDT"


async def test_async_replay_paces_with_asyncio_sleep(monkeypatch):
    import asyncio

    slept = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay, *a):
        slept.append(delay)
        await real_sleep(0)

    monkeypatch.setattr("feeds.base.asyncio.sleep", fake_sleep)
    n = 0
    async for _ in Replay(KLINES, speed=600.0):  # 600x: one 1m bar every 0.1 s
        n += 1
        if n >= 12:
            break
    assert n == 12 and slept and all(d > 0 for d in slept)
    slept.clear()
    async for _ in Replay(KLINES, speed=0):
        pass
    assert all(d == 0 for d in slept)

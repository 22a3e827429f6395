"""Kline and funding history the moment a bot connects, through real ccxt clients.

Each feed kind's history source (``feeds.history``) is installed the way ``exchange-sim run``
does it (``install(ctx.klines, history_source(spec, ...))``); the market then comes from the
feed's own events (the synthetic generator), a local Binance stand-in's REST API (backfill), or
a real recorded archive (replay pre-roll). What is right is decided by the venue's rules (bucket
boundaries, 8-hour funding instants), by the stand-in's series and by the recorded files.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import itertools

import pytest

from feeds.history import binance_past, ccxt_past, history_source, install
from feeds.synthetic import SyntheticConfig, synthetic_events
from tests.support.fake_binance import FakeBinance
from tests.support.shared_data import CRASH_KLINES, SHARED_DATA, require

BTC = "BTC/USDT:USDT"
MIN, HOUR, EIGHT_H = 60_000, 3_600_000, 8 * 3_600_000
TIMEFRAMES = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M")


async def _run_synthetic(sim, seed: int, steps: int) -> list:
    await install(sim.server.ctx.klines, history_source(f"synthetic?seed={seed}", sim.exchange.instruments))
    events = list(itertools.islice(synthetic_events(["BTCUSDT"], SyntheticConfig(seed=seed, steps=steps)), 3 * steps))
    for ev in events:
        await sim.node.submit(ev)
    return [e for e in events if type(e).__name__ == "Trade"]


async def test_synthetic_feed_serves_a_consistent_past_of_every_interval(sim, clients):
    trades = await _run_synthetic(sim, seed=7, steps=30)
    first, last = trades[0], trades[-1]
    ex = clients.async_()
    m1 = await ex.fetch_ohlcv(BTC, "1m", limit=1000)
    assert len(m1) == 1000
    assert all(b[0] - a[0] == MIN for a, b in itertools.pairwise(m1))  # no gap, no duplicate
    assert m1[-1][0] == first.ts - first.ts % MIN  # the live minute continues the past
    assert m1[-1][4] == last.price / 1e8  # ... and closes at the last live trade
    h1 = await ex.fetch_ohlcv(BTC, "1h", limit=200)  # a strategy with 200 startup candles on 1h
    assert len(h1) == 200 and all(b[0] - a[0] == HOUR for a, b in itertools.pairwise(h1))
    assert h1[-1][0] == first.ts - first.ts % HOUR
    # an hour fully inside the 1m range agrees with its 60 minutes
    full = h1[-3]
    minutes = [b for b in m1 if full[0] <= b[0] < full[0] + HOUR]
    assert len(minutes) == 60
    assert (full[1], full[2], full[3], full[4]) == (minutes[0][1], max(b[2] for b in minutes),
                                                   min(b[3] for b in minutes), minutes[-1][4])
    assert full[5] == pytest.approx(sum(b[5] for b in minutes))
    for tf in TIMEFRAMES:
        bars = await ex.fetch_ohlcv(BTC, tf, limit=5)
        assert len(bars) == 5, tf
        opened = dt.datetime.fromtimestamp(bars[-1][0] / 1000, dt.UTC)
        if tf == "1w":
            assert opened.weekday() == 0 and opened.hour == 0  # Binance weeks start on Monday
        if tf == "1M":
            assert opened.day == 1 and opened.hour == 0
        assert bars[-1][0] <= first.ts < bars[-1][0] + 31 * 86_400_000
    marks = await ex.fetch_mark_ohlcv(BTC, "1h", limit=200)
    assert len(marks) == 200 and marks[-1][0] == h1[-1][0]
    assert len(await ex.fetch_index_ohlcv(BTC, "15m", limit=50)) == 50


async def test_funding_schedule_and_history_on_a_feed_without_funding(sim, clients):
    trades = await _run_synthetic(sim, seed=3, steps=5)
    ts = trades[-1].ts
    ex = clients.async_()
    rate = await ex.fetch_funding_rate(BTC)
    assert rate["fundingTimestamp"] == (ts // EIGHT_H + 1) * EIGHT_H  # the venue's next 00/08/16 UTC
    history = await ex.fetch_funding_rate_history(BTC, limit=1000)
    assert len(history) >= 80
    assert all(h["timestamp"] % EIGHT_H == 0 and h["timestamp"] < ts for h in history)
    assert all(b["timestamp"] - a["timestamp"] == EIGHT_H for a, b in itertools.pairwise(history))


async def test_next_funding_time_is_never_zero_without_feed_funding(market, clients):
    info = await clients.async_().fetch_funding_rate(BTC)
    assert info["fundingTimestamp"] and info["fundingTimestamp"] % EIGHT_H == 0


async def test_live_backfill_from_the_upstream_rest_api_continues_with_live_trades(sim, clients):
    async with FakeBinance() as fb:
        past = await binance_past(fb.rest_url, ["BTCUSDT"], kinds=("trade", "mark"), pause=0)
    sim.server.ctx.klines.load(past)
    assert ("BTCUSDT", "trade", "1w") not in past.klines  # the stand-in refuses 1w: skipped, not fatal
    end = FakeBinance.history_end
    last_open = end - HOUR
    # a live trade inside the backfill's last hour merges into that bar; one later opens a new bar
    await sim.market([{"type": "trade", "symbol": "BTCUSDT", "price": "51200", "qty": "2", "ts": last_open + 10},
                      {"type": "trade", "symbol": "BTCUSDT", "price": "51000", "qty": "1", "ts": end + 5}])
    ex = clients.async_()
    bars = await ex.fetch_ohlcv(BTC, "1h", limit=1000)  # the newest 1000
    assert len(bars) == 1000
    expected = [FakeBinance.kline_row(HOUR, end, i, 1000) for i in range(1000)]
    assert [b[0] for b in bars] == [r[0] for r in expected[1:]] + [end]
    assert [b[1] for b in bars[:-2]] == [float(r[1]) for r in expected[1:-1]]
    merged = bars[-2]
    assert merged[1:] == [50999.0, 51200.0, 50994.0, 51200.0, 3.0]  # history open/low, live close/high, sum
    assert bars[-1][1:] == [51000.0, 51000.0, 51000.0, 51000.0, 1.0]
    marks = await ex.fetch_mark_ohlcv(BTC, "4h", limit=10)
    assert [b[4] for b in marks] == [float(r[4]) for r in
                                     (FakeBinance.kline_row(4 * HOUR, end, i, 1000) for i in range(990, 1000))]
    funding = await ex.fetch_funding_rate_history(BTC)
    assert [f["fundingRate"] for f in funding] == [-0.000025] * 3


async def test_replay_pre_roll_from_a_kline_archive_beside_the_recording(sim, clients):
    klines = require(CRASH_KLINES)
    funding = require(SHARED_DATA / "binance-usdm_BTCUSDT_funding_8h_2022-01-01_2025-10-27.csv")
    spec = f"replay:recording.jsonl?history={klines},{funding}"
    await install(sim.server.ctx.klines, history_source(spec, sim.exchange.instruments))
    start = 1722816000000  # 2024-08-05T00:00Z; the replay begins at 08:00
    await sim.market([{"type": "trade", "symbol": "BTCUSDT", "price": "54000", "qty": "1", "ts": start + EIGHT_H}])
    ex = clients.async_()
    hours = await ex.fetch_ohlcv(BTC, "1h", since=start + 5 * HOUR, limit=3)
    assert [b[0] for b in hours] == [start + 5 * HOUR, start + 6 * HOUR, start + 7 * HOUR]
    assert max(b[2] for b in hours) == 53843.6 and min(b[3] for b in hours) == 48888.0  # the recorded crash
    with open(funding, newline="") as fh:
        recorded = [(int(r[0]), float(r[2])) for r in list(csv.reader(fh))[1:]
                    if start - 10 * EIGHT_H <= int(r[0]) < start + EIGHT_H]
    got = await ex.fetch_funding_rate_history(BTC, since=start - 10 * EIGHT_H, limit=100)
    assert [(f["timestamp"], f["fundingRate"]) for f in got] == recorded


async def test_agg_trades_without_from_id_are_the_most_recent(market, clients):
    for k in range(5):
        await market.market([{"type": "trade", "symbol": "BTCUSDT", "price": str(60000 + k), "qty": "0.01"}])
    rows = await clients.async_().fapiPublicGetAggTrades({"symbol": "BTCUSDT", "limit": 2})
    assert [float(r["p"]) for r in rows] == [60003.0, 60004.0]


async def test_ccxt_feed_backfill_through_fetch_ohlcv(sim, clients):
    """``ccxt_past`` (the ``ccxt:<id>`` feeds' backfill) against a venue ccxt reaches: here this very
    simulator, whose past was backfilled from the Binance stand-in; what ccxt fetches is that series."""
    async with FakeBinance() as fb:
        sim.server.ctx.klines.load(await binance_past(fb.rest_url, ["BTCUSDT"], kinds=("trade",), pause=0))
    ex = clients.async_()
    await ex.load_markets()
    past = await ccxt_past(ex, {"BTCUSDT": BTC}, limit=100)
    hours = past.klines[("BTCUSDT", "trade", "1h")]
    expected = [FakeBinance.kline_row(HOUR, FakeBinance.history_end, i, 1000) for i in range(900, 1000)]
    assert [(b.open_ts, b.high) for b in hours] == [(r[0], int(float(r[2]) * 10**8)) for r in expected]
    assert ("BTCUSDT", "trade", "1M") not in past.klines or not past.klines[("BTCUSDT", "trade", "1M")]
    assert len(past.funding["BTCUSDT"]) == 3


async def test_the_kline_stream_continues_the_backfilled_bar(sim, clients):
    async with FakeBinance() as fb:
        sim.server.ctx.klines.load(await binance_past(fb.rest_url, ["BTCUSDT"], kinds=("trade",), pause=0))
    end = FakeBinance.history_end
    pro = clients.pro()
    watching = asyncio.ensure_future(pro.watch_ohlcv(BTC, "1h"))
    await asyncio.sleep(0.3)
    await sim.market([{"type": "trade", "symbol": "BTCUSDT", "price": "51200", "qty": "2", "ts": end - HOUR + 10}])
    bars = await asyncio.wait_for(watching, 10)
    assert bars[-1] == [end - HOUR, 50999.0, 51200.0, 50994.0, 51200.0, 3.0]  # the REST bar, continued

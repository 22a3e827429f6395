"""The Binance websocket feed against a local server replaying the raw capture in wire format."""

import asyncio

import pytest

from exchange_sim.core.messages import BookDelta, BookSnapshot, MarkPrice, Trade
from feeds import FeedDisconnected, FeedSpecError, open_feed
from feeds.base import FeedSignal, is_market_event
from feeds.binance import BinanceFeed, resolve_urls
from feeds.recorder import Recorder
from feeds.replay import Replay
from tests.support.fake_binance import CAPTURE, FakeBinance
from tests.support.feeds_book import LocalBook, expected_books


async def consume(feed, until, timeout=30.0):
    """Apply a feed's events to a LocalBook until ``until(state)``; returns the state."""
    state = {"book": LocalBook(), "events": [], "checked": 0, "signals": []}
    expected = expected_books(CAPTURE, 1)

    async def run():
        async for ev in feed:
            state["events"].append(ev)
            if isinstance(ev, FeedSignal):
                state["signals"].append(ev)
                continue
            state["book"].apply(ev)
            if isinstance(ev, BookDelta):
                assert state["book"].top() == expected[ev.final_update_id], ev.final_update_id
                state["checked"] += 1
            if until(state):
                return

    await asyncio.wait_for(run(), timeout)
    return state


async def test_book_equals_the_recording_at_every_diff():
    async with FakeBinance(max_diffs=1500) as fb, BinanceFeed(["BTCUSDT"], fb.ws_url, fb.rest_url) as feed:
        state = await consume(feed, lambda s: fb.finished.is_set() and s["book"].update_id == fb.last_sent_u)
    snaps = [e for e in state["events"] if isinstance(e, BookSnapshot)]
    assert len(snaps) == 1 and snaps[0].update_id >= 5123107852948
    assert state["checked"] >= 500  # every diff after the snapshot is checked against the file
    assert any(isinstance(e, Trade) for e in state["events"])
    marks = [e for e in state["events"] if isinstance(e, MarkPrice)]
    assert marks and marks[0].funding_rate == 10_000 and marks[0].next_funding_ts == 1723161600000
    assert state["signals"][0].kind == "connected"


async def test_a_dropped_diff_is_a_gap_and_the_feed_resyncs_from_a_fresh_snapshot():
    async def hook(n):
        if n == 300:
            fb.drop_diffs(1)

    async with (FakeBinance(max_diffs=900, before_diff=hook) as fb,
                BinanceFeed(["BTCUSDT"], fb.ws_url, fb.rest_url) as feed):
        state = await consume(feed, lambda s: fb.finished.is_set() and s["book"].update_id == fb.last_sent_u)
    kinds = [s.kind for s in state["signals"]]
    assert kinds == ["connected", "gap", "resync"]
    assert fb.diffs_dropped == 1 and fb.snapshots_served == 2 and feed.snapshots == 2
    snaps = [e for e in state["events"] if isinstance(e, BookSnapshot)]
    assert len(snaps) == 2 and snaps[1].update_id > snaps[0].update_id
    # after the resync every diff matches the recording again (checked in consume)
    after = state["events"][state["events"].index(snaps[1]):]
    assert sum(isinstance(e, BookDelta) for e in after) > 100


async def test_agg_trades_and_urls_from_the_environment(monkeypatch):
    async with FakeBinance(max_diffs=200) as fb:
        monkeypatch.setenv("EXSIM_BINANCE_WS_URL", fb.ws_url + "/ws")
        monkeypatch.setenv("EXSIM_BINANCE_REST_URL", fb.rest_url)
        feed = open_feed("binance?trades=aggTrade&mark=0", ["BTCUSDT"])
        assert feed.url.endswith("/stream?streams=btcusdt@depth@100ms/btcusdt@aggTrade")
        async with feed:
            state = await consume(feed, lambda s: sum(isinstance(e, Trade) for e in s["events"]) >= 20)
    assert not any(isinstance(e, MarkPrice) for e in state["events"])


async def test_server_going_away_ends_the_feed_with_feed_disconnected():
    async def hook(n):
        if n == 100:
            await fb.kill_connections()

    async with (FakeBinance(max_diffs=400, before_diff=hook) as fb,
                BinanceFeed(["BTCUSDT"], fb.ws_url, fb.rest_url) as feed):
        with pytest.raises(FeedDisconnected):
            await consume(feed, lambda s: False)


async def test_connection_refused_and_bad_urls():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FeedDisconnected):
        async with BinanceFeed(["BTCUSDT"], f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}",
                               open_timeout=2):
            pass
    with pytest.raises(FeedSpecError):
        resolve_urls("http://x", "http://y")
    with pytest.raises(FeedSpecError):
        BinanceFeed(["BTCUSDT"], "ws://x", "http://y", trades="bogus")


async def test_a_live_feed_recorded_replays_as_the_same_events(tmp_path):
    path = str(tmp_path / "live.jsonl.gz")
    seen = []
    async with (FakeBinance(max_diffs=300) as fb,
                BinanceFeed(["BTCUSDT"], fb.ws_url, fb.rest_url) as feed,
                Recorder(path) as rec):

        async def run():
            async for ev in rec.tee(feed):
                if is_market_event(ev):
                    seen.append(ev)
                    if len(seen) >= 500:
                        return

        await asyncio.wait_for(run(), 30)
    assert rec.count == 500
    assert list(Replay(path).events()) == seen
    assert any(isinstance(e, BookSnapshot) for e in seen) and any(isinstance(e, BookDelta) for e in seen)

"""The Binance websocket feed against the venue-faithful stand-in replaying the raw capture.

The stand-in (tests/support/fake_binance.py) serves what the venue serves since 2026-04-23:
the /public and /market routes, 404 on the retired /ws and /stream. These tests fail against the
feed that opened one combined connection on the root.
"""

import asyncio

import pytest

from exchange_sim.core.messages import BookDelta, BookSnapshot, MarkPrice, Trade
from feeds import FeedDisconnected, FeedSpecError, open_feed
from feeds.base import FeedRefused, FeedSignal, is_market_event
from feeds.binance import BinanceFeed, resolve_urls
from feeds.binance_routes import MARKET, PUBLIC, ROUTES, event_time
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


def caught_up(fb):
    """``until`` for ``consume``: the stand-in sent its last diff and the book has applied it."""
    return lambda state: fb.finished.is_set() and state["book"].update_id == fb.last_sent_u


async def test_book_equals_the_recording_at_every_diff():
    async with FakeBinance(max_diffs=1500) as fb, BinanceFeed(["BTCUSDT"], fb.ws_url, fb.rest_url) as feed:
        state = await consume(feed, caught_up(fb))
    snaps = [e for e in state["events"] if isinstance(e, BookSnapshot)]
    assert len(snaps) == 1 and snaps[0].update_id >= 5123107852948
    assert state["checked"] >= 500  # every diff after the snapshot is checked against the file
    assert any(isinstance(e, Trade) for e in state["events"])
    marks = [e for e in state["events"] if isinstance(e, MarkPrice)]
    assert marks and marks[0].funding_rate == 10_000 and marks[0].next_funding_ts == 1723161600000
    assert state["signals"][0].kind == "connected"
    assert [s.kind for s in state["signals"]] == ["connected"]
    assert fb.opened == {PUBLIC: 1, MARKET: 1} and fb.refusals == []
    assert feed.urls == {PUBLIC: f"{fb.ws_url}/public/stream?streams=btcusdt@depth@100ms/btcusdt@trade",
                         MARKET: f"{fb.ws_url}/market/stream?streams=btcusdt@markPrice@1s"}


async def test_the_routes_are_merged_in_event_time_then_public_before_market():
    async with FakeBinance(max_diffs=800) as fb, BinanceFeed(["BTCUSDT"], fb.ws_url, fb.rest_url,
                                                             merge_window=2.0) as feed:
        merged = []
        pop = feed.merger.pop_ready

        def recording_pop(now):
            out = pop(now)
            merged.extend((event_time(msg), ROUTES.index(route)) for route, msg in out)
            return out

        feed.merger.pop_ready = recording_pop
        await consume(feed, caught_up(fb))
    assert {rank for _, rank in merged} == {0, 1}
    # each route keeps its own order (the capture's trades and diffs are not sorted by E among
    # themselves); wherever the merge switches route it goes forward in (event time, route rank)
    switches = [(a, b) for a, b in zip(merged, merged[1:], strict=False) if a[1] != b[1]]
    assert len(switches) > 20 and all(a <= b for a, b in switches), [(a, b) for a, b in switches if a > b][:3]
    assert any(a[0] == b[0] for a, b in switches)  # a synthesised mark shares E with its trade: public first


async def test_a_dropped_diff_is_a_gap_and_the_feed_resyncs_from_a_fresh_snapshot():
    async def hook(n):
        if n == 300:
            fb.drop_diffs(1)

    async with (FakeBinance(max_diffs=900, before_diff=hook) as fb,
                BinanceFeed(["BTCUSDT"], fb.ws_url, fb.rest_url) as feed):
        state = await consume(feed, caught_up(fb))
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
        assert feed.urls == {PUBLIC: f"{fb.ws_url}/public/stream?streams=btcusdt@depth@100ms",
                             MARKET: f"{fb.ws_url}/market/stream?streams=btcusdt@aggTrade"}
        async with feed:
            state = await consume(feed, lambda s: sum(isinstance(e, Trade) for e in s["events"]) >= 20)
    assert not any(isinstance(e, MarkPrice) for e in state["events"])


async def test_a_dropped_market_connection_holds_the_symbol_and_reconnects_that_route_only():
    async def hook(n):
        if n == 300:
            fb.refuse(MARKET)  # the venue answers 503 for a while: the feed retries with backoff
            await fb.kill_connections(MARKET)
        if n == 600:
            fb.accept(MARKET)

    async with (FakeBinance(max_diffs=1200, before_diff=hook) as fb,
                BinanceFeed(["BTCUSDT"], fb.ws_url, fb.rest_url, route_backoff=0.01, route_backoff_max=0.05) as feed):
        state = await consume(feed, caught_up(fb))
    kinds = [s.kind for s in state["signals"]]
    assert kinds == ["connected", "held", "released"]  # no gap, no resync: the book never lost a diff
    held, released = state["signals"][1], state["signals"][2]
    assert held.symbol == released.symbol == "BTCUSDT" and "/market connection down" in held.detail
    assert fb.opened[PUBLIC] == 1 and fb.opened[MARKET] == 2 and fb.snapshots_served == 1
    assert feed.reconnects[MARKET] >= 2 and feed.reconnects[PUBLIC] == 0
    assert {(path, status) for path, status, _ in fb.refusals} == {("/market/stream", 503)}
    events = state["events"]
    assert not any(isinstance(e, MarkPrice) for e in events[events.index(held):events.index(released)])
    assert any(isinstance(e, MarkPrice) for e in events[events.index(released):])
    assert sum(isinstance(e, BookDelta) for e in events[events.index(held):events.index(released)]) > 50
    assert state["checked"] >= 900  # every diff, during the outage too, matched the recording


async def test_a_dropped_public_connection_holds_until_the_book_is_resynced():
    async def hook(n):
        if n == 300:
            await fb.kill_connections(PUBLIC)

    async with (FakeBinance(max_diffs=900, before_diff=hook) as fb,
                BinanceFeed(["BTCUSDT"], fb.ws_url, fb.rest_url, route_backoff=0.01) as feed):
        state = await consume(feed, caught_up(fb))
    kinds = [s.kind for s in state["signals"]]
    assert kinds == ["connected", "held", "released", "resync"], kinds
    assert fb.opened == {PUBLIC: 2, MARKET: 1} and fb.snapshots_served == 2
    events = state["events"]
    resync = next(s for s in state["signals"] if s.kind == "resync")
    assert isinstance(events[events.index(resync) + 1], BookSnapshot)  # released with the fresh book


async def test_a_market_route_that_goes_quiet_holds_the_symbol_until_it_speaks_again():
    async def hook(n):
        if n == 300:
            fb.mute(MARKET)  # connected, subscribed, and silent (what legacy paths did to /market streams)
        if 300 <= n < 600:
            await asyncio.sleep(0.003)  # /public keeps flowing, in real time (0.9 s)
        if n == 600:
            fb.unmute(MARKET)

    async with (FakeBinance(max_diffs=900, before_diff=hook) as fb,
                BinanceFeed(["BTCUSDT"], fb.ws_url, fb.rest_url, route_silence=0.5) as feed):
        state = await consume(feed, caught_up(fb))
    kinds = [s.kind for s in state["signals"]]
    assert kinds == ["connected", "held", "released"], kinds
    assert "no data on /market for" in state["signals"][1].detail
    assert fb.opened == {PUBLIC: 1, MARKET: 1}  # nothing was reconnected


async def test_the_venue_gone_for_good_ends_the_feed_with_feed_disconnected():
    async def hook(n):
        if n == 100:
            fb.refuse(PUBLIC)
            fb.refuse(MARKET)
            await fb.kill_connections()

    async with (FakeBinance(max_diffs=400, before_diff=hook) as fb,
                BinanceFeed(["BTCUSDT"], fb.ws_url, fb.rest_url, route_backoff=0.01,
                            max_route_retries=3) as feed):
        with pytest.raises(FeedDisconnected, match="gave up after 3 reconnects"):
            await consume(feed, lambda s: False)
    assert max(feed.reconnects.values()) == 3  # the first route to give up ends the feed


async def test_the_retired_root_paths_are_refused_with_the_url_not_blamed_on_the_network():
    async with FakeBinance(max_diffs=10) as fb:
        # public_path="" and market_path="": the URLs the old feed opened (<root>/stream?streams=...)
        with pytest.raises(FeedRefused) as refused:
            async with BinanceFeed(["BTCUSDT"], fb.ws_url, fb.rest_url, public_path="", market_path=""):
                pass
    message = str(refused.value)
    assert "HTTP 404" in message and f"{fb.ws_url}/stream?streams=btcusdt@depth@100ms" in message
    assert "public_path" in message and "internet" not in message
    assert {(path, status) for path, status, _ in fb.refusals} == {("/stream", 404)}


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


async def test_the_route_paths_are_configuration_and_a_refusal_is_one_line_naming_the_url(tmp_path):
    from exchange_sim.serve import build_instruments
    from exchange_sim.serve import feed_factory as _open_feed_factory
    from exchange_sim.config import ConfigError, parse_config
    from tests.cli.helpers import cli_command, cli_env

    settings = parse_config({"feeds": {"binance": {"ws_url": "ws://127.0.0.1:9", "public_path": "/v2/public"}}},
                            env={})
    feed = _open_feed_factory(settings, "binance", build_instruments(settings))()
    assert feed.urls[PUBLIC].startswith("ws://127.0.0.1:9/v2/public/stream?streams=btcusdt@depth@100ms/")
    assert feed.urls[MARKET].startswith("ws://127.0.0.1:9/market/stream?streams=btcusdt@markPrice@1s/")
    with pytest.raises(ConfigError, match="feeds.binance.market_path"):
        parse_config({"feeds": {"binance": {"market_path": "market?x=1"}}}, env={})

    async with FakeBinance(max_diffs=10) as fb:
        (tmp_path / "config.toml").write_text('[feeds.binance]\npublic_path = "/ws"\n')  # a pre-2026 setup
        proc = await asyncio.create_subprocess_exec(
            *cli_command("run", "--port", "0", "--no-journal"), cwd=tmp_path,
            env=cli_env(EXSIM_BINANCE_WS_URL=fb.ws_url, EXSIM_BINANCE_REST_URL=fb.rest_url),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    lines = [ln for ln in stderr.decode().splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert "HTTP 404" in lines[0] and f"{fb.ws_url}/ws/stream?streams=btcusdt@depth@100ms" in lines[0]
    assert "internet" not in lines[0] and "Traceback" not in stderr.decode()
    assert ("/ws/stream", 404) in {(path, status) for path, status, _ in fb.refusals}

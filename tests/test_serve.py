"""``exchange_sim.serve``: the composition root the CLI calls, here called in process.

It serves a manual market whose injected events take the session clock, stops when asked, and
stops by itself (exit code 1, one line) when its feed fails before it ever delivered data.
"""

from __future__ import annotations

import asyncio
import time

from exchange_sim.client import SimClient
from exchange_sim.config import parse_config
from exchange_sim.core.messages import MarkPrice
from exchange_sim.serve import ServeInfo, SessionClock, serve

TOKEN = "serve-test-token"


def settings(**sections):
    base = {"server": {"port": 0, "admin_token": TOKEN}, "feed": {"spec": "manual"}}
    return parse_config(base | sections, where="test", env={})


async def test_serve_a_manual_market_on_the_session_clock_until_stopped():
    stop = asyncio.Event()
    ready: list[ServeInfo] = []
    said: list[str] = []
    task = asyncio.create_task(serve(settings(), journal=False, on_ready=ready.append, say=said.append,
                                     warn=said.append, stop=stop, handle_signals=False))
    for _ in range(200):  # bounded: until it listens
        if ready or task.done():
            break
        await asyncio.sleep(0.05)
    assert ready, said
    info = ready[0]
    assert info.feed == "manual" and info.session == "in memory (--no-journal)" and not info.token_generated
    client = SimClient(info.url, TOKEN)
    await asyncio.to_thread(client.market, [{"type": "trade", "symbol": "BTCUSDT", "price": "60000", "qty": "0.1",
                                             "side": "BUY"}, {"type": "mark", "symbol": "BTCUSDT", "price": "60000"}])
    candles = await asyncio.to_thread(client.public, "/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m"})
    assert len(candles) == 1 and abs(candles[0][0] - time.time() * 1000) < 2 * 60_000  # injected without ts: now
    assert "LESSONBTCUSDT" in {s["symbol"] for s in
                               (await asyncio.to_thread(client.public, "/fapi/v1/exchangeInfo"))["symbols"]}
    stop.set()
    assert await asyncio.wait_for(task, 30) == 0
    assert said[-1] == "stopped cleanly"


async def test_a_feed_that_fails_before_any_data_stops_the_server_with_exit_code_1():
    async def not_a_websocket(reader, writer):  # answers TCP, then hangs up: the handshake fails
        writer.close()

    dummy = await asyncio.start_server(not_a_websocket, "127.0.0.1", 0)
    port = dummy.sockets[0].getsockname()[1]
    ready: list[ServeInfo] = []
    warned: list[str] = []
    try:
        code = await asyncio.wait_for(serve(
            settings(feed={"spec": "binance"}, feeds={"binance": {"ws_url": f"ws://127.0.0.1:{port}",
                                                                  "rest_url": f"http://127.0.0.1:{port}"}}),
            journal=False, on_ready=ready.append, say=lambda _: None, warn=warned.append, handle_signals=False), 60)
    finally:
        dummy.close()
        await dummy.wait_closed()
    assert ready  # it passed the reachability check and listened
    assert code == 1 and len(warned) == 1 and "cannot start" in warned[0] and "stopping" in warned[0], warned


def test_the_session_clock_follows_a_replay_with_its_own_times():
    wall = [1_796_000_000_000]
    mono = [100.0]
    clock = SessionClock(follow_market=True, wall=lambda: wall[0], monotonic=lambda: mono[0])
    assert clock.now_ms() == wall[0]  # nothing replayed yet

    recorded = 1_722_816_000_000  # 2024-08-05
    clock.observe(MarkPrice(ts=recorded, symbol="BTCUSDT", mark=1), [])
    mono[0] += 2.5
    assert clock.now_ms() == recorded + 2500  # the recording's time plus the wall time since its last event
    live = SessionClock(wall=lambda: wall[0], monotonic=lambda: mono[0])
    live.observe(MarkPrice(ts=recorded, symbol="BTCUSDT", mark=1), [])
    assert live.now_ms() == wall[0]  # a live session keeps the wall clock


def test_a_served_replay_starts_now_unless_its_history_needs_its_own_times():
    import pytest

    from feeds import FeedSpecError, parse_spec, replay_times

    assert replay_times(parse_spec("replay:day.jsonl").params) == "now"
    assert replay_times(parse_spec("replay:day.jsonl?times=original").params) == "original"
    # the history= past comes from the archive's own dates: the recording keeps them too
    assert replay_times(parse_spec("replay:day.jsonl?history=k.csv,funding.csv").params) == "original"
    with pytest.raises(FeedSpecError, match="drop times=now"):
        replay_times(parse_spec("replay:day.jsonl?history=k.csv&times=now").params)
    with pytest.raises(FeedSpecError, match="'now'"):
        replay_times(parse_spec("replay:day.jsonl?times=yesterday").params)

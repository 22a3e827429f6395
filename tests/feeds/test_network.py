"""The live feeds against the real venues (need the internet: ``pytest -m network``).

Without a route to the venue each test skips and says so.
"""

import asyncio
import socket
import time

import pytest

from exchange_sim.core.messages import BookDelta, BookSnapshot, MarkPrice, Trade
from feeds import open_feed
from feeds.base import is_market_event
from feeds.binance import BinanceFeed
from feeds.binance_routes import MARKET, PUBLIC

pytestmark = pytest.mark.network


def need(host: str, port: int = 443) -> None:
    """Skip (with the reason) when ``host:port`` cannot be reached."""
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        pytest.skip(f"{host}:{port} unreachable ({exc.strerror or exc}): this test needs the internet")


async def _collect(feed, until, timeout=60.0):
    seen = []

    async def run():
        async for ev in feed:
            if is_market_event(ev):
                seen.append(ev)
                if until(seen):
                    return

    async with feed:
        await asyncio.wait_for(run(), timeout)
    return seen


async def test_binance_depth_trades_and_marks_arrive_within_10s_on_both_routes():
    need("fstream.binance.com")
    need("fapi.binance.com")
    feed = BinanceFeed(["BTCUSDT"], "wss://fstream.binance.com", "https://fapi.binance.com")
    assert feed.urls[PUBLIC].startswith("wss://fstream.binance.com/public/stream?streams=")
    assert feed.urls[MARKET].startswith("wss://fstream.binance.com/market/stream?streams=")
    first: dict[type, float] = {}
    async with feed:
        start = time.monotonic()

        async def run():
            async for ev in feed:
                if is_market_event(ev):
                    first.setdefault(type(ev), time.monotonic() - start)
                if {BookDelta, Trade, MarkPrice} <= set(first):
                    return

        await asyncio.wait_for(run(), 10.0)
    assert feed.reconnects == {PUBLIC: 0, MARKET: 0}
    assert max(first[BookDelta], first[Trade], first[MarkPrice]) < 10.0, first


async def test_binance_usdm_live():
    need("fstream.binance.com")
    feed = open_feed("binance", ["BTCUSDT"], ws_url="wss://fstream.binance.com", rest_url="https://fapi.binance.com")
    seen = await _collect(feed, lambda s: sum(isinstance(e, BookDelta) for e in s) >= 20
                          and any(isinstance(e, MarkPrice) for e in s))
    snap = next(e for e in seen if isinstance(e, BookSnapshot))
    assert snap.bids[0][0] < snap.asks[0][0]
    assert any(isinstance(e, Trade) for e in seen)


async def test_ccxt_pro_binanceusdm_live():
    need("fstream.binance.com")
    feed = open_feed("ccxt:binanceusdm", ["BTCUSDT"])
    seen = await _collect(feed, lambda s: sum(isinstance(e, BookDelta) for e in s) >= 5
                          and any(isinstance(e, Trade) for e in s))
    assert any(isinstance(e, BookSnapshot) for e in seen)

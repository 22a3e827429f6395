"""The live feeds against the real venues (need the internet: ``pytest -m network``)."""

import asyncio

import pytest

from exchange_sim.core.messages import BookDelta, BookSnapshot, MarkPrice, Trade
from feeds import open_feed
from feeds.base import is_market_event

pytestmark = pytest.mark.network


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


async def test_binance_usdm_live():
    feed = open_feed("binance", ["BTCUSDT"], ws_url="wss://fstream.binance.com", rest_url="https://fapi.binance.com")
    seen = await _collect(feed, lambda s: sum(isinstance(e, BookDelta) for e in s) >= 20
                          and any(isinstance(e, MarkPrice) for e in s))
    snap = next(e for e in seen if isinstance(e, BookSnapshot))
    assert snap.bids[0][0] < snap.asks[0][0]
    assert any(isinstance(e, Trade) for e in seen)


async def test_ccxt_pro_binanceusdm_live():
    feed = open_feed("ccxt:binanceusdm", ["BTCUSDT"])
    seen = await _collect(feed, lambda s: sum(isinstance(e, BookDelta) for e in s) >= 5
                          and any(isinstance(e, Trade) for e in s))
    assert any(isinstance(e, BookSnapshot) for e in seen)

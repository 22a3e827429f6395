"""ccxt.pro (binanceusdm, unmodified) pointed at the local Binance server: the same recorded book.

The ``"ws"`` URL is the base ending in ``/ws``: ccxt turns it into ``/public/ws/<n>`` and
``/market/ws/<n>``; the stand-in refuses the retired root paths, so this also checks ccxt's routes.
"""

import asyncio

import ccxt
import pytest

from exchange_sim.core.messages import BookDelta, BookSnapshot, MarkPrice, Trade
from feeds import FeedSpecError, open_feed
from feeds.base import FeedSignal
from feeds.binance_routes import MARKET, PUBLIC
from feeds.ccxt_pro import CcxtProFeed
from tests.support.fake_binance import CAPTURE, FakeBinance
from tests.support.feeds_book import LocalBook, expected_books


def ccxt_config(port: int) -> dict:
    """binance-api.md's client config, pointing every URL at the local server."""
    base = f"http://127.0.0.1:{port}"
    api = {k: base + p for k, p in {
        "fapiPublic": "/fapi/v1", "fapiPublicV2": "/fapi/v2", "fapiPublicV3": "/fapi/v3",
        "fapiPrivate": "/fapi/v1", "fapiPrivateV2": "/fapi/v2", "fapiPrivateV3": "/fapi/v3",
        "fapiData": "/futures/data", "public": "/api/v3", "private": "/api/v3", "sapi": "/sapi/v1",
        "dapiPublic": "/dapi/v1", "dapiPrivate": "/dapi/v1"}.items()}
    api["ws"] = {"linear": f"ws://127.0.0.1:{port}/ws"}
    return {"enableRateLimit": False, "urls": {"api": api},
            "options": {"fetchCurrencies": False, "fetchMarkets": {"types": ["linear"]}},
            "exceptions": {"exact": ccxt.binanceusdm().exceptions["linear"]["exact"]}}


async def test_ccxt_pro_book_trades_and_marks_match_the_recording():
    expected = expected_books(CAPTURE, 1)
    async with FakeBinance(max_diffs=1500, batch=20) as fb:
        feed = open_feed("ccxt:binanceusdm", ["BTCUSDT"], ccxt_config=ccxt_config(fb.port))
        assert isinstance(feed, CcxtProFeed)
        book, seen, checked = LocalBook(), [], 0
        async with feed:
            assert feed.venue_symbols == {"BTCUSDT": "BTC/USDT:USDT"}

            async def run():
                nonlocal checked
                async for ev in feed:
                    seen.append(ev)
                    if isinstance(ev, FeedSignal):
                        continue
                    assert ev.symbol == "BTCUSDT"
                    book.apply(ev)
                    if isinstance(ev, BookDelta):
                        assert book.top() == expected[ev.final_update_id]
                        checked += 1
                    if fb.finished.is_set() and book.update_id == fb.last_sent_u and any(
                            isinstance(e, MarkPrice) for e in seen):
                        return

            await asyncio.wait_for(run(), 60)
    assert fb.opened[PUBLIC] >= 1 and fb.opened[MARKET] >= 1 and fb.refusals == []  # ccxt uses the routes
    assert isinstance(seen[1], BookSnapshot) or any(isinstance(e, BookSnapshot) for e in seen)
    assert checked >= 3  # ccxt coalesces updates; every book state we saw is the recording's
    trades = [e for e in seen if isinstance(e, Trade)]
    assert len(trades) > 100 and len({t.trade_id for t in trades}) == len(trades)
    marks = [e for e in seen if isinstance(e, MarkPrice)]
    assert marks[0].funding_rate == 10_000 and marks[0].next_funding_ts == 1723161600000


async def test_unknown_venue_and_symbol_are_spec_errors():
    with pytest.raises(FeedSpecError):
        async with CcxtProFeed("no_such_venue", ["BTCUSDT"]):
            pass
    async with FakeBinance(max_diffs=10) as fb:
        with pytest.raises(FeedSpecError):
            async with CcxtProFeed("binanceusdm", ["DOGEUSDT"], config=ccxt_config(fb.port)):
                pass

"""``/futures/data/*`` through a real ccxt client: a venue-style refusal without an upstream venue,
the upstream's own answer (cached, once per query) with one (a local Binance stand-in)."""

from __future__ import annotations

import ccxt
import pytest

from tests.support.fake_binance import FakeBinance

BTC = "BTC/USDT:USDT"


async def test_without_an_upstream_venue_the_answer_is_a_clear_error(market, clients):
    ex = clients.async_()
    async with market.session.get(market.url + "/futures/data/openInterestHist",
                                  params={"symbol": "BTCUSDT", "period": "5m"}) as resp:
        body = await resp.json()
    assert resp.status == 400 and body["code"] == -1000 and "no upstream venue" in body["msg"]
    with pytest.raises(ccxt.OperationFailed, match="no upstream venue"):
        await ex.fetch_open_interest_history(BTC, "5m")
    for path in ("topLongShortAccountRatio", "topLongShortPositionRatio", "globalLongShortAccountRatio",
                 "takerlongshortRatio"):
        async with market.session.get(f"{market.url}/futures/data/{path}",
                                      params={"symbol": "BTCUSDT", "period": "1h"}) as resp:
            assert (await resp.json())["code"] == -1000, path
    async with market.session.get(market.url + "/futures/data/basis",
                                  params={"pair": "BTCUSDT", "contractType": "PERPETUAL", "period": "1h"}) as resp:
        assert (await resp.json())["code"] == -1000


async def test_parameters_are_checked_the_venues_way(market, clients):
    ex = clients.async_()
    with pytest.raises(ccxt.BadRequest):
        await ex.fapiDataGetOpenInterestHist({"symbol": "BTCUSDT", "period": "7m"})  # -1130
    with pytest.raises(ccxt.BadRequest):
        await ex.fapiDataGetOpenInterestHist({"symbol": "BTCUSDT"})  # -1102 period missing
    with pytest.raises(ccxt.BadSymbol):
        await ex.fapiDataGetOpenInterestHist({"symbol": "NOPEUSDT", "period": "5m"})  # -1121


async def test_served_from_the_upstream_venue_and_cached(market, clients):
    async with FakeBinance() as fb:
        market.server.ctx.futures_data.upstream = fb.rest_url
        ex = clients.async_()
        first = await ex.fetch_open_interest_history(BTC, "5m", limit=10)
        again = await ex.fetch_open_interest_history(BTC, "5m", limit=10)
        assert first[0]["openInterestAmount"] == 80000.123 and again == first
        assert fb.history_calls == ["/futures/data/openInterestHist?symbol=BTCUSDT&period=5m&limit=10"]
        await ex.fetch_open_interest_history(BTC, "1h", limit=10)
        assert len(fb.history_calls) == 2

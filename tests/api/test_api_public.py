"""Public market data through the real ccxt clients (sync and async), configured as binance-api.md says."""

from __future__ import annotations

import asyncio

import ccxt
import pytest

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"


async def test_load_markets_sync_client(market, clients):
    client = clients.sync()
    markets = await asyncio.to_thread(client.load_markets)
    btc = markets[BTC]
    assert btc["swap"] and btc["linear"] and btc["settle"] == "USDT" and btc["active"]
    assert btc["precision"]["price"] == 0.1 and btc["precision"]["amount"] == 0.001
    assert btc["limits"]["amount"]["min"] == 0.001 and btc["limits"]["cost"]["min"] == 100
    assert btc["limits"]["market"]["max"] == 120
    assert ETH in markets and len(markets) == 2


async def test_market_data_async_client(market, clients):
    client = clients.async_()
    await client.load_markets()
    ticker = await client.fetch_ticker(BTC)
    assert ticker["last"] == 60000 and ticker["baseVolume"] == 0.01 and ticker["quoteVolume"] == 600
    book = await client.fetch_order_book(BTC)
    assert book["bids"][0] == [59990.0, 50.0] and book["asks"][0] == [60010.0, 50.0]
    assert book["nonce"] >= 1
    limited = await client.fetch_order_book(BTC, 5)
    assert len(limited["bids"]) == 5
    mark = await client.fetch_mark_price(BTC)
    assert mark["markPrice"] == 60000 and mark["indexPrice"] == 60000
    funding = await client.fetch_funding_rate(BTC)
    assert funding["markPrice"] == 60000 and funding["symbol"] == BTC
    assert await client.fetch_time() > 0
    trades = await client.fetch_trades(BTC)
    assert trades and trades[-1]["price"] == 60000 and trades[-1]["side"] == "buy"
    ohlcv = await client.fetch_ohlcv(BTC, "1m")
    assert ohlcv and ohlcv[-1][4] == 60000


async def test_ticker_statistics_follow_injected_trades(market, clients):
    await market.market([
        {"type": "trade", "symbol": "BTCUSDT", "price": "61000", "qty": "1", "side": "BUY"},
        {"type": "trade", "symbol": "BTCUSDT", "price": "59000", "qty": "2", "side": "SELL"},
    ])
    client = clients.async_()
    ticker = await client.fetch_ticker(BTC)
    assert ticker["open"] == 60000 and ticker["high"] == 61000 and ticker["low"] == 59000
    assert ticker["last"] == 59000 and ticker["baseVolume"] == pytest.approx(3.01)
    assert ticker["change"] == -1000


async def test_funding_settlements_appear_in_history(market, clients):
    await market.market([{"type": "funding", "symbol": "BTCUSDT", "rate": "0.0001"}])
    client = clients.async_()
    await client.load_markets()
    history = await client.fetch_funding_rate_history(BTC)
    assert history[-1]["fundingRate"] == 0.0001


async def test_unknown_symbol_on_the_wire_is_bad_symbol(market, clients):
    client = clients.async_()
    await client.load_markets()
    with pytest.raises(ccxt.BadSymbol):
        await client.fapiPublicGetTicker24hr({"symbol": "DOGEUSDT"})
    with pytest.raises(ccxt.BadSymbol):
        await client.fapiPublicGetDepth({"symbol": "NOPE"})
    with pytest.raises(ccxt.BadRequest):
        await client.fapiPublicGetDepth({"symbol": "BTCUSDT", "limit": "7"})


async def test_leverage_tiers_are_the_profile_brackets(market, clients, sim):
    account = await sim.create_account("tiers")
    client = clients.async_(account)
    tiers = await client.fetch_leverage_tiers([BTC])
    btc = tiers[BTC]
    assert len(btc) == 12
    assert btc[0]["maxLeverage"] == 125 and btc[0]["maxNotional"] == 50000 and btc[0]["maintenanceMarginRate"] == 0.004
    assert btc[1]["info"]["cum"] == 50.0
    assert btc[11]["maxLeverage"] == 1


async def test_unimplemented_calls_fail_locally(market, clients):
    client = clients.async_()
    with pytest.raises(ccxt.ExchangeError):
        await client.fetch_status()


async def test_a_replayed_past_day_still_has_a_24h_ticker(sim, clients):
    past = 1_600_000_000_000  # a recording from 2020
    await sim.market([{"type": "trade", "symbol": "BTCUSDT", "price": "10000", "qty": "2", "side": "BUY", "ts": past},
                      {"type": "trade", "symbol": "BTCUSDT", "price": "10100", "qty": "1", "side": "SELL",
                       "ts": past + 60_000}])
    ticker = await clients.async_().fetch_ticker(BTC)
    assert ticker["open"] == 10000 and ticker["last"] == 10100 and ticker["baseVolume"] == 3
    assert ticker["timestamp"] == past + 60_000

"""The filters exchangeInfo publishes are the filters the simulator enforces (real ccxt clients).

What is right comes from the published filter values themselves (read back through
``load_markets`` / exchangeInfo) and the venue's error-code page: −4016/−4024 PERCENT_PRICE,
−2025 MAX_NUM_ORDERS, −4045 MAX_NUM_ALGO_ORDERS, −4014 tick size; a refused order changes nothing.
"""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from tests.support.api_server import business_state

BTC = "BTC/USDT:USDT"


def _filters(markets: dict) -> dict:
    return {f["filterType"]: f for f in markets[BTC]["info"]["filters"]}


async def test_percent_price_band_around_the_mark(market, clients, sim):
    alice = await sim.create_account("alice", deposit="100000")
    ex = clients.async_(alice)
    band = _filters(await ex.load_markets())["PERCENT_PRICE"]
    mark = Decimal("60000")
    top, bottom = mark * Decimal(band["multiplierUp"]), mark * Decimal(band["multiplierDown"])
    assert (top, bottom) == (63000, 57000)
    before = business_state(sim.exchange)
    with pytest.raises(ccxt.ExchangeError, match="-4024.*Limit price can't be lower than 57000."):
        await ex.create_order(BTC, "limit", "buy", 0.01, 30000)  # the case: 30,000 with mark 60,000
    with pytest.raises(ccxt.ExchangeError, match="-4016.*Limit price can't be higher than 63000."):
        await ex.create_order(BTC, "limit", "sell", 0.01, 63000.1)
    assert business_state(sim.exchange) == before
    low = await ex.create_order(BTC, "limit", "buy", 0.01, float(bottom))  # the bounds themselves are inside
    high = await ex.create_order(BTC, "limit", "sell", 0.01, float(top))
    assert low["status"] == high["status"] == "open"
    with pytest.raises(ccxt.ExchangeError, match="-4024"):  # a modification is held to the band too
        await ex.edit_order(low["id"], BTC, "limit", "buy", 0.01, 56000)
    assert (await ex.fetch_order(low["id"], BTC))["price"] == 57000
    # the band moves with the mark (a deliberate 17% move: past the manual feed's bad-tick band)
    await sim.market([{"type": "mark", "symbol": "BTCUSDT", "price": "50000"}], force=True)
    assert (await ex.create_order(BTC, "limit", "buy", 0.01, 48000))["status"] == "open"


async def test_max_open_orders_per_symbol(market, clients, sim):
    alice = await sim.create_account("alice", deposit="1000000")
    ex = clients.async_(alice)
    limit = _filters(await ex.load_markets())["MAX_NUM_ORDERS"]["limit"]
    assert limit == 200
    for k in range(limit // 5):
        batch = [{"symbol": BTC, "type": "limit", "side": "buy", "amount": 0.01, "price": 58000 + k * 10 + i}
                 for i in range(5)]
        placed = await ex.create_orders(batch)
        assert all(o["status"] == "open" for o in placed), placed
    before = business_state(sim.exchange)
    with pytest.raises(ccxt.ExchangeError, match="-2025.*Reach max open order limit."):
        await ex.create_order(BTC, "limit", "buy", 0.01, 58500)
    assert business_state(sim.exchange) == before
    assert (await ex.create_order("ETH/USDT:USDT", "limit", "buy", 0.1, 2900))["status"] == "open"  # per symbol


async def test_max_algo_orders_per_symbol(market, clients, sim):
    alice = await sim.create_account("alice", deposit="100000")
    ex = clients.async_(alice)
    limit = _filters(await ex.load_markets())["MAX_NUM_ALGO_ORDERS"]["limit"]
    await ex.create_order(BTC, "market", "buy", 0.5)
    for k in range(limit):
        stop = await ex.create_order(BTC, "market", "sell", 0.01, None, {"stopPrice": 55000 - k, "reduceOnly": True})
        assert stop["status"] == "open"
    before = business_state(sim.exchange)
    with pytest.raises(ccxt.ExchangeError, match="-4045.*Reach max stop order limit."):  # the issue: 15 of 15 took
        await ex.create_order(BTC, "market", "sell", 0.01, None, {"stopPrice": 54000, "reduceOnly": True})
    assert business_state(sim.exchange) == before
    assert len(await ex.fetch_open_orders(BTC, params={"trigger": True})) == limit
    assert (await ex.create_order(BTC, "limit", "sell", 0.01, 61000))["status"] == "open"  # regular orders: own limit


async def test_tick_size_is_one_rule_with_the_venues_code(market, clients, sim):
    alice = await sim.create_account("alice", deposit="100000")
    ex = clients.async_(alice)
    await ex.load_markets()
    before = business_state(sim.exchange)
    for params in ({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.01", "price": "59000.05",
                    "timeInForce": "GTC"},
                   {"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET", "quantity": "0.01",
                    "triggerPrice": "55000.05", "algoType": "CONDITIONAL"}):
        call = ex.fapiPrivatePostOrder if params["type"] == "LIMIT" else ex.fapiPrivatePostAlgoOrder
        with pytest.raises(ccxt.ExchangeError, match="-4014"):
            await call(params)
    assert business_state(sim.exchange) == before

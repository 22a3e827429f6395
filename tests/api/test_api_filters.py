"""The filters exchangeInfo publishes are the filters the simulator enforces (real ccxt clients).

What is right comes from the published filter values themselves (read back through
``load_markets`` / exchangeInfo) and the venue's error-code page: −4016/−4024 PERCENT_PRICE,
−4183/−4184 a conditional limit order's price against its trigger price, −2025 MAX_NUM_ORDERS,
−4045 MAX_NUM_ALGO_ORDERS, −4014 tick size; a refused order changes nothing.
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
    with pytest.raises(ccxt.ExchangeError, match=r"-4024.*Limit price can't be lower than 57000\.00\."):
        await ex.create_order(BTC, "limit", "buy", 0.01, 30000)  # the case: 30,000 with mark 60,000
    with pytest.raises(ccxt.ExchangeError, match=r"-4016.*Limit price can't be higher than 63000\.00\."):
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


async def test_percent_price_bounds_are_printed_at_the_price_precision(market, clients, sim):
    """The venue prints the bound at the symbol's pricePrecision (BTCUSDT: 2, though its tick is 0.1),
    the cap rounded down and the floor up, so the printed bound is itself inside the band."""
    alice = await sim.create_account("alice", deposit="100000")
    ex = clients.async_(alice)
    markets = await ex.load_markets()
    info = markets[BTC]["info"]
    band = _filters(markets)["PERCENT_PRICE"]
    assert (info["pricePrecision"], _filters(markets)["PRICE_FILTER"]["tickSize"]) == (2, "0.1")
    await sim.market([{"type": "mark", "symbol": "BTCUSDT", "price": "47678.69"}], force=True)
    mark = Decimal("47678.69")
    top, bottom = mark * Decimal(band["multiplierUp"]), mark * Decimal(band["multiplierDown"])
    assert (top, bottom) == (Decimal("50062.624500"), Decimal("45294.755500"))
    before = business_state(sim.exchange)
    with pytest.raises(ccxt.ExchangeError, match=r"-4016.*Limit price can't be higher than 50062\.62\."):
        await ex.create_order(BTC, "limit", "sell", 0.01, 50062.7)
    with pytest.raises(ccxt.ExchangeError, match=r"-4024.*Limit price can't be lower than 45294\.76\."):
        await ex.create_order(BTC, "limit", "buy", 0.01, 45294.7)
    assert business_state(sim.exchange) == before
    assert Decimal("45294.76") >= bottom and Decimal("50062.62") <= top  # the printed bounds are acceptable
    high = await ex.create_order(BTC, "limit", "sell", 0.01, 50062.6)  # the last tick inside the band
    low = await ex.create_order(BTC, "limit", "buy", 0.01, 45294.8)
    # accepted: the sell crosses the book, still near 60,000 (only the mark moved); the buy rests
    assert (high["status"], low["status"]) == ("closed", "open")


async def test_a_conditional_limit_price_is_bounded_by_its_trigger_price(market, clients, sim):
    """STOP / TAKE_PROFIT with a price: the band is the trigger price's (−4183/−4184), not the mark's."""
    alice = await sim.create_account("alice", deposit="100000")
    ex = clients.async_(alice)
    band = _filters(await ex.load_markets())["PERCENT_PRICE"]
    trigger = Decimal("55000.1")  # the mark is 60,000
    top, bottom = trigger * Decimal(band["multiplierUp"]), trigger * Decimal(band["multiplierDown"])
    assert (top, bottom) == (Decimal("57750.105000"), Decimal("52250.095000"))
    before = business_state(sim.exchange)
    # a sell stop-limit (STOP) 52,250.0 is below the floor, though 57,000 (the mark's floor) is not the rule
    with pytest.raises(ccxt.ExchangeError, match=r"-4184.*Limit price can't be lower than 52250\.10\."):
        await ex.create_order(BTC, "limit", "sell", 0.01, 52250.0, {"stopPrice": float(trigger)})
    with pytest.raises(ccxt.ExchangeError, match=r"-4183.*Limit price can't be higher than 57750\.10\."):
        await ex.create_order(BTC, "limit", "sell", 0.01, 57750.2, {"stopPrice": float(trigger)})
    with pytest.raises(ccxt.ExchangeError, match=r"-4183.*Limit price can't be higher than 57750\.10\."):
        await ex.create_order(BTC, "limit", "buy", 0.01, 57800, {"takeProfitPrice": float(trigger)})
    assert business_state(sim.exchange) == before
    placed = [await ex.create_order(BTC, "limit", "sell", 0.01, 52250.1, {"stopPrice": float(trigger)}),
              await ex.create_order(BTC, "limit", "sell", 0.01, 57750.1, {"stopPrice": float(trigger)}),
              await ex.create_order(BTC, "limit", "buy", 0.01, 52250.1, {"takeProfitPrice": float(trigger)})]
    assert [(o["status"], o["info"]["orderType"]) for o in placed] == [
        ("open", "STOP"), ("open", "STOP"), ("open", "TAKE_PROFIT")]


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

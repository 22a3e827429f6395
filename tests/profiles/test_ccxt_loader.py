"""Instruments from ccxt's unified structures: offline from a ccxt-shaped fixture, live marked network."""

import pytest

from exchange_sim.core.fixed import to_fixed as F
from exchange_sim.profiles import load_profile
from exchange_sim.profiles.ccxt_loader import load_from_venue, profile_from_ccxt
from exchange_sim.core.instruments import instruments_from_profile

MARKET = {
    "id": "BTCUSDT", "symbol": "BTC/USDT:USDT", "base": "BTC", "quote": "USDT", "swap": True, "linear": True,
    "precision": {"price": 0.1, "amount": 0.001}, "contractSize": 1.0, "maker": 0.0002, "taker": 0.0005,
    "limits": {"amount": {"min": 0.001, "max": 1000.0}, "market": {"max": 120.0}, "cost": {"min": 100.0},
               "price": {"min": 556.8, "max": 4529764.0}},
    "info": {"liquidationFee": "0.012500", "marketTakeBound": "0.05", "pricePrecision": 2, "quantityPrecision": 3},
}
SPOT = {**MARKET, "id": "BTCUSDT_SPOT", "swap": False}
CAPS = [50e3, 600e3, 3e6, 12e6, 70e6, 100e6, 230e6, 480e6, 600e6, 800e6, 1.2e9, 1.8e9]
LEVS = [125, 100, 75, 50, 25, 20, 10, 5, 4, 3, 2, 1]
MMRS = [0.004, 0.005, 0.0065, 0.01, 0.02, 0.025, 0.05, 0.1, 0.125, 0.15, 0.25, 0.5]
TIERS = {"BTC/USDT:USDT": [{"tier": i + 1, "minNotional": ([0] + CAPS)[i], "maxNotional": CAPS[i],
                            "maintenanceMarginRate": MMRS[i], "maxLeverage": LEVS[i]} for i in range(12)]}


def test_ccxt_structures_give_the_shipped_btc_profile():
    loaded = instruments_from_profile(profile_from_ccxt([MARKET, SPOT], TIERS))
    assert list(loaded) == ["BTCUSDT"]
    assert loaded["BTCUSDT"] == load_profile()["BTCUSDT"]
    assert loaded["BTCUSDT"].tiers[5].cum == F("481450")


@pytest.mark.network
def test_load_from_binance():
    loaded = load_from_venue("binanceusdm", ["BTCUSDT"])
    assert loaded["BTCUSDT"].tiers[0].max_leverage >= 20

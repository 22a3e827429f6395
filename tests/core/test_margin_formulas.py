"""margin-rules.md worked examples A-D as formula tests (Binance 2024-10-24 tiers)."""

from decimal import Decimal

import pytest

from exchange_sim.core import bybit
from exchange_sim.core.fixed import to_fixed as F
from exchange_sim.core.margin import bankruptcy_price, liquidation_price, margin_ratio
from exchange_sim.core.pretrade import order_cost
from exchange_sim.profiles import load_profile
from tests.support.core_helpers import money

BTC = load_profile()["BTCUSDT"]
ETH = load_profile()["ETHUSDT"]


def leg(qty: str, entry: str) -> tuple[int, int]:
    q = F(qty)
    return q, abs(q) * F(entry) // 10**8


@pytest.mark.parametrize("qty,lev,im,lp,bp", [
    ("1", 10, "6000", "54221.11", "54000"),
    ("1", 50, "1200", "59045.23", "58800"),
    ("0.5", 10, "3000", "54216.87", "54000"),
    ("0.9", 10, "5400", "54216.87", "54000"),
])
def test_example_a_isolated_long(qty, lev, im, lp, bp):
    q, cost = leg(qty, "60000")
    assert money(F(im)) == Decimal(im)
    assert money(liquidation_price(BTC, [(q, cost)], F(im))) == Decimal(lp)
    assert money(bankruptcy_price(q, cost, F(im))) == Decimal(bp)


def test_example_a_tier_at_lp_not_entry():
    # 0.9 BTC: entry notional 54,000 is tier 2, but Q·LP = 48,795 is tier 1
    q, cost = leg("0.9", "60000")
    lp = liquidation_price(BTC, [(q, cost)], F("5400"))
    assert BTC.tier_for_notional(cost).bracket == 2
    assert BTC.tier_for_notional(q * lp // 10**8).bracket == 1


@pytest.mark.parametrize("lev,im,lp", [(10, "6000", "65721.39"), (50, "1200", "60945.27")])
def test_example_a_isolated_short(lev, im, lp):
    q, cost = leg("-1", "60000")
    assert money(liquidation_price(BTC, [(q, cost)], F(im))) == Decimal(lp)


def test_example_a_clearance_fee_exceeds_equity_at_lp():
    q, cost = leg("1", "60000")
    lp = liquidation_price(BTC, [(q, cost)], F("6000"))
    fee = BTC.liquidation_fee * (q * lp // 10**8) // 10**8
    equity_left = F("6000") + (q * lp // 10**8 - cost)
    assert money(fee) == Decimal("677.76")
    assert money(equity_left) == Decimal("221.11")


def test_example_b_cross_two_positions():
    wb = F("10000")
    btc_q, btc_cost = leg("1", "60000")
    eth_q, eth_cost = leg("-10", "3000")
    btc_mark, eth_mark = F("58000"), F("3150")
    btc_mm = BTC.maintenance_margin(btc_q * btc_mark // 10**8)
    eth_mm = ETH.maintenance_margin(-eth_q * eth_mark // 10**8)
    assert money(btc_mm) == Decimal("240") and money(eth_mm) == Decimal("126")
    btc_pnl = btc_q * btc_mark // 10**8 - btc_cost
    eth_pnl = eth_cost - (-eth_q) * eth_mark // 10**8
    balance = wb + btc_pnl + eth_pnl
    assert money(balance) == Decimal("6500")
    assert money(margin_ratio(btc_mm + eth_mm, balance) * 100, 2) == Decimal("5.63")
    # BTC LP with ETH held at 3,150: W' = WB - TMM1 + UPNL1
    assert money(liquidation_price(BTC, [(btc_q, btc_cost)], wb - eth_mm + eth_pnl)) == Decimal("51835.18")
    assert money(liquidation_price(ETH, [(eth_q, eth_cost)], wb - btc_mm + btc_pnl)) == Decimal("3760.96")
    # ETH rises to 3,400: BTC LP moves to 54,357.79, worse than the same BTC position isolated at 10x
    eth_mark = F("3400")
    eth_mm = ETH.maintenance_margin(-eth_q * eth_mark // 10**8)
    eth_pnl = eth_cost - (-eth_q) * eth_mark // 10**8
    lp = liquidation_price(BTC, [(btc_q, btc_cost)], wb - eth_mm + eth_pnl)
    assert money(lp) == Decimal("54357.79")
    assert lp > liquidation_price(BTC, [(btc_q, btc_cost)], F("6000"))


@pytest.mark.parametrize("lev,lp,bp,cost", [(10, "54300", "54000", "6062.70"), (50, "59100", "58800", "1265.34")])
def test_example_c_bybit(lev, lp, bp, cost):
    q, entry = F("1"), F("60000")
    assert money(bybit.isolated_liquidation_price(q, entry, lev, F("0.005"))) == Decimal(lp)
    assert money(bybit.bankruptcy_price(q, entry, lev)) == Decimal(bp)
    assert money(bybit.order_cost(q, entry, lev, F("0.00055"), buy=True)) == Decimal(cost)


def test_example_d_binance_order_cost():
    q, price, mark = F("1"), F("60000"), F("59900")
    assert money(order_cost(q, True, price, mark, 10)) == Decimal("6100")
    assert money(order_cost(q, False, price, mark, 10)) == Decimal("6000")


def test_tiers_cum_and_max_position():
    assert [money(t.cum, 0) for t in BTC.tiers][:6] == [0, 50, 950, 11450, 131450, 481450]
    assert money(ETH.tiers[5].cum, 0) == 381450
    caps = {125: "50000", 100: "600000", 75: "3000000", 50: "12000000", 20: "100000000", 10: "230000000"}
    for lev, cap in caps.items():
        assert BTC.max_notional(lev) == F(cap)

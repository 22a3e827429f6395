"""The reference model against margin-rules.md's own numbers, and its independence from the core."""

from __future__ import annotations

import ast
import pathlib
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest

from tests.core.model import (
    AccountState, Leg, Model, Symbol, Tier, bankruptcy_price, binance_one_way_lp, load_symbols, risk_units,
)

F = Fraction
SYMBOLS = load_symbols()
M = Model(SYMBOLS)
BTC, ETH = SYMBOLS["BTCUSDT"].tiers, SYMBOLS["ETHUSDT"].tiers


def cents(x: Fraction) -> Decimal:
    return (Decimal(x.numerator) / Decimal(x.denominator)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def test_model_imports_nothing_from_the_core_but_messages():
    tree = ast.parse(pathlib.Path(__file__).with_name("model.py").read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "model.py must not use relative imports"
            names.add(node.module or "")
    ours = {n for n in names if n.startswith(("exchange_sim", "feeds", "tests"))}
    assert ours <= {"exchange_sim.core.messages"}, ours


def test_tiers_are_the_documented_snapshot():
    """margin-rules.md's tier table: MMR and cum per bracket, BTC and ETH."""
    cum_btc = [0, 50, 950, 11450, 131450, 481450, 2981450, 14481450, 26481450, 41481450, 121481450, 421481450]
    cum_eth = [0, 50, 950, 11450, 131450, 381450, 2006450, 9506450, 17506450, 27506450, 80506450, 280506450]
    mmr = ["0.004", "0.005", "0.0065", "0.01", "0.02", "0.025", "0.05", "0.1", "0.125", "0.15", "0.25", "0.5"]
    assert [t.cum for t in BTC] == cum_btc and [t.cum for t in ETH] == cum_eth
    assert [t.mmr for t in BTC] == [F(m) for m in mmr] == [t.mmr for t in ETH]
    assert [t.max_leverage for t in BTC] == [125, 100, 75, 50, 25, 20, 10, 5, 4, 3, 2, 1]


@pytest.mark.parametrize("qty,lev,lp", [
    ("1.0", 10, "54221.11"), ("1.0", 50, "59045.23"), ("0.5", 10, "54216.87"), ("0.9", 10, "54216.87"),
])
def test_example_a_isolated_long(qty, lev, lp):
    q = F(qty)
    wallet = q * 60000 / lev
    leg = Leg("BTCUSDT", "BOTH", q, F(60000), True, wallet)
    (unit,) = risk_units(AccountState(1, F(0), (leg,)))
    roots = M.liquidation_prices(unit, "BTCUSDT", {"BTCUSDT": F(60000)})
    assert [cents(r) for r in roots] == [Decimal(lp)]
    assert cents(binance_one_way_lp(1, q, F(60000), wallet, BTC)) == Decimal(lp)
    assert bankruptcy_price(leg, wallet) == 54000 if lev == 10 else 58800
    assert M.ratio(unit, {"BTCUSDT": roots[0]}) == 1


@pytest.mark.parametrize("lev,lp", [(10, "65721.39"), (50, "60945.27")])
def test_example_a_isolated_short(lev, lp):
    leg = Leg("BTCUSDT", "BOTH", F(-1), F(60000), True, F(60000, lev))
    (unit,) = risk_units(AccountState(1, F(0), (leg,)))
    assert [cents(r) for r in M.liquidation_prices(unit, "BTCUSDT", {"BTCUSDT": F(60000)})] == [Decimal(lp)]


def test_example_a_fee_exceeds_the_equity_left():
    lp = binance_one_way_lp(1, F(1), F(60000), F(6000), BTC)
    assert cents(lp * SYMBOLS["BTCUSDT"].liquidation_fee) == Decimal("677.76")
    assert cents(F(6000) + (lp - 60000)) == Decimal("221.11")


def test_example_b_cross_one_way():
    state = AccountState(1, F(10000), (Leg("BTCUSDT", "BOTH", F(1), F(60000)),
                                       Leg("ETHUSDT", "BOTH", F(-10), F(3000))))
    (unit,) = risk_units(state)
    marks = {"BTCUSDT": F(58000), "ETHUSDT": F(3150)}
    assert M.maintenance(unit, marks) == 240 + 126
    assert M.margin_balance(unit, marks) == 6500
    assert (M.ratio(unit, marks) * 100).__round__(2) == Fraction(563, 100)
    assert [cents(p) for p in M.liquidation_prices(unit, "BTCUSDT", marks)] == [Decimal("51835.18")]
    assert [cents(p) for p in M.liquidation_prices(unit, "ETHUSDT", marks)] == [Decimal("3760.96")]
    moved = {"BTCUSDT": F(58000), "ETHUSDT": F(3400)}
    assert [cents(p) for p in M.liquidation_prices(unit, "BTCUSDT", moved)] == [Decimal("54357.79")]
    # "worse than the same BTC position isolated at 10x" (54,221.11)
    assert M.liquidation_prices(unit, "BTCUSDT", moved)[0] > binance_one_way_lp(1, F(1), F(60000), F(6000), BTC)


def test_example_e_isolated_caps_the_loss_cross_does_not():
    # a BTC long with IM 100 and MM 50 in a 1,000 account: 10x at notional 1,000 would be MM 4;
    # the doc's plain numbers: isolated equity 100 - 50 loss = 50 = MM -> liquidated, 950 untouched
    iso = AccountState(1, F(900), (Leg("X", "BOTH", F(1), F(1000), True, F(100)),))
    cross = AccountState(1, F(1000), (Leg("X", "BOTH", F(1), F(1000)),))
    flat = (Tier(1, F(0), F(10**9), 10, F(1, 20), F(0)),)  # MMR 5%: MM 50 at notional 1,000
    model = Model({"X": Symbol("X", flat, F(1), F(10**6), F(0), F(0), F(0))})
    after_loss = {"X": F(950)}  # a 50 USDT loss
    (iso_unit,) = [u for u in risk_units(iso) if u.isolated]
    assert model.margin_balance(iso_unit, after_loss) == 50
    assert model.maintenance(iso_unit, after_loss) == F(95, 2)  # 5% of 950
    assert model.ratio(iso_unit, after_loss) >= F(9, 10)  # at maintenance (the doc's MM 50 is at entry)
    assert iso.cross_wallet == 900  # the rest of the 1,000 is untouched by the isolated leg
    (cross_unit,) = risk_units(cross)
    assert model.margin_balance(cross_unit, after_loss) == 950 and model.ratio(cross_unit, after_loss) < F(1, 10)


def test_defect_1_numbers():
    """Issue 16 defect 1: ETH cross long 10 @ 3,000 at 10x; the cross wallet drops from 10,000 to 4,000."""
    leg = Leg("ETHUSDT", "BOTH", F(10), F(3000))
    before = risk_units(AccountState(1, F(10000), (leg,)))[0]
    after = risk_units(AccountState(1, F(4000), (leg,)))[0]
    marks = {"ETHUSDT": F(3000)}
    assert [cents(p) for p in M.liquidation_prices(before, "ETHUSDT", marks)] == [Decimal("2008.03")]
    assert [cents(p) for p in M.liquidation_prices(after, "ETHUSDT", marks)] == [Decimal("2610.44")]
    at = {"ETHUSDT": F(2500)}
    assert M.margin_balance(after, at) == -1000 and M.ratio(after, at) is None


def test_defect_2_numbers():
    """Issue 16 defect 2: a cross hedge book with two liquidation prices, and its ratio far above them."""
    legs = (Leg("ETHUSDT", "LONG", F(5000), F(3000)), Leg("ETHUSDT", "SHORT", F(-4000), F(3000)))
    (unit,) = risk_units(AccountState(1, F(1200000), legs))
    marks = {"ETHUSDT": F(3000)}
    assert [cents(p) for p in M.liquidation_prices(unit, "ETHUSDT", marks)] == [Decimal("1952.86"),
                                                                                 Decimal("124956.35")]
    ratios = [round(100 * M.ratio(unit, {"ETHUSDT": F(p)})) for p in (130000, 150000, 200000, 300000)]
    assert ratios == [103, 119, 171, 265]
    assert M.ratio(unit, marks) < F(1, 4)  # 23% at entry: far from a margin call


def test_roots_are_where_the_ratio_crosses_100_percent():
    """Between and around roots the sign of balance − MM is what the roots say (a property of the solver)."""
    legs = (Leg("ETHUSDT", "LONG", F(5000), F(3000)), Leg("ETHUSDT", "SHORT", F(-4000), F(3000)))
    (unit,) = risk_units(AccountState(1, F(1200000), legs))
    low, high = M.liquidation_prices(unit, "ETHUSDT", {"ETHUSDT": F(3000)})
    eps = F(1, 100)
    assert M.shortfall(unit, {"ETHUSDT": low - eps}) < 0 < M.shortfall(unit, {"ETHUSDT": low + eps})
    assert M.shortfall(unit, {"ETHUSDT": high - eps}) > 0 > M.shortfall(unit, {"ETHUSDT": high + eps})
    for p in (low, high):
        assert M.shortfall(unit, {"ETHUSDT": p}) == 0


def test_isolated_and_cross_units_of_one_account():
    state = AccountState(7, F(500), (Leg("BTCUSDT", "BOTH", F(1), F(60000), True, F(6000)),
                                     Leg("ETHUSDT", "LONG", F(1), F(3000)), Leg("ETHUSDT", "SHORT", F(-2), F(3000))))
    units = risk_units(state)
    assert [u.key for u in units] == [(7, "BTCUSDT", "BOTH"), (7,)]
    assert state.wallet_balance == 6500

"""Issue 16's two margin-monitor defects, with the issue's numbers (checked by tests/core/model.py).

Defect 1: opening an isolated position (or adding isolated margin) drains the cross wallet, but
the cross account's liquidation guard stays where it was, so the account sinks past 100%
unliquidated. Defect 2: a cross hedge book has a second liquidation price above the mark that
the monitor never watches.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from exchange_sim.core.fixed import to_fixed as F
from exchange_sim.core.messages import (
    AdjustIsolatedMargin, Liquidation, MarginCall, MarkPrice, PlaceOrder, SetLeverage, SetMarginType,
    SetPositionMode,
)
from tests.core.model import AccountState, Leg, Model, risk_units
from tests.support.core_helpers import Clock, account, book, exchange, mark, money, open_position

MODEL = Model()


def kinds(events, cls):
    return [e for e in events if isinstance(e, cls)]


def eth_cross_long_and_btc_isolated(btc_leverage: int):
    ex, c = exchange(fees=False), Clock()
    a = account(ex, c(), "10000")
    open_position(ex, c, a, "ETHUSDT", "BUY", "10", "3000", 10, isolated=False)
    assert money(ex.positions(a, "ETHUSDT")[0].liquidation_price) == Decimal("2008.03")
    open_position(ex, c, a, "BTCUSDT", "BUY", "0.1", "60000", btc_leverage, isolated=True)
    return ex, c, a


def test_defect_1_isolated_open_drains_the_cross_wallet_and_the_cross_account_is_liquidated():
    ex, c, a = eth_cross_long_and_btc_isolated(1)
    view = ex.account_view(a)
    assert money(view.cross_wallet) == Decimal("4000")
    assert money(ex.positions(a, "ETHUSDT")[0].liquidation_price) == Decimal("2610.44")
    book(ex, c(), "ETHUSDT", "2499", "2501")
    events = mark(ex, c(), "ETHUSDT", "2500")  # margin balance 4,000 − 5,000 = −1,000
    liq = kinds(events, Liquidation)
    assert [(e.symbol, e.isolated) for e in liq] == [("ETHUSDT", False)], "ratio far past 100%, not liquidated"


def test_defect_1_adding_isolated_margin_drains_the_cross_wallet_and_the_cross_account_is_liquidated():
    ex, c, a = eth_cross_long_and_btc_isolated(10)  # isolated wallet 600, cross wallet 9,400
    assert money(ex.account_view(a).cross_wallet) == Decimal("9400")
    ex.apply(AdjustIsolatedMargin(c(), a, "BTCUSDT", F("5400"), True))
    assert money(ex.account_view(a).cross_wallet) == Decimal("4000")
    assert money(ex.positions(a, "ETHUSDT")[0].liquidation_price) == Decimal("2610.44")
    book(ex, c(), "ETHUSDT", "2499", "2501")
    liq = kinds(mark(ex, c(), "ETHUSDT", "2500"), Liquidation)
    assert [(e.symbol, e.isolated) for e in liq] == [("ETHUSDT", False)]


def test_defect_1_the_model_agrees():
    legs = (Leg("ETHUSDT", "BOTH", Fraction(10), Fraction(3000)),)
    (unit,) = risk_units(AccountState(1, Fraction(4000), legs))
    assert MODEL.ratio(unit, {"ETHUSDT": Fraction(2500)}) is None  # margin balance −1,000
    assert MODEL.liquidation_prices(unit, "ETHUSDT", {"ETHUSDT": Fraction(3000)})[0] > 2610


def cross_hedge_book():
    ex, c = exchange(fees=False), Clock()
    a = account(ex, c(), "1200000")
    ex.apply(SetPositionMode(c(), a, True))
    ex.apply(SetLeverage(c(), a, "ETHUSDT", 25, "LONG"))
    ex.apply(SetLeverage(c(), a, "ETHUSDT", 25, "SHORT"))
    ex.apply(MarkPrice(c(), "ETHUSDT", F("3000")))
    # each leg takes exactly 3,000 from a book that shows 3,000 on the side it takes
    book(ex, c(), "ETHUSDT", "2999.99", "3000", qty="10000")
    ex.apply(PlaceOrder(c(), a, "ETHUSDT", "BUY", "LIMIT", qty=F("5000"), price=F("3000"), time_in_force="IOC",
                        position_side="LONG"))
    book(ex, c(), "ETHUSDT", "3000", "3000.01", qty="10000")
    ex.apply(PlaceOrder(c(), a, "ETHUSDT", "SELL", "LIMIT", qty=F("4000"), price=F("3000"), time_in_force="IOC",
                        position_side="SHORT"))
    legs = {p.position_side: (p.qty, p.entry_price) for p in ex.positions(a)}
    assert legs == {"LONG": (F("5000"), F("3000")), "SHORT": (F("-4000"), F("3000"))}
    assert money(ex.account_view(a).cross_wallet) == Decimal("1200000")
    assert money(ex.positions(a)[0].liquidation_price) == Decimal("1952.86")
    return ex, c, a


def test_defect_2_the_model_finds_both_roots_and_the_ratios():
    legs = (Leg("ETHUSDT", "LONG", Fraction(5000), Fraction(3000)),
            Leg("ETHUSDT", "SHORT", Fraction(-4000), Fraction(3000)))
    (unit,) = risk_units(AccountState(1, Fraction(1200000), legs))
    roots = MODEL.liquidation_prices(unit, "ETHUSDT", {"ETHUSDT": Fraction(3000)})
    assert [money(int(r * 10**8)) for r in roots] == [Decimal("1952.86"), Decimal("124956.35")]
    assert [round(100 * MODEL.ratio(unit, {"ETHUSDT": Fraction(p)})) for p in (130000, 150000, 200000, 300000)] \
        == [103, 119, 171, 265]


@pytest.mark.parametrize("price", ["130000", "150000", "200000", "300000"])
def test_defect_2_a_cross_hedge_book_is_liquidated_above_its_upper_root(price):
    ex, c, a = cross_hedge_book()
    book(ex, c(), "ETHUSDT", str(int(price) - 1), price, qty="10000")
    events = mark(ex, c(), "ETHUSDT", price)
    assert kinds(events, Liquidation), f"ratio > 100% at {price}: no liquidation"
    assert kinds(events, MarginCall) == []  # the liquidation is the event


def test_defect_2_a_margin_call_before_the_upper_root():
    """Between 80% and 100% of the upper branch: a margin call, no liquidation."""
    ex, c, a = cross_hedge_book()
    legs = (Leg("ETHUSDT", "LONG", Fraction(5000), Fraction(3000)),
            Leg("ETHUSDT", "SHORT", Fraction(-4000), Fraction(3000)))
    (unit,) = risk_units(AccountState(a, Fraction(1200000), legs))
    (call_low, call_high) = MODEL.roots(unit, "ETHUSDT", {"ETHUSDT": Fraction(3000)}, Fraction(4, 5))
    price = int(call_high) + 100
    ratio = MODEL.ratio(unit, {"ETHUSDT": Fraction(price)})
    assert Fraction(4, 5) < ratio < 1
    book(ex, c(), "ETHUSDT", str(price - 1), str(price), qty="10000")
    events = mark(ex, c(), "ETHUSDT", str(price))
    assert [e.level for e in kinds(events, MarginCall)] == ["MARGIN_CALL"]
    assert not kinds(events, Liquidation)


def test_no_false_alarm_on_the_plain_one_way_case():
    """Control: a cross long alone is liquidated at its liquidation price, not before (passes today)."""
    ex, c = exchange(fees=False), Clock()
    a = account(ex, c(), "10000")
    open_position(ex, c, a, "ETHUSDT", "BUY", "10", "3000", 10, isolated=False)
    book(ex, c(), "ETHUSDT", "2000", "2010")
    assert not kinds(mark(ex, c(), "ETHUSDT", "2008.04"), Liquidation)
    assert kinds(mark(ex, c(), "ETHUSDT", "2008.02"), Liquidation)
    ex.apply(SetMarginType(c(), a, "BTCUSDT", True))  # nothing else in the account

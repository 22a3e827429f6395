"""Regression tests for the margin monitor defects of issue 16, with the issue's numbers.

1. A wallet move the cross account did not see: opening an isolated position (or adding isolated
   margin) debits the cross wallet, so the cross account's liquidation price rises; the monitor
   must re-judge the cross account, not only the isolated position.
2. A ratio curve with two roots: a cross hedge book whose margin ratio reaches 100% both below
   and far above the mark; the monitor must watch both.
"""

from decimal import Decimal

from exchange_sim.core.fixed import SCALE
from exchange_sim.core.fixed import to_fixed as F
from exchange_sim.core.messages import (
    AdjustIsolatedMargin, Liquidation, MarginCall, PlaceOrder, SetLeverage, SetPositionMode,
)
from tests.support.core_helpers import Clock, account, book, exchange, mark, money, open_position


def kinds(events, cls):
    return [e for e in events if isinstance(e, cls)]


def _eth_cross_long(ex, c):
    a = account(ex, c(), "10000")
    open_position(ex, c, a, "ETHUSDT", "BUY", "10", "3000", 10, isolated=False)
    (eth,) = ex.positions(a)
    assert money(eth.liquidation_price) == Decimal("2008.03")
    return a


def test_opening_an_isolated_position_re_judges_the_cross_account():
    ex, c = exchange(fees=False), Clock()
    a = _eth_cross_long(ex, c)
    open_position(ex, c, a, "BTCUSDT", "BUY", "0.1", "60000", 1, isolated=True)
    view = ex.account_view(a)
    assert money(view.cross_wallet) == Decimal("4000")
    eth = next(p for p in view.positions if p.symbol == "ETHUSDT")
    assert money(eth.liquidation_price) == Decimal("2610.44")
    book(ex, c(), "ETHUSDT", "2000", "2001")
    assert not kinds(mark(ex, c(), "ETHUSDT", "2610.45"), Liquidation)
    liq = kinds(mark(ex, c(), "ETHUSDT", "2610.43"), Liquidation)
    assert [(e.symbol, e.isolated) for e in liq] == [("ETHUSDT", False)]


def test_the_issue_case_an_eth_mark_of_2500_liquidates_the_cross_account():
    ex, c = exchange(fees=False), Clock()
    a = _eth_cross_long(ex, c)
    open_position(ex, c, a, "BTCUSDT", "BUY", "0.1", "60000", 1, isolated=True)
    book(ex, c(), "ETHUSDT", "2000", "2001")
    events = mark(ex, c(), "ETHUSDT", "2500")  # margin balance 4,000 − 5,000 = −1,000
    assert [(e.symbol, e.isolated) for e in kinds(events, Liquidation)] == [("ETHUSDT", False)]
    assert [p.symbol for p in ex.positions(a)] == ["BTCUSDT"]  # the isolated position is untouched


def test_adding_isolated_margin_re_judges_the_cross_account():
    ex, c = exchange(fees=False), Clock()
    a = _eth_cross_long(ex, c)
    open_position(ex, c, a, "BTCUSDT", "BUY", "0.1", "60000", 10, isolated=True)  # IM 600
    ex.apply(AdjustIsolatedMargin(c(), a, "BTCUSDT", F("5400"), True))
    view = ex.account_view(a)
    assert money(view.cross_wallet) == Decimal("4000")
    eth = next(p for p in view.positions if p.symbol == "ETHUSDT")
    assert money(eth.liquidation_price) == Decimal("2610.44")
    book(ex, c(), "ETHUSDT", "2000", "2001")
    assert [(e.symbol, e.isolated) for e in kinds(mark(ex, c(), "ETHUSDT", "2500"), Liquidation)] \
        == [("ETHUSDT", False)]


def _hedge_book(ex, c):
    a = account(ex, c(), "1200000")
    ex.apply(SetPositionMode(c(), a, True))
    ex.apply(SetLeverage(c(), a, "ETHUSDT", 25))
    book(ex, c(), "ETHUSDT", "2999.99", "3000", qty="100000")
    mark(ex, c(), "ETHUSDT", "3000")
    ex.apply(PlaceOrder(c(), a, "ETHUSDT", "BUY", "LIMIT", qty=F("5000"), price=F("3000"), time_in_force="IOC",
                        position_side="LONG"))
    book(ex, c(), "ETHUSDT", "3000", "3000.01", qty="100000")
    ex.apply(PlaceOrder(c(), a, "ETHUSDT", "SELL", "LIMIT", qty=F("4000"), price=F("3000"), time_in_force="IOC",
                        position_side="SHORT"))  # market orders are capped below these sizes
    views = ex.positions(a)
    assert [(v.position_side, v.qty) for v in views] == [("LONG", F("5000")), ("SHORT", -F("4000"))]
    assert money(views[0].liquidation_price) == Decimal("1952.86")  # the lower root, as the venue shows it
    return a


def test_cross_hedge_book_is_watched_at_its_upper_root_too():
    ex, c = exchange(fees=False), Clock()
    a = _hedge_book(ex, c)
    events = []
    for price in ("10000", "50000", "80000", "100000", "120000", "124956.34"):
        events += mark(ex, c(), "ETHUSDT", price)
    assert not kinds(events, Liquidation)
    calls = kinds(events, MarginCall)
    assert [e.level for e in calls] == ["WARNING", "MARGIN_CALL"]  # once each on the way up
    assert ex.account_view(a).cross_margin_ratio < SCALE
    events = mark(ex, c(), "ETHUSDT", "124956.36")  # just beyond the upper root (ratio ≥ 100%)
    liq = kinds(events, Liquidation)
    assert liq and liq[0].partial  # the high-tier leg is first cut down a tier
    assert ex.account_view(a).cross_margin_ratio < SCALE


def test_cross_hedge_book_jumping_far_beyond_the_upper_root_liquidates():
    # margin ratios 103%, 119%, 171%, 265% (the model's, test_monitor_regressions): liquidated at
    # once, and no margin call comes with it (the liquidation is the event)
    for price in ("130000", "150000", "200000", "300000"):
        ex, c = exchange(fees=False), Clock()
        _hedge_book(ex, c)
        events = mark(ex, c(), "ETHUSDT", price)
        assert kinds(events, Liquidation), price
        assert kinds(events, MarginCall) == [], price


def test_a_hedge_book_beside_another_cross_symbol_is_watched_upwards_too():
    ex, c = exchange(fees=False), Clock()
    a = _hedge_book(ex, c)
    book(ex, c(), "BTCUSDT", "59999.9", "60000")
    mark(ex, c(), "BTCUSDT", "60000")
    ex.apply(PlaceOrder(c(), a, "BTCUSDT", "BUY", "MARKET", qty=F("0.1"), position_side="LONG"))
    assert {p.symbol for p in ex.positions(a)} == {"BTCUSDT", "ETHUSDT"}
    events = []
    price = 3000
    while price < 130000 and not kinds(events, Liquidation):
        price = min(130000, price * 2)
        events += mark(ex, c(), "ETHUSDT", str(price))
    assert kinds(events, MarginCall) and kinds(events, Liquidation)
    assert ex.account_view(a).cross_margin_ratio < SCALE

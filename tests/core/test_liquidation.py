"""Margin monitor and liquidation engine through the Exchange, with margin-rules.md's numbers."""

from decimal import Decimal

import pytest

from exchange_sim.core.fixed import to_fixed as F
from exchange_sim.core.messages import (
    Adl, AutoAddMargin, InsuranceFundChange, Liquidation, MarginCall, SetAutoAddMargin,
    SetPositionMode, PlaceOrder,
)
from tests.support.core_helpers import Clock, account, book, exchange, mark, money, open_position


def kinds(events, cls):
    return [e for e in events if isinstance(e, cls)]


@pytest.mark.parametrize("side,lev,lp,beyond,short_of", [
    ("BUY", 10, "54221.11", "54221.10", "54221.11"),
    ("BUY", 50, "59045.23", "59045.22", "59045.23"),
    ("SELL", 10, "65721.39", "65721.40", "65721.39"),
    ("SELL", 50, "60945.27", "60945.28", "60945.27"),
])
def test_isolated_liquidates_exactly_at_the_liquidation_price(side, lev, lp, beyond, short_of):
    ex, c = exchange(fees=False), Clock()
    a = account(ex, c(), "100000")
    open_position(ex, c, a, "BTCUSDT", side, "1", "60000", lev, isolated=True)
    assert money(ex.positions(a)[0].liquidation_price) == Decimal(lp)
    book(ex, c(), "BTCUSDT", "50000", "70000")  # liquidity far away: the fund takes over
    assert not kinds(mark(ex, c(), "BTCUSDT", short_of), Liquidation)
    liq = kinds(mark(ex, c(), "BTCUSDT", beyond), Liquidation)
    assert len(liq) == 1 and not liq[0].partial
    assert ex.positions(a) == []


def test_tier_switch_liquidation_price_0_9_btc():
    ex, c = exchange(fees=False), Clock()
    a = account(ex, c(), "100000")
    open_position(ex, c, a, "BTCUSDT", "BUY", "0.9", "60000", 10, isolated=True)
    pos = ex.positions(a)[0]
    assert money(pos.isolated_wallet) == Decimal("5400")
    assert money(pos.liquidation_price) == Decimal("54216.87")
    book(ex, c(), "BTCUSDT", "54100", "54300")
    assert not kinds(mark(ex, c(), "BTCUSDT", "54216.88"), Liquidation)
    assert kinds(mark(ex, c(), "BTCUSDT", "54216.86"), Liquidation)


def test_example_a_fee_takes_the_equity_left_and_the_fund_keeps_the_rest():
    ex, c = exchange(fees=False), Clock()
    a = account(ex, c(), "100000")
    open_position(ex, c, a, "BTCUSDT", "BUY", "1", "60000", 10, isolated=True)
    fund0 = ex.insurance_fund
    book(ex, c(), "BTCUSDT", "54200", "54300")
    events = mark(ex, c(), "BTCUSDT", "54221.10")
    (liq,) = kinds(events, Liquidation)
    assert money(liq.price) == Decimal("54200") and money(liq.bankruptcy_price) == Decimal("54000")
    assert money(liq.fee) == Decimal("200")  # min(1.25% x 54,200 = 677.50, equity left 200)
    assert money(ex.account_view(a).wallet_balance) == Decimal("94000")  # lost the whole 6,000
    assert money(ex.insurance_fund - fund0) == Decimal("200")  # what the fill achieved above 54,000
    assert ex.wallet_invariant_holds()


def test_cross_liquidation_price_moves_with_the_other_legs_mark():
    ex, c = exchange(fees=False), Clock()
    a = account(ex, c(), "10000")
    open_position(ex, c, a, "BTCUSDT", "BUY", "1", "60000", 10, isolated=False)
    open_position(ex, c, a, "ETHUSDT", "SELL", "10", "3000", 10, isolated=False)
    mark(ex, c(), "BTCUSDT", "58000")
    mark(ex, c(), "ETHUSDT", "3150")
    view = ex.account_view(a)
    lps = {p.symbol: money(p.liquidation_price) for p in view.positions}
    assert lps == {"BTCUSDT": Decimal("51835.18"), "ETHUSDT": Decimal("3760.96")}
    assert money(view.margin_balance) == Decimal("6500")
    mark(ex, c(), "ETHUSDT", "3400")
    btc = [p for p in ex.positions(a) if p.symbol == "BTCUSDT"][0]
    assert money(btc.liquidation_price) == Decimal("54357.79")
    # and the monitor acts on it: BTC at 54,357.80 survives, 54,357.78 takes the whole account down
    book(ex, c(), "BTCUSDT", "54000", "54400")
    book(ex, c(), "ETHUSDT", "3390", "3410")
    assert not kinds(mark(ex, c(), "BTCUSDT", "54357.80"), Liquidation)
    liqs = kinds(mark(ex, c(), "BTCUSDT", "54357.78"), Liquidation)
    assert {liq.symbol for liq in liqs} == {"BTCUSDT", "ETHUSDT"}  # the domino
    assert ex.positions(a) == []
    assert ex.account_view(a).wallet_balance >= 0


def test_margin_call_fires_once_and_rearms_after_hysteresis():
    ex, c = exchange(fees=False, warning_ratio=0), Clock()
    a = account(ex, c(), "100000")
    open_position(ex, c, a, "BTCUSDT", "BUY", "1", "60000", 50, isolated=True)  # LP 59,045.23
    # margin ratio = (0.005 m - 50) / (m - 58,800): 59,110 -> 79.2%, 59,100 -> 81.8%
    calls = []
    for m in ["59500", "59200", "59110", "59100", "59090", "59080"]:
        calls += kinds(mark(ex, c(), "BTCUSDT", m), MarginCall)
    assert len(calls) == 1 and calls[0].level == "MARGIN_CALL" and calls[0].symbol == "BTCUSDT"
    assert calls[0].margin_ratio >= F("0.8")
    row = calls[0].positions[0]
    assert row.isolated and row.qty == F("1") and row.maintenance_margin > 0
    # back to 76.75% (above 75% = threshold - hysteresis): not re-armed
    assert not kinds(mark(ex, c(), "BTCUSDT", "59120"), MarginCall)
    assert not kinds(mark(ex, c(), "BTCUSDT", "59100"), MarginCall)
    # below 75% (59,130 -> 74.4%): re-armed, the next crossing calls again
    assert not kinds(mark(ex, c(), "BTCUSDT", "59130"), MarginCall)
    again = kinds(mark(ex, c(), "BTCUSDT", "59100"), MarginCall)
    assert len(again) == 1


@pytest.mark.parametrize("gap,ratio", [("59045.22", "1.0000"), ("59000", "1.2250"), ("58900", "2.4450")])
def test_a_unit_liquidated_in_the_input_gets_no_margin_call(gap, ratio):
    """Example A, 1 BTC at 50x (LP 59,045.23): a gap to or through the LP liquidates at once;
    the liquidation is the event, no MARGIN_CALL nor WARNING comes with it."""
    ex, c = exchange(fees=False), Clock()  # warning level at 60% on
    a = account(ex, c(), "100000")
    open_position(ex, c, a, "BTCUSDT", "BUY", "1", "60000", 50, isolated=True)
    book(ex, c(), "BTCUSDT", "50000", "70000")
    m = Decimal(gap)  # margin ratio = (0.005 m - 50) / (m - 58,800)
    assert round((Decimal("0.005") * m - 50) / (m - 58800), 4) == Decimal(ratio)
    events = mark(ex, c(), "BTCUSDT", gap)
    assert len(kinds(events, Liquidation)) == 1 and ex.positions(a) == []
    assert kinds(events, MarginCall) == []


def test_a_called_unit_is_liquidated_later_without_a_second_call():
    ex, c = exchange(fees=False, warning_ratio=0), Clock()
    a = account(ex, c(), "100000")
    open_position(ex, c, a, "BTCUSDT", "BUY", "1", "60000", 50, isolated=True)
    book(ex, c(), "BTCUSDT", "50000", "70000")
    called = mark(ex, c(), "BTCUSDT", "59100")  # 81.8%: the call
    assert [(e.level, not kinds(called, Liquidation)) for e in kinds(called, MarginCall)] == [("MARGIN_CALL", True)]
    events = mark(ex, c(), "BTCUSDT", "59000")  # 122.5%: the liquidation, alone
    assert len(kinds(events, Liquidation)) == 1 and kinds(events, MarginCall) == []


def test_warning_level_then_margin_call():
    ex, c = exchange(fees=False, warning_ratio="0.6"), Clock()
    a = account(ex, c(), "100000")
    open_position(ex, c, a, "BTCUSDT", "BUY", "1", "60000", 50, isolated=True)
    levels = []
    for m in ["59600", "59200", "59150", "59100", "59090"]:
        levels += [e.level for e in kinds(mark(ex, c(), "BTCUSDT", m), MarginCall)]
    assert levels == ["WARNING", "MARGIN_CALL"]


def test_partial_liquidation_of_a_tier3_position():
    ex, c = exchange(fees=False), Clock()
    a = account(ex, c(), "200000")
    open_position(ex, c, a, "BTCUSDT", "BUY", "15", "60000", 20, isolated=True)  # 900k: tier 3
    pos = ex.positions(a)[0]
    assert ex.instruments["BTCUSDT"].tier_for_notional(900_000 * 10**8).bracket == 3
    lp = pos.liquidation_price
    book(ex, c(), "BTCUSDT", "57000", "57200", qty="100")
    events = mark(ex, c(), "BTCUSDT", str(Decimal(lp - 10**7) / 10**8))
    liqs = kinds(events, Liquidation)
    assert len(liqs) == 1 and liqs[0].partial
    left = ex.positions(a)[0]
    cap = ex.instruments["BTCUSDT"].tiers[1].cap
    assert 0 < left.qty and left.notional <= cap  # reduced to the next lower tier's cap
    assert F("0.8") < left.margin_ratio < F("1")
    assert kinds(events, MarginCall) == []  # above 80% after the cut, but the liquidation was the event
    assert kinds(mark(ex, c(), "BTCUSDT", str(Decimal(lp - 10**7) / 10**8)), MarginCall) == []  # not re-armed
    assert ex.wallet_invariant_holds()


def test_bankruptcy_with_the_fund_covering_a_gap():
    ex, c = exchange(fees=False), Clock()
    a = account(ex, c(), "10000")
    open_position(ex, c, a, "BTCUSDT", "BUY", "1", "60000", 10, isolated=True)
    book(ex, c(), "BTCUSDT", "50000", "50100")  # the market gapped below the bankruptcy price
    fund0 = ex.insurance_fund
    events = mark(ex, c(), "BTCUSDT", "50050")
    (liq,) = kinds(events, Liquidation)
    assert money(liq.bankruptcy_price) == Decimal("54000")
    assert money(ex.account_view(a).wallet_balance) == Decimal("4000")  # only the 6,000 margin lost
    changes = kinds(events, InsuranceFundChange)
    assert [ch.reason for ch in changes] == ["TAKEOVER"]
    assert money(ex.insurance_fund - fund0) == Decimal("-3950")  # took over at 54,000, unwound at 50,050
    assert ex.wallet_invariant_holds()


def test_adl_when_the_fund_is_empty():
    ex, c = exchange(fees=False, insurance_fund=0), Clock()
    loser = account(ex, c(), "10000", "loser")
    winner = account(ex, c(), "10000", "winner")
    small = account(ex, c(), "10000", "small")
    open_position(ex, c, winner, "BTCUSDT", "SELL", "0.6", "60000", 10, isolated=False)
    open_position(ex, c, small, "BTCUSDT", "SELL", "0.6", "60000", 10, isolated=False)
    open_position(ex, c, loser, "BTCUSDT", "BUY", "1", "60000", 10, isolated=True)
    ex.apply(PlaceOrder(c(), winner, "BTCUSDT", "BUY", "LIMIT", qty=F("0.1"), price=F("40000")))
    book(ex, c(), "BTCUSDT", "50000", "50100")
    # add margin to "small" so its margin ratio (and ADL rank) is lower than the winner's
    ex.apply(__import__("exchange_sim.core.messages", fromlist=["Deposit"]).Deposit(c(), small, F("90000")))
    events = mark(ex, c(), "BTCUSDT", "50050")
    adls = kinds(events, Adl)
    assert [(a.account, money(a.qty, 3)) for a in adls] == [(winner, Decimal("0.6")), (small, Decimal("0.4"))]
    assert all(money(a.price) == Decimal("54000") for a in adls)
    assert ex.open_orders(winner) == []  # deleveraged accounts' orders are cancelled
    assert [money(p.qty, 3) for p in ex.positions(small)] == [Decimal("-0.2")]
    assert ex.positions(winner) == []
    assert money(ex.account_view(loser).wallet_balance) == Decimal("4000")
    assert ex.insurance_fund == 0
    assert ex.wallet_invariant_holds()


def test_hedge_mode_legs_each_have_their_own_isolated_liquidation_price():
    ex, c = exchange(fees=False), Clock()
    a = account(ex, c(), "100000")
    ex.apply(SetPositionMode(c(), a, True))
    book(ex, c(), "BTCUSDT", "60000", "60000.1")
    mark(ex, c(), "BTCUSDT", "60000")
    from exchange_sim.core.messages import SetLeverage, SetMarginType
    ex.apply(SetMarginType(c(), a, "BTCUSDT", True))
    ex.apply(SetLeverage(c(), a, "BTCUSDT", 10, "LONG"))
    ex.apply(SetLeverage(c(), a, "BTCUSDT", 50, "SHORT"))
    book(ex, c(), "BTCUSDT", "59999.9", "60000")
    ex.apply(PlaceOrder(c(), a, "BTCUSDT", "BUY", "MARKET", qty=F("1"), position_side="LONG"))
    book(ex, c(), "BTCUSDT", "60000", "60000.1")
    ex.apply(PlaceOrder(c(), a, "BTCUSDT", "SELL", "MARKET", qty=F("1"), position_side="SHORT"))
    lps = {p.position_side: money(p.liquidation_price) for p in ex.positions(a)}
    assert lps == {"LONG": Decimal("54221.11"), "SHORT": Decimal("60945.27")}
    book(ex, c(), "BTCUSDT", "60900", "61000")
    assert not kinds(mark(ex, c(), "BTCUSDT", "60945.27"), Liquidation)
    liqs = kinds(mark(ex, c(), "BTCUSDT", "60945.28"), Liquidation)
    assert [(liq.position_side, liq.isolated) for liq in liqs] == [("SHORT", True)]
    assert [p.position_side for p in ex.positions(a)] == ["LONG"]


def test_cross_hedge_legs_share_one_liquidation_price():
    ex, c = exchange(fees=False), Clock()
    a = account(ex, c(), "10000")
    ex.apply(SetPositionMode(c(), a, True))
    from exchange_sim.core.messages import SetLeverage
    ex.apply(SetLeverage(c(), a, "BTCUSDT", 20))
    book(ex, c(), "BTCUSDT", "59999.9", "60000")
    mark(ex, c(), "BTCUSDT", "60000")
    ex.apply(PlaceOrder(c(), a, "BTCUSDT", "BUY", "MARKET", qty=F("2"), position_side="LONG"))
    ex.apply(PlaceOrder(c(), a, "BTCUSDT", "SELL", "MARKET", qty=F("0.5"), position_side="SHORT"))
    views = ex.positions(a)
    assert len(views) == 2 and views[0].liquidation_price == views[1].liquidation_price > 0


def test_auto_add_margin_moves_initial_margin_from_the_cross_wallet():
    ex, c = exchange(fees=False), Clock()
    a = account(ex, c(), "10000")
    open_position(ex, c, a, "BTCUSDT", "BUY", "1", "60000", 50, isolated=True)
    ex.apply(SetAutoAddMargin(c(), a, "BTCUSDT", True))
    lp0 = ex.positions(a)[0].liquidation_price
    events = []
    for m in ["59500", "59200", "59100", "59080", "59060", "59000", "58900"]:
        events += mark(ex, c(), "BTCUSDT", m)
    adds = kinds(events, AutoAddMargin)
    assert len(adds) == 1 and not kinds(events, Liquidation)
    pos = ex.positions(a)[0]
    assert money(adds[0].amount) == Decimal("1181.20")  # IM at the mark it acted on: 59,060 / 50
    assert pos.isolated_wallet > F("1200") and pos.liquidation_price < lp0
    assert ex.wallet_invariant_holds()


def test_stale_feed_holds_the_monitor():
    from exchange_sim.core.messages import FeedStatus, MarketStatus
    ex, c = exchange(fees=False), Clock()
    a = account(ex, c(), "100000")
    open_position(ex, c, a, "BTCUSDT", "BUY", "1", "60000", 10, isolated=True)
    book(ex, c(), "BTCUSDT", "54100", "54300")
    status = ex.apply(FeedStatus(c(), "BTCUSDT", True, "no data for 10s"))
    assert kinds(status, MarketStatus)
    assert not kinds(mark(ex, c(), "BTCUSDT", "54000"), Liquidation)  # held
    assert ex.positions(a)
    rej = ex.apply(PlaceOrder(c(), a, "BTCUSDT", "SELL", "MARKET", qty=F("0.1")))
    assert rej[0].code == -2010 and "stale" in rej[0].msg
    mark(ex, c(), "BTCUSDT", "55000")  # fresh data arrives, back above LP
    events = ex.apply(FeedStatus(c(), "BTCUSDT", False, "fresh"))
    assert not kinds(events, Liquidation)
    ex.apply(FeedStatus(c(), "BTCUSDT", True, "again"))
    mark(ex, c(), "BTCUSDT", "54000")
    events = ex.apply(FeedStatus(c(), "BTCUSDT", False, "fresh"))
    assert kinds(events, Liquidation)

"""Bad input never changes state: every rejected command leaves everything as it was."""

import pytest

from exchange_sim.core.fixed import to_fixed as F
from exchange_sim.core.messages import (
    AdjustIsolatedMargin, BookSnapshot, CancelAllOrders, CancelOrder, CommandRejected, CreateAccount, Deposit,
    PlaceOrder, ResetAccount, SetAutoAddMargin, SetLeverage, SetMarginType, SetPositionMode, Transfer, Withdraw,
)
from tests.support.core_helpers import Clock, account, exchange, fingerprint, mark

T = 1_800_000_000_000


def world():
    ex, c = exchange(), Clock()
    master = account(ex, c(), "10000", "master")
    sub = account(ex, c(), "1000", "sub", parent=master)
    other = account(ex, c(), "1000", "other")
    ex.apply(BookSnapshot(c(), "BTCUSDT", ((F("59999"), F("5")),), ((F("60000"), F("0.5")),), 1))
    mark(ex, c(), "BTCUSDT", "60000")
    ex.apply(PlaceOrder(c(), master, "BTCUSDT", "BUY", "MARKET", qty=F("0.01")))
    ex.apply(PlaceOrder(c(), master, "BTCUSDT", "BUY", "LIMIT", qty=F("0.01"), price=F("58000")))  # inside PERCENT_PRICE
    ex.apply(SetMarginType(c(), sub, "ETHUSDT", True))
    return ex, master, sub, other


def cases(master, sub, other):
    P = lambda **kw: PlaceOrder(**{"ts": T, "account": master, "symbol": "BTCUSDT", "side": "BUY",  # noqa: E731
                                   "order_type": "LIMIT", "qty": F("0.01"), "price": F("58000"), **kw})
    return [
        (P(symbol="XYZUSDT"), -1121),
        (P(side="UP"), -1117),
        (P(order_type="ICEBERG"), -1116),
        (P(time_in_force="DAY"), -1115),
        (P(qty=F("0.0001")), -4023),
        (P(qty=-F("1")), -4003),
        (P(qty=0), -1102),
        (P(price=F("58000.05")), -4014),
        (P(price=0), -1102),
        (P(price=F("1")), -4013),
        (P(qty=F("1000.001")), -4005),
        (P(qty=F("0.001")), -4164),
        (P(qty=F("10"), price=F("59000")), -2019),
        (P(time_in_force="GTX", price=F("60000")), -5022),
        (P(time_in_force="FOK", price=F("60000"), qty=F("1")), -5021),
        (P(order_type="MARKET", side="SELL", reduce_only=True, qty=F("0.05")), None),  # clamps, accepted
        (P(order_type="MARKET", side="BUY", reduce_only=True, price=0), -2022),
        (P(position_side="LONG"), -4061),
        (P(order_type="STOP_MARKET", price=0, stop_price=F("59000"), working_type="MARK_PRICE"), -2021),
        (P(order_type="STOP_MARKET", price=0, stop_price=0), -1102),
        (P(order_type="TRAILING_STOP_MARKET", price=0, callback_rate=F("20")), -2007),
        (P(order_type="MARKET", price=0, close_position=True), -4136),
        (P(account=999), -2015),
        (CancelOrder(T, master, "BTCUSDT", order_id=12345), -2011),
        (CancelOrder(T, other, "BTCUSDT", order_id=2), -2011),  # another account's order
        (CancelAllOrders(T, master, "XYZUSDT"), -1121),
        (SetMarginType(T, master, "BTCUSDT", False), -4046),
        (SetMarginType(T, master, "BTCUSDT", True), -4047),
        (SetMarginType(T, master, "XYZUSDT", True), -1121),
        (SetPositionMode(T, master, False), -4059),
        (SetPositionMode(T, master, True), -4067),
        (SetLeverage(T, master, "BTCUSDT", 0), -4028),
        (SetLeverage(T, master, "BTCUSDT", 126), -4028),
        (SetLeverage(T, master, "BTCUSDT", 20, "LONG"), -4061),
        (AdjustIsolatedMargin(T, master, "BTCUSDT", F("10"), True), -4049),
        (AdjustIsolatedMargin(T, sub, "ETHUSDT", F("10"), True), -4054),
        (AdjustIsolatedMargin(T, master, "BTCUSDT", 0, True), -1102),
        (SetAutoAddMargin(T, master, "XYZUSDT", True), -1121),
        (Deposit(T, master, 0), -1102),
        (Deposit(T, 999, F("1")), -1102),
        (Withdraw(T, sub, F("5000")), -2018),
        (Transfer(T, sub, other, F("1")), -1102),
        (Transfer(T, sub, master, F("5000")), -2018),
        (Transfer(T, master, master, F("1")), -1102),
        (ResetAccount(T, 999), -1102),
        (CreateAccount(T, "x", parent=999), -1102),
    ]


@pytest.mark.parametrize("index", range(46))
def test_rejected_command_changes_nothing(index):
    ex, master, sub, other = world()
    cmd, code = cases(master, sub, other)[index]
    before = fingerprint(ex)
    events = ex.apply(cmd)
    if code is None:
        assert not any(isinstance(e, CommandRejected) for e in events)
        return
    assert len(events) == 1 and isinstance(events[0], CommandRejected), events
    assert events[0].code == code, events[0]
    assert events[0].msg
    assert fingerprint(ex) == before


def test_case_count():
    assert len(cases(1, 2, 3)) == 46

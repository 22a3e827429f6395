"""Accounts and sub-accounts, wallets, transfers, funding, modes: the ledger invariant holds."""

from decimal import Decimal

from exchange_sim.core.fixed import to_fixed as F
from exchange_sim.core.messages import (
    AdjustIsolatedMargin, BalanceUpdate, Deposit, Funding, FundingPayment, ResetAccount, SetLeverage,
    SetPositionMode, Transfer, Withdraw,
)
from tests.support.core_helpers import Clock, account, exchange, mark, money, open_position


def test_master_and_sub_accounts_transfer_both_ways():
    ex, c = exchange(), Clock()
    master = account(ex, c(), "10000", "teacher")
    students = [account(ex, c(), "0", f"s{i}", parent=master) for i in range(3)]
    assert ex.children(master) == students
    for s in students:
        events = ex.apply(Transfer(c(), master, s, F("1000")))
        assert [type(e) for e in events] == [BalanceUpdate, BalanceUpdate]
    ex.apply(Transfer(c(), students[0], master, F("250")))
    ex.apply(Transfer(c(), students[1], students[2], F("100")))  # siblings through their master
    wallets = [money(ex.account_view(a).wallet_balance) for a in [master] + students]
    assert wallets == [Decimal("7250"), Decimal("750"), Decimal("900"), Decimal("1100")]
    ex.apply(Deposit(c(), master, F("50")))
    ex.apply(Withdraw(c(), master, F("300")))
    assert money(ex.account_view(master).wallet_balance) == Decimal("7000")
    assert ex.wallet_invariant_holds()


def test_funding_longs_pay_shorts_receive_at_mark():
    ex, c = exchange(fees=False), Clock()
    long_, short = account(ex, c(), "10000"), account(ex, c(), "10000")
    open_position(ex, c, long_, "BTCUSDT", "BUY", "1", "60000", 10, isolated=False)
    open_position(ex, c, short, "BTCUSDT", "SELL", "1", "60000", 10, isolated=True)
    mark(ex, c(), "BTCUSDT", "61000")
    events = ex.apply(Funding(c(), "BTCUSDT", F("0.0001")))
    pays = {e.account: money(e.amount) for e in events if isinstance(e, FundingPayment)}
    assert pays == {long_: Decimal("-6.10"), short: Decimal("6.10")}
    assert money(ex.positions(short)[0].isolated_wallet) == Decimal("6006.10")  # isolated: into its margin
    assert [i.income_type for i in ex.income(long_)][-1] == "FUNDING_FEE"
    assert ex.wallet_invariant_holds()
    # only positions open at the settlement instant pay
    flat = account(ex, c(), "1000")
    assert flat not in {e.account for e in ex.apply(Funding(c(), "BTCUSDT", F("0.0003")))
                        if isinstance(e, FundingPayment)}


def test_isolated_margin_add_and_reduce():
    ex, c = exchange(fees=False), Clock()
    a = account(ex, c(), "10000")
    open_position(ex, c, a, "BTCUSDT", "BUY", "1", "60000", 10, isolated=True)
    lp0 = ex.positions(a)[0].liquidation_price
    ex.apply(AdjustIsolatedMargin(c(), a, "BTCUSDT", F("1000"), True))
    pos = ex.positions(a)[0]
    assert money(pos.isolated_wallet) == Decimal("7000") and pos.liquidation_price < lp0 and pos.leverage == 10
    assert ex.apply(AdjustIsolatedMargin(c(), a, "BTCUSDT", F("1500"), False))[0].code == -4051
    ex.apply(AdjustIsolatedMargin(c(), a, "BTCUSDT", F("1000"), False))
    assert ex.positions(a)[0].liquidation_price == lp0
    assert ex.apply(AdjustIsolatedMargin(c(), a, "BTCUSDT", F("5000"), True))[0].code == -4050
    assert ex.wallet_invariant_holds()


def test_leverage_capped_by_position_tier_and_isolated_reduction_rule():
    ex, c = exchange(fees=False), Clock()
    a = account(ex, c(), "100000")
    open_position(ex, c, a, "BTCUSDT", "BUY", "1", "60000", 20, isolated=True)
    assert ex.apply(SetLeverage(c(), a, "BTCUSDT", 125))[0].code == -2027  # 60k > 50k cap at 125x
    assert ex.apply(SetLeverage(c(), a, "BTCUSDT", 5))[0].code == -4161  # IM 12k > margin 3k
    assert ex.apply(SetLeverage(c(), a, "BTCUSDT", 50))[0].setting == "leverage"


def test_position_mode_and_reset():
    ex, c = exchange(), Clock()
    a = account(ex, c(), "5000")
    open_position(ex, c, a, "BTCUSDT", "BUY", "0.1", "60000", 10, isolated=False)
    assert ex.apply(SetPositionMode(c(), a, True))[0].code == -4068
    ex.apply(ResetAccount(c(), a))
    assert ex.positions(a) == [] and money(ex.account_view(a).wallet_balance) == Decimal("5000")
    assert ex.apply(SetPositionMode(c(), a, True))[0].value == "true"
    assert ex.wallet_invariant_holds()


def test_snapshot_restore_round_trip():
    ex, c = exchange(), Clock()
    a = account(ex, c(), "5000")
    open_position(ex, c, a, "BTCUSDT", "BUY", "0.1", "60000", 10, isolated=True)
    copy = type(ex).restore(ex.snapshot())
    assert copy.account_view(a) == ex.account_view(a)
    ts = c()
    assert copy.apply(Funding(ts, "BTCUSDT", F("0.0001"))) == ex.apply(Funding(ts, "BTCUSDT", F("0.0001")))

"""The spot (funding) wallet: universal transfers between it and the futures wallet, in the core.

Numbers worked by hand: a cross 1 BTC long at 60,000 and 10x holds 6,000 of initial margin, so
with a 10,000 wallet at mark = entry the most that may leave futures is 4,000.
"""

from decimal import Decimal

from exchange_sim.core.exchange import Exchange
from exchange_sim.core.fixed import to_fixed as F
from exchange_sim.core.messages import (
    MAIN_UMFUTURE, UMFUTURE_MAIN, BalanceUpdate, CommandRejected, ResetAccount, UniversalTransfer, WalletTransfer,
)
from tests.support.core_helpers import Clock, account, exchange, money, open_position


def _totals(ex, aid) -> tuple[Decimal, Decimal]:
    return money(ex.account_view(aid).wallet_balance), money(ex.spot_wallet(aid))


def test_transfers_move_money_between_the_two_wallets_and_keep_both_ledgers():
    ex, c = exchange(), Clock()
    a = account(ex, c(), "1000")
    assert _totals(ex, a) == (Decimal("1000"), Decimal("0"))  # the spot wallet starts empty
    out = ex.apply(UniversalTransfer(c(), a, UMFUTURE_MAIN, F("400")))
    assert [type(e) for e in out] == [BalanceUpdate, WalletTransfer]
    assert out[0].reason == "WITHDRAW" and money(out[0].change) == Decimal("-400")
    done = out[1]
    assert (done.kind, money(done.amount), money(done.spot_wallet)) == (UMFUTURE_MAIN, Decimal("400"), Decimal("400"))
    income = ex.income(a)[-1]
    assert (income.income_type, money(income.amount), income.tran_id) == ("TRANSFER", Decimal("-400"), done.tran_id)
    back = ex.apply(UniversalTransfer(c(), a, MAIN_UMFUTURE, F("150")))
    assert back[0].reason == "DEPOSIT" and back[1].tran_id > done.tran_id
    assert _totals(ex, a) == (Decimal("750"), Decimal("250"))
    assert ex.wallet_invariant_holds()


def test_a_transfer_the_source_cannot_pay_is_refused_with_the_venue_code_and_changes_nothing():
    ex, c = exchange(fees=False), Clock()
    a = account(ex, c(), "10000")
    open_position(ex, c, a, "BTCUSDT", "BUY", "1", "60000", 10, isolated=False)
    ex.apply(UniversalTransfer(c(), a, UMFUTURE_MAIN, F("1000")))
    before = ex.snapshot()
    for kind, amount in ((MAIN_UMFUTURE, "1000.00000001"), (UMFUTURE_MAIN, "3000.00000001"),
                         (MAIN_UMFUTURE, "0"), ("MAIN_MARGIN", "1")):
        (refused,) = ex.apply(UniversalTransfer(c(), a, kind, F(amount)))
        assert isinstance(refused, CommandRejected)
        assert refused.code == {"1000.00000001": -5002, "3000.00000001": -5002, "0": -1102, "1": -1130}[amount]
    (unknown,) = ex.apply(UniversalTransfer(c(), 99, UMFUTURE_MAIN, F("1")))
    assert unknown.code == -1102
    assert ex.snapshot() == before
    ex.apply(UniversalTransfer(c(), a, UMFUTURE_MAIN, F("3000")))  # exactly the max withdraw left
    assert _totals(ex, a) == (Decimal("6000"), Decimal("4000"))
    assert ex.wallet_invariant_holds()


def test_a_classroom_reset_brings_the_spot_wallet_back_and_a_snapshot_keeps_it():
    ex, c = exchange(), Clock()
    a = account(ex, c(), "1000")
    ex.apply(UniversalTransfer(c(), a, UMFUTURE_MAIN, F("300")))
    restored = Exchange.restore(ex.snapshot())
    assert _totals(restored, a) == (Decimal("700"), Decimal("300")) and restored.wallet_invariant_holds()
    ex.apply(ResetAccount(c(), a, F("500")))
    assert _totals(ex, a) == (Decimal("500"), Decimal("0"))
    assert ex.wallet_invariant_holds()

"""The ledger alone: it books fills and money moves, keeps wallet == ledger, and lists every change."""

from decimal import Decimal

from exchange_sim.core.accounts import Account
from exchange_sim.core.fixed import to_fixed as F
from exchange_sim.core.ledger import Ledger
from tests.support.core_helpers import money


def _ledger() -> tuple[Ledger, Account]:
    ledger = Ledger(["BTCUSDT"])
    acct = Account(1, "a", None, "", "", 0)
    ledger.add_account(acct)
    ledger.credit(acct, F("10000"), "deposits", "DEPOSIT", "TRANSFER", 1)
    return ledger, acct


def test_an_isolated_position_takes_its_margin_from_the_cross_wallet_and_gives_it_back_pro_rata():
    ledger, acct = _ledger()
    assert ledger.take_changes() == [(acct, None)]
    pos = ledger.open_position(acct, "BTCUSDT", "BOTH", True, 10, False)
    ledger.apply_fill(acct, pos, F("1"), F("60000"), 2)  # margin-rules.md example A: IM 6,000
    assert (money(acct.cross_wallet), money(pos.isolated_wallet)) == (Decimal("4000"), Decimal("6000"))
    assert ledger.take_changes() == [(acct, pos)]  # the cross wallet moved: the monitor must hear of it
    realized = ledger.apply_fill(acct, pos, F("-0.5"), F("61000"), 3)
    assert money(realized) == Decimal("500")
    assert (money(acct.cross_wallet), money(pos.isolated_wallet)) == (Decimal("7500"), Decimal("3000"))
    assert ledger.wallet_invariant_holds()
    ledger.apply_fill(acct, pos, F("-0.5"), F("59000"), 4)
    assert acct.positions == {} and ledger.positions_by_symbol["BTCUSDT"] == {}
    assert money(acct.wallet_balance) == Decimal("10000") and ledger.wallet_invariant_holds()


def test_every_money_move_is_listed_and_keeps_the_ledger_identity():
    ledger, acct = _ledger()
    pos = ledger.open_position(acct, "BTCUSDT", "BOTH", True, 10, False)
    ledger.apply_fill(acct, pos, F("0.1"), F("60000"), 2)
    ledger.take_changes()
    ledger.move_isolated(acct, pos, F("100"))
    ledger.charge_fee(acct, F("2.4"))
    ledger.settle_funding(acct, pos, F("0.0001"), F("60000"), -F("0.6"), 3)
    ledger.clearance_fee(acct, F("1"), "BTCUSDT", 4)
    ledger.insurance_top_up(acct, F("5"), 5)
    assert ledger.take_changes() == [(acct, pos), (acct, None), (acct, pos), (acct, None), (acct, None)]
    assert ledger.take_changes() == []
    assert ledger.wallet_invariant_holds()
    assert money(acct.wallet_balance) == Decimal("10000") - Decimal("2.4") - Decimal("0.6") - 1 + 5

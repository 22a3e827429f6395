"""The fund service's grants and sweeps of a core's insurance fund float (core/venue_fund.py),
with margin-rules.md's gap example (a takeover at 54,000 unwound at 50,050: the fund pays 3,950)."""

from decimal import Decimal

from exchange_sim.core.exchange import Exchange
from exchange_sim.core.fixed import to_fixed as F
from exchange_sim.core.messages import (
    Adl, CommandRejected, InsuranceFundChange, InsuranceFundTransfer, InsuranceFundTransferred, Liquidation,
)
from exchange_sim.core.venue_fund import FLOAT_INSUFFICIENT, TRANSFER_DUPLICATE, TRANSFER_INVALID
from tests.support.core_helpers import Clock, account, book, exchange, mark, money, open_position


def gap_liquidation(float_balance: str):
    """A 10x isolated long of 1 BTC at 60,000 and an opposite profitable short, the book gapped to
    50,000/50,100, a fund float granted ``float_balance``; returns the events of the mark at 50,050."""
    ex, c = exchange(fees=False, insurance_fund=0), Clock()
    loser = account(ex, c(), "10000", "loser")
    winner = account(ex, c(), "10000", "winner")
    open_position(ex, c, winner, "BTCUSDT", "SELL", "1", "60000", 10, isolated=False)
    open_position(ex, c, loser, "BTCUSDT", "BUY", "1", "60000", 10, isolated=True)
    (granted,) = ex.apply(InsuranceFundTransfer(c(), F(float_balance), "grant-1"))
    assert isinstance(granted, InsuranceFundTransferred) and granted.balance == F(float_balance)
    book(ex, c(), "BTCUSDT", "50000", "50100")
    return ex, mark(ex, c(), "BTCUSDT", "50050"), winner


def test_a_granted_float_covers_the_takeover_that_an_empty_one_would_adl():
    ex, events, winner = gap_liquidation("3950")
    assert [(ch.reason, money(ch.change)) for ch in events if isinstance(ch, InsuranceFundChange)] == [
        ("TAKEOVER", Decimal("-3950"))]
    assert not [e for e in events if isinstance(e, Adl)]
    assert ex.insurance_fund == 0 and ex.positions(winner)  # the winner keeps its short
    assert ex.wallet_invariant_holds()


def test_a_float_one_cent_short_deleverages_instead():
    ex, events, winner = gap_liquidation("3949.99")
    (adl,) = [e for e in events if isinstance(e, Adl)]
    assert (adl.account, money(adl.qty, 3), money(adl.price)) == (winner, Decimal("1"), Decimal("54000"))
    assert [e for e in events if isinstance(e, Liquidation)]
    assert money(ex.insurance_fund) == Decimal("3949.99")  # untouched: ADL took it all
    assert ex.wallet_invariant_holds()


def rejection(events) -> tuple[int, str]:
    (only,) = events
    assert isinstance(only, CommandRejected) and only.command == "InsuranceFundTransfer"
    return only.code, only.msg


def test_transfers_are_idempotent_by_ref_and_a_sweep_never_overdraws():
    ex, c = exchange(insurance_fund="100"), Clock()
    before = ex.snapshot()
    assert rejection(ex.apply(InsuranceFundTransfer(c(), 0, "zero"))) == TRANSFER_INVALID
    assert rejection(ex.apply(InsuranceFundTransfer(c(), F("1"), ""))) == TRANSFER_INVALID
    assert rejection(ex.apply(InsuranceFundTransfer(c(), -F("100.01"), "sweep-1"))) == FLOAT_INSUFFICIENT
    assert ex.snapshot() == before  # refusals change nothing, not even the clock
    (swept,) = ex.apply(InsuranceFundTransfer(c(), -F("60"), "sweep-1"))  # the same ref, now it fits
    assert (swept.amount, swept.balance) == (-F("60"), F("40"))
    assert rejection(ex.apply(InsuranceFundTransfer(c(), -F("10"), "sweep-1"))) == TRANSFER_DUPLICATE
    (granted,) = ex.apply(InsuranceFundTransfer(c(), F("25"), "grant-2"))
    assert granted.balance == F("65") == ex.insurance_fund
    restored = Exchange.restore(ex.snapshot())  # the refs are core state: a standby refuses them too
    assert rejection(restored.apply(InsuranceFundTransfer(c(), F("25"), "grant-2"))) == TRANSFER_DUPLICATE
    assert restored.insurance_fund == F("65")


def test_replaying_the_inputs_gives_the_same_float():
    c = Clock()
    inputs = [InsuranceFundTransfer(c(), F("5"), "a"), InsuranceFundTransfer(c(), F("5"), "a"),
              InsuranceFundTransfer(c(), -F("7"), "b"), InsuranceFundTransfer(c(), -F("7"), "c")]
    logs, states = [], []
    for _ in range(2):
        ex = exchange(insurance_fund=0)
        logs.append([ex.apply(msg) for msg in inputs])
        states.append((ex.insurance_fund, dict(ex.venue_fund.applied)))
    assert logs[0] == logs[1]
    assert states[0] == states[1] == (F("5"), {"a": F("5")})  # the duplicate and both overdrafts refused
    assert [type(events[0]).__name__ for events in logs[0]] == [
        "InsuranceFundTransferred", "CommandRejected", "CommandRejected", "CommandRejected"]

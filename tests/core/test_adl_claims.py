"""Venue-wide ADL, the core's side (core/adl_claims.py): a claim on one core, deleveraged on another
in the venue's rank order, gives the single node's ADL (test_liquidation's empty-fund example:
a 10x isolated long of 1 BTC at 60,000 bankrupt at 54,000 with the book gapped to 50,000)."""

from decimal import Decimal

from exchange_sim.core.adl_claims import ADL_REF_DUPLICATE, CLAIM_UNKNOWN
from exchange_sim.core.fixed import to_fixed as F
from exchange_sim.core.messages import (
    Adl, AdlClaim, AdlClaimClosed, AutoDeleverage, CloseAdlClaim, CommandRejected, Deposit, InsuranceFundChange,
)
from tests.support.core_helpers import Clock, account, book, exchange, mark, money, open_position


def winners(ex, c):
    """Two profitable shorts; "small" has more margin, so a lower rank (as in test_liquidation)."""
    winner = account(ex, c(), "10000", "winner")
    small = account(ex, c(), "10000", "small")
    open_position(ex, c, winner, "BTCUSDT", "SELL", "0.6", "60000", 10, isolated=False)
    open_position(ex, c, small, "BTCUSDT", "SELL", "0.6", "60000", 10, isolated=False)
    ex.apply(Deposit(c(), small, F("90000")))
    return winner, small


def the_loser(ex, c):
    loser = account(ex, c(), "10000", "loser")
    open_position(ex, c, loser, "BTCUSDT", "BUY", "1", "60000", 10, isolated=True)
    return loser


def gap(ex, c, t):
    book(ex, t, "BTCUSDT", "50000", "50100")
    return mark(ex, t + 1, "BTCUSDT", "50050")


def test_a_claim_deleveraged_on_another_core_in_venue_rank_order_is_the_single_nodes_adl():
    single, c1 = exchange(fees=False, insurance_fund=0), Clock()
    w1, s1 = winners(single, c1)
    the_loser(single, c1)
    local = [(e.account, e.qty, e.price) for e in gap(single, c1, c1()) if isinstance(e, Adl)]

    a, ca = exchange(fees=False, insurance_fund=0, venue_adl=True), Clock()  # the loser's shard
    b, cb = exchange(fees=False, insurance_fund=0, venue_adl=True), Clock()  # the winners' shard
    w2, s2 = winners(b, cb)
    loser = the_loser(a, ca)
    t = max(ca(), cb()) + 10
    events = gap(a, ca, t)
    gap(b, cb, t)
    assert not [e for e in events if isinstance(e, Adl)]
    (claim,) = [e for e in events if isinstance(e, AdlClaim)]
    assert (claim.account, claim.side, money(claim.qty, 3), money(claim.price)) == (loser, "BUY", Decimal("1"),
                                                                                   Decimal("54000"))
    assert money(a.account_view(loser).wallet_balance) == Decimal("4000") and a.positions(loser) == []
    # the coordinator's part: the venue's candidates (here all on b), in rank order
    ranked = b.liquidation.adl_candidates("BTCUSDT", False)
    assert [r[1] for r in ranked] == [w2, s2]
    left, parts = claim.qty, []
    for k, (_, aid, side, pos) in enumerate(ranked, 1):
        take = min(left, abs(pos.qty))
        out = b.apply(AutoDeleverage(t + 2, aid, "BTCUSDT", claim.side, side, take, claim.price, loser,
                                     f"a:{claim.claim}:{k}"))
        parts += [(e.account, e.qty, e.price) for e in out if isinstance(e, Adl)]
        left -= b.liquidation.claims.parts[f"a:{claim.claim}:{k}"]
        if not left:
            break
    names = {w2: w1, s2: s1}
    assert [(names[aid], q, p) for aid, q, p in parts] == local  # the single node's ADL, to the unit
    assert [money(p.qty, 3) for p in b.positions(s2)] == [Decimal("-0.2")] and b.positions(w2) == []
    (closed,) = a.apply(CloseAdlClaim(t + 3, claim.claim, 0))
    assert isinstance(closed, AdlClaimClosed) and (closed.qty, closed.change) == (0, 0)
    assert a.insurance_fund == 0 and not a.liquidation.claims.open_claims
    assert a.wallet_invariant_holds() and b.wallet_invariant_holds()


def test_refs_are_idempotent_and_a_leftover_is_taken_over_by_the_float():
    a, c = exchange(fees=False, insurance_fund=0, venue_adl=True), Clock()
    winner, _ = winners(a, c)
    loser = the_loser(a, c)
    t = c() + 10
    (claim,) = [e for e in gap(a, c, t) if isinstance(e, AdlClaim)]  # the winners are here, but venue-wide
    ref = f"s0:{claim.claim}:1"
    first = a.apply(AutoDeleverage(t + 2, winner, "BTCUSDT", "BUY", "BOTH", F("0.6"), claim.price, loser, ref))
    assert [money(e.qty, 3) for e in first if isinstance(e, Adl)] == [Decimal("0.6")]
    again = a.apply(AutoDeleverage(t + 3, winner, "BTCUSDT", "BUY", "BOTH", F("0.6"), claim.price, loser, ref))
    assert [(e.code, e.msg) for e in again if isinstance(e, CommandRejected)] == [ADL_REF_DUPLICATE]
    # a position gone meanwhile: the part closes nothing, and says so
    assert a.apply(AutoDeleverage(t + 4, winner, "BTCUSDT", "BUY", "BOTH", F("0.4"), claim.price, loser,
                                  f"s0:{claim.claim}:2")) == []
    assert a.liquidation.claims.parts == {ref: F("0.6"), f"s0:{claim.claim}:2": 0}
    # nothing else on the venue: the remaining 0.4 is taken over at 54,000 and unwound at 50,050
    out = a.apply(CloseAdlClaim(t + 5, claim.claim, F("0.4")))
    (change,) = [e for e in out if isinstance(e, InsuranceFundChange)]
    assert (change.reason, money(change.change)) == ("TAKEOVER", Decimal("-1580"))  # 0.4 x (50,050 - 54,000)
    assert a.apply(CloseAdlClaim(t + 6, claim.claim, 0))[0].msg == CLAIM_UNKNOWN[1]
    assert money(a.insurance_fund) == Decimal("-1580")

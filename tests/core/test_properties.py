"""Property tests over random order and price sequences (hypothesis).

- every account's wallet equals its ledger, to the unit;
- no wallet goes below zero except as the liquidation engine decides (it tops them to zero);
- the insurance fund plus all wallets change only by fees, funding and realized PnL;
- every liquidation caused by a mark happened at a mark at or beyond that position's
  liquidation price (computed just before the mark moved);
- replaying the same input gives the same output, byte for byte.
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_sim.core.fixed import SCALE
from exchange_sim.core.fixed import to_fixed as F
from exchange_sim.core.messages import (
    AdjustIsolatedMargin, BookSnapshot, CancelAllOrders, CreateAccount, Funding, FundingPayment,
    InsuranceFundChange, Liquidation, MarkPrice, OrderUpdate, PlaceOrder, SetAutoAddMargin, SetLeverage,
    SetMarginType, Trade, dumps,
)
from tests.support.core_helpers import exchange

SYMBOLS = ("BTCUSDT", "ETHUSDT")
START = {"BTCUSDT": F("60000"), "ETHUSDT": F("3000")}
LOT = {"BTCUSDT": F("0.001"), "ETHUSDT": F("0.01")}
ACCOUNTS = (1, 2, 3, 4)

mark_op = st.tuples(st.just("mark"), st.sampled_from(SYMBOLS), st.integers(-1500, 1500))
order_op = st.tuples(st.just("order"), st.sampled_from(ACCOUNTS), st.sampled_from(SYMBOLS),
                     st.sampled_from(["BUY", "SELL"]), st.sampled_from(["MARKET", "MARKET", "LIMIT", "STOP_MARKET"]),
                     st.integers(2, 400), st.integers(-300, 300), st.sampled_from((False, False, True)))
other_op = st.one_of(
    st.tuples(st.just("leverage"), st.sampled_from(ACCOUNTS), st.sampled_from(SYMBOLS),
              st.sampled_from([1, 3, 10, 20, 50, 75, 100, 125])),
    st.tuples(st.just("mode"), st.sampled_from(ACCOUNTS), st.sampled_from(SYMBOLS), st.booleans()),
    st.tuples(st.just("funding"), st.sampled_from(SYMBOLS), st.integers(-300, 300)),
    st.tuples(st.just("trade"), st.sampled_from(SYMBOLS), st.integers(-50, 50), st.integers(1, 50),
              st.booleans()),
    st.tuples(st.just("cancel"), st.sampled_from(ACCOUNTS), st.sampled_from(SYMBOLS)),
    st.tuples(st.just("margin"), st.sampled_from(ACCOUNTS), st.sampled_from(SYMBOLS), st.integers(1, 500),
              st.booleans()),
    st.tuples(st.just("autoadd"), st.sampled_from(ACCOUNTS), st.sampled_from(SYMBOLS)),
)
op = st.integers(0, 99).flatmap(lambda r: mark_op if r < 40 else order_op if r < 85 else other_op)


def to_messages(ex, ts, o):
    """Turn an abstract op into core messages, relative to the exchange's current marks."""
    kind = o[0]
    if kind == "mark":
        _, sym, bp = o
        tick = ex.instruments[sym].tick_size
        m = max(tick * 100, ex.markets[sym].mark * (10000 + bp) // 10000 // tick * tick)
        return [BookSnapshot(ts, sym, ((m - tick, F("50")), (m - 50 * tick, F("50"))),
                             ((m + tick, F("50")), (m + 50 * tick, F("50"))), ts), MarkPrice(ts, sym, m)]
    if kind == "order":
        _, aid, sym, side, typ, lots, off, reduce = o
        mark = ex.markets[sym].mark
        tick = ex.instruments[sym].tick_size
        price = (mark + off * tick * 10) // tick * tick
        if typ == "MARKET":
            return [PlaceOrder(ts, aid, sym, side, typ, qty=lots * LOT[sym], reduce_only=reduce)]
        if typ == "LIMIT":
            return [PlaceOrder(ts, aid, sym, side, typ, qty=lots * LOT[sym], price=price, reduce_only=reduce)]
        return [PlaceOrder(ts, aid, sym, side, typ, qty=lots * LOT[sym], stop_price=price, reduce_only=reduce,
                           working_type="MARK_PRICE")]
    if kind == "leverage":
        return [SetLeverage(ts, o[1], o[2], o[3])]
    if kind == "mode":
        return [SetMarginType(ts, o[1], o[2], o[3])]
    if kind == "funding":
        return [Funding(ts, o[1], o[2] * SCALE // 100000)]
    if kind == "trade":
        _, sym, off, lots, buy = o
        tick = ex.instruments[sym].tick_size
        return [Trade(ts, sym, ex.markets[sym].mark + off * tick, lots * LOT[sym], "BUY" if buy else "SELL")]
    if kind == "cancel":
        return [CancelAllOrders(ts, o[1], o[2])]
    if kind == "margin":
        return [AdjustIsolatedMargin(ts, o[1], o[2], o[3] * SCALE, o[4])]
    return [SetAutoAddMargin(ts, o[1], o[2], True)]


def fresh():
    ex = exchange(insurance_fund="2000")
    ts = 1
    inputs = []
    for aid in ACCOUNTS:
        inputs.append(CreateAccount(ts, f"a{aid}", None, F(["1000", "5000", "20000", "300"][aid - 1])))
    for sym in SYMBOLS:
        m, tick = START[sym], ex.instruments[sym].tick_size
        inputs.append(BookSnapshot(ts, sym, ((m - tick, F("50")),), ((m + tick, F("50")),), 1))
        inputs.append(MarkPrice(ts, sym, m))
    for msg in inputs:
        ex.apply(msg)
    return ex, inputs


def positions(ex):
    """Signed position per (account, symbol) (one-way mode: one leg each)."""
    return {(p.account, p.symbol): p.qty for aid in ACCOUNTS for p in ex.positions(aid)}


def check_reduce_only(msg, events, before, after):
    """A reduce-only order never opens or grows a position, nor flips it; one that would is refused or cut."""
    reduce_fills = {(e.account, e.symbol) for e in events
                    if isinstance(e, OrderUpdate) and e.exec_type == "TRADE" and e.reduce_only}
    other_fills = {(e.account, e.symbol) for e in events
                   if isinstance(e, OrderUpdate) and e.exec_type == "TRADE" and not e.reduce_only}
    for key in reduce_fills - other_fills:
        old, new = before.get(key, 0), after.get(key, 0)
        assert old != 0 and abs(new) < abs(old) and new * old >= 0, (msg, key, old, new)
    if isinstance(msg, PlaceOrder) and msg.reduce_only:
        key = (msg.account, msg.symbol)
        old, new = before.get(key, 0), after.get(key, 0)
        assert abs(new) <= abs(old) and new * old >= 0, (msg, old, new)
        if old == 0:
            assert not any(isinstance(e, OrderUpdate) and e.exec_type == "TRADE" and e.account == msg.account
                           for e in events), msg


def leg_lp(ex, aid, sym):
    acct = ex.accounts[aid]
    return {(p.side, p.isolated): (p.qty, ex.liquidation_price_of(acct, p)) for p in acct.positions.values()
            if p.symbol == sym and p.qty}


@settings(max_examples=int(__import__("os").environ.get("EXSIM_PROPERTY_EXAMPLES", "150")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=1, max_size=60))
def test_random_sequences_keep_the_books_straight(ops):
    ex, inputs = fresh()
    fund0 = ex.insurance_fund
    wallets0 = sum(ex.accounts[a].wallet_balance for a in ACCOUNTS)
    realized = funding = fees = takeover = fund_changes = 0
    log = []
    ts = 10
    for o in ops:
        for msg in to_messages(ex, ts, o):
            ts += 1
            before = {(aid, msg.symbol): leg_lp(ex, aid, msg.symbol) for aid in ACCOUNTS} \
                if isinstance(msg, MarkPrice) else None
            inputs.append(msg)
            held = positions(ex)
            events = ex.apply(msg)
            log.extend(dumps(e) for e in events)
            check_reduce_only(msg, events, held, positions(ex))
            for e in events:
                if isinstance(e, OrderUpdate):
                    realized += e.realized_pnl
                    fees += e.commission
                elif isinstance(e, FundingPayment):
                    funding += e.amount
                elif isinstance(e, InsuranceFundChange):
                    fund_changes += e.change
                    if e.reason == "TAKEOVER":
                        takeover += e.change
                elif isinstance(e, Liquidation) and before is not None:
                    for (side, iso), (qty, lp) in before[(e.account, msg.symbol)].items():
                        if iso and side != e.position_side:
                            continue
                        if lp > 0 and (iso or e.symbol == msg.symbol):
                            assert (msg.mark <= lp) if qty > 0 else (msg.mark >= lp), (e, lp)
            assert ex.wallet_invariant_holds()
            for aid in ACCOUNTS:
                acct = ex.accounts[aid]
                assert acct.cross_wallet >= 0 or any(p.qty for p in acct.positions.values()), acct.cross_wallet
                assert all(p.isolated_wallet >= 0 for p in acct.positions.values())
                counted: dict = {}  # the open-order caps' counters against the open orders themselves
                for order in acct.open_orders.values():
                    counted[(order.symbol, order.conditional)] = counted.get((order.symbol, order.conditional), 0) + 1
                assert acct.open_counts == counted
    assert ex.insurance_fund == fund0 + fund_changes
    wallets = sum(ex.accounts[a].wallet_balance for a in ACCOUNTS)
    assert (wallets + ex.insurance_fund) - (wallets0 + fund0) == realized + funding - fees + takeover
    # same input, same output, byte for byte
    replay = exchange(insurance_fund="2000")
    again = []
    for i, msg in enumerate(inputs):
        events = replay.apply(msg)
        if i >= len(inputs) - sum(len(to_messages(ex, 0, o)) for o in ops):
            again.extend(dumps(e) for e in events)
    assert again == log
    assert replay.snapshot() == ex.snapshot()  # the same inputs build the same state, byte for byte
    for aid in ACCOUNTS:
        assert replay.account_view(aid) == ex.account_view(aid)
        assert replay.all_orders(aid) == ex.all_orders(aid)

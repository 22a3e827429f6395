"""What a gateway reads of an account (exchange_sim/cluster/account_state.py) answers every query
as the core itself does, and a command's partial answer brings a known state forward to exactly
the core's state after the command (no NATS: the core is the reference)."""

from exchange_sim.cluster import account_state
from exchange_sim.cluster.account_state import AccountState
from exchange_sim.cluster.processes import exchange_factory
from exchange_sim.core import messages as m
from exchange_sim.core.fixed import to_fixed

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def limit(ts, account, price, qty="0.01", side=m.BUY):
    return m.PlaceOrder(ts=ts, account=account, symbol="BTCUSDT", side=side, order_type=m.LIMIT,
                        qty=to_fixed(qty), price=to_fixed(price), time_in_force=m.GTC)


def wire_trip(state: AccountState) -> AccountState:
    return account_state.decode(account_state.encode(state))


def test_the_state_answers_the_cores_queries_and_a_commands_answer_brings_it_forward():
    ex = exchange_factory(SYMBOLS)()
    ex.apply(m.MarkPrice(ts=1, symbol="BTCUSDT", mark=to_fixed("60000")))
    ex.apply(m.BookSnapshot(ts=1, symbol="BTCUSDT", bids=((to_fixed("59990"), to_fixed("5")),),
                            asks=((to_fixed("60000"), to_fixed("5")),), update_id=1))
    ex.apply(m.CreateAccount(ts=1, name="a", deposit=to_fixed("100000")))
    ex.apply(m.SetLeverage(ts=1, account=1, symbol="ETHUSDT", leverage=7))
    ex.apply(m.SetMarginType(ts=1, account=1, symbol="ETHUSDT", isolated=True))
    for i in range(5):
        ex.apply(limit(2 + i, 1, str(59000 - i)))
    ex.apply(m.PlaceOrder(ts=8, account=1, symbol="BTCUSDT", side=m.BUY, order_type=m.MARKET, qty=to_fixed("0.1")))
    known = wire_trip(account_state.state_of(ex, None, 1, "s0", 10))
    assert known.view == ex.account_view(1) and known.positions() == ex.positions(1)
    assert known.positions("ETHUSDT") == ex.positions(1, "ETHUSDT") == []
    assert known.orders_open() == ex.open_orders(1) and len(known.open_orders) == 5
    for symbol in SYMBOLS:
        for side in (m.BOTH, m.LONG, m.SHORT):
            assert known.leverage_of(symbol, side, ex.config.default_leverage) == ex.leverage(1, symbol, side)
        assert (symbol in known.isolated) == ex.is_isolated(1, symbol)

    # a cancel and a new order: each answer is partial (only the orders it touched)
    first = ex.open_orders(1)[0].order_id
    state = known
    for seq, cmd in ((11, m.CancelOrder(ts=9, account=1, symbol="BTCUSDT", order_id=first)),
                     (12, limit(10, 1, "58000"))):
        events = ex.apply(cmd)
        touched = tuple(e.order_id for e in events if isinstance(e, m.OrderUpdate))
        answer = wire_trip(account_state.state_of(ex, None, 1, "s0", seq, touched=touched))
        assert answer.partial and answer.open_orders == []
        state = state.after(answer)
        assert not state.partial
        assert state.orders_open() == ex.open_orders(1)
        assert state.view == ex.account_view(1)
        if seq == 11:  # the order the cancel closed is in its answer (the handler reads it next)
            assert state.order(first, "") == ex.order(1, order_id=first)
            assert state.order(first, "").status == "CANCELED"

"""Order types and the fill model (see exchange_sim/core/matching.py for the rules)."""

from decimal import Decimal

from exchange_sim.core.fixed import to_fixed as F
from exchange_sim.core.messages import (
    BookDelta, BookSnapshot, CancelAllOrders, CancelOrder, CommandRejected, OrderUpdate, PlaceOrder,
    SetPositionMode,
)
from tests.support.core_helpers import Clock, account, exchange, mark, money, trade

S = "BTCUSDT"


def setup(fees=True, **cfg):
    ex, c = exchange(fees=fees, **cfg), Clock()
    a = account(ex, c(), "1000000")
    ex.apply(BookSnapshot(c(), S, ((F("59999"), F("1")), (F("59998"), F("2"))),
                          ((F("60000"), F("1")), (F("60001"), F("2")), (F("60002"), F("5"))), 10))
    mark(ex, c(), S, "60000")
    return ex, c, a


def place(ex, c, a, side, kind, qty="0", **kw):
    kw = {k: (F(v) if k in ("price", "stop_price", "activation_price", "callback_rate", "take_profit_price",
                            "stop_loss_price") else v) for k, v in kw.items()}
    return ex.apply(PlaceOrder(c(), a, S, side, kind, qty=F(qty), **kw))


def fills(events):
    return [(money(e.last_price, 1), money(e.last_qty, 3), e.is_maker) for e in events
            if isinstance(e, OrderUpdate) and e.exec_type == "TRADE"]


def test_market_order_walks_the_book_vwap_and_taker_fee():
    ex, c, a = setup()
    events = place(ex, c, a, "BUY", "MARKET", "2.5")
    assert fills(events) == [(Decimal("60000.0"), Decimal("1.000"), False), (Decimal("60001.0"), Decimal("1.500"), False)]
    last = [e for e in events if isinstance(e, OrderUpdate)][-1]
    assert last.status == "FILLED" and money(last.avg_price, 1) == Decimal("60000.6")
    assert money(sum(e.commission for e in events if isinstance(e, OrderUpdate))) == Decimal("75.00")


def test_taken_liquidity_stays_taken_until_the_feed_refreshes_the_level():
    ex, c, a = setup()
    place(ex, c, a, "BUY", "MARKET", "1")
    assert fills(place(ex, c, a, "BUY", "MARKET", "1")) == [(Decimal("60001.0"), Decimal("1.000"), False)]
    ex.apply(BookDelta(c(), S, (), ((F("60000"), F("3")),), 11, 11, 10))
    assert fills(place(ex, c, a, "BUY", "MARKET", "1")) == [(Decimal("60000.0"), Decimal("1.000"), False)]


def test_resting_limit_queues_behind_displayed_size_and_fills_on_trades():
    ex, c, a = setup()
    events = place(ex, c, a, "BUY", "LIMIT", "1", price="59999", time_in_force="GTC")
    oid = events[0].order_id
    assert [o.status for o in ex.open_orders(a)] == ["NEW"]
    assert not fills(trade(ex, c(), S, "59999", "0.6", "SELL"))  # queue ahead 1 -> 0.4
    got = fills(trade(ex, c(), S, "59999", "0.7", "SELL"))  # 0.4 ahead, 0.3 for us
    assert got == [(Decimal("59999.0"), Decimal("0.300"), True)]
    assert ex.order(a, oid).status == "PARTIALLY_FILLED"
    got = fills(trade(ex, c(), S, "59998.5", "0.01", "SELL"))  # printed through our price: all of it
    assert got == [(Decimal("59999.0"), Decimal("0.700"), True)]
    assert ex.order(a, oid).status == "FILLED" and ex.open_orders(a) == []


def test_buy_trade_at_our_bid_does_not_eat_the_bid_queue():
    ex, c, a = setup()
    place(ex, c, a, "BUY", "LIMIT", "1", price="59999")
    assert not fills(trade(ex, c(), S, "59999", "5", "BUY"))


def test_book_moving_through_a_resting_order_fills_it_at_its_price():
    ex, c, a = setup()
    place(ex, c, a, "BUY", "LIMIT", "1", price="59999")
    events = ex.apply(BookDelta(c(), S, (), ((F("59998.5"), F("0.4")),), 11, 11, 10))
    assert fills(events) == [(Decimal("59999.0"), Decimal("0.400"), True)]


def test_snapshot_never_fills_resting_orders():
    ex, c, a = setup()
    place(ex, c, a, "BUY", "LIMIT", "1", price="59999")
    events = ex.apply(BookSnapshot(c(), S, ((F("59990"), F("1")),), ((F("59995"), F("1")),), 50))
    assert not fills(events)


def test_post_only_ioc_fok():
    ex, c, a = setup()
    rej = place(ex, c, a, "BUY", "LIMIT", "1", price="60000", time_in_force="GTX")
    assert isinstance(rej[0], CommandRejected) and rej[0].code == -5022
    assert place(ex, c, a, "BUY", "LIMIT", "1", price="59999.5", time_in_force="GTX")[0].status == "NEW"
    rej = place(ex, c, a, "BUY", "LIMIT", "10", price="60001", time_in_force="FOK")
    assert rej[0].code == -5021
    events = place(ex, c, a, "BUY", "LIMIT", "10", price="60001", time_in_force="IOC")
    assert fills(events) == [(Decimal("60000.0"), Decimal("1.000"), False), (Decimal("60001.0"), Decimal("2.000"), False)]
    assert events[-1].status == "EXPIRED" and money(events[-1].filled_qty, 3) == Decimal("3")


def test_marketable_gtc_limit_takes_then_rests():
    ex, c, a = setup()
    events = place(ex, c, a, "BUY", "LIMIT", "2", price="60000")
    assert fills(events) == [(Decimal("60000.0"), Decimal("1.000"), False)]
    assert [money(o.filled_qty, 3) for o in ex.open_orders(a)] == [Decimal("1")]


def test_stop_market_triggers_on_mark_and_take_profit_on_last():
    ex, c, a = setup()
    place(ex, c, a, "BUY", "MARKET", "1")
    assert place(ex, c, a, "SELL", "STOP_MARKET", "1", stop_price="59000", working_type="MARK_PRICE",
                 reduce_only=True)[0].status == "NEW"
    assert place(ex, c, a, "SELL", "TAKE_PROFIT_MARKET", "1", stop_price="61000", reduce_only=True)[0].status == "NEW"
    assert len(ex.open_orders(a)) == 2
    assert not fills(trade(ex, c(), S, "58900", "0.1"))  # last price: the mark stop ignores it
    events = mark(ex, c(), S, "58999")
    assert any(e.exec_type == "TRIGGERED" for e in events if isinstance(e, OrderUpdate))
    assert fills(events) and ex.positions(a) == []
    # the take-profit is reduce-only: nothing left to reduce when it triggers later
    events = trade(ex, c(), S, "61000", "0.1")
    assert not fills(events)


def test_immediate_trigger_rejected():
    ex, c, a = setup()
    rej = place(ex, c, a, "BUY", "STOP_MARKET", "1", stop_price="59000", working_type="MARK_PRICE")
    assert rej[0].code == -2021


def test_stop_limit_becomes_a_resting_limit():
    ex, c, a = setup()
    place(ex, c, a, "BUY", "STOP", "1", stop_price="60100", price="60050")
    events = trade(ex, c(), S, "60100", "0.1")
    child = [e for e in events if isinstance(e, OrderUpdate) and e.order_type == "LIMIT"]
    assert child and child[0].status == "NEW" and money(child[0].price, 1) == Decimal("60050.0")


def test_trailing_stop_tracks_the_best_price_and_triggers_on_callback():
    ex, c, a = setup()
    place(ex, c, a, "BUY", "MARKET", "1")
    place(ex, c, a, "SELL", "TRAILING_STOP_MARKET", "1", callback_rate="1", reduce_only=True)
    for p in ["60500", "61000", "60500"]:
        assert not fills(trade(ex, c(), S, p, "0.01"))
    ex.apply(BookSnapshot(c(), S, ((F("60389"), F("5")),), ((F("60400"), F("5")),), 20))
    events = trade(ex, c(), S, "60390", "0.01")  # 1% below the 61,000 high
    assert fills(events) == [(Decimal("60389.0"), Decimal("1.000"), False)]


def test_reduce_only_and_close_position():
    ex, c, a = setup()
    assert place(ex, c, a, "SELL", "MARKET", "1", reduce_only=True)[0].code == -2022
    place(ex, c, a, "BUY", "MARKET", "1")
    assert place(ex, c, a, "BUY", "MARKET", "1", reduce_only=True)[0].code == -2022
    # a reduce-only order larger than the position only closes it
    events = place(ex, c, a, "SELL", "MARKET", "3", reduce_only=True)
    assert sum(money(e.last_qty, 3) for e in events if isinstance(e, OrderUpdate)) == Decimal("1")
    assert ex.positions(a) == []
    place(ex, c, a, "BUY", "MARKET", "0.5")
    place(ex, c, a, "SELL", "STOP_MARKET", stop_price="59000", close_position=True, working_type="MARK_PRICE")
    mark(ex, c(), S, "58000")
    assert ex.positions(a) == []


def test_attached_take_profit_and_stop_loss():
    ex, c, a = setup()
    place(ex, c, a, "BUY", "MARKET", "1", take_profit_price="62000", stop_loss_price="58000")
    kinds = sorted(o.order_type for o in ex.open_orders(a))
    assert kinds == ["STOP_MARKET", "TAKE_PROFIT_MARKET"]
    ex.apply(BookSnapshot(c(), S, ((F("62000"), F("5")),), ((F("62001"), F("5")),), 30))
    trade(ex, c(), S, "62000", "0.1")
    assert ex.positions(a) == []


def test_cancel_and_cancel_all():
    ex, c, a = setup()
    oid = place(ex, c, a, "BUY", "LIMIT", "1", price="59000")[0].order_id
    place(ex, c, a, "BUY", "LIMIT", "1", price="58000", client_order_id="mine")
    assert ex.account_view(a).open_order_initial_margin > 0
    assert ex.apply(CancelOrder(c(), a, S, order_id=oid))[0].status == "CANCELED"
    assert ex.apply(CancelOrder(c(), a, S, order_id=oid))[0].code == -2011
    assert ex.apply(CancelOrder(c(), a, S, client_order_id="mine"))[0].status == "CANCELED"
    place(ex, c, a, "BUY", "LIMIT", "1", price="58000")
    place(ex, c, a, "SELL", "STOP_MARKET", "1", stop_price="50000")
    ex.apply(CancelAllOrders(c(), a, S))
    assert ex.open_orders(a) == [] and ex.account_view(a).open_order_initial_margin == 0


def test_no_book_fills_at_last_price_with_spread():
    ex, c = exchange(fees=True, half_spread="0.0005"), Clock()
    a = account(ex, c(), "100000")
    trade(ex, c(), S, "60000", "1")
    events = place(ex, c, a, "BUY", "MARKET", "0.1")
    assert fills(events) == [(Decimal("60030.0"), Decimal("0.100"), False)]
    events = place(ex, c, a, "SELL", "MARKET", "0.1")
    assert fills(events) == [(Decimal("59970.0"), Decimal("0.100"), False)]
    # a resting limit in the no-book model fills when trades print through it
    place(ex, c, a, "BUY", "LIMIT", "0.1", price="59900")
    assert fills(trade(ex, c(), S, "59899", "0.5", "SELL")) == [(Decimal("59900.0"), Decimal("0.100"), True)]


def test_hedge_mode_orders_need_a_position_side():
    ex, c, a = setup()
    ex.apply(SetPositionMode(c(), a, True))
    assert place(ex, c, a, "BUY", "MARKET", "1")[0].code == -4061
    place(ex, c, a, "BUY", "MARKET", "1", position_side="LONG")
    place(ex, c, a, "SELL", "MARKET", "1", position_side="SHORT")
    assert sorted(p.position_side for p in ex.positions(a)) == ["LONG", "SHORT"]
    place(ex, c, a, "SELL", "MARKET", "1", position_side="LONG")  # closes the long leg
    assert [p.position_side for p in ex.positions(a)] == ["SHORT"]


def test_margin_and_max_position_checks():
    ex, c = exchange(), Clock()
    a = account(ex, c(), "1000")
    ex.apply(BookSnapshot(c(), S, ((F("59999"), F("100")),), ((F("60000"), F("100")),), 10))
    mark(ex, c(), S, "60000")
    assert place(ex, c, a, "BUY", "MARKET", "1")[0].code == -2019  # 60k at 20x needs 3,000
    assert place(ex, c, a, "BUY", "MARKET", "0.001")[0].code == -4164  # 60 < min notional 100
    from exchange_sim.core.messages import SetLeverage
    ex.apply(SetLeverage(c(), a, S, 125))
    assert place(ex, c, a, "BUY", "LIMIT", "1", price="58000")[0].code == -2027  # 58k > 50k cap at 125x


def test_modify_a_resting_limit_order():
    from exchange_sim.core.messages import ModifyOrder
    ex, c, a = setup()
    oid = place(ex, c, a, "BUY", "LIMIT", "1", price="59000")[0].order_id
    margin0 = ex.account_view(a).open_order_initial_margin
    ev = ex.apply(ModifyOrder(c(), a, S, "BUY", F("2"), F("59500"), order_id=oid))
    assert ev[0].exec_type == "AMENDMENT" and ev[0].order_id == oid and money(ev[0].price, 1) == Decimal("59500.0")
    assert ex.account_view(a).open_order_initial_margin > margin0
    assert ex.apply(ModifyOrder(c(), a, S, "BUY", F("2"), F("59500"), order_id=oid))[0].code == -5027
    assert ex.apply(ModifyOrder(c(), a, S, "BUY", F("2"), F("59500"), order_id=999))[0].code == -2013
    assert ex.apply(ModifyOrder(c(), a, S, "SELL", F("2"), F("59500"), order_id=oid))[0].code == -1117
    before = ex.open_orders(a)
    assert ex.apply(ModifyOrder(c(), a, S, "BUY", F("500"), F("59500"), order_id=oid))[0].code == -2019
    assert ex.open_orders(a) == before  # refused: exactly as it was
    # moved through the ask: it executes at the new price like a marketable limit
    events = ex.apply(ModifyOrder(c(), a, S, "BUY", F("2"), F("60000"), order_id=oid))
    assert fills(events) == [(Decimal("60000.0"), Decimal("1.000"), False)]
    assert [money(o.filled_qty, 3) for o in ex.open_orders(a)] == [Decimal("1")]


def test_cancel_all_regular_or_conditional_only():
    ex, c, a = setup()
    place(ex, c, a, "BUY", "LIMIT", "1", price="58000")
    place(ex, c, a, "SELL", "STOP_MARKET", "1", stop_price="50000")
    ex.apply(CancelAllOrders(c(), a, S, which="REGULAR"))
    assert [o.order_type for o in ex.open_orders(a)] == ["STOP_MARKET"]
    place(ex, c, a, "BUY", "LIMIT", "1", price="58000")
    ex.apply(CancelAllOrders(c(), a, S, which="CONDITIONAL"))
    assert [o.order_type for o in ex.open_orders(a)] == ["LIMIT"]
    assert ex.apply(CancelAllOrders(c(), a, S, which="SOME"))[0].code == -1102


def test_market_lot_size_applies_to_market_like_orders_only():
    ex, c, a = setup()
    # BTCUSDT: LOT_SIZE max 1000, MARKET_LOT_SIZE max 120
    assert place(ex, c, a, "BUY", "MARKET", "121")[0].code == -4005
    assert place(ex, c, a, "SELL", "STOP_MARKET", "121", stop_price="50000")[0].code == -4005
    limit_stop = place(ex, c, a, "SELL", "STOP", "121", stop_price="50000", price="49990")[0]
    assert not isinstance(limit_stop, CommandRejected) or limit_stop.code != -4005

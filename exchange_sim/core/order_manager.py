"""The order manager: placement, margin reservation, execution, fills and fees, cancels, triggers.

It owns the open orders (by id) and the order and trade id sequences. Money and positions move
only through the ledger (``Ledger.apply_fill``, ``charge_fee``); the fill rules are in
``matching``, the account-state checks in ``pretrade``. Public methods take the input's time
and return the events they caused; internal steps append to the ``out`` list they are handed.
A rejected order changes nothing and yields one ``CommandRejected``.
"""

from __future__ import annotations

from typing import Callable, Mapping

from . import filters
from .accounts import Account
from .exchange_config import ExchangeConfig
from .fixed import SCALE
from .instruments import Instrument
from .ledger import Ledger
from .matching import SymbolMarket
from .messages import (
    BUY, FOK, IOC, LIMIT, MARK_PRICE, MARKET, SELL, STOP, STOP_MARKET, TAKE_PROFIT, TAKE_PROFIT_MARKET,
    BalanceUpdate, CancelAllOrders, CancelOrder, CommandRejected, ModifyOrder, OrderUpdate, PlaceOrder,
    PositionUpdate,
)
from .orders import (
    CANCELED, ERR, EXPIRED, FILLED, NEW, PARTIALLY_FILLED, TRIGGERED, Order, check_order, rejected,
)
from .pretrade import check_executable, leg_of, order_cost, reducing_qty
from .risk_view import RiskView
from .views import TradeRecord

Fills = list[tuple[Order, int, int]]


class OrderManager:
    def __init__(self, instruments: Mapping[str, Instrument], config: ExchangeConfig,
                 markets: Mapping[str, SymbolMarket], ledger: Ledger, view: RiskView) -> None:
        self.instruments = instruments
        self.config = config
        self.markets = markets
        self.ledger = ledger
        self.view = view
        self.orders: dict[int, Order] = {}
        self.next_order_id = 0
        self.next_trade_id = 0

    # ------------------------------------------------------------------ commands

    def place(self, cmd: PlaceOrder, now: int) -> list:
        """Accept (and execute what it can of) an order, or refuse it."""
        acct = self.ledger.accounts.get(cmd.account)
        if acct is None:
            return [rejected(cmd, ERR["account"])]
        inst = self.instruments.get(cmd.symbol)
        err = check_order(cmd, inst, acct.hedge)
        if err:
            return [rejected(cmd, err)]
        if cmd.client_order_id and cmd.client_order_id in acct.open_client_ids:
            return [rejected(cmd, ERR["duplicate_client_id"])]
        mkt = self.markets[cmd.symbol]
        order = Order(0, cmd, cmd.client_order_id)
        err = filters.placement_error(cmd, order.conditional, mkt.mark,
                                      acct.open_counts.get((cmd.symbol, order.conditional), 0),
                                      mkt.inst.price_precision)
        if err:
            return [rejected(cmd, err)]
        out: list = []
        if order.conditional:
            self.place_conditional(out, acct, order, mkt, now)
            return out
        err = check_executable(acct, order, mkt, self.config, self.view)
        if err:
            return [rejected(cmd, err)]
        self.assign_id(order)
        self._submit(out, acct, order, mkt, now)
        return out

    def modify(self, cmd: ModifyOrder, now: int) -> list:
        """Re-price / re-size a resting limit order; refused changes leave it exactly as it was."""
        acct = self.ledger.accounts.get(cmd.account)
        if acct is None:
            return [rejected(cmd, ERR["account"])]
        inst = self.instruments.get(cmd.symbol)
        if inst is None:
            return [rejected(cmd, ERR["symbol"])]
        order = acct.open_order(cmd.order_id, cmd.client_order_id)
        if order is None or order.symbol != cmd.symbol or order.type != LIMIT:
            return [rejected(cmd, ERR["no_such_order"])]
        if cmd.side != order.side:
            return [rejected(cmd, ERR["side"])]
        probe = PlaceOrder(cmd.ts, cmd.account, cmd.symbol, cmd.side, LIMIT, qty=cmd.qty, price=cmd.price,
                           time_in_force=order.tif, position_side=order.position_side)
        err = check_order(probe, inst, acct.hedge)
        if err:
            return [rejected(cmd, err)]
        if cmd.qty == order.qty and cmd.price == order.price:
            return [rejected(cmd, ERR["no_modify"])]
        if cmd.qty <= order.filled:
            return [rejected(cmd, ERR["modify_filled"])]
        mkt = self.markets[cmd.symbol]
        err = filters.price_band_error(LIMIT, cmd.price, mkt.mark, inst.price_precision)
        if err:
            return [rejected(cmd, err)]
        old = (order.price, order.qty, order.reserved, order.queue_ahead)
        mkt.unrest(order)
        self._release(acct, order)
        order.price, order.qty = cmd.price, cmd.qty
        err = check_executable(acct, order, mkt, self.config, self.view)
        if err:
            order.price, order.qty = old[0], old[1]
            order.reserved = old[2]
            acct.order_margin += old[2]
            mkt.rest(order)
            order.queue_ahead = old[3]
            return [rejected(cmd, err)]
        order.update_ts = cmd.ts
        out: list = []
        self.emit_order(out, order, "AMENDMENT", now)
        half_spread = self.config.half_spread
        if mkt.would_take(order.is_buy, order.price, half_spread):
            for price, qty in mkt.taker_fills(order.is_buy, order.remaining, order.price, half_spread):
                if order.status not in (NEW, PARTIALLY_FILLED):
                    break
                self.fill(out, acct, order, qty, price, False, now)
        if order.status in (NEW, PARTIALLY_FILLED):
            self._reserve(acct, order, mkt)
            mkt.rest(order)
        return out

    def cancel(self, cmd: CancelOrder, now: int) -> list:
        acct = self.ledger.accounts[cmd.account]
        order = acct.open_order(cmd.order_id, cmd.client_order_id)
        if order is None or order.symbol != cmd.symbol:
            return [rejected(cmd, ERR["unknown_order"])]
        out: list = []
        self.finish(out, acct, order, CANCELED, "CANCELED", "", now)
        return out

    def cancel_all(self, cmd: CancelAllOrders, now: int) -> list:
        acct = self.ledger.accounts[cmd.account]
        if cmd.which not in ("ALL", "REGULAR", "CONDITIONAL"):
            return [rejected(cmd, (-1102, "Parameter 'which' must be ALL, REGULAR or CONDITIONAL."))]
        keep_conditional = cmd.which == "REGULAR"
        keep_regular = cmd.which == "CONDITIONAL"
        out: list = []
        self.cancel_where(out, acct, lambda o: o.symbol != cmd.symbol or (o.conditional and keep_conditional)
                          or (not o.conditional and keep_regular), "", now)
        return out

    # ------------------------------------------------------------------ order records

    def open_order(self, acct: Account, order: Order) -> None:
        """Register an accepted order as open (by id, and by client id for the duplicate check)."""
        acct.add_open(order)
        self.orders[order.id] = order

    def _unopen_order(self, acct: Account, order: Order) -> None:
        acct.remove_open(order)
        self.orders.pop(order.id, None)

    def assign_id(self, order: Order) -> None:
        self.next_order_id += 1
        order.id = self.next_order_id
        if not order.client_id:
            order.client_id = f"sim-{order.id}"

    def _submit(self, out: list, acct: Account, order: Order, mkt: SymbolMarket, now: int) -> None:
        """Accept an order that passed every check: execute what it can, rest or expire the rest."""
        self.open_order(acct, order)
        self.emit_order(out, order, "NEW", now)
        limit = order.price if order.type == LIMIT else 0
        if order.type == MARKET or mkt.would_take(order.is_buy, order.price, self.config.half_spread):
            want = order.remaining
            if order.reduce_only:  # never take liquidity a reduce-only order could not use
                want = min(want, reducing_qty(acct, order))
            for price, qty in mkt.taker_fills(order.is_buy, want, limit, self.config.half_spread):
                if order.status not in (NEW, PARTIALLY_FILLED):
                    break
                self.fill(out, acct, order, qty, price, False, now)
        if order.status in (NEW, PARTIALLY_FILLED):
            if order.type == MARKET or order.tif in (IOC, FOK):
                self.finish(out, acct, order, EXPIRED, "EXPIRED", "", now)
            else:
                self._reserve(acct, order, mkt)
                mkt.rest(order)

    def _reserve(self, acct: Account, order: Order, mkt: SymbolMarket) -> None:
        if order.reduce_only:
            return
        opening = order.remaining - reducing_qty(acct, order)
        if opening <= 0:
            return
        lev = acct.leverage_of(order.symbol, leg_of(acct, order), self.config.default_leverage)
        order.reserved = order_cost(opening, order.is_buy, order.price, mkt.mark or order.price, lev)
        acct.order_margin += order.reserved

    def _release(self, acct: Account, order: Order, qty: int | None = None) -> None:
        if not order.reserved:
            return
        if qty is None or qty >= order.remaining:
            part = order.reserved
        else:
            part = order.reserved * qty // order.remaining
        order.reserved -= part
        acct.order_margin -= part

    # ------------------------------------------------------------------ conditional orders

    def place_conditional(self, out: list, acct: Account, order: Order, mkt: SymbolMarket, now: int) -> None:
        if order.reduce_only and not order.close_position and not acct.hedge:
            pos = acct.positions.get((order.symbol, "BOTH"))
            if pos is None or pos.qty == 0 or (pos.qty > 0) == order.is_buy:
                out.append(self._reject_order(order, ERR["reduce_only"]))
                return
        if order.type != "TRAILING_STOP_MARKET":
            price = mkt.mark if order.working_type == MARK_PRICE else mkt.reference_price()
            if price:
                up = order.type in (STOP, STOP_MARKET) and order.is_buy or \
                    order.type in (TAKE_PROFIT, TAKE_PROFIT_MARKET) and not order.is_buy
                if (up and price >= order.stop_price) or (not up and price <= order.stop_price):
                    out.append(self._reject_order(order, ERR["immediate_trigger"]))
                    return
        elif not order.activation_price:
            price = mkt.mark if order.working_type == MARK_PRICE else mkt.reference_price()
            if price:
                order.activated = True
                order.trail_extreme = price
        self.assign_id(order)
        self.open_order(acct, order)
        mkt.add_trigger(order)
        self.emit_order(out, order, "NEW", now)

    @staticmethod
    def _reject_order(order: Order, err: tuple[int, str]) -> CommandRejected:
        return CommandRejected(order.create_ts, order.account, "PlaceOrder", err[0], err[1], order.client_id,
                               order.symbol)

    def on_price(self, mkt: SymbolMarket, working_type: str, price: int, now: int) -> list:
        """Fire the trigger orders a new mark or last price reaches."""
        ids = []
        if mkt.trig_up_min[working_type] <= price or mkt.trig_down_max[working_type] >= price:
            ids = mkt.crossed_triggers(working_type, price)
        if mkt.trailing:
            ids.extend(mkt.trailing_triggered(working_type, price))
        out: list = []
        if ids:
            self._trigger(out, ids, now)
        return out

    def _trigger(self, out: list, order_ids: list[int], ts: int) -> None:
        """Turn triggered conditional orders into market/limit orders and submit them."""
        for oid in order_ids:
            cond = self.orders.get(oid)
            if cond is None or cond.status != NEW:
                continue
            acct = self.ledger.accounts[cond.account]
            mkt = self.markets[cond.symbol]
            cmd = PlaceOrder(
                ts=ts, account=cond.account, symbol=cond.symbol, side=cond.side,
                order_type=LIMIT if cond.type in (STOP, TAKE_PROFIT) else MARKET,
                qty=cond.qty, price=cond.price, time_in_force=cond.tif, reduce_only=cond.reduce_only,
                position_side=cond.position_side, client_order_id=cond.client_id,
            )
            child = Order(0, cmd, cond.client_id)
            child.reduce_only = cond.reduce_only
            if cond.close_position:
                pos = acct.positions.get((cond.symbol, leg_of(acct, cond)))
                qty = abs(pos.qty) if pos is not None and (pos.qty > 0) != cond.is_buy else 0
                child.qty = qty
            cond.status = TRIGGERED
            cond.update_ts = ts
            self._unopen_order(acct, cond)
            acct.remember(acct.closed_orders, cond)
            err = None if child.qty else (0, "NOTHING_TO_CLOSE")
            err = err or check_executable(acct, child, mkt, self.config, self.view)
            if err:
                cond.status = EXPIRED
                cond.reason = err[1] if not err[0] else f"REJECTED_ON_TRIGGER {err[0]} {err[1]}"
                self.emit_order(out, cond, "EXPIRED", ts)
                continue
            self.assign_id(child)
            cond.triggered_order_id = child.id
            self.emit_order(out, cond, "TRIGGERED", ts)
            self._submit(out, acct, child, mkt, ts)

    # ------------------------------------------------------------------ fills

    def fill(self, out: list, acct: Account, order: Order, qty: int, price: int, maker: bool, now: int,
             reason: str = "", fee_rate: int | None = None) -> None:
        """Execute ``qty`` of ``order`` at ``price``: fee, position, wallet, events, records."""
        leg = leg_of(acct, order)
        pos = acct.positions.get((order.symbol, leg))
        if order.reduce_only:
            held = 0 if pos is None or (pos.qty > 0) == order.is_buy else abs(pos.qty)
            if qty > held:
                qty = held
            if qty <= 0:
                self.finish(out, acct, order, EXPIRED, "EXPIRED", "REDUCE_ONLY_NOTHING_TO_REDUCE", now)
                return
        if pos is None:
            pos = self.ledger.open_position(acct, order.symbol, leg, order.symbol in acct.isolated,
                                            acct.leverage_of(order.symbol, leg, self.config.default_leverage),
                                            (order.symbol, leg) in acct.auto_add)
        inst = self.instruments[order.symbol]
        quote = qty * price // SCALE
        if fee_rate is None:
            fee_rate = inst.maker_fee if maker else inst.taker_fee
        fee = -(-quote * fee_rate // SCALE)
        self._release(acct, order, qty)
        before = acct.cross_wallet
        realized = self.ledger.apply_fill(acct, pos, qty if order.is_buy else -qty, price, now)
        self.ledger.charge_fee(acct, fee)
        order.filled += qty
        order.cum_quote += quote
        order.status = FILLED if order.filled >= order.qty else PARTIALLY_FILLED
        self.next_trade_id += 1
        tid = self.next_trade_id
        order.update_ts = now
        acct.update_ts = now
        acct.remember(acct.trades, TradeRecord(tid, order.id, acct.id, order.symbol, order.side, order.position_side,
                                               price, qty, quote, fee, realized, maker, now))
        if realized:
            self.ledger.income(acct, order.symbol, "REALIZED_PNL", realized, now, str(tid))
        if fee:
            self.ledger.income(acct, order.symbol, "COMMISSION", -fee, now, str(tid))
        out.append(OrderUpdate(
            now, acct.id, order.id, order.client_id, order.symbol, order.side, order.position_side, order.type,
            order.tif, order.status, "TRADE", order.price, order.stop_price, order.qty, order.filled,
            order.avg_price, qty, price, fee, realized, maker, tid, order.reduce_only, order.close_position,
            order.working_type, reason or order.reason))
        out.append(BalanceUpdate(now, acct.id, acct.cross_wallet, acct.cross_wallet - before, "ORDER"))
        out.append(PositionUpdate(now, acct.id, pos.symbol, pos.side, pos.qty, pos.entry_price, pos.isolated,
                                  pos.isolated_wallet, pos.leverage, "ORDER"))
        if order.status == FILLED:
            self._close_order(acct, order)
            if order.tp_price or order.sl_price:
                self._attach_tp_sl(out, acct, order, now)

    def _attach_tp_sl(self, out: list, acct: Account, entry: Order, now: int) -> None:
        """TP/SL attached to an entry become close-position trigger orders once it fills."""
        mkt = self.markets[entry.symbol]
        exit_side = SELL if entry.is_buy else BUY
        for kind, price in ((TAKE_PROFIT_MARKET, entry.tp_price), (STOP_MARKET, entry.sl_price)):
            if not price:
                continue
            cmd = PlaceOrder(ts=now, account=acct.id, symbol=entry.symbol, side=exit_side, order_type=kind,
                             stop_price=price, close_position=True, position_side=entry.position_side,
                             working_type=entry.working_type)
            self.place_conditional(out, acct, Order(0, cmd, ""), mkt, now)

    def execute_resting(self, fills: Fills, now: int) -> list:
        """Book the fills the market gave our resting orders (maker fills at their prices)."""
        out: list = []
        for order, qty, price in fills:
            if order.status not in (NEW, PARTIALLY_FILLED) or qty <= 0:
                continue
            acct = self.ledger.accounts[order.account]
            self.fill(out, acct, order, min(qty, order.remaining), price, True, now)
        return out

    # ------------------------------------------------------------------ ends of orders

    def _close_order(self, acct: Account, order: Order) -> None:
        """Take a finished order off the book and out of the open set."""
        self._release(acct, order)
        mkt = self.markets[order.symbol]
        if order.type == LIMIT:
            mkt.unrest(order)
        self._unopen_order(acct, order)
        acct.remember(acct.closed_orders, order)

    def finish(self, out: list, acct: Account, order: Order, status: str, exec_type: str, reason: str,
               now: int) -> None:
        order.status = status
        order.update_ts = now
        if reason:
            order.reason = reason
        if order.conditional:
            self.markets[order.symbol].remove_trigger(order)
        self._close_order(acct, order)
        self.emit_order(out, order, exec_type, now)

    def cancel_where(self, out: list, acct: Account, keep: Callable[[Order], bool], reason: str, now: int) -> None:
        """Cancel every open order of ``acct`` for which ``keep(order)`` is False."""
        for order in sorted(acct.open_orders.values(), key=lambda o: o.id):
            if not keep(order):
                self.finish(out, acct, order, CANCELED, "CANCELED", reason, now)

    @staticmethod
    def emit_order(out: list, order: Order, exec_type: str, now: int) -> None:
        out.append(OrderUpdate(
            now, order.account, order.id, order.client_id, order.symbol, order.side, order.position_side,
            order.type, order.tif, order.status, exec_type, order.price, order.stop_price, order.qty,
            order.filled, order.avg_price, reduce_only=order.reduce_only, close_position=order.close_position,
            working_type=order.working_type, reason=order.reason))

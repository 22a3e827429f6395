"""Order lifecycle: placement checks, margin reservation, execution, fills, cancels, triggers.

Part of the Exchange (a mixin over its state); see ``matching`` for the fill rules and
``margin`` for the cost-to-open formula. Every business outcome is an event appended to
``self.out``; a rejected order changes nothing and yields one ``CommandRejected``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import filters
from .accounts import Account, Position, apply_fill, leg_key
from .fixed import SCALE
from .margin import initial_margin, open_loss
from .messages import (
    BOTH, BUY, FOK, GTX, IOC, LIMIT, LONG, MARK_PRICE, MARKET, SELL, STOP, STOP_MARKET,
    TAKE_PROFIT, TAKE_PROFIT_MARKET, BalanceUpdate, CommandRejected, OrderUpdate, PlaceOrder,
    PositionUpdate,
)
from .orders import (
    CANCELED, ERR, EXPIRED, FILLED, NEW, PARTIALLY_FILLED, TRIGGERED, Order, check_order,
    min_notional_error, stale_error,
)
from .views import IncomeRecord, TradeRecord

if TYPE_CHECKING:
    from .exchange import Exchange

MARKET_COST_BUFFER = 5 * SCALE // 10000  # market buys are costed at best ask × (1 + 0.05%)


class Trading:
    """Mixin: the trading half of the Exchange."""

    # ------------------------------------------------------------------ placement

    def _place_order(self: "Exchange", cmd: PlaceOrder) -> None:
        acct = self.accounts.get(cmd.account)
        if acct is None:
            return self._reject(cmd, ERR["account"])
        inst = self.instruments.get(cmd.symbol)
        err = check_order(cmd, inst, acct.hedge)
        if err:
            return self._reject(cmd, err)
        if cmd.client_order_id and cmd.client_order_id in acct.open_client_ids:
            return self._reject(cmd, ERR["duplicate_client_id"])
        mkt = self.markets[cmd.symbol]
        order = Order(0, cmd, cmd.client_order_id)
        err = filters.placement_error(cmd, order.conditional, mkt.mark, acct.open_orders.values())
        if err:
            return self._reject(cmd, err)
        if order.conditional:
            return self._place_conditional(acct, order, mkt)
        err = self._check_executable(acct, order, mkt)
        if err:
            return self._reject(cmd, err)
        self._assign_id(order)
        self._submit(acct, order, mkt)

    def _modify_order(self: "Exchange", cmd) -> None:
        """Re-price / re-size a resting limit order; refused changes leave it exactly as it was."""
        acct = self.accounts.get(cmd.account)
        if acct is None:
            return self._reject(cmd, ERR["account"])
        inst = self.instruments.get(cmd.symbol)
        if inst is None:
            return self._reject(cmd, ERR["symbol"])
        order = acct.open_order(cmd.order_id, cmd.client_order_id)
        if order is None or order.symbol != cmd.symbol or order.type != LIMIT:
            return self._reject(cmd, ERR["no_such_order"])
        if cmd.side != order.side:
            return self._reject(cmd, ERR["side"])
        probe = PlaceOrder(cmd.ts, cmd.account, cmd.symbol, cmd.side, LIMIT, qty=cmd.qty, price=cmd.price,
                           time_in_force=order.tif, position_side=order.position_side)
        err = check_order(probe, inst, acct.hedge)
        if err:
            return self._reject(cmd, err)
        if cmd.qty == order.qty and cmd.price == order.price:
            return self._reject(cmd, ERR["no_modify"])
        if cmd.qty <= order.filled:
            return self._reject(cmd, ERR["modify_filled"])
        mkt = self.markets[cmd.symbol]
        err = filters.price_band_error(LIMIT, cmd.price, mkt.mark)
        if err:
            return self._reject(cmd, err)
        old = (order.price, order.qty, order.reserved, order.queue_ahead)
        mkt.unrest(order)
        self._release(acct, order)
        order.price, order.qty = cmd.price, cmd.qty
        err = self._check_executable(acct, order, mkt)
        if err:
            order.price, order.qty = old[0], old[1]
            self._reserve_exactly(acct, order, old[2])
            mkt.rest(order)
            order.queue_ahead = old[3]
            return self._reject(cmd, err)
        order.update_ts = cmd.ts
        self._emit_order(order, "AMENDMENT")
        if mkt.would_take(order.is_buy, order.price, self.config.half_spread):
            for price, qty in mkt.taker_fills(order.is_buy, order.remaining, order.price, self.config.half_spread):
                if order.status not in (NEW, PARTIALLY_FILLED):
                    break
                self._fill(acct, order, qty, price, maker=False)
        if order.status in (NEW, PARTIALLY_FILLED):
            self._reserve(acct, order, mkt)
            mkt.rest(order)

    def _reserve_exactly(self: "Exchange", acct: Account, order: Order, amount: int) -> None:
        order.reserved = amount
        acct.order_margin += amount

    def _open_order(self: "Exchange", acct: Account, order: Order) -> None:
        """Register an accepted order as open (by id, and by client id for the duplicate check)."""
        acct.open_orders[order.id] = order
        acct.open_client_ids[order.client_id] = order
        self.orders[order.id] = order

    def _unopen_order(self: "Exchange", acct: Account, order: Order) -> None:
        acct.open_orders.pop(order.id, None)
        if acct.open_client_ids.get(order.client_id) is order:
            del acct.open_client_ids[order.client_id]
        self.orders.pop(order.id, None)

    def _assign_id(self: "Exchange", order: Order) -> None:
        self.next_order_id += 1
        order.id = self.next_order_id
        if not order.client_id:
            order.client_id = f"sim-{order.id}"

    def _reject(self: "Exchange", cmd, err: tuple[int, str]) -> None:
        self.out.append(CommandRejected(cmd.ts, getattr(cmd, "account", None), type(cmd).__name__, err[0],
                                        err[1], getattr(cmd, "client_order_id", ""),
                                        getattr(cmd, "symbol", "")))

    def _leg(self: "Exchange", acct: Account, order: Order) -> str:
        return order.position_side if acct.hedge else BOTH

    def _reducing_qty(self: "Exchange", acct: Account, order: Order) -> int:
        """How much of this order would reduce the existing position of its leg."""
        pos = acct.positions.get((order.symbol, self._leg(acct, order)))
        if pos is None or pos.qty == 0:
            return 0
        if (pos.qty > 0) == order.is_buy:
            return 0
        return min(abs(pos.qty), order.remaining)

    def _check_executable(self: "Exchange", acct: Account, order: Order, mkt) -> tuple[int, str] | None:
        """Account-state checks for a market/limit order about to be submitted (None = ok)."""
        inst = mkt.inst
        if order.type == MARKET and mkt.stale:
            return stale_error(order.symbol)
        leg = self._leg(acct, order)
        if acct.hedge:
            closing = (order.position_side == LONG) != order.is_buy
            if closing:
                order.reduce_only = True
        reducing = self._reducing_qty(acct, order)
        if order.reduce_only and not order.close_position and reducing == 0:
            return ERR["reduce_only"]
        price = self._cost_price(order, mkt)
        if price <= 0:
            return ERR["no_price"]
        if not order.reduce_only and order.qty * price // SCALE < inst.min_notional:
            return min_notional_error(inst)
        opening = 0 if order.reduce_only else order.remaining - reducing
        if opening > 0:
            pos = acct.positions.get((order.symbol, leg))
            lev = acct.leverage_of(order.symbol, leg, self.config.default_leverage)
            held = abs(pos.qty) if pos is not None and (pos.qty > 0) == order.is_buy else 0
            if (held + opening) * price // SCALE > inst.max_notional(lev):
                return ERR["max_position"]
            cost = self._order_cost(opening, order.is_buy, price, mkt.mark or price, lev)
            if cost > self._available(acct):
                return ERR["margin"]
        if order.type == LIMIT:
            if order.tif == GTX and mkt.would_take(order.is_buy, order.price, self.config.half_spread):
                return ERR["gtx"]
            if order.tif == FOK and mkt.taker_available(order.is_buy, order.price, self.config.half_spread) \
                    < order.remaining:
                return ERR["fok"]
        return None

    def _cost_price(self: "Exchange", order: Order, mkt) -> int:
        if order.type == LIMIT:
            return order.price
        bid, ask = mkt.best_prices()
        if order.is_buy:
            return -(-ask * (SCALE + MARKET_COST_BUFFER) // SCALE) if ask else mkt.mark
        return max(bid, mkt.mark)

    @staticmethod
    def _order_cost(qty: int, buy: bool, price: int, mark: int, leverage: int) -> int:
        """IM + open loss (margin-rules.md, "Orders and margin reservation")."""
        return initial_margin(qty * price // SCALE, leverage) + open_loss(qty, 1 if buy else -1, mark, price)

    def _available(self: "Exchange", acct: Account) -> int:
        """Cross wallet + Σ cross uPnL − Σ cross position IM − open-order margin."""
        total = acct.cross_wallet - acct.order_margin
        markets = self.markets
        for pos in acct.positions.values():
            if pos.isolated or not pos.qty:
                continue
            mark = markets[pos.symbol].mark or pos.entry_price
            total += pos.pnl(mark) - initial_margin(pos.notional(mark), pos.leverage)
        return total

    def _submit(self: "Exchange", acct: Account, order: Order, mkt) -> None:
        """Accept an order that passed every check: execute what it can, rest or expire the rest."""
        self._open_order(acct, order)
        self._emit_order(order, "NEW")
        limit = order.price if order.type == LIMIT else 0
        if order.type == MARKET or mkt.would_take(order.is_buy, order.price, self.config.half_spread):
            want = order.remaining
            if order.reduce_only:  # never take liquidity a reduce-only order could not use
                want = min(want, self._reducing_qty(acct, order))
            for price, qty in mkt.taker_fills(order.is_buy, want, limit, self.config.half_spread):
                if order.status not in (NEW, PARTIALLY_FILLED):
                    break
                self._fill(acct, order, qty, price, maker=False)
        if order.status in (NEW, PARTIALLY_FILLED):
            if order.type == MARKET or order.tif in (IOC, FOK):
                self._finish(acct, order, EXPIRED, "EXPIRED", "")
            else:
                self._reserve(acct, order, mkt)
                mkt.rest(order)

    def _reserve(self: "Exchange", acct: Account, order: Order, mkt) -> None:
        if order.reduce_only:
            return
        opening = order.remaining - self._reducing_qty(acct, order)
        if opening <= 0:
            return
        lev = acct.leverage_of(order.symbol, self._leg(acct, order), self.config.default_leverage)
        order.reserved = self._order_cost(opening, order.is_buy, order.price, mkt.mark or order.price, lev)
        acct.order_margin += order.reserved

    def _release(self: "Exchange", acct: Account, order: Order, qty: int | None = None) -> None:
        if not order.reserved:
            return
        if qty is None or qty >= order.remaining:
            part = order.reserved
        else:
            part = order.reserved * qty // order.remaining
        order.reserved -= part
        acct.order_margin -= part

    # ------------------------------------------------------------------ conditional orders

    def _place_conditional(self: "Exchange", acct: Account, order: Order, mkt) -> None:
        if order.reduce_only and not order.close_position and not acct.hedge:
            pos = acct.positions.get((order.symbol, BOTH))
            if pos is None or pos.qty == 0 or (pos.qty > 0) == order.is_buy:
                return self._reject_order(order, ERR["reduce_only"])
        if order.type != "TRAILING_STOP_MARKET":
            price = mkt.mark if order.working_type == MARK_PRICE else mkt.reference_price()
            if price:
                up = order.type in (STOP, STOP_MARKET) and order.is_buy or \
                    order.type in (TAKE_PROFIT, TAKE_PROFIT_MARKET) and not order.is_buy
                if (up and price >= order.stop_price) or (not up and price <= order.stop_price):
                    return self._reject_order(order, ERR["immediate_trigger"])
        elif not order.activation_price:
            price = mkt.mark if order.working_type == MARK_PRICE else mkt.reference_price()
            if price:
                order.activated = True
                order.trail_extreme = price
        self._assign_id(order)
        self._open_order(acct, order)
        mkt.add_trigger(order)
        self._emit_order(order, "NEW")

    def _reject_order(self: "Exchange", order: Order, err: tuple[int, str]) -> None:
        self.out.append(CommandRejected(order.create_ts, order.account, "PlaceOrder", err[0], err[1],
                                        order.client_id, order.symbol))

    def _trigger(self: "Exchange", order_ids: list[int], ts: int) -> None:
        """Turn triggered conditional orders into market/limit orders and submit them."""
        for oid in order_ids:
            cond = self.orders.get(oid)
            if cond is None or cond.status != NEW:
                continue
            acct = self.accounts[cond.account]
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
                pos = acct.positions.get((cond.symbol, self._leg(acct, cond)))
                qty = abs(pos.qty) if pos is not None and (pos.qty > 0) != cond.is_buy else 0
                child.qty = qty
            cond.status = TRIGGERED
            cond.update_ts = ts
            self._unopen_order(acct, cond)
            acct.remember(acct.closed_orders, cond)
            err = None if child.qty else (0, "NOTHING_TO_CLOSE")
            err = err or self._check_executable(acct, child, mkt)
            if err:
                cond.status = EXPIRED
                cond.reason = err[1] if not err[0] else f"REJECTED_ON_TRIGGER {err[0]} {err[1]}"
                self._emit_order(cond, "EXPIRED")
                continue
            self._assign_id(child)
            cond.triggered_order_id = child.id
            self._emit_order(cond, "TRIGGERED")
            self._submit(acct, child, mkt)

    # ------------------------------------------------------------------ fills

    def _fill(self: "Exchange", acct: Account, order: Order, qty: int, price: int, maker: bool,
              reason: str = "", fee_rate: int | None = None) -> None:
        """Execute ``qty`` of ``order`` at ``price``: fee, position, wallet, events, records."""
        leg = self._leg(acct, order)
        key = (order.symbol, leg)
        pos = acct.positions.get(key)
        if order.reduce_only:
            held = 0 if pos is None or (pos.qty > 0) == order.is_buy else abs(pos.qty)
            if qty > held:
                qty = held
            if qty <= 0:
                self._finish(acct, order, EXPIRED, "EXPIRED", "REDUCE_ONLY_NOTHING_TO_REDUCE")
                return
        if pos is None:
            key = leg_key(order.symbol, leg)
            pos = Position(acct.id, order.symbol, leg, order.symbol in acct.isolated,
                           acct.leverage_of(order.symbol, leg, self.config.default_leverage))
            pos.auto_add = (order.symbol, leg) in acct.auto_add
            acct.positions[key] = pos
        inst = self.instruments[order.symbol]
        quote = qty * price // SCALE
        if fee_rate is None:
            fee_rate = inst.maker_fee if maker else inst.taker_fee
        fee = -(-quote * fee_rate // SCALE)
        self._release(acct, order, qty)
        before = acct.cross_wallet
        realized = apply_fill(acct, pos, qty if order.is_buy else -qty, price, self.now)
        acct.cross_wallet -= fee
        acct.ledger["fees"] += fee
        order.filled += qty
        order.cum_quote += quote
        order.status = FILLED if order.filled >= order.qty else PARTIALLY_FILLED
        self.next_trade_id += 1
        tid = self.next_trade_id
        ts = self.now
        order.update_ts = ts
        acct.update_ts = ts
        acct.remember(acct.trades, TradeRecord(tid, order.id, acct.id, order.symbol, order.side, order.position_side,
                                       price, qty, quote, fee, realized, maker, ts))
        if realized:
            self._income(acct, order.symbol, "REALIZED_PNL", realized, str(tid))
        if fee:
            self._income(acct, order.symbol, "COMMISSION", -fee, str(tid))
        self.out.append(OrderUpdate(
            ts, acct.id, order.id, order.client_id, order.symbol, order.side, order.position_side, order.type,
            order.tif, order.status, "TRADE", order.price, order.stop_price, order.qty, order.filled,
            order.avg_price, qty, price, fee, realized, maker, tid, order.reduce_only, order.close_position,
            order.working_type, reason or order.reason))
        self.out.append(BalanceUpdate(ts, acct.id, acct.cross_wallet, acct.cross_wallet - before, "ORDER"))
        self.out.append(PositionUpdate(ts, acct.id, pos.symbol, pos.side, pos.qty, pos.entry_price, pos.isolated,
                                       pos.isolated_wallet, pos.leverage, "ORDER"))
        if pos.qty == 0:
            del acct.positions[key]
        self._position_changed(acct, pos)
        if order.status == FILLED:
            self._close_order(acct, order)
            if order.tp_price or order.sl_price:
                self._attach_tp_sl(acct, order)

    def _income(self: "Exchange", acct: Account, symbol: str, kind: str, amount: int, info: str = "") -> None:
        self.next_tran_id += 1
        acct.remember(acct.income, IncomeRecord(self.next_tran_id, acct.id, symbol, kind, amount, self.now, info))

    def _attach_tp_sl(self: "Exchange", acct: Account, entry: Order) -> None:
        """TP/SL attached to an entry become close-position trigger orders once it fills."""
        mkt = self.markets[entry.symbol]
        exit_side = SELL if entry.is_buy else BUY
        for kind, price in ((TAKE_PROFIT_MARKET, entry.tp_price), (STOP_MARKET, entry.sl_price)):
            if not price:
                continue
            cmd = PlaceOrder(ts=self.now, account=acct.id, symbol=entry.symbol, side=exit_side, order_type=kind,
                             stop_price=price, close_position=True, position_side=entry.position_side,
                             working_type=entry.working_type)
            self._place_conditional(acct, Order(0, cmd, ""), mkt)

    # ------------------------------------------------------------------ ends of orders

    def _close_order(self: "Exchange", acct: Account, order: Order) -> None:
        """Take a finished order off the book and out of the open set."""
        self._release(acct, order)
        mkt = self.markets[order.symbol]
        if order.type == LIMIT:
            mkt.unrest(order)
        self._unopen_order(acct, order)
        acct.remember(acct.closed_orders, order)

    def _finish(self: "Exchange", acct: Account, order: Order, status: str, exec_type: str, reason: str) -> None:
        order.status = status
        order.update_ts = self.now
        if reason:
            order.reason = reason
        if order.conditional:
            self.markets[order.symbol].remove_trigger(order)
        self._close_order(acct, order)
        self._emit_order(order, exec_type)

    def _cancel(self: "Exchange", acct: Account, order: Order, reason: str = "") -> None:
        self._finish(acct, order, CANCELED, "CANCELED", reason)

    def _cancel_where(self: "Exchange", acct: Account, keep, reason: str) -> None:
        """Cancel every open order of ``acct`` for which ``keep(order)`` is False."""
        for order in sorted(acct.open_orders.values(), key=lambda o: o.id):
            if not keep(order):
                self._cancel(acct, order, reason)

    def _emit_order(self: "Exchange", order: Order, exec_type: str) -> None:
        self.out.append(OrderUpdate(
            self.now, order.account, order.id, order.client_id, order.symbol, order.side, order.position_side,
            order.type, order.tif, order.status, exec_type, order.price, order.stop_price, order.qty,
            order.filled, order.avg_price, reduce_only=order.reduce_only, close_position=order.close_position,
            working_type=order.working_type, reason=order.reason))

    # ------------------------------------------------------------------ market-driven execution

    def _execute_resting(self: "Exchange", fills) -> None:
        for order, qty, price in fills:
            if order.status not in (NEW, PARTIALLY_FILLED) or qty <= 0:
                continue
            acct = self.accounts[order.account]
            self._fill(acct, order, min(qty, order.remaining), price, maker=True)

    def _on_price(self: "Exchange", mkt, working_type: str, price: int, ts: int) -> None:
        """Fire trigger orders a new mark or last price reaches."""
        ids = []
        if mkt.trig_up_min[working_type] <= price or mkt.trig_down_max[working_type] >= price:
            ids = mkt.crossed_triggers(working_type, price)
        if mkt.trailing:
            ids.extend(mkt.trailing_triggered(working_type, price))
        if ids:
            self._trigger(ids, ts)

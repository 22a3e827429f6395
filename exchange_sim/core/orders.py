"""Orders: the live order record, its read-only view, and the venue's static validation rules.

``check_order`` applies Binance's filters (symbol, side, type, time in force, tick, step,
min/max quantity, min/max price, min notional) and returns the venue's ``(code, msg)`` or None.
Checks that need account state (margin, reduce-only, position side) live in the exchange.
"""

from __future__ import annotations

from typing import Any

from .fixed import SCALE, fmt_trim
from .instruments import Instrument
from .messages import (
    BOTH, BUY, CONDITIONAL_TYPES, CONTRACT_PRICE, FOK, GTC, GTX, IOC, LIMIT, LONG, MARK_PRICE, MARKET,
    ORDER_TYPES, SELL, SHORT, STOP, TAKE_PROFIT, TRAILING_STOP_MARKET, CommandRejected, PlaceOrder,
)
from .views import OrderView

NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED = "NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED"
TRIGGERED = "TRIGGERED"
# orders that execute at market (Binance's MARKET_LOT_SIZE filter); STOP / TAKE_PROFIT become limits
MARKET_LIKE = frozenset({MARKET, "STOP_MARKET", "TAKE_PROFIT_MARKET", TRAILING_STOP_MARKET})
ERR = dict(
    symbol=(-1121, "Invalid symbol."),
    side=(-1117, "Invalid side."),
    type=(-1116, "Invalid orderType."),
    tif=(-1115, "Invalid timeInForce."),
    qty_zero=(-4003, "Quantity less than or equal to zero."),
    qty_step=(-4023, "Qty not increased by step size."),
    qty_max=(-4005, "Quantity greater than max quantity."),
    qty_min=(-4003, "Quantity less than min quantity."),
    price_zero=(-4001, "Price less than 0."),
    price_tick=(-4014, "Price not increased by tick size."),
    price_min=(-4013, "Price less than min price."),
    price_max=(-4016, "Price higher than max price."),
    stop_missing=(-1102, "Mandatory parameter 'stopPrice' was not sent, was empty/null, or malformed."),
    price_missing=(-1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed."),
    qty_missing=(-1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed."),
    callback=(-2007, "Invalid callBackRate."),
    position_side=(-4061, "Order's position side does not match user's setting."),
    reduce_only=(-2022, "ReduceOnly Order is rejected."),
    reduce_only_hedge=(-1106, "Parameter 'reduceonly' sent when not required."),
    close_position=(-4136, "Target strategy invalid for orderType MARKET,closePosition true"),
    margin=(-2019, "Margin is insufficient."),
    max_position=(-2027, "Exceeded the maximum allowable position at current leverage."),
    fok=(-5021, "Due to the order could not be filled immediately, the FOK order has been rejected. "
                "The order will not be recorded in the order history"),
    gtx=(-5022, "Due to the order could not be executed as maker, the Post Only order will be rejected. "
                "The order will not be recorded in the order history"),
    immediate_trigger=(-2021, "Order would immediately trigger."),
    no_price=(-4131, "The counterparty's best price does not meet the PERCENT_PRICE filter limit."),
    unknown_order=(-2011, "Unknown order sent."),
    no_such_order=(-2013, "Order does not exist."),
    no_modify=(-5027, "No need to modify the order."),
    modify_filled=(-4003, "Quantity less than or equal to the executed quantity."),
    account=(-2015, "Invalid API-key, IP, or permissions for action."),
    duplicate_client_id=(-4116, "ClientOrderId is duplicated."),
)


def min_notional_error(inst: Instrument) -> tuple[int, str]:
    return -4164, (f"Order's notional must be no smaller than {fmt_trim(inst.min_notional)} "
                   "(unless you choose reduce only).")


def stale_error(symbol: str) -> tuple[int, str]:
    return -2010, f"Market data for {symbol} is stale; market orders are refused until fresh data arrives."


class Order:
    """A live (or finished) order. Mutable inside the core only; the world sees ``view()``."""

    __slots__ = (
        "id", "client_id", "account", "symbol", "side", "position_side", "type", "tif", "price",
        "stop_price", "qty", "filled", "cum_quote", "status", "reduce_only", "close_position",
        "working_type", "callback_rate", "activation_price", "trail_extreme", "activated",
        "queue_ahead", "reserved", "create_ts", "update_ts", "reason", "conditional",
        "triggered_order_id", "tp_price", "sl_price", "price_protect", "is_buy",
    )

    def __init__(self, oid: int, cmd: PlaceOrder, client_id: str) -> None:
        self.id = oid
        self.client_id = client_id
        self.account = cmd.account
        self.symbol = cmd.symbol
        self.side = cmd.side
        self.is_buy = cmd.side == BUY
        self.position_side = cmd.position_side
        self.type = cmd.order_type
        self.tif = cmd.time_in_force if cmd.order_type in (LIMIT, STOP, TAKE_PROFIT) else GTC
        self.price = cmd.price
        self.stop_price = cmd.stop_price
        self.qty = cmd.qty
        self.filled = 0
        self.cum_quote = 0
        self.status = NEW
        self.reduce_only = cmd.reduce_only or cmd.close_position
        self.close_position = cmd.close_position
        self.working_type = cmd.working_type
        self.callback_rate = cmd.callback_rate
        self.activation_price = cmd.activation_price
        self.trail_extreme = 0
        self.activated = False
        self.queue_ahead = 0
        self.reserved = 0
        self.create_ts = cmd.ts
        self.update_ts = cmd.ts
        self.reason = ""
        self.conditional = cmd.order_type in CONDITIONAL_TYPES
        self.triggered_order_id = 0
        self.tp_price = cmd.take_profit_price
        self.sl_price = cmd.stop_loss_price
        self.price_protect = cmd.price_protect

    @property
    def remaining(self) -> int:
        return self.qty - self.filled

    @property
    def avg_price(self) -> int:
        return self.cum_quote * SCALE // self.filled if self.filled else 0

    def view(self) -> OrderView:
        return OrderView(
            order_id=self.id, client_order_id=self.client_id, account=self.account, symbol=self.symbol,
            side=self.side, position_side=self.position_side, order_type=self.type,
            time_in_force=self.tif, status=self.status, price=self.price, stop_price=self.stop_price,
            qty=self.qty, filled_qty=self.filled, avg_price=self.avg_price, cum_quote=self.cum_quote,
            reduce_only=self.reduce_only, close_position=self.close_position,
            working_type=self.working_type, callback_rate=self.callback_rate,
            activation_price=self.activation_price, price_protect=self.price_protect,
            conditional=self.conditional, triggered_order_id=self.triggered_order_id,
            create_ts=self.create_ts, update_ts=self.update_ts, reason=self.reason,
        )


def check_order(cmd: PlaceOrder, inst: Instrument | None, hedge: bool) -> tuple[int, str] | None:
    """Static venue filters for a new order; the venue's (code, msg) or None when it passes."""
    if inst is None:
        return ERR["symbol"]
    if cmd.side not in (BUY, SELL):
        return ERR["side"]
    if cmd.order_type not in ORDER_TYPES:
        return ERR["type"]
    if cmd.working_type not in (MARK_PRICE, CONTRACT_PRICE):
        return (-1102, "Mandatory parameter 'workingType' was not sent, was empty/null, or malformed.")
    if cmd.position_side not in (BOTH, LONG, SHORT):
        return ERR["position_side"]
    if hedge != (cmd.position_side != BOTH):
        return ERR["position_side"]
    if hedge and cmd.reduce_only:
        return ERR["reduce_only_hedge"]
    limit_like = cmd.order_type in (LIMIT, STOP, TAKE_PROFIT)
    if limit_like and cmd.time_in_force not in (GTC, IOC, FOK, GTX):
        return ERR["tif"]
    if cmd.close_position:
        if cmd.order_type not in CONDITIONAL_TYPES - {STOP, TAKE_PROFIT, TRAILING_STOP_MARKET}:
            return ERR["close_position"]
        if cmd.qty:
            return (-1106, "Parameter 'quantity' sent when not required.")
    else:
        if cmd.qty == 0:
            return ERR["qty_missing"]
        if cmd.qty < 0:
            return ERR["qty_zero"]
        if cmd.qty % inst.step_size:
            return ERR["qty_step"]
        if cmd.qty < inst.min_qty:
            return ERR["qty_min"]
        max_qty = inst.market_max_qty if cmd.order_type in MARKET_LIKE else inst.max_qty
        if cmd.qty > max_qty:
            return ERR["qty_max"]
    if limit_like:
        err = _check_price(cmd.price, inst, ERR["price_missing"])
        if err:
            return err
    if cmd.order_type in CONDITIONAL_TYPES and cmd.order_type != TRAILING_STOP_MARKET:
        err = _check_price(cmd.stop_price, inst, ERR["stop_missing"])
        if err:
            return err
    if cmd.order_type == TRAILING_STOP_MARKET:
        # Binance: callbackRate 0.1 .. 10 (percent)
        if not (SCALE // 10 <= cmd.callback_rate <= 10 * SCALE):
            return ERR["callback"]
        if cmd.activation_price:
            err = _check_price(cmd.activation_price, inst, ERR["stop_missing"])
            if err:
                return err
    for attached in (cmd.take_profit_price, cmd.stop_loss_price):
        if attached:
            err = _check_price(attached, inst, ERR["stop_missing"])
            if err:
                return err
    return None


def _check_price(price: int, inst: Instrument, missing: tuple[int, str]) -> tuple[int, str] | None:
    if price == 0:
        return missing
    if price < 0:
        return ERR["price_zero"]
    if price % inst.tick_size:
        return ERR["price_tick"]
    if price < inst.min_price:
        return ERR["price_min"]
    if price > inst.max_price:
        return ERR["price_max"]
    return None


def trigger_direction(order_type: str, side: str) -> int:
    """+1: triggers when the price rises to the stop; −1: when it falls to it (Binance rules)."""
    stop_like = order_type in ("STOP", "STOP_MARKET")
    if side == BUY:
        return 1 if stop_like else -1
    return -1 if stop_like else 1


def rejected(cmd: Any, err: tuple[int, str]) -> CommandRejected:
    """The venue's refusal of ``cmd`` (code and message); the command changes nothing."""
    return CommandRejected(cmd.ts, getattr(cmd, "account", None), type(cmd).__name__, err[0], err[1],
                           getattr(cmd, "client_order_id", ""), getattr(cmd, "symbol", ""))

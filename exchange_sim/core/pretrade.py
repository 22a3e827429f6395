"""Pre-trade checks that need account state: reduce-only, position limit, cost to open, GTX/FOK.

``check_executable`` is the account half of accepting an order (``orders.check_order`` is the
static half). The cost to open is margin-rules.md's "Orders and margin reservation":
IM + open loss, market orders costed at best ask × (1 + 0.05%) for buys, max(best bid, mark)
for sells; it must not exceed the balance available for orders (−2019).
"""

from __future__ import annotations

from .accounts import Account
from .exchange_config import ExchangeConfig
from .fixed import SCALE
from .margin import initial_margin, open_loss
from .matching import SymbolMarket
from .messages import BOTH, FOK, GTX, LIMIT, LONG, MARKET
from .orders import ERR, Order, min_notional_error, stale_error
from .risk_view import RiskView

MARKET_COST_BUFFER = 5 * SCALE // 10000  # market buys are costed at best ask × (1 + 0.05%)


def order_cost(qty: int, buy: bool, price: int, mark: int, leverage: int) -> int:
    """IM + open loss (margin-rules.md, "Orders and margin reservation")."""
    return initial_margin(qty * price // SCALE, leverage) + open_loss(qty, 1 if buy else -1, mark, price)


def leg_of(acct: Account, order: Order) -> str:
    """The position leg an order trades: its position side in hedge mode, else BOTH."""
    return order.position_side if acct.hedge else BOTH


def reducing_qty(acct: Account, order: Order) -> int:
    """How much of this order would reduce the existing position of its leg."""
    pos = acct.positions.get((order.symbol, leg_of(acct, order)))
    if pos is None or pos.qty == 0:
        return 0
    if (pos.qty > 0) == order.is_buy:
        return 0
    return min(abs(pos.qty), order.remaining)


def cost_price(order: Order, mkt: SymbolMarket) -> int:
    """The price an order is costed at (its limit, or the market-order rule above)."""
    if order.type == LIMIT:
        return order.price
    bid, ask = mkt.best_prices()
    if order.is_buy:
        return -(-ask * (SCALE + MARKET_COST_BUFFER) // SCALE) if ask else mkt.mark
    return max(bid, mkt.mark)


def check_executable(acct: Account, order: Order, mkt: SymbolMarket, config: ExchangeConfig,
                     view: RiskView) -> tuple[int, str] | None:
    """Account-state checks for a market/limit order about to be submitted (None = ok).

    In hedge mode an order closing its leg becomes reduce-only (the one change it makes).
    """
    inst = mkt.inst
    if order.type == MARKET and mkt.stale:
        return stale_error(order.symbol)
    leg = leg_of(acct, order)
    if acct.hedge:
        closing = (order.position_side == LONG) != order.is_buy
        if closing:
            order.reduce_only = True
    reducing = reducing_qty(acct, order)
    if order.reduce_only and not order.close_position and reducing == 0:
        return ERR["reduce_only"]
    price = cost_price(order, mkt)
    if price <= 0:
        return ERR["no_price"]
    if not order.reduce_only and order.qty * price // SCALE < inst.min_notional:
        return min_notional_error(inst)
    opening = 0 if order.reduce_only else order.remaining - reducing
    if opening > 0:
        pos = acct.positions.get((order.symbol, leg))
        lev = acct.leverage_of(order.symbol, leg, config.default_leverage)
        held = abs(pos.qty) if pos is not None and (pos.qty > 0) == order.is_buy else 0
        if (held + opening) * price // SCALE > inst.max_notional(lev):
            return ERR["max_position"]
        cost = order_cost(opening, order.is_buy, price, mkt.mark or price, lev)
        if cost > view.available(acct):
            return ERR["margin"]
    if order.type == LIMIT:
        if order.tif == GTX and mkt.would_take(order.is_buy, order.price, config.half_spread):
            return ERR["gtx"]
        if order.tif == FOK and mkt.taker_available(order.is_buy, order.price, config.half_spread) \
                < order.remaining:
            return ERR["fok"]
    return None

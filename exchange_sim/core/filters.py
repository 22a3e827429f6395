"""The venue's symbol filters that need the market or the account: PERCENT_PRICE, MAX_NUM_ORDERS,
MAX_NUM_ALGO_ORDERS. ``exchangeInfo`` publishes exactly these values (``api/wire.py`` reads them
from here), so a rule a bot sees advertised is a rule it meets.

Specification (Binance USDⓈ-M, error codes of its error-code page):

- **PERCENT_PRICE** (LIMIT orders, new or modified): with a mark price known, the limit price
  must satisfy ``mark × MULTIPLIER_DOWN ≤ price ≤ mark × MULTIPLIER_UP``; above:
  −4016 "Limit price can't be higher than <mark × up>.", below: −4024 "Limit price can't be lower
  than <mark × down>." (the bound unrounded, as the venue prints it). Without a mark (no market
  data yet) nothing is checked. The limit price of a conditional STOP / TAKE_PROFIT order is
  not held to this band (the venue bounds it by the trigger price, −4183/−4184: not simulated).
- **MAX_NUM_ORDERS**: an account holds at most ``MAX_NUM_ORDERS`` open regular orders per symbol;
  one more: −2025 "Reach max open order limit.".
- **MAX_NUM_ALGO_ORDERS**: at most ``MAX_NUM_ALGO_ORDERS`` open conditional (algo) orders per
  symbol; one more: −4045 "Reach max stop order limit.".

Pure functions of (order, mark, open orders) → ``(code, msg)`` or None.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .fixed import fmt_trim
from .messages import LIMIT, PlaceOrder

MULTIPLIER_DECIMAL = 4
MULTIPLIER_UP = 10_500  # 1.0500, in units of 10^-MULTIPLIER_DECIMAL
MULTIPLIER_DOWN = 9_500  # 0.9500
_ONE = 10**MULTIPLIER_DECIMAL
MAX_NUM_ORDERS = 200
MAX_NUM_ALGO_ORDERS = 10

MAX_OPEN_ORDERS = (-2025, "Reach max open order limit.")
MAX_STOP_ORDERS = (-4045, "Reach max stop order limit.")


def price_band_error(order_type: str, price: int, mark: int) -> tuple[int, str] | None:
    """PERCENT_PRICE for a limit ``price`` against the ``mark`` (fixed units), or None."""
    if order_type != LIMIT or mark <= 0 or price <= 0:
        return None
    if price * _ONE > mark * MULTIPLIER_UP:
        return -4016, f"Limit price can't be higher than {fmt_trim(mark * MULTIPLIER_UP // _ONE)}."
    if price * _ONE < mark * MULTIPLIER_DOWN:
        return -4024, f"Limit price can't be lower than {fmt_trim(-(-mark * MULTIPLIER_DOWN // _ONE))}."
    return None


def open_count_error(cmd: PlaceOrder, conditional: bool, open_orders: Iterable[Any]) -> tuple[int, str] | None:
    """MAX_NUM_ORDERS / MAX_NUM_ALGO_ORDERS for one more order of ``cmd.symbol``, or None.

    ``open_orders``: the account's open orders (anything with ``symbol`` and ``conditional``).
    """
    same = sum(1 for o in open_orders if o.symbol == cmd.symbol and o.conditional == conditional)
    if conditional:
        return MAX_STOP_ORDERS if same >= MAX_NUM_ALGO_ORDERS else None
    return MAX_OPEN_ORDERS if same >= MAX_NUM_ORDERS else None


def placement_error(cmd: PlaceOrder, conditional: bool, mark: int, open_orders: Iterable[Any]) -> tuple[int, str] | None:
    """Every filter of this module for a new order (counts first, as the venue answers)."""
    return open_count_error(cmd, conditional, open_orders) or price_band_error(cmd.order_type, cmd.price, mark)

"""The venue's symbol filters that need the market or the account: PERCENT_PRICE, MAX_NUM_ORDERS,
MAX_NUM_ALGO_ORDERS. ``exchangeInfo`` publishes exactly these values (``api/wire.py`` reads them
from here), so a rule a bot sees advertised is a rule it meets.

Specification (Binance USDⓈ-M, error codes of its error-code page):

- **PERCENT_PRICE** (LIMIT orders, new or modified): with a mark price known, the limit price
  must satisfy ``mark × MULTIPLIER_DOWN ≤ price ≤ mark × MULTIPLIER_UP``; above:
  −4016 "Limit price can't be higher than <cap>.", below: −4024 "Limit price can't be lower
  than <floor>.". The venue prints the bound at the symbol's ``pricePrecision`` (BTCUSDT, tick
  0.1 and precision 2: "Limit price can't be lower than 63113.16."), so the bound is printed
  with that many decimals, the cap rounded down and the floor up: the printed bound is itself a
  price the band accepts (the check is exact). Without a mark (no market data yet) nothing is
  checked.
- **Conditional limit orders** (STOP / TAKE_PROFIT with a price): the limit price is not held to
  the mark's band but to the trigger price's, ``stop × MULTIPLIER_DOWN ≤ price ≤ stop ×
  MULTIPLIER_UP`` (the error-code page, in its Chinese version: a TP/SL order's price may not be
  above the trigger price × the price multiplier's upper limit, nor below it × the lower; the
  multipliers are taken to be PERCENT_PRICE's, the only ones published); above: −4183 "Limit
  price can't be higher than <cap>.", below: −4184 "Limit price can't be lower than <floor>.",
  the bound printed as for PERCENT_PRICE.
- **MAX_NUM_ORDERS**: an account holds at most ``MAX_NUM_ORDERS`` open regular orders per symbol;
  one more: −2025 "Reach max open order limit.".
- **MAX_NUM_ALGO_ORDERS**: at most ``MAX_NUM_ALGO_ORDERS`` open conditional (algo) orders per
  symbol; one more: −4045 "Reach max stop order limit.".

Pure functions of (order, mark, open-order count) → ``(code, msg)`` or None.
"""

from __future__ import annotations

from .fixed import DECIMALS, fmt
from .messages import LIMIT, STOP, TAKE_PROFIT, PlaceOrder

MULTIPLIER_DECIMAL = 4
MULTIPLIER_UP = 10_500  # 1.0500, in units of 10^-MULTIPLIER_DECIMAL
MULTIPLIER_DOWN = 9_500  # 0.9500
_ONE = 10**MULTIPLIER_DECIMAL
MAX_NUM_ORDERS = 200
MAX_NUM_ALGO_ORDERS = 10

MAX_OPEN_ORDERS = (-2025, "Reach max open order limit.")
MAX_STOP_ORDERS = (-4045, "Reach max stop order limit.")


def price_band_error(order_type: str, price: int, mark: int, precision: int) -> tuple[int, str] | None:
    """PERCENT_PRICE for a limit ``price`` against the ``mark`` (fixed units), or None.

    ``precision``: the symbol's price precision (decimals), at which the bound is printed.
    """
    if order_type != LIMIT:
        return None
    return _band_error(price, mark, precision, -4016, -4024)


def stop_band_error(order_type: str, price: int, stop_price: int, precision: int) -> tuple[int, str] | None:
    """A conditional limit order's ``price`` against its trigger ``stop_price`` (−4183/−4184), or None."""
    if order_type not in (STOP, TAKE_PROFIT):
        return None
    return _band_error(price, stop_price, precision, -4183, -4184)


def _band_error(price: int, ref: int, precision: int, above: int, below: int) -> tuple[int, str] | None:
    if ref <= 0 or price <= 0:
        return None
    step = _ONE * 10 ** max(0, DECIMALS - precision)  # one unit of the last printed decimal, × _ONE
    if price * _ONE > ref * MULTIPLIER_UP:
        cap = ref * MULTIPLIER_UP // step * step // _ONE
        return above, f"Limit price can't be higher than {fmt(cap, precision)}."
    if price * _ONE < ref * MULTIPLIER_DOWN:
        floor = -(-ref * MULTIPLIER_DOWN // step) * step // _ONE
        return below, f"Limit price can't be lower than {fmt(floor, precision)}."
    return None


def open_count_error(cmd: PlaceOrder, conditional: bool, same: int) -> tuple[int, str] | None:
    """MAX_NUM_ORDERS / MAX_NUM_ALGO_ORDERS for one more order of ``cmd.symbol``, or None.

    ``same``: how many orders of that kind (conditional or not) the account has open on ``cmd.symbol``.
    """
    if conditional:
        return MAX_STOP_ORDERS if same >= MAX_NUM_ALGO_ORDERS else None
    return MAX_OPEN_ORDERS if same >= MAX_NUM_ORDERS else None


def placement_error(cmd: PlaceOrder, conditional: bool, mark: int, open_same: int,
                    precision: int) -> tuple[int, str] | None:
    """Every filter of this module for a new order (counts first, as the venue answers)."""
    return (open_count_error(cmd, conditional, open_same)
            or price_band_error(cmd.order_type, cmd.price, mark, precision)
            or stop_band_error(cmd.order_type, cmd.price, cmd.stop_price, precision))

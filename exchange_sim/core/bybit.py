"""Bybit USDT-perpetual formulas where they differ from Binance (margin-rules.md "Bybit differences").

Closed forms on the entry value: isolated LP = EP − (IM − MM)/Q (long), EP + (IM − MM)/Q (short),
bankruptcy EP × (1 ∓ 1/L), order cost = IM + fee to open + fee to close at the bankruptcy price.
Quantities and prices are fixed-point ints; ``qty`` is signed (+ long, − short).
"""

from __future__ import annotations

from .fixed import SCALE


def bankruptcy_price(qty: int, entry: int, leverage: int) -> int:
    """EP × (1 − 1/L) for a long, EP × (1 + 1/L) for a short."""
    return entry - entry // leverage if qty > 0 else entry + entry // leverage


def isolated_liquidation_price(qty: int, entry: int, leverage: int, mmr: int, extra_margin: int = 0) -> int:
    """Long: EP − (IM − MM)/Q − extra/Q; short: EP + (IM − MM)/Q + extra/Q (MM on the entry value)."""
    q = abs(qty)
    value = q * entry // SCALE
    im = value // leverage
    mm = value * mmr // SCALE
    offset = (im - mm + extra_margin) * SCALE // q
    return entry - offset if qty > 0 else entry + offset


def order_cost(qty: int, price: int, leverage: int, taker_fee: int, buy: bool) -> int:
    """IM + fee to open + fee to close at the bankruptcy price (buy: × (1 − 1/L), sell: × (1 + 1/L))."""
    value = abs(qty) * price // SCALE
    im = value // leverage
    open_fee = value * taker_fee // SCALE
    close_value = value - value // leverage if buy else value + value // leverage
    return im + open_fee + close_value * taker_fee // SCALE

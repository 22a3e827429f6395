"""Exact fixed-point numbers: every price, quantity, amount and rate in the core is an ``int``.

One scale for everything: ``SCALE = 10**8`` units per 1 (1 unit = 0.00000001), the precision
Binance uses for balances and rates. ``60000.1`` USDT is ``6_000_010_000_000``; a rate of 0.4%
is ``400_000``. Conversions from and to text happen only at the edges (feeds, API, config);
inside the core it is integer arithmetic, so balances never drift.

Products of two fixed numbers are rescaled with an explicit rounding direction, chosen so the
venue is never short-changed: margins round up, what is paid out rounds down.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

SCALE = 10**8
DECIMALS = 8


class FixedPointError(ValueError):
    """Text that is not a finite number with at most 8 decimals."""


def to_fixed(value: str | int | Decimal) -> int:
    """Parse ``"60000.1"`` (or a Decimal / whole int) into fixed units, exactly.

    Raises FixedPointError for anything that is not finite or has more than 8 decimals.
    """
    if isinstance(value, bool):
        raise FixedPointError(f"not a number: {value!r}")
    if isinstance(value, int):
        return value * SCALE
    if type(value) is str:
        # fast path for plain decimal text ("60000.10", "-0.5"); anything else goes through Decimal
        whole, _, frac = value.partition(".")
        negative = whole.startswith("-")
        digits = whole[1:] if negative else whole
        if digits.isdigit() and digits.isascii() and len(frac) <= DECIMALS and (
                not frac or (frac.isdigit() and frac.isascii())):
            units = int(digits) * SCALE + (int(frac.ljust(DECIMALS, "0")) if frac else 0)
            return -units if negative else units
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise FixedPointError(f"not a number: {value!r}") from None
    if not d.is_finite():
        raise FixedPointError(f"not a finite number: {value!r}")
    scaled = d.scaleb(DECIMALS)
    if scaled != scaled.to_integral_value():
        raise FixedPointError(f"more than {DECIMALS} decimals: {value!r}")
    return int(scaled)


def to_decimal(units: int) -> Decimal:
    """Fixed units back to an exact Decimal (``6_000_010_000_000`` → ``Decimal('60000.1')``)."""
    return (Decimal(units).scaleb(-DECIMALS)).normalize() if units else Decimal(0)


def fmt(units: int, decimals: int = DECIMALS) -> str:
    """Fixed units as plain decimal text with exactly ``decimals`` places (truncated toward zero)."""
    sign = "-" if units < 0 else ""
    units = abs(units)
    whole, frac = divmod(units, SCALE)
    if decimals <= 0:
        return f"{sign}{whole}"
    frac_text = f"{frac:08d}"[:decimals].ljust(decimals, "0")
    return f"{sign}{whole}.{frac_text}"


def fmt_trim(units: int) -> str:
    """Fixed units as the shortest exact decimal text (``"60000.1"``, ``"0"``)."""
    d = to_decimal(units)
    text = format(d, "f")
    return text


def mul(a: int, b: int) -> int:
    """a × b rescaled, rounded toward negative infinity."""
    return a * b // SCALE


def notional(price: int, qty: int) -> int:
    """price × qty as an amount (exact for tick- and lot-aligned values, else floored)."""
    return price * qty // SCALE

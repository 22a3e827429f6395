"""Request parameters: parsed from the raw query string and form body, validated the venue's way.

Every getter either returns a clean value or raises ``ApiError`` with Binance's code:
missing → −1102, bad characters → −1100, too many decimals → −1111, bad enum → −1116/−1117/
−1115/−1130, unknown symbol → −1121, duplicate key → −1101. Numbers become fixed-point ints here
(``exchange_sim.core.fixed``), the only place text turns into money on the way in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl

from exchange_sim.core.fixed import DECIMALS, SCALE, to_fixed
from exchange_sim.core.instruments import Instrument

from . import errors
from .errors import ApiError

DECIMAL_RE = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
INT_RE = re.compile(r"^-?[0-9]{1,19}$")
MAX_PARAMS = 64
MAX_VALUE_LEN = 8192  # batchOrders carries a JSON list


def parse_pairs(*raw_parts: str) -> list[tuple[str, str]]:
    """Decoded (key, value) pairs of url-encoded strings, in order (malformed text → −1100)."""
    pairs: list[tuple[str, str]] = []
    for raw in raw_parts:
        if not raw:
            continue
        try:
            pairs.extend(parse_qsl(raw, keep_blank_values=True, strict_parsing=False,
                                   errors="strict", max_num_fields=MAX_PARAMS))
        except (ValueError, UnicodeDecodeError):
            raise ApiError(errors.ILLEGAL_CHARS, "Illegal characters found in a parameter.") from None
    return pairs


class Params:
    """A request's parameters (query + form body) with typed, venue-checked getters."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, str] = {}
        for key, value in pairs:
            if key in self._values:
                raise ApiError(errors.TOO_MANY_PARAMETERS, "Duplicate values for a parameter detected.")
            if len(value) > MAX_VALUE_LEN:
                raise ApiError(errors.ILLEGAL_CHARS, f"Illegal characters found in parameter '{key}'.")
            self._values[key] = value

    @classmethod
    def from_mapping(cls, data: Mapping[str, str]) -> Params:
        return cls(data.items())

    def __contains__(self, name: str) -> bool:
        return name in self._values and self._values[name] != ""

    def keys(self) -> list[str]:
        return list(self._values)

    def raw(self, name: str) -> str | None:
        value = self._values.get(name)
        return None if value is None or value == "" else value

    # ------------------------------------------------------------------ typed getters

    def text(self, name: str, required: bool = False, default: str | None = None) -> str | None:
        value = self.raw(name)
        if value is None:
            if required:
                raise errors.mandatory(name)
            return default
        return value

    def client_id(self, name: str) -> str | None:
        value = self.raw(name)
        if value is None:
            return None
        if not CLIENT_ID_RE.match(value):
            raise ApiError(errors.ILLEGAL_CHARS,
                           f"Illegal characters found in parameter '{name}'; legal range is "
                           "'^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.")
        return value

    def choice(self, name: str, choices: Iterable[str], *, required: bool = False,
               default: str | None = None, code: int = errors.INVALID_PARAMETER,
               msg: str | None = None) -> str | None:
        value = self.raw(name)
        if value is None:
            if required:
                raise errors.mandatory(name)
            return default
        if value not in set(choices):
            raise ApiError(code, msg or f"Data sent for parameter '{name}' is not valid.")
        return value

    def integer(self, name: str, *, required: bool = False, default: int | None = None,
                lo: int | None = None, hi: int | None = None) -> int | None:
        value = self.raw(name)
        if value is None:
            if required:
                raise errors.mandatory(name)
            return default
        if not INT_RE.match(value):
            raise ApiError(errors.ILLEGAL_CHARS, f"Illegal characters found in parameter '{name}'; "
                           "legal range is '^[0-9]{1,20}$'.")
        number = int(value)
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            raise errors.invalid_param(name)
        return number

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
        raise errors.invalid_param(name)

    def decimal(self, name: str, *, required: bool = False, default: int | None = None,
                max_decimals: int = DECIMALS, allow_zero: bool = False) -> int | None:
        """A non-negative decimal as fixed units (−1100 bad text, −1111 too many decimals)."""
        value = self.raw(name)
        if value is None:
            if required:
                raise errors.mandatory(name)
            return default
        match = DECIMAL_RE.match(value)
        if not match:
            raise ApiError(errors.ILLEGAL_CHARS, f"Illegal characters found in parameter '{name}'; "
                           "legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
        fraction = (match.group(2) or ".")[1:].rstrip("0")
        if len(fraction) > max_decimals:
            raise ApiError(errors.BAD_PRECISION, "Precision is over the maximum defined for this asset.")
        units = to_fixed(value)
        if units == 0 and not allow_zero:
            raise errors.invalid_param(name)
        return units

    # ------------------------------------------------------------------ venue objects

    def symbol(self, instruments: Mapping[str, Instrument], *, required: bool = True) -> Instrument | None:
        value = self.raw("symbol")
        if value is None:
            if required:
                raise errors.mandatory("symbol")
            return None
        inst = instruments.get(value.upper()) if len(value) <= 32 else None
        if inst is None:
            raise errors.invalid_symbol()
        return inst

    def quantity(self, inst: Instrument, name: str = "quantity", *, required: bool = True) -> int | None:
        """An order quantity: inst precision, > 0 (−1111, −4003); the step size is the core's filter."""
        value = self.raw(name)
        if value is None:
            if required:
                raise errors.mandatory(name)
            return None
        units = self.decimal(name, max_decimals=inst.qty_precision, allow_zero=True)
        assert units is not None
        if units <= 0:
            raise ApiError(errors.QTY_LESS_THAN_ZERO, "Quantity less than or equal to zero.")
        return units

    def price(self, inst: Instrument, name: str = "price", *, required: bool = True) -> int | None:
        """An order price: inst precision, > 0 (−1111, −4001); the tick size is the core's filter."""
        value = self.raw(name)
        if value is None:
            if required:
                raise errors.mandatory(name)
            return None
        units = self.decimal(name, max_decimals=inst.price_precision, allow_zero=True)
        assert units is not None
        if units <= 0:
            raise ApiError(errors.PRICE_LESS_THAN_ZERO, "Price less than or equal to zero.")
        return units


def fixed_from_json(value: object, name: str, *, allow_negative: bool = False) -> int:
    """A JSON number or decimal string (admin API bodies) as fixed units, or −1130."""
    if isinstance(value, bool) or value is None:
        raise errors.invalid_param(name)
    if isinstance(value, int):
        units = value * SCALE
    elif isinstance(value, (str, float)):
        text = str(value).strip()
        if not re.match(r"^-?[0-9]{1,20}(\.[0-9]{1,20})?$", text):
            raise errors.invalid_param(name)
        try:
            units = to_fixed(text)
        except ValueError:
            raise errors.invalid_param(name) from None
    else:
        raise errors.invalid_param(name)
    if units < 0 and not allow_negative:
        raise errors.invalid_param(name)
    return units

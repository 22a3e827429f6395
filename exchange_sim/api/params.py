"""Request parameters: parsed from the raw query string and form body, validated the venue's way.

Every getter either returns a clean value or raises ``ApiError`` with Binance's code:
missing → −1102, bad characters → −1100, too many decimals → −1111, bad enum → −1116/−1117/
−1115/−1130, unknown symbol → −1121, duplicate key → −1101. Numbers become fixed-point ints here
(``exchange_sim.core.fixed``), the only place text turns into money on the way in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from exchange_sim.core.fixed import DECIMALS, SCALE, to_fixed
from exchange_sim.core.instruments import Instrument

from . import errors
from .errors import ApiError

# matched with ``fullmatch`` (``$`` would let a trailing newline through); [0-9] is ASCII digits only
DECIMAL_RE = re.compile(r"([0-9]{1,20})(\.[0-9]{1,20})?")
CLIENT_ID_RE = re.compile(r"[\.A-Z\:/a-z0-9_-]{1,36}")
INT_RE = re.compile(r"-?[0-9]{1,19}")
JSON_DECIMAL_RE = re.compile(r"-?[0-9]{1,20}(\.[0-9]{1,20})?")
ASCII_DIGITS_RE = re.compile(r"[0-9]{1,18}")
MAX_ADMIN_AMOUNT = 10**10 * SCALE  # admin money (deposits, transfers, levels' quantities): 10 billion
MAX_PARAMS = 64
MAX_JSON_DEPTH = 32  # admin and dashboard bodies nest 4 deep; '[' x 100,000 would overflow the parser's stack
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
MAX_VALUE_LEN = 8192  # batchOrders carries a JSON list


def parse_pairs(*raw_parts: str) -> list[tuple[str, str]]:
    """Decoded (key, value) pairs of url-encoded strings, in order (malformed text → −1100)."""
    pairs: list[tuple[str, str]] = []
    for raw in raw_parts:
        if not raw:
            continue
        if "%" not in raw and "+" not in raw:  # nothing to decode (a bot's usual request): split it
            if raw.count("&") >= MAX_PARAMS:
                raise ApiError(errors.ILLEGAL_CHARS, "Illegal characters found in a parameter.")
            pairs.extend(_split_plain(raw))
            continue
        try:
            pairs.extend(parse_qsl(raw, keep_blank_values=True, strict_parsing=False,
                                   errors="strict", max_num_fields=MAX_PARAMS))
        except (ValueError, UnicodeDecodeError):
            raise ApiError(errors.ILLEGAL_CHARS, "Illegal characters found in a parameter.") from None
    return pairs


def _split_plain(raw: str) -> list[tuple[str, str]]:
    """``parse_qsl(raw, keep_blank_values=True)`` for text with no ``%`` or ``+`` (there is nothing to
    unquote), without its per-field decoding: the same pairs, several times faster."""
    out = []
    for field in raw.split("&"):
        if field:
            key, _, value = field.partition("=")
            out.append((key, value))
    return out


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
        if not CLIENT_ID_RE.fullmatch(value):
            raise ApiError(errors.ILLEGAL_CHARS,
                           f"Illegal characters found in parameter '{name}'; legal range is "
                           "'^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.")
        return value

    def choice(self, name: str, choices: Collection[str], *, required: bool = False,
               default: str | None = None, code: int = errors.INVALID_PARAMETER,
               msg: str | None = None) -> str | None:
        value = self.raw(name)
        if value is None:
            if required:
                raise errors.mandatory(name)
            return default
        if value not in choices:
            raise ApiError(code, msg or f"Data sent for parameter '{name}' is not valid.")
        return value

    def integer(self, name: str, *, required: bool = False, default: int | None = None,
                lo: int | None = None, hi: int | None = None) -> int | None:
        value = self.raw(name)
        if value is None:
            if required:
                raise errors.mandatory(name)
            return default
        if not INT_RE.fullmatch(value):
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
        match = DECIMAL_RE.fullmatch(value)
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


def ascii_int(value: object) -> int | None:
    """A JSON integer, or a string of ASCII digits (at most 18), as an int; None for anything else.

    ``str.isdigit`` is true for ``²`` and ``１０``: only ``0-9`` make a number here.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and ASCII_DIGITS_RE.fullmatch(value):
        return int(value)
    return None


def fixed_from_json(value: object, name: str, *, allow_negative: bool = False,
                    limit: int = MAX_ADMIN_AMOUNT) -> int:
    """A JSON number or decimal string (admin API bodies) as fixed units, |value| <= ``limit``, or −1130."""
    if isinstance(value, bool) or value is None:
        raise errors.invalid_param(name)
    if isinstance(value, int):
        if abs(value) > limit // SCALE:  # before multiplying: a 4,000-digit integer is refused as it is
            raise errors.invalid_param(name)
        units = value * SCALE
    elif isinstance(value, (str, float)):
        text = repr(value) if isinstance(value, float) else value
        if not JSON_DECIMAL_RE.fullmatch(text):
            raise errors.invalid_param(name)
        try:
            units = to_fixed(text)
        except ValueError:
            raise errors.invalid_param(name) from None
    else:
        raise errors.invalid_param(name)
    if (units < 0 and not allow_negative) or abs(units) > limit:
        raise errors.invalid_param(name)
    return units


def json_depth(raw: bytes) -> int:
    """How deeply ``raw`` (JSON text) nests arrays and objects (brackets inside strings do not count)."""
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in brackets:
        depth += 1 if byte in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


def load_json(raw: bytes, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON request body no larger than ``max_bytes`` and nested at most ``max_depth`` deep.

    Raises ValueError with a sentence for the client (too large, too deep, not JSON).
    """
    if len(raw) > max_bytes:
        raise ValueError(f"body too large (over {max_bytes} bytes)")
    if json_depth(raw) > max_depth:
        raise ValueError(f"body nested too deeply (over {max_depth} levels)")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ValueError("body is not valid JSON") from None

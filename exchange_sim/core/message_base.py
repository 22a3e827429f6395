"""The base of every core message, the venue's enumeration words, and the canonical JSON codec.

``messages`` (inputs) and ``events`` (outputs) define the messages; import them from
``messages``, which re-exports everything here and in ``events``.
"""

from __future__ import annotations

from typing import Any

import msgspec

Level = tuple[int, int]  # (price, qty)

BUY, SELL = "BUY", "SELL"
BOTH, LONG, SHORT = "BOTH", "LONG", "SHORT"
MARKET, LIMIT = "MARKET", "LIMIT"
STOP_MARKET, STOP, TAKE_PROFIT_MARKET, TAKE_PROFIT = "STOP_MARKET", "STOP", "TAKE_PROFIT_MARKET", "TAKE_PROFIT"
TRAILING_STOP_MARKET = "TRAILING_STOP_MARKET"
CONDITIONAL_TYPES = frozenset({STOP_MARKET, STOP, TAKE_PROFIT_MARKET, TAKE_PROFIT, TRAILING_STOP_MARKET})
ORDER_TYPES = frozenset({MARKET, LIMIT}) | CONDITIONAL_TYPES
GTC, IOC, FOK, GTX = "GTC", "IOC", "FOK", "GTX"
MARK_PRICE, CONTRACT_PRICE = "MARK_PRICE", "CONTRACT_PRICE"

_REGISTRY: dict[str, type] = {}


class Message(msgspec.Struct, frozen=True, gc=False, tag=True, tag_field="type"):
    """Base of every message: an immutable msgspec Struct (built ~20x faster than a frozen
    dataclass, which matters on the per-order path), registered by name for encode/decode.
    Its JSON form carries the class name under ``"type"`` (a tagged union)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls


# ----------------------------------------------------------------------------- codec


def field_names(msg: Any) -> tuple[str, ...]:
    """The field names of a message (or message class), in order."""
    return msg.__struct_fields__


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Message):
        return encode(value)
    return value


def encode(msg: Any) -> dict[str, Any]:
    """A message as a plain dict with its type name under ``"type"``."""
    out: dict[str, Any] = {"type": type(msg).__name__}
    for name in msg.__struct_fields__:
        out[name] = _plain(getattr(msg, name))
    return out


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict) and "type" in value:
        return decode(value)
    return value


def decode(data: dict[str, Any]) -> Any:
    """The message ``encode`` produced (raises KeyError/TypeError for an unknown type or field)."""
    cls = _REGISTRY[data["type"]]
    kwargs = {k: _tuples(v) for k, v in data.items() if k != "type"}
    return cls(**kwargs)


_ENCODER = msgspec.json.Encoder()
_DECODER: Any = None


def dumps(msg: Any) -> str:
    """Canonical JSON of one message: ``{"type": name, <fields in declaration order>}``.

    Same message, same bytes (msgspec writes fields in a fixed order, compactly), and ~15x
    faster than json.dumps: the journal writes this for every input and event before it
    acknowledges anything.
    """
    return _ENCODER.encode(msg).decode()


def loads(text: str | bytes) -> Any:
    """The message ``dumps`` wrote (ValueError for text that is not one, or not valid)."""
    global _DECODER
    if _DECODER is None:
        from functools import reduce
        from operator import or_

        every_message: Any = reduce(or_, _REGISTRY.values())  # the tagged union of every message type
        _DECODER = msgspec.json.Decoder(every_message)
    return _DECODER.decode(text)

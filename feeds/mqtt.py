"""Ticks published by another process on an MQTT topic (aiomqtt), as a feed.

    async with MqttFeed("mqtt://127.0.0.1:1883/exsim/ticks/#", ["BTCUSDT"]) as feed:
        async for event in feed:
            ...

The tick JSON form (UTF-8 JSON; one object, or a list of objects, per MQTT message). Numbers
may be JSON strings (preferred, exact) or JSON numbers; ``ts`` is integer milliseconds since the
epoch (optional: the receive time is used when missing); ``symbol`` is the simulator's
instrument (``"BTCUSDT"``; ``"BTC/USDT:USDT"`` is accepted too):

    {"type": "trade", "symbol": "BTCUSDT", "price": "60000.1", "qty": "0.010", "side": "BUY",
     "ts": 1722816000000, "id": 123}                      # side = the taker's side, id optional
    {"type": "mark", "symbol": "BTCUSDT", "mark": "60000.5", "index": "60001.0",
     "funding_rate": "0.0001", "next_funding_ts": 1722844800000, "ts": 1722816000000}
                                                          # index/funding_rate/next_funding_ts optional
    {"type": "index", "symbol": "BTCUSDT", "price": "60001.0", "ts": 1722816000000}
    {"type": "book", "symbol": "BTCUSDT", "bids": [["59999.9", "1.5"]], "asks": [["60000.1", "2"]],
     "ts": 1722816000000, "update_id": 42}                # a whole book (snapshot)
    {"type": "book", "snapshot": false, "symbol": "BTCUSDT", "bids": [["59999.9", "0"]], "asks": [],
     "ts": 1722816000000, "first_update_id": 43, "final_update_id": 43, "prev_final_update_id": 42}
                                                          # a diff: qty "0" deletes the level
    {"type": "funding", "symbol": "BTCUSDT", "rate": "0.0001", "ts": 1722844800000}
                                                          # a funding settlement now

A recorder line (``exchange_sim.core.messages.encode`` form, ``"type": "Trade"`` etc. with
fixed-point ints) is accepted as well. A message that is not valid JSON or not a valid tick is
counted in ``bad_messages`` and skipped (the publisher is another program; one bad message does
not end the feed); messages for instruments not asked for are ignored. A lost broker connection
raises ``FeedDisconnected``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, Self
from urllib.parse import urlsplit

import aiomqtt

from exchange_sim.core.messages import (
    BUY,
    SELL,
    BookDelta,
    BookSnapshot,
    Funding,
    IndexPrice,
    MarkPrice,
    Trade,
    decode,
)

from .base import (
    CONNECTED,
    FeedDisconnected,
    FeedError,
    FeedFormatError,
    FeedSignal,
    FeedSpecError,
    check_symbols,
    fixed_rounded,
    is_market_event,
    plain_symbol,
    wall_ms,
)

log = logging.getLogger(__name__)
_CORE_NAMES = {"BookSnapshot", "BookDelta", "Trade", "MarkPrice", "IndexPrice", "Funding"}


def parse_url(url: str) -> tuple[str, int, str]:
    """``mqtt://host:port/topic/#`` → (host, port, topic)."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise FeedSpecError(f"MQTT feed URL must look like mqtt://host:port/topic, not {url!r}")
    topic = url[len("mqtt://"):].partition("/")[2]  # kept verbatim: '#' is a wildcard here, not a fragment
    if not topic:
        raise FeedSpecError(f"MQTT feed URL has no topic: {url!r}")
    try:
        port = parts.port or 1883
    except ValueError:
        raise FeedSpecError(f"bad port in {url!r}") from None
    return parts.hostname, port, topic


def _num(obj: dict[str, Any], key: str) -> int:
    if key not in obj:
        raise FeedFormatError(f"tick without {key!r}")
    return fixed_rounded(obj[key], key)


def _opt(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    return None if value in (None, "") else fixed_rounded(value, key)


def _levels(rows: Any) -> tuple[tuple[int, int], ...]:
    if not isinstance(rows, list):
        raise FeedFormatError("book levels must be a list of [price, qty]")
    out = []
    for row in rows:
        if not isinstance(row, (list, tuple)) or len(row) < 2:
            raise FeedFormatError(f"bad book level {row!r}")
        out.append((fixed_rounded(row[0], "price"), fixed_rounded(row[1], "qty")))
    return tuple(out)


def parse_tick(obj: Any, now_ms: int) -> Any:
    """One tick object (the module docstring's form) → a core market event."""
    if not isinstance(obj, dict):
        raise FeedFormatError(f"a tick must be a JSON object, not {type(obj).__name__}")
    kind = obj.get("type")
    if kind in _CORE_NAMES:
        try:
            return decode(obj)
        except (KeyError, TypeError, ValueError) as exc:
            raise FeedFormatError(f"bad {kind} message: {exc}") from None
    symbol = plain_symbol(str(obj.get("symbol", "")))
    if not symbol:
        raise FeedFormatError("tick without a symbol")
    try:
        ts = int(obj.get("ts") or now_ms)
    except (TypeError, ValueError):
        raise FeedFormatError(f"bad ts {obj.get('ts')!r}") from None
    if kind == "trade":
        side = str(obj.get("side", BUY)).upper()
        if side not in (BUY, SELL):
            raise FeedFormatError(f"bad side {side!r}")
        return Trade(ts=ts, symbol=symbol, price=_num(obj, "price"), qty=_num(obj, "qty"), taker_side=side,
                     trade_id=int(obj.get("id", 0) or 0))
    if kind == "mark":
        nxt = obj.get("next_funding_ts")
        return MarkPrice(ts=ts, symbol=symbol, mark=_num(obj, "mark"), index=_opt(obj, "index"),
                         funding_rate=_opt(obj, "funding_rate"), next_funding_ts=int(nxt) if nxt else None)
    if kind == "index":
        return IndexPrice(ts=ts, symbol=symbol, price=_num(obj, "price"))
    if kind == "funding":
        return Funding(ts=ts, symbol=symbol, rate=_num(obj, "rate"))
    if kind == "book":
        bids, asks = _levels(obj.get("bids", [])), _levels(obj.get("asks", []))
        if obj.get("snapshot", True):
            return BookSnapshot(ts=ts, symbol=symbol, bids=bids, asks=asks,
                                update_id=int(obj.get("update_id", 0)))
        return BookDelta(ts=ts, symbol=symbol, bids=bids, asks=asks,
                         first_update_id=int(obj.get("first_update_id", 0)),
                         final_update_id=int(obj.get("final_update_id", 0)),
                         prev_final_update_id=int(obj.get("prev_final_update_id", 0)))
    raise FeedFormatError(f"unknown tick type {kind!r}")


def parse_payload(payload: bytes | str, now_ms: int) -> list[Any]:
    """An MQTT payload (one tick object or a list of them) → core events."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise FeedFormatError("payload is not JSON") from None
    items = data if isinstance(data, list) else [data]
    try:
        return [parse_tick(obj, now_ms) for obj in items]
    except (TypeError, ValueError) as exc:
        raise FeedFormatError(f"bad tick: {exc}") from None


class MqttFeed:
    """Ticks from an MQTT topic as an async iterator of core market events."""

    def __init__(self, url: str, symbols: Sequence[str], *, client_id: str | None = None,
                 username: str | None = None, password: str | None = None, qos: int = 0,
                 timeout: float = 10.0) -> None:
        self.url = url
        self.host, self.port, self.topic = parse_url(url)
        self.symbols = check_symbols(symbols)
        self.qos = qos
        self.bad_messages = 0
        self.received = 0
        self._options = {"identifier": client_id, "username": username, "password": password,
                         "timeout": timeout}
        self._client: aiomqtt.Client | None = None
        self._entered = False

    async def __aenter__(self) -> Self:
        try:
            self._client = aiomqtt.Client(self.host, self.port, **self._options)  # needs the running loop
            await self._client.__aenter__()
            self._entered = True
            await self._client.subscribe(self.topic, qos=self.qos)
        except aiomqtt.MqttError as exc:
            await self.aclose()
            raise FeedDisconnected(f"MQTT {self.host}:{self.port}: {exc}") from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._entered and self._client is not None:
            self._entered = False
            try:
                await self._client.__aexit__(None, None, None)
            except aiomqtt.MqttError:
                pass

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._run()

    async def _run(self) -> AsyncIterator[Any]:
        if not self._entered or self._client is None:
            raise FeedError("use 'async with MqttFeed(...)' before iterating")
        yield FeedSignal(ts=wall_ms(), symbol=",".join(self.symbols), kind=CONNECTED, detail=self.url)
        try:
            async for message in self._client.messages:
                self.received += 1
                payload = message.payload
                if not isinstance(payload, (bytes, bytearray, str)):
                    self.bad_messages += 1
                    continue
                try:
                    events = parse_payload(payload, wall_ms())
                except FeedFormatError as exc:
                    self.bad_messages += 1
                    log.warning("MQTT %s: bad tick skipped: %s", message.topic, exc)
                    continue
                for ev in events:
                    if is_market_event(ev) and ev.symbol in self.symbols:
                        yield ev
        except aiomqtt.MqttError as exc:
            raise FeedDisconnected(f"MQTT {self.host}:{self.port}: {exc}") from None
        except asyncio.CancelledError:
            raise
        raise FeedDisconnected(f"MQTT {self.host}:{self.port}: message stream ended")

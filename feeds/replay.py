"""Replay of recordings as a feed: raw Binance websocket captures, archive CSVs, recorder output.

Formats (detected from the first line; gzip detected from the magic bytes):

- **raw capture**: ``<local_ns> <json>`` per line, as hftbacktest records the USDⓈ-M websocket:
  combined-stream messages (``{"stream":..., "data":{...}}``: ``depthUpdate``, ``trade``,
  ``aggTrade``, ``markPriceUpdate``, ``bookTicker``) and REST depth snapshots
  (``{"lastUpdateId":...}``). The book is built with the same U/u/pu rules as the live feed
  (``binance_wire.DepthSync``): diffs before the snapshot are buffered, the first applied diff
  straddles it, a gap waits for the next snapshot in the file. ``bookTicker`` is ignored (the
  depth stream already carries the top of the book) unless the file has no depth at all.
- **recorder output** (``feeds.recorder``): one canonical JSON core message per line.
- **archive CSV**: see ``feeds.archive`` (trades, aggTrades, bookTicker, klines, mark-price
  klines, funding rates).

Several files are merged by timestamp (e.g. 1m klines + funding rates). Speed: ``0`` as fast as
possible, ``1`` real time, ``N`` N times real time (paced on the events' own timestamps).

Served to clients (``exchange-sim run --feed replay:...``) a recording is shifted to start now:
``start_at`` (a clock in ms) is read at the first market event and every timestamp moves by the
same offset, so the spacing stays and a bot that judges candles by its own wall clock sees fresh
data. Without ``start_at`` the recording keeps its own times (the offline ``exchange-sim replay``).
"""

from __future__ import annotations

import asyncio
import gzip
import heapq
import io
import json
import os
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any

import msgspec
from msgspec.structs import replace as _restamp

from exchange_sim.core.messages import BookSnapshot, MarkPrice, loads

from .archive import read_archive, symbol_from_name
from .base import GAP, RESYNC, FeedFormatError, FeedSignal, FeedSpecError, Pacer, is_market_event
from .binance_wire import WireDecoder, depth_snapshot
from .klines import DEFAULT_PATH, PathOptions

RAW, RECORDING, CSV = "raw", "recording", "csv"
_decode_json = msgspec.json.Decoder().decode  # several times faster than json.loads on capture lines
RAW_STREAMS = frozenset({"depth", "trade", "aggTrade", "mark"})
_RAW_LINE = re.compile(r"^(\d+)\s+([\[{].*)$")


def open_text(path: str) -> Iterator[str]:
    """The lines of a text file, gunzipped when it starts with the gzip magic bytes."""
    if not os.path.exists(path):
        raise FeedSpecError(f"no such recording: {path}")
    with open(path, "rb") as raw:
        magic = raw.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    try:
        with opener(path, "rb") as fh:  # type: ignore[operator]
            yield from io.TextIOWrapper(fh, encoding="utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise FeedFormatError(f"cannot read {path}: {exc}") from None


def detect_format(first_line: str) -> str:
    """raw, recording or csv, from a file's first non-empty line."""
    line = first_line.strip()
    if _RAW_LINE.match(line):
        return RAW
    if line.startswith("{"):
        try:
            data = json.loads(line)
        except ValueError:
            raise FeedFormatError(f"not JSON: {line[:120]}") from None
        if isinstance(data, dict) and "type" in data:
            return RECORDING
        raise FeedFormatError(f"JSON line without a message type: {line[:120]}")
    return CSV


def read_raw_capture(lines: Iterable[str], symbols: Sequence[str] | None = None,
                     want: frozenset[str] = RAW_STREAMS) -> Iterator[Any]:
    """Core events (and gap/resync FeedSignals) from ``<ns> <json>`` capture lines."""
    decoder = WireDecoder(tuple(symbols) if symbols else None, want)
    last_symbol = symbols[0] if symbols and len(symbols) == 1 else ""
    has_depth = False
    seen_snapshot: set[str] = set()
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        if has_depth and "bookTicker" not in decoder.want and '"bookTicker"' in line:
            continue  # the depth stream already carries the top of the book: skip before parsing
        m = _RAW_LINE.match(line)
        if not m:
            raise FeedFormatError(f"line {n}: not '<ns> <json>': {line[:120]}")
        try:
            msg = _decode_json(m.group(2))
        except ValueError:
            raise FeedFormatError(f"line {n}: bad JSON") from None
        if not isinstance(msg, dict):
            continue
        if "lastUpdateId" in msg:
            symbol = str(msg.get("symbol") or last_symbol)
            if not symbol:
                raise FeedFormatError(f"line {n}: depth snapshot before any message naming its symbol")
            snap = depth_snapshot(msg, symbol)
            events = decoder.snapshot(snap)
        else:
            data = msg.get("data", msg)
            if isinstance(data, dict) and data.get("s"):
                last_symbol = str(data["s"]).upper()
                has_depth = has_depth or data.get("e") == "depthUpdate"
            if isinstance(data, dict) and data.get("e") == "bookTicker" and not has_depth:
                decoder.want = decoder.want | {"bookTicker"}
            sync = decoder.syncs.get(last_symbol)
            gaps = sync.gaps if sync else 0
            events = decoder.feed(msg)
            sync = decoder.syncs.get(last_symbol)
            if sync is not None and sync.gaps > gaps:
                yield FeedSignal(ts=_ts_of(msg), symbol=last_symbol, kind=GAP, detail=sync.last_gap)
        for ev in events:
            if isinstance(ev, BookSnapshot) and "depth" in decoder.want and ev.update_id:
                if ev.symbol in seen_snapshot:
                    detail = f"snapshot {ev.update_id}"
                    yield FeedSignal(ts=ev.ts, symbol=ev.symbol, kind=RESYNC, detail=detail)
                seen_snapshot.add(ev.symbol)
            yield ev


def _ts_of(msg: dict[str, Any]) -> int:
    data = msg.get("data", msg)
    try:
        return int(data.get("E") or data.get("T") or 0)
    except (TypeError, ValueError, AttributeError):
        return 0


def read_recording(lines: Iterable[str]) -> Iterator[Any]:
    """Core messages from recorder output (one canonical JSON message per line)."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield loads(line)
        except (ValueError, KeyError, TypeError) as exc:
            raise FeedFormatError(f"line {n}: not a recorded message: {exc!r}") from None


def read_file(path: str, symbols: Sequence[str] | None = None, symbol: str | None = None,
              kind: str | None = None, options: PathOptions = DEFAULT_PATH) -> Iterator[Any]:
    """The events of one recording file of any supported format, in file order."""
    lines = open_text(path)
    first = ""
    for first in lines:
        if first.strip():
            break
    if not first.strip():
        return
    fmt = detect_format(first)
    rest = _chain([first], lines)
    if fmt == RAW:
        yield from read_raw_capture(rest, symbols)
    elif fmt == RECORDING:
        for msg in read_recording(rest):
            if not symbols or getattr(msg, "symbol", None) in symbols:
                yield msg
    else:
        sym = symbol or symbol_from_name(path, symbols or ())
        if sym is None:
            if symbols and len(symbols) == 1:
                sym = symbols[0]
            else:
                raise FeedSpecError(f"cannot tell the symbol of {path}; name it (--symbol BTCUSDT, or replay:FILE?symbol=BTCUSDT)")
        yield from read_archive(rest, sym, name=os.path.basename(path), kind=kind, options=options)


def _chain(head: list[str], tail: Iterator[str]) -> Iterator[str]:
    yield from head
    yield from tail


def _shift(item: Any, offset_ms: int) -> Any:
    """``item`` with its timestamps (and a mark's next funding time) moved by ``offset_ms``."""
    if isinstance(item, MarkPrice) and item.next_funding_ts:
        return _restamp(item, ts=item.ts + offset_ms, next_funding_ts=item.next_funding_ts + offset_ms)
    return _restamp(item, ts=item.ts + offset_ms)


def _ts(item: Any) -> int:
    return int(getattr(item, "ts", 0))


class Replay:
    """A recording (one file or several merged by time) as an async iterator of market events.

    ``speed``: 0 = as fast as possible, 1 = real time, N = N× real time.
    ``options``: how klines become a price path (``feeds.klines.PathOptions``).
    """

    def __init__(self, paths: str | Sequence[str], symbols: Sequence[str] | None = None, speed: float = 0.0,
                 symbol: str | None = None, kind: str | None = None,
                 options: PathOptions = DEFAULT_PATH, yield_every: int = 500,
                 start_at: Callable[[], int] | None = None) -> None:
        self.paths = [paths] if isinstance(paths, str) else list(paths)
        if not self.paths:
            raise FeedSpecError("replay needs at least one file")
        for p in self.paths:
            if not os.path.exists(p):
                raise FeedSpecError(f"no such recording: {p}")
        self.symbols = tuple(s.upper() for s in symbols) if symbols else None
        self.symbol = symbol
        self.kind = kind
        self.options = options
        self.pacer = Pacer(speed)
        self.yield_every = max(1, yield_every)
        self.count = 0
        self.start_at = start_at
        self.offset_ms = 0  # what was added to every timestamp (known after the first market event)

    def first_event(self) -> Any:
        """The recording's first market event (None when it has none): reading it checks the file."""
        for item in self.events():
            if is_market_event(item):
                return item
        return None

    def events(self) -> Iterator[Any]:
        """The merged events, synchronously (for tests and tools that need no pacing)."""
        sources = [read_file(p, self.symbols, self.symbol, self.kind, self.options) for p in self.paths]
        if len(sources) == 1:
            return sources[0]
        return heapq.merge(*sources, key=_ts)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._run()

    async def _run(self) -> AsyncIterator[Any]:
        offset: int | None = None
        for item in self.events():
            if is_market_event(item):
                await self.pacer.wait(item.ts)
                if self.start_at is not None:
                    if offset is None:
                        offset = self.offset_ms = self.start_at() - item.ts
                    item = _shift(item, offset)
            elif offset is not None and isinstance(item, FeedSignal):
                item = FeedSignal(ts=item.ts + offset, symbol=item.symbol, kind=item.kind, detail=item.detail)
            self.count += 1
            if self.count % self.yield_every == 0:
                await asyncio.sleep(0)  # let the rest of the node run while replaying flat out
            yield item

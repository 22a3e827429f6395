"""Binance public archive CSVs (data.binance.vision, USDⓈ-M) → core market events.

The layout is detected from the header (or, for old header-less files, from the column count
and the file name); ``kind`` overrides the detection. Timestamps in microseconds (newer archives)
are brought back to milliseconds.

- ``trades``: id, price, qty, quote_qty, time, is_buyer_maker → ``Trade``
- ``aggTrades``: agg_trade_id, price, quantity, first_trade_id, last_trade_id, transact_time,
  is_buyer_maker → ``Trade``
- ``bookTicker``: update_id, best_bid_price, best_bid_qty, best_ask_price, best_ask_qty,
  transaction_time, event_time → a one-level ``BookSnapshot``
- ``klines``: open_time, open, high, low, close, volume, close_time, ... (12 columns) → the price
  path of ``feeds.klines``: ``Trade`` + ``MarkPrice``
- ``markPriceKlines``: the same 12 columns with "mark" in the file name, or open_time_ms,
  open_time_utc, mark_open, mark_high, mark_low, mark_close → path of ``MarkPrice``
- ``indexPriceKlines``: 12 kline columns with "index" in the file name → path of ``IndexPrice``
- ``fundingRate``: calc_time, funding_interval_hours, last_funding_rate (or funding_time_ms,
  funding_time_utc, funding_rate) → ``Funding`` settlements

The symbol is not in the files: it comes from the caller or from the file name
(``BTCUSDT-1m-2024-08-05.csv``, ``binance-usdm_BTCUSDT_1m_....csv``).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from typing import Any

from exchange_sim.core.messages import BUY, SELL, BookSnapshot, Funding, IndexPrice, Trade

from .base import FeedFormatError, FeedSpecError, fixed, fixed_rounded
from .klines import DEFAULT_PATH, Bar, PathOptions, bars_events, path

KINDS = ("trades", "aggTrades", "bookTicker", "klines", "markPriceKlines", "indexPriceKlines", "fundingRate")

_HEADERS: dict[frozenset[str], str] = {
    frozenset({"id", "price", "qty", "time", "is_buyer_maker"}): "trades",
    frozenset({"agg_trade_id", "price", "quantity", "transact_time", "is_buyer_maker"}): "aggTrades",
    frozenset({"update_id", "best_bid_price", "best_bid_qty", "best_ask_price", "best_ask_qty"}):
        "bookTicker",
    frozenset({"open_time", "open", "high", "low", "close"}): "klines",
    frozenset({"mark_open", "mark_high", "mark_low", "mark_close"}): "markPriceKlines",
    frozenset({"last_funding_rate"}): "fundingRate",
    frozenset({"funding_rate"}): "fundingRate",
}


def _ms(value: str) -> int:
    n = int(float(value)) if "." in value or "e" in value.lower() else int(value)
    return n // 1000 if n > 10**14 else n  # microseconds → ms


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("true", "1", "t", "yes")


def symbol_from_name(name: str, known: Iterable[str] = ()) -> str | None:
    """The instrument named in a file name (a known symbol first, else ``XXXUSDT``-like)."""
    base = re.sub(r".*/", "", name).upper()
    for s in known:
        if s.upper() in base:
            return s.upper()
    m = re.search(r"(?<![A-Z0-9])([A-Z0-9]{2,20}(?:USDT|USDC|BUSD|USD))(?![A-Z])", base)
    return m.group(1) if m else None


def detect(header: list[str], name: str = "") -> tuple[str, bool]:
    """(kind, has_header) of a CSV from its first row and file name."""
    cols = {c.strip().lower() for c in header}
    lname = name.lower()
    for need, kind in _HEADERS.items():
        if need <= cols:
            if kind == "klines" and "mark" in lname:
                kind = "markPriceKlines"
            elif kind == "klines" and "index" in lname:
                kind = "indexPriceKlines"
            return kind, True
    first = header[0].strip() if header else ""
    if not re.fullmatch(r"-?\d+(\.\d+)?", first):
        raise FeedFormatError(f"unknown CSV layout in {name or 'input'}: {header[:12]}")
    n = len(header)
    last = header[-1].strip().lower()
    if n == 12:
        kind = "markPriceKlines" if "mark" in lname else "indexPriceKlines" if "index" in lname else "klines"
        return kind, False
    if n == 6 and last in ("true", "false"):
        return "trades", False
    if n == 7 and last in ("true", "false"):
        return "aggTrades", False
    if n == 7:
        return "bookTicker", False
    if n == 3 and "fund" in lname:
        return "fundingRate", False
    raise FeedFormatError(f"unknown header-less CSV layout ({n} columns) in {name or 'input'}")


_POSITIONAL: dict[str, list[str]] = {
    "trades": ["id", "price", "qty", "quote_qty", "time", "is_buyer_maker"],
    "aggTrades": ["agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time",
                  "is_buyer_maker"],
    "bookTicker": ["update_id", "best_bid_price", "best_bid_qty", "best_ask_price", "best_ask_qty",
                   "transaction_time", "event_time"],
    "klines": ["open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count",
               "taker_buy_volume", "taker_buy_quote_volume", "ignore"],
    "fundingRate": ["calc_time", "funding_interval_hours", "last_funding_rate"],
}
_POSITIONAL["markPriceKlines"] = _POSITIONAL["indexPriceKlines"] = _POSITIONAL["klines"]


Rows = Iterator[dict[str, str]]


def _rows(lines: Iterable[str], name: str, kind: str | None) -> tuple[str, list[str], Rows]:
    reader = csv.reader(line for line in lines if line.strip())
    try:
        first = next(reader)
    except StopIteration:
        raise FeedFormatError(f"empty CSV: {name or 'input'}") from None
    detected, has_header = detect(first, name)
    kind = kind or detected
    if kind not in KINDS:
        raise FeedSpecError(f"unknown archive kind {kind!r}; one of {', '.join(KINDS)}")
    names = [c.strip().lower() for c in first] if has_header else _POSITIONAL[kind]

    def gen() -> Iterator[dict[str, str]]:
        if not has_header:
            yield dict(zip(names, first, strict=False))
        for row in reader:
            yield dict(zip(names, row, strict=False))

    return kind, names, gen()


def _bars(rows: Iterator[dict[str, str]], mark_columns: bool) -> Iterator[Bar]:
    """Bars from kline rows; the duration comes from close_time or the next bar's open time."""
    keys = ("open", "high", "low", "close")
    if mark_columns:
        keys = ("mark_open", "mark_high", "mark_low", "mark_close")
    time_key = "open_time_ms" if mark_columns else "open_time"
    pending: tuple[int, int, tuple[int, int, int, int], int] | None = None
    last_duration = 60_000
    for row in rows:
        try:
            t0 = _ms(row[time_key])
            close_time = row.get("close_time")
            duration = _ms(close_time) + 1 - t0 if close_time else 0
            prices = tuple(fixed_rounded(row[k], k) for k in keys)
            volume = fixed(row["volume"], "volume") if row.get("volume") else 0
        except (KeyError, ValueError):
            raise FeedFormatError(f"bad kline row: {row}") from None
        if pending is not None:
            p0, pdur, pp, pvol = pending
            if pdur <= 0:
                pdur = t0 - p0 if t0 > p0 else last_duration
            last_duration = pdur
            yield Bar(p0, pdur, *pp, volume=pvol)
        pending = (t0, duration, prices, volume)  # type: ignore[assignment]
    if pending is not None:
        p0, pdur, pp, pvol = pending
        yield Bar(p0, pdur if pdur > 0 else last_duration, *pp, volume=pvol)


def read_archive(lines: Iterable[str], symbol: str, name: str = "", kind: str | None = None,
                 options: PathOptions = DEFAULT_PATH) -> Iterator[Any]:
    """The market events of one archive CSV, in file order (FeedFormatError on a bad row)."""
    try:
        yield from _events(lines, symbol, name, kind, options)
    except (KeyError, ValueError, TypeError) as exc:
        raise FeedFormatError(f"bad row in {name or 'CSV'}: {exc!r}") from None


def _events(lines: Iterable[str], symbol: str, name: str, kind: str | None,
            options: PathOptions) -> Iterator[Any]:
    kind, names, rows = _rows(lines, name, kind)
    symbol = symbol.upper()
    if kind == "trades":
        for r in rows:
            yield Trade(ts=_ms(r["time"]), symbol=symbol, price=fixed(r["price"], "price"),
                        qty=fixed(r["qty"], "qty"),
                        taker_side=SELL if _truthy(r["is_buyer_maker"]) else BUY, trade_id=int(r["id"]))
    elif kind == "aggTrades":
        for r in rows:
            yield Trade(ts=_ms(r["transact_time"]), symbol=symbol, price=fixed(r["price"], "price"),
                        qty=fixed(r["quantity"], "qty"),
                        taker_side=SELL if _truthy(r["is_buyer_maker"]) else BUY,
                        trade_id=int(r["agg_trade_id"]))
    elif kind == "bookTicker":
        for r in rows:
            ts = _ms(r.get("transaction_time") or r["event_time"])
            yield BookSnapshot(ts=ts, symbol=symbol,
                               bids=((fixed(r["best_bid_price"]), fixed(r["best_bid_qty"])),),
                               asks=((fixed(r["best_ask_price"]), fixed(r["best_ask_qty"])),),
                               update_id=int(r["update_id"]))
    elif kind == "fundingRate":
        for r in rows:
            ts = _ms(r.get("calc_time") or r["funding_time_ms"])
            rate = r.get("last_funding_rate") or r["funding_rate"]
            yield Funding(ts=ts, symbol=symbol, rate=fixed_rounded(rate, "funding rate"))
    elif kind == "klines":
        yield from bars_events(_bars(rows, False), symbol, options)
    elif kind == "markPriceKlines":
        yield from bars_events(_bars(rows, "mark_open" in names), symbol, options, mark_klines=True)
    elif kind == "indexPriceKlines":
        for bar in _bars(rows, False):
            for ts, price in path(bar):
                yield IndexPrice(ts=ts, symbol=symbol, price=price)

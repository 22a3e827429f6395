"""Candles (klines) as a price path: open → nearer extreme → other extreme → close.

A one-minute bar says where the price went but not in which order. The path used here is the
usual backtesting convention: from the open the price first visits the extreme nearer to it
(ties: the low first when the bar closes at or above its open, else the high), then the other
extreme, then the close. Each point is one market event group at a fixed fraction of the bar:

    open      at open_time
    extreme 1 at open_time + duration/3
    extreme 2 at open_time + 2·duration/3
    close     at open_time + duration - 1

For trade klines every point is a ``Trade`` (a quarter of the bar's volume, taker BUY when the
price moved up to it, SELL when down) followed by a ``MarkPrice`` at that price (klines carry
no mark, and the mark is what liquidates); optionally preceded by a thin synthetic
``BookSnapshot`` around the price so orders can be filled. For mark-price klines every point is
a ``MarkPrice`` only. So a crash day replayed from 1m bars touches each bar's low inside that
bar's minute, and a position whose liquidation price lies above that low is liquidated in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from exchange_sim.core.messages import BUY, SELL, BookSnapshot, MarkPrice, Trade


@dataclass(frozen=True, slots=True)
class Bar:
    """One candle in fixed units; ``duration`` in ms."""

    open_time: int
    duration: int
    open: int
    high: int
    low: int
    close: int
    volume: int = 0


@dataclass(frozen=True, slots=True)
class PathOptions:
    """How a bar becomes events: emit trades and/or marks, and a synthetic book of ``book_levels``."""

    trades: bool = True
    marks: bool = True
    book_levels: int = 0  # 0 = no synthetic book
    book_qty: int = 10 * 10**8  # per level, fixed units
    tick: int = 10**7  # 0.1


DEFAULT_PATH = PathOptions()


def path(bar: Bar) -> list[tuple[int, int]]:
    """The four (ts, price) points of a bar, in the order described in the module docstring."""
    up_first = (bar.high - bar.open) < (bar.open - bar.low) or (
        (bar.high - bar.open) == (bar.open - bar.low) and bar.close < bar.open)
    first, second = (bar.high, bar.low) if up_first else (bar.low, bar.high)
    d = max(bar.duration, 4)
    return [
        (bar.open_time, bar.open),
        (bar.open_time + d // 3, first),
        (bar.open_time + 2 * d // 3, second),
        (bar.open_time + d - 1, bar.close),
    ]


def synthetic_book(ts: int, symbol: str, price: int, options: PathOptions) -> BookSnapshot:
    """A thin book straddling ``price``: best bid at price − tick, best ask at price + tick."""
    tick = max(options.tick, 1)
    base = price - price % tick
    bids = tuple((base - tick * (i + 1), options.book_qty) for i in range(options.book_levels))
    asks = tuple((base + tick * (i + 1), options.book_qty) for i in range(options.book_levels))
    return BookSnapshot(ts=ts, symbol=symbol, bids=bids, asks=asks, update_id=0)


def trade_bar_events(bar: Bar, symbol: str, options: PathOptions, first_trade_id: int = 1,
                     prev_price: int | None = None) -> list[Any]:
    """The events of one trade kline: (book,) trade, mark at each of its four path points."""
    out: list[Any] = []
    qty = bar.volume // 4
    prev = bar.open if prev_price is None else prev_price
    for k, (ts, price) in enumerate(path(bar)):
        if options.book_levels:
            out.append(synthetic_book(ts, symbol, price, options))
        if options.trades and qty > 0:
            side = BUY if price >= prev else SELL
            out.append(Trade(ts=ts, symbol=symbol, price=price, qty=qty, taker_side=side,
                             trade_id=first_trade_id + k))
        if options.marks:
            out.append(MarkPrice(ts=ts, symbol=symbol, mark=price))
        prev = price
    return out


def mark_bar_events(bar: Bar, symbol: str) -> list[Any]:
    """The events of one mark-price kline: a MarkPrice at each path point."""
    return [MarkPrice(ts=ts, symbol=symbol, mark=price) for ts, price in path(bar)]


def bars_events(bars: Iterator[Bar], symbol: str, options: PathOptions,
                mark_klines: bool = False) -> Iterator[Any]:
    """Every bar's events in order (trade ids continue across bars)."""
    trade_id = 1
    prev: int | None = None
    for bar in bars:
        if mark_klines:
            yield from mark_bar_events(bar, symbol)
        else:
            yield from trade_bar_events(bar, symbol, options, trade_id, prev)
            trade_id += 4
        prev = bar.close

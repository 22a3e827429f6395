"""Kline history: the candles of before the simulator saw the market, merged with the live ones.

A venue has years of klines the moment a bot connects; the simulator has only what its feed has
shown it. ``KlineHistory`` holds the past that a feed's history source supplies (a REST backfill
from the upstream venue, a kline archive beside a recording, a generated past for the synthetic
feed) for every interval Binance offers, per kind (``trade`` for /klines and continuousKlines,
``mark``, ``index``, ``premium``), plus the past funding settlements. ``merge`` combines it with
the live candles of ``MarketStats``: a bucket present on both sides (the bar that was open when
the history ends) takes the history's open, the live close, the wider range and the summed
volumes; so the history continues from live trades. (A live backfill fetched after the feed
started counts the trades of those first seconds on both sides of that one bar: the price range
is right, its volume a little high.)

Buckets are Binance's: fixed steps from the epoch for 1m … 3d, weeks from Monday 00:00 UTC,
calendar months for 1M (``market_stats.bucket_start`` / ``bucket_end``).

A history source is either loaded at once (``load``: a live backfill) or asked for when the first
trade of a symbol arrives (``on_first_trade``, set by the runtime: a synthetic past that must end
at the first event's time and price, whichever clock the feed stamps with).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Protocol

from exchange_sim.core import messages as m

from .market_stats import INTERVALS, Candle, FundingRecord, bucket_end

KINDS = ("trade", "mark", "index", "premium")


class PastLike(Protocol):
    """A history source's answer (``feeds.history.MarketPast``)."""

    klines: dict[tuple[str, str, str], list[Candle]]  # (symbol, kind, interval) -> bars
    funding: dict[str, list[tuple[int, int, int]]]  # symbol -> (ts, rate, mark)


FirstTradeHook = Callable[[str, int, int], PastLike | None]


class KlineHistory:
    """Past candles and funding per symbol, and their merge with the live ones (see module doc)."""

    def __init__(self) -> None:
        self._bars: dict[tuple[str, str, str], dict[int, Candle]] = {}
        self._funding: dict[str, dict[int, FundingRecord]] = {}
        self._seen: set[str] = set()
        self.on_first_trade: FirstTradeHook | None = None

    # ------------------------------------------------------------------ input

    def load(self, past: PastLike) -> None:
        """Add a source's bars and funding (a later load of the same bucket replaces it)."""
        for (symbol, kind, interval), bars in past.klines.items():
            if kind not in KINDS or interval not in INTERVALS:
                continue
            store = self._bars.setdefault((symbol, kind, interval), {})
            for bar in bars:
                store[bar.open_ts] = replace(bar)  # our own copy: the store never shares a bar
        for symbol, rows in past.funding.items():
            book = self._funding.setdefault(symbol, {})
            for ts, rate, mark in rows:
                book[ts] = FundingRecord(ts, rate, mark)

    def __call__(self, msg: object, events: list) -> None:
        """Node listener: on a symbol's first trade, ask the first-trade hook for its past."""
        if isinstance(msg, m.Trade) and msg.symbol not in self._seen:
            self._seen.add(msg.symbol)
            if self.on_first_trade is not None:
                past = self.on_first_trade(msg.symbol, msg.ts, msg.price)
                if past is not None:
                    self.load(past)

    # ------------------------------------------------------------------ queries

    def bars(self, symbol: str, kind: str, interval: str) -> dict[int, Candle]:
        return self._bars.get((symbol, kind, interval), {})

    def funding(self, symbol: str) -> list[FundingRecord]:
        book = self._funding.get(symbol, {})
        return [book[ts] for ts in sorted(book)]

    def merge(self, symbol: str, kind: str, interval: str, live: Iterable[Candle], start: int | None,
              end: int | None, limit: int) -> list[Candle]:
        """History ⊕ live candles of one interval, filtered like /fapi/v1/klines (newest ``limit``
        without ``startTime``, oldest ``limit`` from it)."""
        out = dict(self.bars(symbol, kind, interval))
        for candle in live:
            got = out.get(candle.open_ts)
            out[candle.open_ts] = candle if got is None else got.then(candle)
        keys = sorted(k for k in out if (start is None or bucket_end(k, interval) >= start)
                      and (end is None or k <= end))
        keys = keys[:limit] if start is not None else keys[-limit:]
        return [out[k] for k in keys]

    def merge_funding(self, symbol: str, live: Iterable[FundingRecord]) -> list[FundingRecord]:
        book = {r.ts: r for r in self.funding(symbol)}
        for rec in live:
            book[rec.ts] = rec
        return [book[ts] for ts in sorted(book)]

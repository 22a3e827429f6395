"""Market statistics from what the simulator has seen: recent trades, 1-minute candles, funding history.

Fed by the node (a listener called with every applied input); reads only ``Trade``, ``Funding``
and ``MarkPrice`` market events. Candles are kept per minute for ``KEEP_MINUTES`` (trade candles,
and mark / index / premium candles from the mark updates); the 24 h ticker and klines of any
interval are aggregated from them on request, so memory stays bounded whatever the trade rate.
The past before the feed started is ``kline_store.KlineHistory``'s. All numbers stay fixed-point
ints. Candles and their buckets are Binance's (``exchange_sim.core.candles``).
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from dataclasses import dataclass, field

from exchange_sim.core import messages as m
from exchange_sim.core.fixed import SCALE
from exchange_sim.core.candles import DAY, INTERVALS, MINUTE, Candle, aggregate, bucket_end, bucket_start

KEEP_MINUTES = 7 * 24 * 60
KEEP_TRADES = 1000
KEEP_FUNDING = 1000

@dataclass(frozen=True, slots=True)
class PublicTrade:
    trade_id: int
    price: int
    qty: int
    ts: int
    buyer_maker: bool


@dataclass(frozen=True, slots=True)
class Stats24h:
    open: int
    high: int
    low: int
    last: int
    last_qty: int
    volume: int
    quote_volume: int
    count: int
    open_ts: int
    close_ts: int
    first_id: int
    last_id: int

    @property
    def change(self) -> int:
        return self.last - self.open

    @property
    def change_percent(self) -> int:
        """Percent as fixed units (1.0 = 1%)."""
        return (self.last - self.open) * 100 * SCALE // self.open if self.open else 0

    @property
    def weighted_avg(self) -> int:
        return self.quote_volume * SCALE // self.volume if self.volume else self.last


@dataclass(frozen=True, slots=True)
class FundingRecord:
    ts: int
    rate: int
    mark: int


@dataclass(slots=True)
class _SymbolStats:
    candles: collections.OrderedDict[int, Candle] = field(default_factory=collections.OrderedDict)
    trades: collections.deque[PublicTrade] = field(default_factory=lambda: collections.deque(maxlen=KEEP_TRADES))
    funding: collections.deque[FundingRecord] = field(default_factory=lambda: collections.deque(maxlen=KEEP_FUNDING))
    next_trade_id: int = 1
    last_mark: int = 0
    price_candles: dict[str, collections.OrderedDict[int, Candle]] = field(default_factory=dict)  # mark/index/premium


class MarketStats:
    """Per-symbol trades, candles and funding settlements, updated from applied market events."""

    def __init__(self) -> None:
        self._symbols: dict[str, _SymbolStats] = {}

    def _of(self, symbol: str) -> _SymbolStats:
        stats = self._symbols.get(symbol)
        if stats is None:
            stats = self._symbols[symbol] = _SymbolStats()
        return stats

    # ------------------------------------------------------------------ input

    def on_input(self, msg: object, events: list) -> PublicTrade | None:
        """Record ``msg`` if it is a trade, funding or mark event; returns the recorded trade."""
        if isinstance(msg, m.Trade):
            return self.add_trade(msg)
        if isinstance(msg, m.MarkPrice):
            stats = self._of(msg.symbol)
            stats.last_mark = msg.mark
            self._add_price_point(stats, "mark", msg.ts, msg.mark)
            if msg.index:
                self._add_price_point(stats, "index", msg.ts, msg.index)
                self._add_price_point(stats, "premium", msg.ts, (msg.mark - msg.index) * SCALE // msg.index)
        elif isinstance(msg, m.Funding):
            stats = self._of(msg.symbol)
            stats.funding.append(FundingRecord(msg.ts, msg.rate, stats.last_mark))
        return None

    def add_trade(self, trade: m.Trade) -> PublicTrade:
        stats = self._of(trade.symbol)
        trade_id = trade.trade_id or stats.next_trade_id
        stats.next_trade_id = max(stats.next_trade_id, trade_id + 1)
        record = PublicTrade(trade_id, trade.price, trade.qty, trade.ts, trade.taker_side == m.SELL)
        stats.trades.append(record)
        minute = trade.ts - trade.ts % MINUTE
        candle = stats.candles.get(minute)
        if candle is None:
            candle = Candle(minute, trade.price, trade.price, trade.price, trade.price)
            stats.candles[minute] = candle
            if len(stats.candles) > 1 and next(reversed(stats.candles)) != minute:  # out-of-order time
                stats.candles = collections.OrderedDict(sorted(stats.candles.items()))
            while len(stats.candles) > KEEP_MINUTES:
                stats.candles.popitem(last=False)
        candle.add(trade.price, trade.qty, trade.taker_side == m.BUY)
        return record

    @staticmethod
    def _add_price_point(stats: _SymbolStats, kind: str, ts: int, price: int) -> None:
        candles = stats.price_candles.setdefault(kind, collections.OrderedDict())
        minute = ts - ts % MINUTE
        candle = candles.get(minute)
        if candle is None:
            candles[minute] = Candle(minute, price, price, price, price)
            if len(candles) > 1 and next(reversed(candles)) != minute:  # out-of-order time
                stats.price_candles[kind] = collections.OrderedDict(sorted(candles.items()))
            while len(candles) > KEEP_MINUTES:
                candles.popitem(last=False)
        else:
            candle.high = max(candle.high, price)
            candle.low = min(candle.low, price)
            candle.close = price

    # ------------------------------------------------------------------ queries

    def last_trade_ts(self, symbol: str) -> int:
        trades = self._of(symbol).trades
        return trades[-1].ts if trades else 0

    def recent_trades(self, symbol: str, limit: int) -> list[PublicTrade]:
        trades = self._of(symbol).trades
        return list(trades)[-limit:] if limit else []

    def funding_history(self, symbol: str) -> list[FundingRecord]:
        return list(self._of(symbol).funding)

    def stats_24h(self, symbol: str, now_ms: int) -> Stats24h | None:
        """Open/high/low/last/volume over the candles of the 24 h before ``now_ms`` (None: no trade yet).

        ``now_ms`` is the market's clock: pass the wall clock for live data, or the feed's time
        (``last_trade_ts``) when replaying a recording.
        """
        stats = self._of(symbol)
        if not stats.trades:
            return None
        since = now_ms - DAY
        window = [c for ts, c in stats.candles.items() if ts + MINUTE > since]
        last_trade = stats.trades[-1]
        if not window:
            return Stats24h(last_trade.price, last_trade.price, last_trade.price, last_trade.price, 0, 0, 0, 0,
                            since, now_ms, last_trade.trade_id, last_trade.trade_id)
        count = sum(c.trades for c in window)
        first_id = max(1, last_trade.trade_id - count + 1)
        return Stats24h(
            open=window[0].open, high=max(c.high for c in window), low=min(c.low for c in window),
            last=last_trade.price, last_qty=last_trade.qty,
            volume=sum(c.volume for c in window), quote_volume=sum(c.quote_volume for c in window),
            count=count, open_ts=max(since, window[0].open_ts), close_ts=now_ms,
            first_id=first_id, last_id=last_trade.trade_id,
        )

    def klines(self, symbol: str, interval: str, start: int | None, end: int | None, limit: int,
               kind: str = "trade") -> list[Candle]:
        """Candles of ``interval`` (a key of INTERVALS) and ``kind`` built from the 1-minute candles."""
        stats = self._of(symbol)
        minutes: Mapping[int, Candle] = stats.candles if kind == "trade" else stats.price_candles.get(kind, {})
        out = aggregate((c for ts, c in minutes.items()
                         if (start is None or bucket_end(bucket_start(ts, interval), interval) >= start)
                         and (end is None or bucket_start(ts, interval) <= end)), interval)
        if start is None and len(out) > limit:
            return out[-limit:]
        return out[:limit]


__all__ = ["INTERVALS", "Candle", "FundingRecord", "MarketStats", "PublicTrade", "Stats24h", "bucket_end",
           "bucket_start"]

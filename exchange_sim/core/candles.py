"""Candles (klines): Binance's intervals, their bucket boundaries on integer UTC milliseconds, and
the candle itself with the two ways candles combine (a trade into a bar; bars into a longer bar).

- 1m … 3d: fixed steps counted from the epoch (a 4h bar opens at 00, 04, 08 … UTC);
- 1w: weeks from Monday 00:00 UTC (the epoch, 1970-01-01, was a Thursday);
- 1M: calendar months (civil-date arithmetic, no clock or calendar library: the core stays pure).

``INTERVALS`` maps each interval to its length in ms (1M: a nominal 30 days, for rate estimates
only; its buckets come from ``bucket_start`` / ``bucket_end``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from .fixed import SCALE

MINUTE = 60_000
DAY = 1440 * MINUTE
WEEK = 7 * DAY
MONDAY_OFFSET = 4 * DAY

INTERVALS = {
    "1m": MINUTE, "3m": 3 * MINUTE, "5m": 5 * MINUTE, "15m": 15 * MINUTE, "30m": 30 * MINUTE,
    "1h": 60 * MINUTE, "2h": 120 * MINUTE, "4h": 240 * MINUTE, "6h": 360 * MINUTE, "8h": 480 * MINUTE,
    "12h": 720 * MINUTE, "1d": DAY, "3d": 3 * DAY, "1w": WEEK, "1M": 30 * DAY,
}


def _civil(days: int) -> tuple[int, int]:
    """(year, month) of a day count since 1970-01-01 (H. Hinnant's civil_from_days)."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month


def _days(year: int, month: int) -> int:
    """Days from 1970-01-01 to the first of ``month`` (days_from_civil)."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5
    return era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468


def bucket_start(ts: int, interval: str) -> int:
    """The open time of the ``interval`` bar holding ``ts``."""
    if interval == "1M":
        year, month = _civil(ts // DAY)
        return _days(year, month) * DAY
    if interval == "1w":
        return ts - (ts - MONDAY_OFFSET) % WEEK
    step = INTERVALS[interval]
    return ts - ts % step


def bucket_end(open_ts: int, interval: str) -> int:
    """The close time (last ms) of the bar opening at ``open_ts``."""
    if interval == "1M":
        year, month = _civil(open_ts // DAY)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return _days(year, month) * DAY - 1
    return open_ts + INTERVALS[interval] - 1


def previous_bucket(open_ts: int, interval: str) -> int:
    """The open time of the bar before the one opening at ``open_ts``."""
    return bucket_start(open_ts - 1, interval)


@dataclass(slots=True)
class Candle:
    """One bar in fixed units (prices, base volume, quote volume); mutable while it is being built."""

    open_ts: int
    open: int
    high: int
    low: int
    close: int
    volume: int = 0
    quote_volume: int = 0
    trades: int = 0
    taker_buy_volume: int = 0
    taker_buy_quote: int = 0

    def add(self, price: int, qty: int, taker_buy: bool) -> None:
        """Count one trade into this bar."""
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        quote = price * qty // SCALE
        self.volume += qty
        self.quote_volume += quote
        self.trades += 1
        if taker_buy:
            self.taker_buy_volume += qty
            self.taker_buy_quote += quote

    def extend(self, later: Candle) -> None:
        """Continue this bar with ``later`` (same bucket): its close, the wider range, summed volumes."""
        self.high = max(self.high, later.high)
        self.low = min(self.low, later.low)
        self.close = later.close
        self.volume += later.volume
        self.quote_volume += later.quote_volume
        self.trades += later.trades
        self.taker_buy_volume += later.taker_buy_volume
        self.taker_buy_quote += later.taker_buy_quote

    def then(self, later: Candle) -> Candle:
        """A new bar: this one continued by ``later`` (this one unchanged)."""
        out = replace(self)
        out.extend(later)
        return out


def aggregate(candles: Iterable[Candle], interval: str) -> list[Candle]:
    """Shorter bars (in time order) merged into ``interval`` bars, oldest first."""
    out: dict[int, Candle] = {}
    for c in candles:
        key = bucket_start(c.open_ts, interval)
        got = out.get(key)
        if got is None:
            out[key] = replace(c, open_ts=key)
        else:
            got.extend(c)
    return [out[k] for k in sorted(out)]

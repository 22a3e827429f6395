"""Binance's kline intervals and their bucket boundaries, on integer UTC milliseconds.

- 1m … 3d: fixed steps counted from the epoch (a 4h bar opens at 00, 04, 08 … UTC);
- 1w: weeks from Monday 00:00 UTC (the epoch, 1970-01-01, was a Thursday);
- 1M: calendar months (civil-date arithmetic, no clock or calendar library: the core stays pure).

``INTERVALS`` maps each interval to its length in ms (1M: a nominal 30 days, for rate estimates
only; its buckets come from ``bucket_start`` / ``bucket_end``).
"""

from __future__ import annotations

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

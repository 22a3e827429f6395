"""Candle bucket boundaries against Python's calendar (an independent implementation)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from exchange_sim.core.candles import INTERVALS, bucket_end, bucket_start, previous_bucket

UTC = dt.UTC


def _ms(d: dt.datetime) -> int:
    return int(d.timestamp() * 1000)


@given(st.integers(min_value=0, max_value=_ms(dt.datetime(2100, 1, 1, tzinfo=UTC))))
def test_months_weeks_and_fixed_steps(ts):
    d = dt.datetime.fromtimestamp(ts / 1000, UTC)
    first = dt.datetime(d.year, d.month, 1, tzinfo=UTC)
    following = dt.datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=UTC)
    assert bucket_start(ts, "1M") == _ms(first)
    assert bucket_end(_ms(first), "1M") == _ms(following) - 1
    monday = bucket_start(ts, "1w")
    assert dt.datetime.fromtimestamp(monday / 1000, UTC).weekday() == 0 and 0 <= ts - monday < INTERVALS["1w"]
    four = dt.datetime.fromtimestamp(bucket_start(ts, "4h") / 1000, UTC)
    assert four.hour % 4 == 0 and four.minute == four.second == 0
    assert previous_bucket(bucket_start(ts, "1d"), "1d") == bucket_start(ts, "1d") - INTERVALS["1d"]

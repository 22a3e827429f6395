"""The venue's paging rules for the history endpoints (allOrders, userTrades, income, forceOrders).

Binance USDⓈ-M (developers.binance.com, "All Orders", "Account Trade List", "Get Income History",
"User's Force Orders"), as implemented here:

- ``limit``: allOrders and userTrades default 500, max 1000; income default 100, max 1000;
  forceOrders default 50, max 100; ``allAlgoOrders`` like allOrders.
- A from-id (allOrders ``orderId``, userTrades ``fromId``) or a ``startTime`` selects the
  *oldest* ``limit`` rows from there; otherwise (nothing, or only ``endTime``) the newest
  ``limit`` rows. Rows always come oldest first. Income also takes ``page`` (1-based).
- ``startTime``/``endTime`` are inclusive; more than 7 days between them is refused (−1127) on
  allOrders, userTrades and forceOrders; userTrades refuses ``fromId`` together with a time (−1128).

Not applied, on purpose: the venue's default "last 7 days" window when no time is sent, and its
retention (income 3 months, trades 6 months, canceled-unfilled orders 3 days). A simulator's
clock can be a replayed recording, so "recent" is not wall time, and a session is kept whole:
nothing ages out of the store.
"""

from __future__ import annotations

from exchange_sim.journal.history import Page

from . import errors
from .errors import ApiError
from .params import Params

SEVEN_DAYS_MS = 7 * 24 * 60 * 60 * 1000


def page_of(p: Params, *, limit_default: int, limit_max: int, from_name: str | None = None,
            max_span_ms: int | None = SEVEN_DAYS_MS, from_id_alone: bool = False, paged: bool = False) -> Page:
    """The ``Page`` a history request asks for, or the venue's error (−1127, −1128, −1130)."""
    start = p.integer("startTime", lo=0)
    end = p.integer("endTime", lo=0)
    limit = p.integer("limit", default=limit_default, lo=1, hi=limit_max)
    from_id = p.integer(from_name, lo=0) if from_name else None
    number = p.integer("page", default=1, lo=1, hi=1_000_000) if paged else 1
    assert limit is not None and number is not None
    if from_id_alone and from_id is not None and (start is not None or end is not None):
        raise ApiError(errors.OPTIONAL_PARAMS_BAD_COMBO, "Combination of optional parameters invalid.")
    if start is not None and end is not None:
        if start > end:
            raise errors.invalid_param("startTime")
        if max_span_ms is not None and end - start > max_span_ms:
            raise ApiError(errors.INVALID_INTERVAL,
                           f"More than {max_span_ms // 3_600_000} hours between startTime and endTime.")
    return Page(limit=limit, from_id=from_id, start=start, end=end, offset=(number - 1) * limit)


def take(rows: list, page: Page, key) -> list:
    """``page`` applied to in-memory ``rows`` (live open orders), sorted by ``key``; oldest first."""
    rows = sorted(rows, key=key)
    if page.oldest_first:
        return rows[page.offset:page.offset + page.limit]
    end = len(rows) - page.offset
    return rows[max(0, end - page.limit):max(0, end)]

"""``/futures/data/*``: the venue's market statistics (open interest, long/short ratios, basis).

The simulator does not invent these numbers. With a live Binance feed they come from the upstream
venue's own endpoint (``FuturesData.upstream``, set by the runtime to the feed's REST base), cached
for ``CACHE_S`` per query and fetched at most ``UPSTREAM_PER_MINUTE`` times a minute (beyond that
the venue's −1003 answer). Without an upstream (synthetic, replay, manual feeds) the parameters
are still checked the venue's way and the answer is one clear error, never "Path invalid".

Endpoints (params as on Binance: ``symbol`` or ``pair`` + ``contractType`` for basis, ``period``
5m … 1d, ``limit`` ≤ 500, ``startTime``, ``endTime``): openInterestHist,
topLongShortAccountRatio, topLongShortPositionRatio, globalLongShortAccountRatio,
takerlongshortRatio, basis.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import TYPE_CHECKING, Any

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from . import errors
from .errors import ApiError
from .params import Params

if TYPE_CHECKING:
    from .context import ApiContext

ENDPOINTS = ("openInterestHist", "topLongShortAccountRatio", "topLongShortPositionRatio",
             "globalLongShortAccountRatio", "takerlongshortRatio", "basis")
PERIODS = ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")
CONTRACT_TYPES = ("PERPETUAL", "CURRENT_QUARTER", "NEXT_QUARTER")
CACHE_S = 60.0
UPSTREAM_PER_MINUTE = 60
NO_UPSTREAM = -1000  # the venue's generic "could not process" code (ccxt: OperationFailed)


class FuturesData:
    """Upstream proxy with a per-query cache and a per-minute budget (see module doc)."""

    def __init__(self, upstream: str | None = None, *, monotonic: Any = time.monotonic) -> None:
        self.upstream = upstream
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, int, Any]] = {}
        self._calls: collections.deque[float] = collections.deque()
        self._session: ClientSession | None = None
        self.upstream_calls = 0

    async def fetch(self, path: str, query: list[tuple[str, str]]) -> Any:
        """The upstream answer for ``path?query`` (cached), or the venue-style ApiError."""
        if not self.upstream:
            raise ApiError(NO_UPSTREAM, f"{path} is market statistics of the real venue: this simulator's feed has "
                           "no upstream venue (start it with a live Binance feed to have them).")
        key = path + "?" + "&".join(f"{k}={v}" for k, v in sorted(query))
        now = self._monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return self._answer(hit[1], hit[2])
        while self._calls and self._calls[0] <= now - 60:
            self._calls.popleft()
        if len(self._calls) >= UPSTREAM_PER_MINUTE:
            raise ApiError(errors.TOO_MANY_REQUESTS, "Too many requests; current limit of upstream market "
                           f"statistics is {UPSTREAM_PER_MINUTE} requests per minute.", 429)
        self._calls.append(now)
        self.upstream_calls += 1
        if self._session is None or self._session.closed:
            self._session = ClientSession(timeout=ClientTimeout(total=10))
        try:
            async with self._session.get(self.upstream + path, params=query) as resp:
                status, body = resp.status, await resp.json(content_type=None)
        except (ClientError, asyncio.TimeoutError, ValueError):
            raise ApiError(errors.INTERNAL, "Internal error; unable to process your request. Please try again.",
                           503) from None
        if status == 200:
            self._cache[key] = (now + CACHE_S, status, body)
        return self._answer(status, body)

    @staticmethod
    def _answer(status: int, body: Any) -> Any:
        if status != 200:
            if isinstance(body, dict) and "code" in body:
                raise ApiError(int(body["code"]), str(body.get("msg", "")), status)
            raise ApiError(errors.INTERNAL, "Internal error; unable to process your request. Please try again.", 503)
        return body

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _checked_query(ctx: "ApiContext", name: str, params: Params) -> list[tuple[str, str]]:
    """The request's parameters after the venue's checks (symbol/pair, period, limit, times)."""
    query: list[tuple[str, str]] = []
    if name == "basis":
        pair = params.text("pair", required=True)
        assert pair is not None
        if pair.upper() not in ctx.instruments:
            raise errors.invalid_symbol()
        contract = params.choice("contractType", CONTRACT_TYPES, required=True)
        query += [("pair", pair.upper()), ("contractType", str(contract))]
    else:
        inst = params.symbol(ctx.instruments)
        assert inst is not None
        query.append(("symbol", inst.symbol))
    period = params.choice("period", PERIODS, required=True)
    query.append(("period", str(period)))
    limit = params.integer("limit", default=30, lo=1, hi=500)
    query.append(("limit", str(limit)))
    for key in ("startTime", "endTime"):
        value = params.integer(key, lo=0)
        if value is not None:
            query.append((key, str(value)))
    return query


def _handler(name: str) -> Any:
    async def handler(ctx: "ApiContext", params: Params) -> Any:
        query = _checked_query(ctx, name, params)
        return await ctx.futures_data.fetch(f"/futures/data/{name}", query)

    handler.__name__ = name
    return handler


def add_routes(app: web.Application) -> None:
    from .context import public  # the context owns a FuturesData: import it late

    for name in ENDPOINTS:
        app.router.add_get(f"/futures/data/{name}", public(_handler(name), 1))


__all__ = ["ENDPOINTS", "FuturesData", "add_routes"]

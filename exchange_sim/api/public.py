"""Public market-data endpoints of ``/fapi/v1`` (and the v2 ticker price): no signature needed.

exchangeInfo, time, ping, depth (from the depth tracker's mirror, so ``lastUpdateId`` chains
with the websocket diffs), trades, aggTrades (the most recent without ``fromId``/``startTime``,
as the venue), klines, continuousKlines, markPriceKlines, indexPriceKlines, premiumIndexKlines
(the feed's history, ``kline_store.KlineHistory``, continued by the live candles), ticker/24hr,
ticker/price, ticker/bookTicker, premiumIndex (``nextFundingTime`` from the feed, else the venue's
8-hour schedule 00/08/16 UTC after the market's time), fundingRate (history and live
settlements), fundingInfo, openInterest.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from exchange_sim.core.fixed import SCALE, fmt_trim
from exchange_sim.core.instruments import Instrument

from . import errors, wire
from .context import ApiContext, public
from .errors import ApiError
from .market_stats import INTERVALS, bucket_end
from .params import Params

DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
DEFAULT_INTEREST_RATE = "0.00010000"
FUNDING_INTERVAL_MS = 8 * 3600 * 1000  # the venue's settlements at 00:00, 08:00, 16:00 UTC


def _symbols(ctx: ApiContext, params: Params) -> list[Instrument]:
    inst = params.symbol(ctx.instruments, required=False)
    return [inst] if inst is not None else list(ctx.instruments.values())


def _one_or_list(params: Params, rows: list[dict]) -> Any:
    return rows[0] if "symbol" in params else rows


async def ping(ctx: ApiContext, params: Params) -> dict:
    return {}


async def server_time(ctx: ApiContext, params: Params) -> dict:
    return {"serverTime": ctx.now()}


async def exchange_info(ctx: ApiContext, params: Params) -> dict:
    limits = ctx.config.rate_limits
    return {
        "timezone": "UTC",
        "serverTime": ctx.now(),
        "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": limits.request_weight_per_minute},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": limits.orders_per_minute},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": limits.orders_per_10s},
        ],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [wire.symbol_info(inst) for inst in ctx.instruments.values()],
    }


async def depth(ctx: ApiContext, params: Params) -> dict:
    inst = params.symbol(ctx.instruments)
    assert inst is not None
    limit = params.integer("limit", default=500)
    assert limit is not None
    if limit not in DEPTH_LIMITS:
        raise errors.invalid_param("limit")
    bids, asks, update_id, ts = ctx.depth.snapshot(inst.symbol, limit)
    now = ctx.now()
    return {"lastUpdateId": update_id, "E": now, "T": ts or now,
            "bids": wire.levels(inst, bids), "asks": wire.levels(inst, asks)}


async def trades(ctx: ApiContext, params: Params) -> list:
    inst = params.symbol(ctx.instruments)
    assert inst is not None
    limit = params.integer("limit", default=500, lo=1, hi=1000)
    assert limit is not None
    return [{"id": t.trade_id, "price": wire.price(inst, t.price), "qty": wire.qty(inst, t.qty),
             "quoteQty": wire.money(t.price * t.qty // SCALE), "time": t.ts, "isBuyerMaker": t.buyer_maker}
            for t in ctx.stats.recent_trades(inst.symbol, limit)]


async def agg_trades(ctx: ApiContext, params: Params) -> list:
    inst = params.symbol(ctx.instruments)
    assert inst is not None
    limit = params.integer("limit", default=500, lo=1, hi=1000)
    start = params.integer("startTime", lo=0)
    end = params.integer("endTime", lo=0)
    from_id = params.integer("fromId", lo=0)
    assert limit is not None
    rows = ctx.stats.recent_trades(inst.symbol, 1000)
    rows = [t for t in rows if (start is None or t.ts >= start) and (end is None or t.ts <= end)
            and (from_id is None or t.trade_id >= from_id)]
    rows = rows[:limit] if from_id is not None or start is not None else rows[-limit:]
    return [{"a": t.trade_id, "p": wire.price(inst, t.price), "q": wire.qty(inst, t.qty), "f": t.trade_id,
             "l": t.trade_id, "T": t.ts, "m": t.buyer_maker} for t in rows]


def _kline_query(params: Params) -> tuple[str, int, int | None, int | None]:
    interval = params.choice("interval", INTERVALS, required=True)
    limit = params.integer("limit", default=500, lo=1, hi=1500)
    start = params.integer("startTime", lo=0)
    end = params.integer("endTime", lo=0)
    assert interval is not None and limit is not None
    if start is not None and end is not None and start > end:
        raise ApiError(errors.INVALID_PARAMETER, "Start time is greater than end time.")
    return interval, limit, start, end


def _candles(ctx: ApiContext, symbol: str, kind: str, params: Params) -> tuple[str, list]:
    interval, limit, start, end = _kline_query(params)
    live = ctx.stats.klines(symbol, interval, start, end, 1_000_000, kind=kind)
    return interval, ctx.klines.merge(symbol, kind, interval, live, start, end, limit)


async def klines(ctx: ApiContext, params: Params) -> list:
    inst = params.symbol(ctx.instruments)
    assert inst is not None
    return _trade_rows(inst, *_candles(ctx, inst.symbol, "trade", params))


async def continuous_klines(ctx: ApiContext, params: Params) -> list:
    inst = _pair(ctx, params)
    params.choice("contractType", ("PERPETUAL",), required=True)
    return _trade_rows(inst, *_candles(ctx, inst.symbol, "trade", params))


def _trade_rows(inst: Instrument, interval: str, candles: list) -> list:
    return [[c.open_ts, wire.price(inst, c.open), wire.price(inst, c.high), wire.price(inst, c.low),
             wire.price(inst, c.close), wire.qty(inst, c.volume), bucket_end(c.open_ts, interval),
             wire.money(c.quote_volume), c.trades, wire.qty(inst, c.taker_buy_volume),
             wire.money(c.taker_buy_quote), "0"] for c in candles]


def _price_rows(interval: str, candles: list, fmt: Any) -> list:
    """Mark / index / premium klines: prices only, the volume columns "0" as on the venue."""
    return [[c.open_ts, fmt(c.open), fmt(c.high), fmt(c.low), fmt(c.close), "0", bucket_end(c.open_ts, interval),
             "0", c.trades, "0", "0", "0"] for c in candles]


def _pair(ctx: ApiContext, params: Params) -> Instrument:
    pair = params.text("pair", required=True)
    assert pair is not None
    inst = ctx.instruments.get(pair.upper()) if len(pair) <= 32 else None
    if inst is None:
        raise errors.invalid_symbol()
    return inst


async def mark_price_klines(ctx: ApiContext, params: Params) -> list:
    inst = params.symbol(ctx.instruments)
    assert inst is not None
    return _price_rows(*_candles(ctx, inst.symbol, "mark", params), lambda v: wire.price(inst, v))


async def index_price_klines(ctx: ApiContext, params: Params) -> list:
    inst = _pair(ctx, params)
    return _price_rows(*_candles(ctx, inst.symbol, "index", params), lambda v: wire.price(inst, v))


async def premium_index_klines(ctx: ApiContext, params: Params) -> list:
    inst = params.symbol(ctx.instruments)
    assert inst is not None
    return _price_rows(*_candles(ctx, inst.symbol, "premium", params), wire.rate)


def market_now(ctx: ApiContext, symbol: str) -> int:
    """The 24 h window's end: the wall clock, or the last trade's time if the feed runs in the past (replay)."""
    now = ctx.now()
    last = ctx.stats.last_trade_ts(symbol)
    return last if 0 < last < now - 60_000 else now


def _ticker_24h(ctx: ApiContext, inst: Instrument, now: int) -> dict:
    now = market_now(ctx, inst.symbol)
    st = ctx.stats.stats_24h(inst.symbol, now)
    market = ctx.ex.market(inst.symbol)
    if st is None:
        last = market.last_price or market.mark
        return {"symbol": inst.symbol, "priceChange": wire.price(inst, 0), "priceChangePercent": "0.000",
                "weightedAvgPrice": wire.price(inst, last), "lastPrice": wire.price(inst, last),
                "lastQty": wire.qty(inst, 0), "openPrice": wire.price(inst, last), "highPrice": wire.price(inst, last),
                "lowPrice": wire.price(inst, last), "volume": wire.qty(inst, 0), "quoteVolume": wire.money(0),
                "openTime": now - 86_400_000, "closeTime": now, "firstId": 0, "lastId": 0, "count": 0}
    return {"symbol": inst.symbol, "priceChange": wire.price(inst, st.change),
            "priceChangePercent": f"{st.change_percent / 10**8:.3f}",
            "weightedAvgPrice": wire.price(inst, st.weighted_avg), "lastPrice": wire.price(inst, st.last),
            "lastQty": wire.qty(inst, st.last_qty), "openPrice": wire.price(inst, st.open),
            "highPrice": wire.price(inst, st.high), "lowPrice": wire.price(inst, st.low),
            "volume": wire.qty(inst, st.volume), "quoteVolume": wire.money(st.quote_volume),
            "openTime": st.open_ts, "closeTime": st.close_ts, "firstId": st.first_id, "lastId": st.last_id,
            "count": st.count}


async def ticker_24h(ctx: ApiContext, params: Params) -> Any:
    now = ctx.now()
    return _one_or_list(params, [_ticker_24h(ctx, inst, now) for inst in _symbols(ctx, params)])


async def ticker_price(ctx: ApiContext, params: Params) -> Any:
    now = ctx.now()
    rows = []
    for inst in _symbols(ctx, params):
        market = ctx.ex.market(inst.symbol)
        rows.append({"symbol": inst.symbol, "price": wire.price(inst, market.last_price or market.mark), "time": now})
    return _one_or_list(params, rows)


async def book_ticker(ctx: ApiContext, params: Params) -> Any:
    rows = []
    now = ctx.now()
    for inst in _symbols(ctx, params):
        bids, asks, uid, ts = ctx.depth.snapshot(inst.symbol, 1)
        bid = bids[0] if bids else (0, 0)
        ask = asks[0] if asks else (0, 0)
        rows.append({"symbol": inst.symbol, "bidPrice": wire.price(inst, bid[0]), "bidQty": wire.qty(inst, bid[1]),
                     "askPrice": wire.price(inst, ask[0]), "askQty": wire.qty(inst, ask[1]), "time": ts or now,
                     "lastUpdateId": uid})
    return _one_or_list(params, rows)


async def premium_index(ctx: ApiContext, params: Params) -> Any:
    now = ctx.now()
    rows = []
    for inst in _symbols(ctx, params):
        mv = ctx.ex.market(inst.symbol)
        rows.append({"symbol": inst.symbol, "markPrice": wire.price(inst, mv.mark),
                     "indexPrice": wire.price(inst, mv.index or mv.mark),
                     "estimatedSettlePrice": wire.price(inst, mv.index or mv.mark),
                     "lastFundingRate": wire.rate(mv.funding_rate), "interestRate": DEFAULT_INTEREST_RATE,
                     "nextFundingTime": next_funding_time(mv.next_funding_ts, mv.ts or now),
                     "time": mv.ts or now})
    return _one_or_list(params, rows)


def next_funding_time(from_feed: int, market_ts: int) -> int:
    """The feed's next funding instant, else the venue's next 8-hour settlement after ``market_ts``."""
    if from_feed:
        return from_feed
    return (market_ts // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS


async def funding_rate_history(ctx: ApiContext, params: Params) -> list:
    limit = params.integer("limit", default=100, lo=1, hi=1000)
    start = params.integer("startTime", lo=0)
    end = params.integer("endTime", lo=0)
    assert limit is not None
    rows: list[dict[str, Any]] = []
    for inst in _symbols(ctx, params):
        for rec in ctx.klines.merge_funding(inst.symbol, ctx.stats.funding_history(inst.symbol)):
            if (start is None or rec.ts >= start) and (end is None or rec.ts <= end):
                rows.append({"symbol": inst.symbol, "fundingRate": wire.rate(rec.rate), "fundingTime": rec.ts,
                             "markPrice": wire.price(inst, rec.mark)})
    rows.sort(key=lambda r: r["fundingTime"])
    return rows[:limit] if start is not None else rows[-limit:]


async def funding_info(ctx: ApiContext, params: Params) -> list:
    return [{"symbol": inst.symbol, "adjustedFundingRateCap": "0.03000000",
             "adjustedFundingRateFloor": "-0.03000000", "fundingIntervalHours": 8, "disclaimer": False}
            for inst in ctx.instruments.values()]


async def open_interest(ctx: ApiContext, params: Params) -> dict:
    inst = params.symbol(ctx.instruments)
    assert inst is not None
    total = 0
    for account in ctx.ex.account_ids():
        for pos in ctx.ex.positions(account, inst.symbol):
            if pos.qty > 0:
                total += pos.qty
    return {"symbol": inst.symbol, "openInterest": fmt_trim(total), "time": ctx.now()}


def add_routes(app: web.Application) -> None:
    r = app.router
    for version in ("v1",):
        base = f"/fapi/{version}"
        r.add_get(f"{base}/ping", public(ping))
        r.add_get(f"{base}/time", public(server_time))
        r.add_get(f"{base}/exchangeInfo", public(exchange_info))
        r.add_get(f"{base}/depth", public(depth, 5))
        r.add_get(f"{base}/trades", public(trades, 5))
        r.add_get(f"{base}/historicalTrades", public(trades, 20))
        r.add_get(f"{base}/aggTrades", public(agg_trades, 20))
        r.add_get(f"{base}/klines", public(klines, 5))
        r.add_get(f"{base}/continuousKlines", public(continuous_klines, 5))
        r.add_get(f"{base}/markPriceKlines", public(mark_price_klines, 5))
        r.add_get(f"{base}/indexPriceKlines", public(index_price_klines, 5))
        r.add_get(f"{base}/premiumIndexKlines", public(premium_index_klines, 5))
        r.add_get(f"{base}/ticker/24hr", public(ticker_24h))
        r.add_get(f"{base}/ticker/price", public(ticker_price))
        r.add_get(f"{base}/ticker/bookTicker", public(book_ticker))
        r.add_get(f"{base}/premiumIndex", public(premium_index))
        r.add_get(f"{base}/fundingRate", public(funding_rate_history))
        r.add_get(f"{base}/fundingInfo", public(funding_info))
        r.add_get(f"{base}/openInterest", public(open_interest))
    r.add_get("/fapi/v2/ticker/price", public(ticker_price))


__all__ = ["ApiError", "add_routes"]

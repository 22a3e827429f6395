"""Market history for a feed: the klines and funding a venue already has when a bot connects.

Three sources, one shape (``MarketPast``: bars per (symbol, kind, interval), funding per symbol,
fixed-point ints):

- **live** (``binance``): ``binance_past`` backfills every interval Binance offers (1m … 1M) of
  ``/fapi/v1/klines``, ``markPriceKlines``, ``indexPriceKlines``, ``premiumIndexKlines`` and the
  ``/fapi/v1/fundingRate`` history from the upstream REST API at start; ``ccxt:<id>`` feeds use
  ``fetch_ohlcv`` / ``fetch_funding_rate_history`` of the same venue (``ccxt_past``);
- **replay**: ``archive_past`` reads a kline archive (1m, Binance's 12-column CSV) and a funding
  CSV given beside the recording (``replay:<file>?history=<klines.csv>,<funding.csv>``) and keeps
  what lies before the first replayed event, the higher intervals aggregated from the 1m bars;
- **synthetic**: ``synthetic_past`` generates 1500 1m bars and up to 1000 bars of every higher
  interval ending at the first event's time and price (``seed`` makes it repeatable), and 8-hourly
  funding settlements (00/08/16 UTC) over the last 30 days.

Generated and aggregated intervals are consistent along Binance's interval chain (each interval
aggregates the one before it where that one reaches, ``CHAIN``); further back an interval is
generated on its own, ending where its finer neighbour begins, with a volatility of
``sigma × sqrt(minutes)`` and a pull back towards the start price so a far past stays plausible.

``history_source(spec, symbols)`` picks the source for a feed spec; the runtime hands its
``backfill()`` result (live) to the API's ``KlineHistory.load`` at start, or installs
``on_first_trade`` (replay, synthetic) so the past ends exactly where the feed's own data begins,
whichever clock the feed stamps with.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from exchange_sim.core.fixed import SCALE
from exchange_sim.core.candles import DAY, INTERVALS, MINUTE, Candle, aggregate, bucket_start, previous_bucket

from .base import FeedFormatError, fixed

log = logging.getLogger(__name__)

# interval -> the finer interval it aggregates (Binance's buckets nest along this chain)
CHAIN = {"3m": "1m", "5m": "1m", "15m": "5m", "30m": "15m", "1h": "30m", "2h": "1h", "4h": "2h",
         "6h": "2h", "8h": "4h", "12h": "4h", "1d": "12h", "3d": "1d", "1w": "1d", "1M": "1d"}
FUNDING_MS = 8 * 60 * 60_000
KLINE_KINDS = {"trade": "klines", "mark": "markPriceKlines", "index": "indexPriceKlines",
               "premium": "premiumIndexKlines"}


@dataclass(frozen=True, slots=True)
class MarketPast:
    """Bars per (symbol, kind, interval) and funding settlements (ts, rate, mark) per symbol."""

    klines: dict[tuple[str, str, str], list[Candle]] = field(default_factory=dict)
    funding: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)


# ----------------------------------------------------------------------------- synthetic


@dataclass(frozen=True, slots=True)
class PastShape:
    """How a generated past looks: bar counts, volatility per minute, volume per minute."""

    minutes: int = 1500  # 1m bars
    bars: int = 1000  # of every higher interval, at most
    years: int = 5  # and no further back than this
    sigma: float = 0.0007  # log-price per minute
    reversion: float = 0.002  # pull towards the start price per generated bar
    qty_per_minute: int = 5 * SCALE
    funding_days: int = 30
    funding_rate: int = SCALE // 10_000  # 0.0001


def _bar(rng: random.Random, open_ts: int, open_p: float, close_p: float, minutes: float, shape: PastShape,
         tick: int) -> Candle:
    wiggle = shape.sigma * math.sqrt(minutes)
    hi = max(open_p, close_p) * (1 + abs(rng.gauss(0, wiggle)) / 2)
    lo = min(open_p, close_p) * (1 - abs(rng.gauss(0, wiggle)) / 2)
    o, c, h, low = (_fx(v, tick) for v in (open_p, close_p, hi, lo))
    qty = int(shape.qty_per_minute * minutes * (0.5 + rng.random()))
    qty -= qty % (SCALE // 1000)
    mid = (o + c) // 2
    trades = max(1, int(minutes * (20 + rng.randrange(40))))
    buy = qty // 2
    return Candle(open_ts, o, max(h, o, c), min(low, o, c), c, qty, qty * mid // SCALE, trades, buy,
                      buy * mid // SCALE)


def _fx(price: float, tick: int) -> int:
    raw = round(price * SCALE)
    return max(tick, raw - raw % tick)


def _walk_back(rng: random.Random, interval: str, end_open: int, end_price: float, count: int, anchor: float,
               shape: PastShape, tick: int, earliest: int) -> list[Candle]:
    """``count`` bars of ``interval`` ending with the bar before ``end_open``, closing at ``end_price``."""
    minutes = INTERVALS[interval] // MINUTE
    out: list[Candle] = []
    close = end_price
    open_ts = end_open
    for _ in range(count):
        open_ts = previous_bucket(open_ts, interval)
        if open_ts < earliest:
            break
        step = rng.gauss(0, shape.sigma * math.sqrt(minutes)) + shape.reversion * math.log(anchor / close)
        open_p = close * math.exp(step)
        out.append(_bar(rng, open_ts, open_p, close, minutes, shape, tick))
        close = open_p
    out.reverse()
    return out


def synthetic_past(symbol: str, end_ts: int, end_price: int, seed: int = 1, *, tick: int = SCALE // 10,
                   shape: PastShape = PastShape()) -> MarketPast:
    """A generated past of ``symbol`` ending at ``end_ts`` (ms) at ``end_price`` (fixed); see module doc."""
    rng = random.Random(f"{seed}:{symbol}")
    price = end_price / SCALE
    earliest = end_ts - shape.years * 365 * DAY
    klines: dict[tuple[str, str, str], list[Candle]] = {}
    first_open = bucket_start(end_ts, "1m")
    minutes = _walk_back(rng, "1m", first_open, price, shape.minutes, price, shape, tick, earliest)
    if end_ts > first_open:  # the bar the first event falls in, up to it
        minutes.append(_bar(rng, first_open, price, price, (end_ts - first_open) / MINUTE, shape, tick))
    series = {"1m": minutes}
    for interval, finer in CHAIN.items():
        agg = aggregate(series[finer], interval)
        start_open = agg[0].open_ts if agg else bucket_start(end_ts, interval)
        start_price = agg[0].open / SCALE if agg else price
        before = _walk_back(rng, interval, start_open, start_price, max(0, shape.bars - len(agg)), price, shape,
                            tick, earliest)
        series[interval] = before + agg
    for interval, bars in series.items():
        klines[(symbol, "trade", interval)] = bars
        klines[(symbol, "mark", interval)] = [Candle(b.open_ts, b.open, b.high, b.low, b.close, trades=b.trades)
                                              for b in bars]
        klines[(symbol, "index", interval)] = klines[(symbol, "mark", interval)]  # the synthetic mark is the index
        klines[(symbol, "premium", interval)] = [Candle(b.open_ts, 0, 0, 0, 0, trades=b.trades) for b in bars]
    hours = series["1h"]
    funding = []
    last = end_ts - end_ts % FUNDING_MS
    for k in range(shape.funding_days * 3):
        ts = last - k * FUNDING_MS
        if ts >= end_ts:
            continue
        mark = next((b.close for b in reversed(hours) if b.open_ts < ts), end_price)
        rate = shape.funding_rate + rng.randrange(-shape.funding_rate // 2, shape.funding_rate // 2 + 1)
        funding.append((ts, rate, mark))
    funding.reverse()
    return MarketPast(klines, {symbol: funding})


# ----------------------------------------------------------------------------- archives (replay)


def read_kline_archive(path: str) -> list[Candle]:
    """1m klines from a Binance archive CSV (12 columns, with or without a header)."""
    bars: list[Candle] = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            if not row or not row[0].strip().isdigit():
                continue
            if len(row) < 6:
                raise FeedFormatError(f"{path}: a kline row needs at least 6 columns, got {len(row)}")
            extra = [fixed(row[i]) if len(row) > i and row[i] else 0 for i in (7, 9, 10)]
            trades = int(row[8]) if len(row) > 8 and row[8].isdigit() else 0
            ts = int(row[0])
            bars.append(Candle(ts // 1000 if ts > 10**14 else ts, fixed(row[1]), fixed(row[2]), fixed(row[3]),
                                   fixed(row[4]), fixed(row[5]), extra[0], trades, extra[1], extra[2]))
    bars.sort(key=lambda b: b.open_ts)
    return bars


def read_funding_csv(path: str) -> list[tuple[int, int]]:
    """(funding_time_ms, rate) rows of a funding CSV (``funding_time_ms,...,funding_rate`` or
    Binance's ``calc_time,funding_interval_hours,last_funding_rate``)."""
    out: list[tuple[int, int]] = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            if not row or not row[0].strip().isdigit():
                continue
            out.append((int(row[0]), _signed_fixed(row[-1])))
    return out


def archive_past(symbol: str, end_ts: int, klines_path: str | None = None, funding_path: str | None = None,
                 *, keep_minutes: int = 60 * 24 * 60) -> MarketPast:
    """What a kline archive / funding CSV says about the time before ``end_ts`` (replay pre-roll)."""
    klines: dict[tuple[str, str, str], list[Candle]] = {}
    if klines_path:
        minutes = [b for b in read_kline_archive(klines_path) if b.open_ts + MINUTE <= end_ts][-keep_minutes:]
        series = {"1m": minutes}
        for interval, finer in CHAIN.items():
            series[interval] = aggregate(series[finer], interval)
        for interval, bars in series.items():
            klines[(symbol, "trade", interval)] = bars
    funding: dict[str, list[tuple[int, int, int]]] = {}
    if funding_path:
        funding[symbol] = [(ts, rate, 0) for ts, rate in read_funding_csv(funding_path) if ts < end_ts]
    return MarketPast(klines, funding)


# ----------------------------------------------------------------------------- live backfill


def _row_bar(row: Sequence[Any], *, prices_only: bool = False) -> Candle:
    if prices_only:
        return Candle(int(row[0]), fixed(row[1]), fixed(row[2]), fixed(row[3]), fixed(row[4]),
                          trades=int(row[8]) if len(row) > 8 else 0)
    return Candle(int(row[0]), fixed(row[1]), fixed(row[2]), fixed(row[3]), fixed(row[4]), fixed(row[5]),
                      fixed(row[7]), int(row[8]), fixed(row[9]), fixed(row[10]))


def _signed_fixed(text: Any) -> int:
    s = str(text).strip()
    return -fixed(s[1:]) if s.startswith("-") else fixed(s)


async def binance_past(rest_url: str, symbols: Sequence[str], *, limit: int = 1000,
                       kinds: Sequence[str] = tuple(KLINE_KINDS), pause: float = 0.05,
                       session: Any = None) -> MarketPast:
    """Backfill from a Binance USDⓈ-M REST API (every interval and kind, then funding history).

    Requests go one at a time with ``pause`` seconds between them (about 60 per symbol and well
    under the venue's 2400 weight a minute); a failing request is logged and skipped.
    """
    import aiohttp

    own = session is None
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) if own else session
    klines: dict[tuple[str, str, str], list[Candle]] = {}
    funding: dict[str, list[tuple[int, int, int]]] = {}

    async def get(path: str, params: dict[str, Any]) -> Any:
        try:
            async with http.get(f"{rest_url}{path}", params=params) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 200:
                    log.warning("backfill %s %s: HTTP %s %s", path, params, resp.status, body)
                    return None
                return body
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            log.warning("backfill %s %s failed: %s", path, params, exc)
            return None
        finally:
            await asyncio.sleep(pause)

    try:
        for symbol in symbols:
            for kind in kinds:
                endpoint = KLINE_KINDS[kind]
                key = "pair" if kind == "index" else "symbol"
                for interval in INTERVALS:
                    rows = await get(f"/fapi/v1/{endpoint}", {key: symbol, "interval": interval, "limit": limit})
                    if isinstance(rows, list):
                        klines[(symbol, kind, interval)] = [_row_bar(r, prices_only=kind != "trade") for r in rows]
            rows = await get("/fapi/v1/fundingRate", {"symbol": symbol, "limit": 1000})
            if isinstance(rows, list):
                funding[symbol] = [(int(r["fundingTime"]), _signed_fixed(r["fundingRate"]),
                                    fixed(r.get("markPrice") or "0")) for r in rows]
    finally:
        if own:
            await http.close()
    return MarketPast(klines, funding)


async def ccxt_past(exchange: Any, symbols: dict[str, str], *, limit: int = 1000) -> MarketPast:
    """Backfill through a ccxt (async) exchange: ``fetch_ohlcv`` per timeframe it offers, then funding.

    ``symbols``: our symbol → the venue's ccxt symbol.
    """
    klines: dict[tuple[str, str, str], list[Candle]] = {}
    funding: dict[str, list[tuple[int, int, int]]] = {}
    offered = getattr(exchange, "timeframes", None) or {}
    for symbol, venue_symbol in symbols.items():
        for interval in INTERVALS:
            if offered and interval not in offered:
                continue
            try:
                rows = await exchange.fetch_ohlcv(venue_symbol, interval, limit=limit)
            except Exception as exc:  # noqa: BLE001 - a venue error only loses this interval
                log.warning("backfill %s %s via ccxt failed: %s", symbol, interval, exc)
                continue
            klines[(symbol, "trade", interval)] = [
                Candle(int(r[0]), _fx(r[1], 1), _fx(r[2], 1), _fx(r[3], 1), _fx(r[4], 1),
                           round((r[5] or 0) * SCALE)) for r in rows]
        if (getattr(exchange, "has", {}) or {}).get("fetchFundingRateHistory"):
            try:
                rows = await exchange.fetch_funding_rate_history(venue_symbol, limit=limit)
                funding[symbol] = [(int(r["timestamp"]), round(float(r["fundingRate"]) * SCALE), 0) for r in rows]
            except Exception as exc:  # noqa: BLE001
                log.warning("funding backfill %s via ccxt failed: %s", symbol, exc)
    return MarketPast(klines, funding)


# ----------------------------------------------------------------------------- per feed spec


@dataclass
class HistorySource:
    """What a feed offers: a ``backfill`` coroutine factory (live) and/or an ``on_first_trade`` hook."""

    backfill: Callable[[], Any] | None = None
    on_first_trade: Callable[[str, int, int], MarketPast | None] | None = None


def history_source(spec: Any, symbols: Sequence[str] | dict[str, Any], *, rest_url: str | None = None,
                   ccxt_config: dict[str, Any] | None = None) -> HistorySource:
    """The history source of a feed spec (``feeds.parse_spec`` text or FeedSpec); empty for manual/mqtt."""
    from . import FeedSpec, parse_spec

    fs = spec if isinstance(spec, FeedSpec) else parse_spec(spec)
    names = list(symbols)
    ticks = {s: getattr(symbols[s], "tick_size", SCALE // 10) for s in names} if isinstance(symbols, dict) else {}
    if fs.kind == "synthetic":
        seed = int(fs.params.get("seed", "1") or 1)
        return HistorySource(on_first_trade=lambda s, ts, price: synthetic_past(
            s, ts, price, seed, tick=ticks.get(s, SCALE // 10)))
    if fs.kind == "replay":
        files = [f for f in fs.params.get("history", "").split(",") if f]
        klines_path = next((f for f in files if "funding" not in f.lower()), None)
        funding_path = next((f for f in files if "funding" in f.lower()), None)
        if not files:
            return HistorySource()
        return HistorySource(on_first_trade=lambda s, ts, price: archive_past(s, ts, klines_path, funding_path))
    if fs.kind == "binance":
        from .binance import resolve_urls

        _, rest = resolve_urls(None, rest_url)
        return HistorySource(backfill=lambda: binance_past(rest, names))
    if fs.kind == "ccxt":
        async def via_ccxt() -> MarketPast:
            import ccxt.async_support as ccxt_async

            exchange = getattr(ccxt_async, fs.target)(dict(ccxt_config or {}))
            try:
                await exchange.load_markets()
                by_id = {m["id"]: m["symbol"] for m in exchange.markets.values() if m.get("swap")}
                return await ccxt_past(exchange, {s: by_id.get(s, s) for s in names})
            finally:
                await exchange.close()
        return HistorySource(backfill=via_ccxt)
    return HistorySource()


async def install(store: Any, source: HistorySource) -> None:
    """Hook ``source`` into an ``exchange_sim.api.kline_store.KlineHistory``: the first-trade hook
    now, the backfill awaited (run it as a task; it takes a few seconds against the real venue)."""
    if source.on_first_trade is not None:
        store.on_first_trade = source.on_first_trade
    if source.backfill is not None:
        past = await source.backfill()
        if past is not None:
            store.load(past)
            log.info("history: %d kline series, %d funding series backfilled", len(past.klines), len(past.funding))

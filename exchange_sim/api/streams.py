"""Websocket streams: connections, SUBSCRIBE/UNSUBSCRIBE, and the market-data publisher.

Paths (ccxt.pro rewrites a linear ``.../ws`` base to ``/public/ws/<n>`` or ``/market/ws/<n>``):
``/ws``, ``/ws/<streams or listenKey>``, ``/public/ws[/...]``, ``/market/ws[/...]``,
``/stream?streams=a/b`` (combined: ``{"stream", "data"}``), ``/private/ws?listenKey=`` (see
``user_stream``). Requests: ``{"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms"], "id": 1}``
→ ``{"result": null, "id": 1}``; also UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY,
GET_PROPERTY; errors ``{"error": {"code", "msg"}, "id"}`` with Binance's websocket codes
(0 unknown property, 1 invalid value type, 2 invalid request, 3 invalid JSON).

Each connection has a bounded send queue drained by its own writer task; a connection whose
queue overflows is closed (as the venue disconnects a client that cannot keep up) and counted.
The publisher is a node listener, so frames go out in core order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import WSMsgType, web

from exchange_sim.core import messages as m
from exchange_sim.core.fixed import fmt_trim
from exchange_sim.core.instruments import Instrument

from . import wire
from .depth import DepthDiff, DepthTracker
from .market_stats import INTERVALS, MarketStats, PublicTrade

log = logging.getLogger(__name__)

SEND_QUEUE = 2000
MAX_STREAMS_PER_CONNECTION = 200
STREAM_RE = re.compile(r"^[!A-Za-z0-9_@]{1,64}$")

# channel name (lowercase) -> canonical spelling
CHANNELS = {c.lower(): c for c in (
    "trade", "aggTrade", "depth", "depth5", "depth10", "depth20", "bookTicker", "miniTicker", "ticker",
    "markPrice", "forceOrder",
)} | {f"kline_{i}": f"kline_{i}" for i in INTERVALS}
SPEEDS = {"100ms", "250ms", "500ms", "0ms", "1s", "3s"}


def normalize_stream(name: str) -> str | None:
    """Canonical stream name (``btcusdt@depth@100ms``, ``!markPrice@arr@1s``) or None if malformed."""
    if not STREAM_RE.match(name):
        return None
    parts = name.split("@")
    head = parts[0].lower()
    if head.startswith("!"):
        channel = CHANNELS.get(head[1:].lower())
        if channel is None:
            return None
        rest = [p.lower() for p in parts[1:]]
        if any(p not in SPEEDS | {"arr"} for p in rest):
            return None
        return "@".join(["!" + channel, *rest])
    if len(parts) < 2:
        return None
    channel = CHANNELS.get(parts[1].lower())
    if channel is None:
        return None
    rest = [p.lower() for p in parts[2:]]
    if any(p not in SPEEDS for p in rest):
        return None
    return "@".join([head, channel, *rest])


@dataclass(eq=False)
class Connection:
    ws: web.WebSocketResponse
    combined: bool = False
    account: int | None = None
    listen_key: str = ""
    streams: set[str] = field(default_factory=set)
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=SEND_QUEUE))
    closing: bool = False


class StreamHub:
    """Who listens to which stream, and delivery of frames to their send queues."""

    def __init__(self) -> None:
        self._by_stream: dict[str, set[Connection]] = {}
        self._by_account: dict[int, set[Connection]] = {}
        self.connections: set[Connection] = set()
        self.dropped_connections = 0

    def wants(self, stream: str) -> bool:
        return bool(self._by_stream.get(stream))

    def wants_account(self, account: int) -> bool:
        return bool(self._by_account.get(account))

    def add(self, conn: Connection) -> None:
        self.connections.add(conn)
        if conn.account is not None:
            self._by_account.setdefault(conn.account, set()).add(conn)

    def remove(self, conn: Connection) -> None:
        self.connections.discard(conn)
        for stream in conn.streams:
            subs = self._by_stream.get(stream)
            if subs is not None:
                subs.discard(conn)
                if not subs:
                    del self._by_stream[stream]
        conn.streams.clear()
        if conn.account is not None:
            subs = self._by_account.get(conn.account)
            if subs is not None:
                subs.discard(conn)
                if not subs:
                    del self._by_account[conn.account]

    def subscribe(self, conn: Connection, stream: str) -> None:
        conn.streams.add(stream)
        self._by_stream.setdefault(stream, set()).add(conn)

    def unsubscribe(self, conn: Connection, stream: str) -> None:
        conn.streams.discard(stream)
        subs = self._by_stream.get(stream)
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del self._by_stream[stream]

    def publish(self, stream: str, payload: Any) -> None:
        subs = self._by_stream.get(stream)
        if not subs:
            return
        raw = combined = None
        for conn in tuple(subs):
            if conn.combined:
                if combined is None:
                    combined = json.dumps({"stream": stream, "data": payload}, separators=(",", ":"))
                self._send(conn, combined)
            else:
                if raw is None:
                    raw = json.dumps(payload, separators=(",", ":"))
                self._send(conn, raw)

    def publish_account(self, account: int, payload: dict) -> None:
        subs = self._by_account.get(account)
        if not subs:
            return
        raw = json.dumps(payload, separators=(",", ":"))
        for conn in tuple(subs):
            self._send(conn, raw)

    def _send(self, conn: Connection, text: str) -> None:
        if conn.closing:
            return
        try:
            conn.queue.put_nowait(text)
        except asyncio.QueueFull:
            conn.closing = True
            self.dropped_connections += 1
            self.remove(conn)
            asyncio.get_running_loop().create_task(conn.ws.close(code=1008, message=b"too slow"))

    async def close_all(self) -> None:
        for conn in tuple(self.connections):
            conn.closing = True
            self.remove(conn)
            await conn.ws.close(code=1001, message=b"server shutdown")


async def _writer(conn: Connection) -> None:
    try:
        while True:
            text = await conn.queue.get()
            await conn.ws.send_str(text)
    except (ConnectionError, RuntimeError, asyncio.CancelledError):
        return


def _error(code: int, msg: str, req_id: Any) -> dict:
    return {"error": {"code": code, "msg": msg}, "id": req_id}


def handle_request(hub: StreamHub, conn: Connection, text: str) -> dict:
    """Answer one client request on a market connection (SUBSCRIBE, UNSUBSCRIBE, ...)."""
    try:
        req = json.loads(text)
    except (ValueError, RecursionError):
        return _error(3, "Invalid JSON: expected value", None)
    if not isinstance(req, dict):
        return _error(2, "Invalid request: request must be an object", None)
    req_id = req.get("id")
    if req_id is not None and (isinstance(req_id, bool) or not isinstance(req_id, (int, str))):
        return _error(1, "Invalid value type: expected an integer or string id", None)
    method = req.get("method")
    params = req.get("params", [])
    if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            return _error(2, "Invalid request: 'params' must be a list of stream names", req_id)
        names = [normalize_stream(p) for p in params]
        if any(n is None for n in names):
            bad = params[names.index(None)]
            return _error(2, f"Invalid request: unknown stream {bad[:64]!r}", req_id)
        if method == "SUBSCRIBE":
            if len(conn.streams | set(names)) > MAX_STREAMS_PER_CONNECTION:  # type: ignore[arg-type]
                return _error(4, "Invalid request: too many streams", req_id)
            for n in names:
                hub.subscribe(conn, n)  # type: ignore[arg-type]
        else:
            for n in names:
                hub.unsubscribe(conn, n)  # type: ignore[arg-type]
        return {"result": None, "id": req_id}
    if method == "LIST_SUBSCRIPTIONS":
        return {"result": sorted(conn.streams), "id": req_id}
    if method == "SET_PROPERTY":
        if params == ["combined", True] or params == ["combined", False]:
            conn.combined = bool(params[1])
            return {"result": None, "id": req_id}
        return _error(0, "Unknown property", req_id)
    if method == "GET_PROPERTY":
        if params == ["combined"]:
            return {"result": conn.combined, "id": req_id}
        return _error(0, "Unknown property", req_id)
    return _error(2, "Invalid request: unknown method", req_id)


async def serve_connection(request: web.Request, hub: StreamHub, conn: Connection,
                           initial: list[str] | None = None, *, accept_requests: bool = True) -> web.WebSocketResponse:
    """Run one websocket until it closes: reader loop here, writer task for outgoing frames."""
    ws = conn.ws
    hub.add(conn)
    for name in initial or []:
        norm = normalize_stream(name)
        if norm is not None:
            hub.subscribe(conn, norm)
    writer = asyncio.get_running_loop().create_task(_writer(conn))
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                if not accept_requests:
                    continue
                reply = handle_request(hub, conn, msg.data)
                if not conn.closing:
                    conn.queue.put_nowait(json.dumps(reply, separators=(",", ":")))
            elif msg.type == WSMsgType.ERROR:
                break
    except (ConnectionError, asyncio.QueueFull):
        pass
    finally:
        hub.remove(conn)
        writer.cancel()
        try:
            await writer
        except asyncio.CancelledError:
            pass
        if not ws.closed:
            await ws.close()
    return ws


# ----------------------------------------------------------------------------- the publisher


class MarketPublisher:
    """Turns applied inputs into market stream frames (a node listener; see module doc)."""

    def __init__(self, hub: StreamHub, instruments: dict[str, Instrument], depth: DepthTracker,
                 stats: MarketStats, market_view: Callable[[str], Any], clock: Callable[[], int]) -> None:
        self.hub = hub
        self.instruments = instruments
        self.depth = depth
        self.stats = stats
        self.market_view = market_view
        self.clock = clock
        self._best: dict[str, tuple[int, int, int, int]] = {}

    def __call__(self, msg: object, events: list) -> None:
        now = self.clock()
        ts = getattr(msg, "ts", now) or now
        trade = self.stats.on_input(msg, events)
        diffs = self.depth.on_input(msg, events, ts)
        if trade is not None:
            self._trade(msg.symbol, trade, now)  # type: ignore[attr-defined]
        for diff in diffs:
            self._depth(diff, now)
            self._book_ticker(diff.symbol, now)
        if isinstance(msg, m.MarkPrice):
            self._mark(msg, now)
        for event in events:
            if isinstance(event, m.Liquidation):
                self._force_order(event, now)

    # ------------------------------------------------------------------ frames

    def _trade(self, symbol: str, t: PublicTrade, now: int) -> None:
        inst = self.instruments.get(symbol)
        if inst is None:
            return
        low = symbol.lower()
        p, q = wire.price(inst, t.price), wire.qty(inst, t.qty)
        if self.hub.wants(f"{low}@trade"):
            self.hub.publish(f"{low}@trade", {"e": "trade", "E": now, "T": t.ts, "s": symbol, "t": t.trade_id,
                                              "p": p, "q": q, "X": "MARKET", "m": t.buyer_maker})
        if self.hub.wants(f"{low}@aggTrade"):
            self.hub.publish(f"{low}@aggTrade", {"e": "aggTrade", "E": now, "a": t.trade_id, "s": symbol, "p": p,
                                                 "q": q, "f": t.trade_id, "l": t.trade_id, "T": t.ts,
                                                 "m": t.buyer_maker})
        wants_ticker = self.hub.wants(f"{low}@ticker") or self.hub.wants("!ticker@arr")
        wants_mini = self.hub.wants(f"{low}@miniTicker") or self.hub.wants("!miniTicker@arr")
        if wants_ticker or wants_mini:
            st = self.stats.stats_24h(symbol, now)
            if st is not None:
                mini = {"e": "24hrMiniTicker", "E": now, "s": symbol, "c": wire.price(inst, st.last),
                        "o": wire.price(inst, st.open), "h": wire.price(inst, st.high), "l": wire.price(inst, st.low),
                        "v": wire.qty(inst, st.volume), "q": wire.money(st.quote_volume)}
                if wants_mini:
                    self.hub.publish(f"{low}@miniTicker", mini)
                    self.hub.publish("!miniTicker@arr", [mini])
                if wants_ticker:
                    full = {"e": "24hrTicker", "E": now, "s": symbol, "p": wire.price(inst, st.change),
                            "P": fmt_trim(st.change_percent), "w": wire.price(inst, st.weighted_avg),
                            "c": wire.price(inst, st.last), "Q": wire.qty(inst, st.last_qty),
                            "o": wire.price(inst, st.open), "h": wire.price(inst, st.high),
                            "l": wire.price(inst, st.low), "v": wire.qty(inst, st.volume),
                            "q": wire.money(st.quote_volume), "O": st.open_ts, "C": st.close_ts,
                            "F": st.first_id, "L": st.last_id, "n": st.count}
                    self.hub.publish(f"{low}@ticker", full)
                    self.hub.publish("!ticker@arr", [full])
        for interval in INTERVALS:
            stream = f"{low}@kline_{interval}"
            if self.hub.wants(stream):
                candles = self.stats.klines(symbol, interval, None, None, 1)
                if candles:
                    c = candles[-1]
                    step = INTERVALS[interval]
                    self.hub.publish(stream, {"e": "kline", "E": now, "s": symbol, "k": {
                        "t": c.open_ts, "T": c.open_ts + step - 1, "s": symbol, "i": interval, "f": t.trade_id,
                        "L": t.trade_id, "o": wire.price(inst, c.open), "c": wire.price(inst, c.close),
                        "h": wire.price(inst, c.high), "l": wire.price(inst, c.low), "v": wire.qty(inst, c.volume),
                        "n": c.trades, "x": False, "q": wire.money(c.quote_volume),
                        "V": wire.qty(inst, c.taker_buy_volume), "Q": wire.money(c.taker_buy_quote), "B": "0"}})

    def _depth(self, d: DepthDiff, now: int) -> None:
        inst = self.instruments[d.symbol]
        low = d.symbol.lower()
        payload = None
        for speed in ("", "@100ms", "@250ms", "@500ms", "@0ms"):
            stream = f"{low}@depth{speed}"
            if self.hub.wants(stream):
                if payload is None:
                    payload = {"e": "depthUpdate", "E": now, "T": d.ts, "s": d.symbol, "U": d.first_update_id,
                               "u": d.final_update_id, "pu": d.prev_final_update_id,
                               "b": wire.levels(inst, d.bids), "a": wire.levels(inst, d.asks)}
                self.hub.publish(stream, payload)
        for n in (5, 10, 20):
            for speed in ("", "@100ms", "@250ms", "@500ms"):
                stream = f"{low}@depth{n}{speed}"
                if self.hub.wants(stream):
                    bids, asks, uid, _ = self.depth.snapshot(d.symbol, n)
                    self.hub.publish(stream, {"e": "depthUpdate", "E": now, "T": d.ts, "s": d.symbol, "U": uid,
                                              "u": uid, "pu": uid - 1, "b": wire.levels(inst, bids),
                                              "a": wire.levels(inst, asks)})

    def _book_ticker(self, symbol: str, now: int) -> None:
        low = symbol.lower()
        if not (self.hub.wants(f"{low}@bookTicker") or self.hub.wants("!bookTicker")):
            return
        inst = self.instruments[symbol]
        bids, asks, uid, ts = self.depth.snapshot(symbol, 1)
        best = (bids[0] if bids else (0, 0)) + (asks[0] if asks else (0, 0))
        if self._best.get(symbol) == best:
            return
        self._best[symbol] = best
        payload = {"e": "bookTicker", "u": uid, "E": now, "T": ts, "s": symbol,
                   "b": wire.price(inst, best[0]), "B": wire.qty(inst, best[1]),
                   "a": wire.price(inst, best[2]), "A": wire.qty(inst, best[3])}
        self.hub.publish(f"{low}@bookTicker", payload)
        self.hub.publish("!bookTicker", payload)

    def _mark(self, msg: m.MarkPrice, now: int) -> None:
        inst = self.instruments.get(msg.symbol)
        if inst is None:
            return
        low = msg.symbol.lower()
        streams = [f"{low}@markPrice", f"{low}@markPrice@1s", f"{low}@markPrice@3s"]
        arr = ["!markPrice@arr", "!markPrice@arr@1s", "!markPrice@arr@3s"]
        if not any(self.hub.wants(s) for s in streams + arr):
            return
        view = self.market_view(msg.symbol)
        payload = {"e": "markPriceUpdate", "E": now, "s": msg.symbol, "p": wire.price(inst, msg.mark),
                   "i": wire.price(inst, view.index if view is not None and view.index else msg.index or msg.mark),
                   "P": wire.price(inst, msg.mark),
                   "r": wire.rate(view.funding_rate if view is not None else msg.funding_rate or 0),
                   "T": view.next_funding_ts if view is not None else msg.next_funding_ts or 0}
        for s in streams:
            self.hub.publish(s, payload)
        for s in arr:
            self.hub.publish(s, [payload])

    def _force_order(self, liq: m.Liquidation, now: int) -> None:
        inst = self.instruments.get(liq.symbol)
        if inst is None:
            return
        low = liq.symbol.lower()
        if not (self.hub.wants(f"{low}@forceOrder") or self.hub.wants("!forceOrder@arr")):
            return
        payload = {"e": "forceOrder", "E": now, "o": {
            "s": liq.symbol, "S": liq.side, "o": "LIMIT", "f": "IOC", "q": wire.qty(inst, liq.qty),
            "p": wire.price(inst, liq.bankruptcy_price), "ap": wire.price(inst, liq.price), "X": "FILLED",
            "l": wire.qty(inst, liq.qty), "z": wire.qty(inst, liq.qty), "T": liq.ts}}
        self.hub.publish(f"{low}@forceOrder", payload)
        self.hub.publish("!forceOrder@arr", payload)

"""A local Binance USDⓈ-M market-data server replaying a raw websocket capture (tests only).

It behaves as the venue does since 2026-04-23 (``feeds.binance_routes``). Serves, on 127.0.0.1
and a free port (aiohttp):

- websockets on the routes ``/public`` (depth, bookTicker, trade) and ``/market`` (aggTrade,
  markPrice, miniTicker, ...), each in ws mode ``<route>/ws[/<a>/<b>]`` (raw payloads) and stream
  mode ``<route>/stream?streams=a/b`` (``{"stream":..., "data":...}``), with ``SUBSCRIBE`` /
  ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` answered ``{"result": ..., "id": ...}``; a stream of the
  other route is refused (HTTP 400 on the handshake when it is in the URL, an ``{"error"}`` reply
  to a SUBSCRIBE); ``/private/ws?listenKey=K[&events=E1/E2]`` and
  ``/private/stream?listenKey=K1&events=..&listenKey=K2&events=..`` need a listenKey (HTTP 400
  without) and send nothing; the legacy ``/ws``, ``/ws/...`` and ``/stream`` answer 404;
- streams ``<sym>@depth[@100ms|@0ms]``, ``<sym>@trade``, ``<sym>@aggTrade``, ``<sym>@bookTicker``,
  ``<sym>@markPrice[@1s]`` and ``<sym>@miniTicker`` (the last two synthesised once per second of
  recording time from the last trade price);
- REST ``GET /fapi/v1/depth`` (the server's own book: the capture's snapshot plus every diff
  broadcast so far, ``lastUpdateId`` = the last broadcast ``u``), ``/fapi/v1/exchangeInfo``,
  ``/fapi/v1/time``.

One broadcaster walks the capture in order and sends each message to the connections subscribed
to its stream; it only runs while some connection listens to a depth stream (so a reconnecting
client misses data exactly as it would live, and the file is not used up while nobody listens).
Test hooks: ``before_diff(n)`` (awaited before the n-th diff goes out, to act at an exact
point of the stream), ``pause()``/``resume()`` (freeze the stream with connections open),
``drop_diffs(n)`` (the next n diffs are applied to the server's book but not sent: a gap),
``kill_connections(route=None)``, ``refuse(route)``/``accept(route)`` (answer a route's new
connections 503 meanwhile), ``mute(route)``/``unmute(route)`` (its connections stay open and
get nothing), ``inject(stream_kind, payload)``, ``max_diffs`` to stop early.
``refusals`` lists every refused handshake as (path, status, reason); ``opened`` counts
connections per route.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import WSMsgType, web

from feeds.binance_routes import MARKET, PRIVATE, PUBLIC, route_of
from tests.support.shared_data import CAPTURE as _CAPTURE

CAPTURE = str(_CAPTURE)
EIGHT_HOURS = 8 * 3600 * 1000


@dataclass(frozen=True)
class Capture:
    """A raw capture split into its REST snapshot and its stream messages (payloads, in order)."""

    snapshot: dict[str, Any]
    snapshot_index: int  # messages[:snapshot_index] were recorded before the snapshot
    messages: tuple[tuple[str, dict[str, Any]], ...]  # (kind, payload): depth, trade, bookTicker


@functools.lru_cache(maxsize=4)
def load_capture(path: str = CAPTURE) -> Capture:
    """The capture file parsed once per test session."""
    snapshot: dict[str, Any] | None = None
    index = 0
    messages: list[tuple[str, dict[str, Any]]] = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            _, _, text = line.partition(" ")
            msg = json.loads(text)
            if "lastUpdateId" in msg:
                snapshot, index = msg, len(messages)
                continue
            data = msg["data"]
            kind = {"depthUpdate": "depth", "trade": "trade", "bookTicker": "bookTicker"}.get(data.get("e"))
            if kind:
                messages.append((kind, data))
    assert snapshot is not None, "capture without a REST snapshot"
    return Capture(snapshot, index, tuple(messages))


def _fmt(price: float) -> str:
    return f"{price:.2f}"


@dataclass
class _Conn:
    ws: web.WebSocketResponse
    combined: bool
    route: str
    streams: set[str] = field(default_factory=set)


def _stream_kind(name: str) -> tuple[str, str]:
    """``btcusdt@depth@100ms`` → ("BTCUSDT", "depth")."""
    parts = name.split("@")
    kind = parts[1] if len(parts) > 1 else ""
    return parts[0].upper(), {"aggtrade": "aggTrade", "bookticker": "bookTicker", "markprice": "markPrice",
                              "miniticker": "miniTicker"}.get(kind.lower(), kind)


class FakeBinance:
    """The server; ``async with FakeBinance() as fb: fb.ws_url, fb.rest_url``."""

    def __init__(self, capture: str = CAPTURE, *, max_diffs: int | None = None, batch: int = 200,
                 funding_rate: str = "0.00010000", send_book_ticker: bool = True,
                 before_diff: Callable[[int], Awaitable[None]] | None = None) -> None:
        self.capture = load_capture(capture)
        self.before_diff = before_diff  # awaited with the diff's 0-based number before it goes out
        self.max_diffs = max_diffs
        self.batch = batch
        self.funding_rate = funding_rate
        self.send_book_ticker = send_book_ticker
        self.port = 0
        self.conns: list[_Conn] = []
        self.running = asyncio.Event()
        self.running.set()
        self.depth_listeners = asyncio.Event()
        self.finished = asyncio.Event()
        self.connections_opened = 0
        self.opened: Counter[str] = Counter()
        self.refusals: list[tuple[str, int, str]] = []
        self.private_subscriptions: list[list[tuple[str, tuple[str, ...]]]] = []
        self._refusing: set[str] = set()
        self._muted: set[str] = set()
        self.snapshots_served = 0
        self.history_calls: list[str] = []  # REST history requests (klines, fundingRate, futures/data), in order
        self.diffs_sent = 0
        self.diffs_dropped = 0
        self.last_sent_u = 0
        self._drop = 0
        self._book: dict[str, dict[str, str]] = {"bids": {}, "asks": {}}
        self._book_ready = False
        self._last_price = 0.0
        self._last_e = 0
        self._next_mark_e = 0
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None
        self._open_high_low: tuple[float, float, float] | None = None
        snap = self.capture.snapshot
        self._snapshot_id = int(snap["lastUpdateId"])
        for side in ("bids", "asks"):
            for p, q in snap[side]:
                self._book[side][p] = q

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/fapi/v1/depth", self._depth)
        app.router.add_get("/fapi/v1/exchangeInfo", self._exchange_info)
        app.router.add_get("/fapi/v1/time", self._time)
        for path in ("klines", "markPriceKlines", "indexPriceKlines", "premiumIndexKlines"):
            app.router.add_get(f"/fapi/v1/{path}", self._klines)
        app.router.add_get("/fapi/v1/fundingRate", self._funding_rate)
        app.router.add_get("/futures/data/{name}", self._futures_data)
        for route in (PUBLIC, MARKET):
            for path in ("/ws", "/ws/{streams:.*}", "/stream"):
                app.router.add_get(f"/{route}{path}", self._websocket)
        app.router.add_get("/private/ws", self._private)
        app.router.add_get("/private/stream", self._private)
        for path in ("/ws", "/ws/{streams:.*}", "/stream"):  # retired on 2026-04-23
            app.router.add_get(path, self._legacy)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._task = asyncio.create_task(self._broadcast())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.kill_connections()
        if self._runner:
            await self._runner.cleanup()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ test hooks
    def pause(self) -> None:
        self.running.clear()

    def resume(self) -> None:
        self.running.set()

    def drop_diffs(self, n: int = 1) -> None:
        self._drop += n

    async def kill_connections(self, route: str | None = None) -> None:
        """Close every connection (or only those of ``route``)."""
        conns = [c for c in self.conns if route is None or c.route == route]
        self.conns = [c for c in self.conns if c not in conns]
        self._update_listeners()
        for c in conns:
            await c.ws.close(code=1011, message=b"server going away")

    def refuse(self, route: str) -> None:
        """Answer new connections to ``route`` with HTTP 503 until ``accept(route)``."""
        self._refusing.add(route)

    def accept(self, route: str) -> None:
        self._refusing.discard(route)

    def mute(self, route: str) -> None:
        """Keep ``route``'s connections open but send them nothing (until ``unmute``)."""
        self._muted.add(route)

    def unmute(self, route: str) -> None:
        self._muted.discard(route)

    def routes_of(self) -> list[str]:
        """The route of every open connection."""
        return [c.route for c in self.conns]

    async def inject(self, kind: str, payload: dict[str, Any], symbol: str = "BTCUSDT") -> int:
        """Send an extra message to every subscriber of ``symbol@kind``; returns how many got it."""
        return await self._send(symbol, kind, payload)

    def trade_payload(self, price: str, qty: str = "0.010", trade_id: int = 9_000_000_000) -> dict[str, Any]:
        return {"e": "trade", "E": self._last_e, "T": self._last_e, "s": "BTCUSDT", "t": trade_id, "p": price,
                "q": qty, "X": "MARKET", "m": False}

    def mark_payload(self, price: str, next_funding: int | None = None,
                     rate: str | None = None) -> dict[str, Any]:
        e = self._last_e
        nxt = next_funding if next_funding is not None else (e // EIGHT_HOURS + 1) * EIGHT_HOURS
        return {"e": "markPriceUpdate", "E": e, "s": "BTCUSDT", "p": price, "i": price, "P": price,
                "r": rate or self.funding_rate, "T": nxt}

    def book(self, depth: int = 20) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """The server's current top of book (floats, for assertions)."""
        bids = sorted(((float(p), float(q)) for p, q in self._book["bids"].items()), reverse=True)[:depth]
        asks = sorted((float(p), float(q)) for p, q in self._book["asks"].items())[:depth]
        return bids, asks

    # ------------------------------------------------------------------ REST
    async def _depth(self, request: web.Request) -> web.Response:
        self.snapshots_served += 1
        limit = int(request.query.get("limit", "1000"))
        bids = sorted(self._book["bids"].items(), key=lambda kv: -float(kv[0]))[:limit]
        asks = sorted(self._book["asks"].items(), key=lambda kv: float(kv[0]))[:limit]
        lid = self.last_sent_u if self._book_ready else self._snapshot_id
        e = self._last_e or int(self.capture.snapshot.get("E", 0))
        return web.json_response({"lastUpdateId": lid, "E": e, "T": e,
                                  "bids": [[p, q] for p, q in bids], "asks": [[p, q] for p, q in asks]})

    async def _exchange_info(self, request: web.Request) -> web.Response:
        def sym(symbol: str, base: str, tick: str, step: str) -> dict[str, Any]:
            return {
                "symbol": symbol, "pair": symbol, "contractType": "PERPETUAL", "status": "TRADING",
                "baseAsset": base, "quoteAsset": "USDT", "marginAsset": "USDT", "pricePrecision": 2,
                "quantityPrecision": 3, "baseAssetPrecision": 8, "quotePrecision": 8,
                "underlyingType": "COIN",
                "onboardDate": 1569398400000, "deliveryDate": 4133404800000, "liquidationFee": "0.012500",
                "marketTakeBound": "0.05", "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET"],
                "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
                "filters": [
                    {"filterType": "PRICE_FILTER", "tickSize": tick, "minPrice": "556.80",
                     "maxPrice": "4529764"},
                    {"filterType": "LOT_SIZE", "stepSize": step, "minQty": step, "maxQty": "1000"},
                    {"filterType": "MARKET_LOT_SIZE", "stepSize": step, "minQty": step, "maxQty": "120"},
                    {"filterType": "MIN_NOTIONAL", "notional": "100"},
                ],
            }

        return web.json_response({"timezone": "UTC", "serverTime": self._last_e, "assets": [],
                                  "symbols": [sym("BTCUSDT", "BTC", "0.10", "0.001"),
                                              sym("ETHUSDT", "ETH", "0.01", "0.001")]})

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": self._last_e})

    # ------------------------------------------------------------------ REST history (backfill)
    history_end = 1_723_161_600_000  # 2024-08-09T00:00Z, the end of the capture

    @staticmethod
    def kline_row(interval_ms: int, end: int, i: int, limit: int) -> list[Any]:
        """Bar ``i`` of ``limit`` ending before ``end``: prices 50000 + i, volume 1 (a checkable series)."""
        t = end - (limit - i) * interval_ms
        p = f"{50000 + i}.00"
        return [t, p, f"{50000 + i + 5}.00", f"{50000 + i - 5}.00", p, "1.000", t + interval_ms - 1, "50000.00",
                10, "0.500", "25000.00", "0"]

    async def _klines(self, request: web.Request) -> web.Response:
        self.history_calls.append(request.path + "?" + request.query_string)
        steps = {"1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "2h": 120, "4h": 240, "6h": 360,
                 "8h": 480, "12h": 720, "1d": 1440, "3d": 4320}
        interval = request.query.get("interval", "")
        if interval not in steps:  # 1w and 1M: not served here (a real venue would; the client skips it)
            return web.json_response({"code": -1120, "msg": "Invalid interval."}, status=400)
        limit = min(int(request.query.get("limit", "500")), 1500)
        ms = steps[interval] * 60_000
        return web.json_response([self.kline_row(ms, self.history_end, i, limit) for i in range(limit)])

    async def _funding_rate(self, request: web.Request) -> web.Response:
        self.history_calls.append(request.path)
        rows = [{"symbol": "BTCUSDT", "fundingTime": self.history_end - k * EIGHT_HOURS, "fundingRate": "-0.00002500",
                 "markPrice": "60000.00000000"} for k in range(3, 0, -1)]
        return web.json_response(rows)

    async def _futures_data(self, request: web.Request) -> web.Response:
        self.history_calls.append(request.path + "?" + request.query_string)
        return web.json_response([{"symbol": request.query.get("symbol"), "sumOpenInterest": "80000.123",
                                   "sumOpenInterestValue": "4800007380.00", "timestamp": self.history_end}])

    # ------------------------------------------------------------------ websocket
    def _refuse(self, request: web.Request, status: int, reason: str) -> web.Response:
        self.refusals.append((request.path, status, reason))
        return web.json_response({"code": status, "msg": reason}, status=status)

    async def _legacy(self, request: web.Request) -> web.Response:
        return self._refuse(request, 404, "Not Found")

    async def _private(self, request: web.Request) -> web.StreamResponse:
        keys = request.query.getall("listenKey", [])
        if not keys or not all(keys):
            return self._refuse(request, 400, "listenKey is required")
        events = request.query.getall("events", [])
        self.private_subscriptions.append(
            [(k, tuple(e for e in (events[i] if i < len(events) else "").split("/") if e)) for i, k in enumerate(keys)])
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.opened[PRIVATE] += 1
        async for _msg in ws:
            pass
        return ws

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        route = request.path.split("/")[1]
        mode = request.path.split("/")[2]
        if route in self._refusing:
            return self._refuse(request, 503, "Service Unavailable")
        streams = []
        if mode == "stream":
            streams = [s for s in request.query.get("streams", "").split("/") if s]
        else:
            # ws mode: streams in the path (ccxt puts a connection number there instead: no stream)
            streams = [s for s in request.match_info.get("streams", "").split("/") if "@" in s or s[:1] == "!"]
        wrong = [s for s in streams if route_of(s) != route]
        if wrong:
            return self._refuse(request, 400, f"stream {wrong[0]} is not served on /{route}")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections_opened += 1
        self.opened[route] += 1
        conn = _Conn(ws, combined=mode == "stream", route=route)
        conn.streams.update(streams)
        self.conns.append(conn)
        self._update_listeners()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    req = json.loads(msg.data)
                except ValueError:
                    await ws.send_json({"error": {"code": 3, "msg": "Invalid JSON"}})
                    continue
                method, rid, params = req.get("method"), req.get("id"), req.get("params", [])
                if method == "SUBSCRIBE":
                    wrong = [s for s in params if route_of(s) != route]
                    if wrong:
                        await ws.send_json({"error": {"code": 2, "msg": f"Invalid request: stream {wrong[0]} is "
                                                      f"not served on /{route}"}, "id": rid})
                        continue
                    conn.streams.update(params)
                    await ws.send_json({"result": None, "id": rid})
                    self._update_listeners()
                elif method == "UNSUBSCRIBE":
                    conn.streams.difference_update(params)
                    await ws.send_json({"result": None, "id": rid})
                    self._update_listeners()
                elif method == "LIST_SUBSCRIPTIONS":
                    await ws.send_json({"result": sorted(conn.streams), "id": rid})
                else:
                    await ws.send_json({"error": {"code": 2, "msg": f"Invalid request: {method}"}, "id": rid})
        finally:
            if conn in self.conns:
                self.conns.remove(conn)
            self._update_listeners()
        return ws

    def _update_listeners(self) -> None:
        if any(_stream_kind(s)[1] == "depth" for c in self.conns for s in c.streams):
            self.depth_listeners.set()
        else:
            self.depth_listeners.clear()

    async def _send(self, symbol: str, kind: str, payload: dict[str, Any]) -> int:
        sent = 0
        for conn in list(self.conns):
            if conn.route in self._muted:
                continue
            for name in conn.streams:
                if _stream_kind(name) == (symbol, kind):
                    data = {"stream": name, "data": payload} if conn.combined else payload
                    try:
                        await conn.ws.send_str(json.dumps(data))
                        sent += 1
                    except (ConnectionError, RuntimeError):
                        pass
                    break
        return sent

    # ------------------------------------------------------------------ broadcaster
    def _apply(self, d: dict[str, Any]) -> None:
        for side, key in (("bids", "b"), ("asks", "a")):
            book = self._book[side]
            for p, q in d[key]:
                if float(q) == 0:
                    book.pop(p, None)
                else:
                    book[p] = q

    async def _broadcast(self) -> None:
        diffs = 0
        for n, (kind, payload) in enumerate(self.capture.messages, 1):
            await self.depth_listeners.wait()
            await self.running.wait()
            e = int(payload.get("E") or 0)
            if e:
                self._last_e = e
            if kind == "depth":
                if self.before_diff is not None:
                    await self.before_diff(diffs)
                    await self.depth_listeners.wait()
                    await self.running.wait()
                u = int(payload["u"])
                if u >= self._snapshot_id:  # older diffs are already in the snapshot
                    self._apply(payload)
                    self._book_ready = True
                diffs += 1
                if self._drop > 0:
                    self._drop -= 1
                    self.diffs_dropped += 1
                else:
                    await self._send(payload["s"], "depth", payload)
                    self.diffs_sent += 1
                if self._book_ready:
                    self.last_sent_u = u
                if self.max_diffs is not None and diffs >= self.max_diffs:
                    break
            elif kind == "trade":
                self._last_price = float(payload["p"])
                await self._send(payload["s"], "trade", payload)
                agg = dict(payload, e="aggTrade", a=payload["t"], f=payload["t"], l=payload["t"])
                agg.pop("t", None)
                await self._send(payload["s"], "aggTrade", agg)
            elif kind == "bookTicker" and self.send_book_ticker:
                await self._send(payload["s"], "bookTicker", payload)
            if e and self._last_price and e >= self._next_mark_e:
                self._next_mark_e = (e // 1000 + 1) * 1000
                await self._synthesised(e)
            if n % self.batch == 0:
                await asyncio.sleep(0)
        self.finished.set()

    async def _synthesised(self, e: int) -> None:
        price = _fmt(self._last_price)
        await self._send("BTCUSDT", "markPrice", self.mark_payload(price))
        o, h, low = self._open_high_low or (self._last_price,) * 3
        h, low = max(h, self._last_price), min(low, self._last_price)
        self._open_high_low = (o, h, low)
        await self._send("BTCUSDT", "miniTicker", {
            "e": "24hrMiniTicker", "E": e, "s": "BTCUSDT", "c": price, "o": _fmt(o), "h": _fmt(h),
            "l": _fmt(low),
            "v": "1000.000", "q": "61000000.00"})

"""Websocket streams: connections, SUBSCRIBE/UNSUBSCRIBE, and the market-data publisher.

Paths, as the venue serves them since 2026-04-23 (ccxt.pro rewrites a linear ``.../ws`` base to
``/public/ws/<n>``, ``/market/ws/<n>`` and ``/private/ws?listenKey=``):

- ``/public/ws[/<a>/<b>]`` and ``/public/stream?streams=a/b``: depth, bookTicker and trade streams;
- ``/market/ws[/...]`` and ``/market/stream?streams=``: every other market stream (aggTrade,
  markPrice, kline, ticker, miniTicker, forceOrder, ...);
- ``/private/ws?listenKey=K[&events=E1/E2]`` and
  ``/private/stream?listenKey=K1&events=..&listenKey=K2&events=..`` (see ``user_stream``);
- the legacy ``/ws``, ``/ws/<streams or listenKey>`` and ``/stream?streams=`` (any stream, for
  older clients).

Stream mode (``.../stream``) wraps each message as ``{"stream", "data"}`` (user data: ``stream`` is
the listenKey). A stream of the other route is refused as the venue refuses it: HTTP 400 on the
handshake when it is in the URL, an error reply to a SUBSCRIBE. Requests:
``{"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms"], "id": 1}`` → ``{"result": null, "id": 1}``;
also UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY, GET_PROPERTY; errors
``{"error": {"code", "msg"}, "id"}`` with Binance's websocket codes (0 unknown property, 1 invalid
value type, 2 invalid request, 3 invalid JSON).

Each connection has a bounded send queue drained by its own writer task; a connection whose
queue overflows is closed (as the venue disconnects a client that cannot keep up) and counted.
What goes out is built by ``market_publisher`` (market data) and ``user_stream`` (account data).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .market_stats import INTERVALS

log = logging.getLogger(__name__)

SEND_QUEUE = 2000
WS_HEARTBEAT = 60.0  # seconds between server pings (the venue pings every few minutes; clients pong)
WS_CLOSE_TIMEOUT = 2.0  # seconds to wait for a client's close frame
MAX_STREAMS_PER_CONNECTION = 200
STREAM_RE = re.compile(r"^[!A-Za-z0-9_@]{1,64}$")

# channel name (lowercase) -> canonical spelling
CHANNELS = {c.lower(): c for c in (
    "trade", "aggTrade", "depth", "depth5", "depth10", "depth20", "bookTicker", "miniTicker", "ticker",
    "markPrice", "forceOrder",
)} | {f"kline_{i}": f"kline_{i}" for i in INTERVALS}
SPEEDS = {"100ms", "250ms", "500ms", "0ms", "1s", "3s"}
PUBLIC, MARKET, PRIVATE = "public", "market", "private"
PUBLIC_CHANNELS = frozenset({"depth", "depth5", "depth10", "depth20", "bookTicker", "trade"})


def route_of(stream: str) -> str:
    """The route that serves a canonical stream name: ``public`` or ``market``."""
    head, _, rest = stream.partition("@")
    channel = head[1:] if head.startswith("!") else rest.partition("@")[0]
    return PUBLIC if channel in PUBLIC_CHANNELS else MARKET


def wrong_route(route: str, streams: list[str]) -> str | None:
    """Why ``streams`` cannot be served on ``route`` (None when they can; "" = legacy, any stream)."""
    for name in streams:
        norm = normalize_stream(name)
        if route and norm is not None and route_of(norm) != route:
            return f"Invalid request: stream {name[:64]!r} is not served on /{route}; use /{route_of(norm)}"
    return None


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


@dataclass(frozen=True, slots=True)
class UserFeed:
    """One listenKey on a connection: its account and the events it asked for (None: all)."""

    account: int
    listen_key: str
    events: frozenset[str] | None = None


@dataclass(eq=False)
class Connection:
    ws: web.WebSocketResponse
    combined: bool = False
    route: str = ""  # public, market or private: only that route's streams; "": legacy, any
    users: tuple[UserFeed, ...] = ()
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
        self._closing: set[asyncio.Task] = set()
        self._book_symbols: set[str] = set()  # lower-case symbols (or "*") whose book somebody streams

    def wants(self, stream: str) -> bool:
        return bool(self._by_stream.get(stream))

    def wants_book(self, symbol: str) -> bool:
        """Does anyone stream ``symbol``'s book (diffs, partial depth or best bid/ask)?"""
        return "*" in self._book_symbols or symbol.lower() in self._book_symbols

    def _streams_changed(self) -> None:
        books = set()
        for stream in self._by_stream:
            head, _, rest = stream.partition("@")
            if stream == "!bookTicker":
                books.add("*")
            elif rest.startswith("depth") or rest == "bookTicker":
                books.add(head)
        self._book_symbols = books

    def wants_account(self, account: int) -> bool:
        return bool(self._by_account.get(account))

    def add(self, conn: Connection) -> None:
        self.connections.add(conn)
        for user in conn.users:
            self._by_account.setdefault(user.account, set()).add(conn)

    def remove(self, conn: Connection) -> None:
        self.connections.discard(conn)
        for stream in conn.streams:
            subs = self._by_stream.get(stream)
            if subs is not None:
                subs.discard(conn)
                if not subs:
                    del self._by_stream[stream]
        if conn.streams:
            conn.streams.clear()
            self._streams_changed()
        for user in conn.users:
            self._unlink(conn, user.account)

    def _unlink(self, conn: Connection, account: int) -> None:
        subs = self._by_account.get(account)
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del self._by_account[account]

    def subscribe(self, conn: Connection, stream: str) -> None:
        conn.streams.add(stream)
        fresh = stream not in self._by_stream
        self._by_stream.setdefault(stream, set()).add(conn)
        if fresh:
            self._streams_changed()

    def unsubscribe(self, conn: Connection, stream: str) -> None:
        conn.streams.discard(stream)
        subs = self._by_stream.get(stream)
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del self._by_stream[stream]
                self._streams_changed()

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
        """Send a user-data event to the account's listenKeys that asked for its kind."""
        subs = self._by_account.get(account)
        if not subs:
            return
        raw = None
        kind = payload.get("e")
        for conn in tuple(subs):
            for user in conn.users:
                if user.account != account or (user.events is not None and kind not in user.events):
                    continue
                if conn.combined:
                    self._send(conn, json.dumps({"stream": user.listen_key, "data": payload}, separators=(",", ":")))
                else:
                    raw = raw or json.dumps(payload, separators=(",", ":"))
                    self._send(conn, raw)

    def _send(self, conn: Connection, text: str) -> None:
        if conn.closing:
            return
        try:
            conn.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.dropped_connections += 1
            self.disconnect(conn, 1008, b"too slow")

    def disconnect(self, conn: Connection, code: int, reason: bytes, *, drain: bool = False) -> None:
        """Stop delivering to ``conn`` now and close its websocket in the background.

        ``drain``: let the writer send what is already queued first (a farewell frame).
        """
        conn.closing = True
        self.remove(conn)

        async def close() -> None:
            if drain:
                for _ in range(100):
                    if conn.queue.empty():
                        break
                    await asyncio.sleep(0.01)
            await conn.ws.close(code=code, message=reason)

        task = asyncio.get_running_loop().create_task(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def disconnect_listen_key(self, listen_key: str, farewell: dict | None = None) -> None:
        """End ``listen_key``'s streams (after sending ``farewell``, if given).

        A connection that carries other listenKeys too (stream mode) stays open for those.
        """
        for conn in [c for c in self.connections if any(u.listen_key == listen_key for u in c.users)]:
            if farewell is not None and not conn.closing:
                frame = {"stream": listen_key, "data": farewell} if conn.combined else farewell
                try:
                    conn.queue.put_nowait(json.dumps(frame, separators=(",", ":")))
                except asyncio.QueueFull:
                    pass
            rest = tuple(u for u in conn.users if u.listen_key != listen_key)
            if not rest:
                self.disconnect(conn, 1000, b"listenKey closed", drain=farewell is not None)
                continue
            for account in {u.account for u in conn.users} - {u.account for u in rest}:
                self._unlink(conn, account)
            conn.users = rest

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
        refused = wrong_route(conn.route, params)
        if method == "SUBSCRIBE" and refused:
            return _error(2, refused, req_id)
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

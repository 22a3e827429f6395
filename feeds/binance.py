"""The Binance USDⓈ-M live market-data feed (routed websockets + a REST depth snapshot).

    async with BinanceFeed(["BTCUSDT"], ws_url=..., rest_url=...) as feed:
        async for event in feed:
            ...

One stream-mode connection per route it needs (``feeds.binance_routes``):
``<root>/public/stream?streams=<sym>@depth@100ms/<sym>@trade`` and
``<root>/market/stream?streams=<sym>@markPrice@1s`` (``aggTrade`` goes to ``/market`` too,
``bookTicker`` to ``/public``). Their messages are merged into one order: event time, then public
before market (``RouteMerger``). Depth diffs are buffered until the REST snapshot
(``GET <rest_url>/fapi/v1/depth?symbol=..&limit=1000``) arrives and then synced with the U/u/pu
rules (``binance_wire.DepthSync``); a gap in the ``pu`` chain yields a ``FeedSignal(kind="gap")``,
a fresh snapshot is fetched while diffs keep being buffered, and the new ``BookSnapshot`` comes
with ``FeedSignal(kind="resync")``. Mark price updates give ``MarkPrice`` (index, funding rate,
next funding time) and a ``Funding`` settlement when the next funding time moves past a
settlement instant.

One route dropping reconnects that route only (its own visible loop in ``_route``: backoff
``route_backoff × 2^n`` up to ``route_backoff_max``, at most ``max_route_retries`` attempts, then
``FeedDisconnected`` for the runtime to reopen the whole feed). Meanwhile every symbol the route
serves is *held*: ``FeedSignal(kind="held")`` (the runtime marks it stale, so the margin monitor
holds), and ``FeedSignal(kind="released")`` once that route delivers data for the symbol again
(for ``/public``, once the book is synced again from a fresh snapshot). A connected route that
sends nothing about a symbol for ``route_silence`` seconds holds it too (a route that accepts
streams but delivers none would otherwise go unnoticed while the other keeps the symbol fresh).

URLs: the root (arguments, then ``EXSIM_BINANCE_WS_URL``, then the venue; a legacy ``/ws`` or
``/stream`` suffix is dropped) plus the route paths (``public_path``, ``market_path``). A
handshake the venue refuses (HTTP 4xx, e.g. the 404 of a retired path) raises ``FeedRefused``
naming the route and URL; a network failure raises ``FeedDisconnected``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Self

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from exchange_sim.core.messages import BookSnapshot

from .base import (
    CONNECTED,
    GAP,
    HELD,
    RELEASED,
    RESYNC,
    FeedDisconnected,
    FeedError,
    FeedFormatError,
    FeedRefused,
    FeedSignal,
    FeedSpecError,
    check_symbols,
    wall_ms,
)
from .binance_routes import LEGACY_PATHS, MARKET, PUBLIC, ROUTES, RouteMerger, event_time, route_of, routed_url
from .binance_wire import WireDecoder, depth_snapshot

DEFAULT_WS_URL = "wss://fstream.binance.com"
DEFAULT_REST_URL = "https://fapi.binance.com"
DEFAULT_PATHS = {PUBLIC: "/public", MARKET: "/market"}


def resolve_urls(ws_url: str | None = None, rest_url: str | None = None) -> tuple[str, str]:
    """(ws root, REST base): arguments, else EXSIM_BINANCE_WS_URL / EXSIM_BINANCE_REST_URL, else Binance."""
    ws = ws_url or os.environ.get("EXSIM_BINANCE_WS_URL") or DEFAULT_WS_URL
    rest = rest_url or os.environ.get("EXSIM_BINANCE_REST_URL") or DEFAULT_REST_URL
    ws = ws.rstrip("/")
    for suffix in LEGACY_PATHS:
        ws = ws.removesuffix(suffix)
    if not ws.startswith(("ws://", "wss://")):
        raise FeedSpecError(f"websocket URL must start with ws:// or wss://: {ws!r}")
    if not rest.startswith(("http://", "https://")):
        raise FeedSpecError(f"REST URL must start with http:// or https://: {rest!r}")
    return ws, rest.rstrip("/")


@dataclass(frozen=True, slots=True)
class _RouteDown:
    route: str
    why: str


@dataclass(frozen=True, slots=True)
class _RouteUp:
    route: str


class BinanceFeed:
    """Live USDⓈ-M market data for some symbols as an async iterator of core events.

    ``depth``: diff stream speed (``"100ms"``, ``"250ms"``, ``"500ms"``, ``"0ms"``) or None for no book;
    ``trades``: ``"trade"`` (on /public), ``"aggTrade"`` (on /market) or None; ``mark``: subscribe
    ``@markPrice@1s``; ``book_ticker``: subscribe ``@bookTicker`` (used as a one-level book only
    when ``depth`` is None). ``merge_window``: seconds a message may wait for the other route.
    Counters: ``messages`` (wire messages merged), ``snapshots`` (REST snapshots fetched),
    ``reconnects`` (reconnect attempts per route).
    """

    def __init__(self, symbols: Sequence[str], ws_url: str | None = None, rest_url: str | None = None, *,
                 public_path: str = DEFAULT_PATHS[PUBLIC], market_path: str = DEFAULT_PATHS[MARKET],
                 depth: str | None = "100ms", trades: str | None = "trade", mark: bool = True,
                 book_ticker: bool = False, snapshot_limit: int = 1000, open_timeout: float = 10.0,
                 max_snapshot_attempts: int = 10, merge_window: float = 0.01, route_backoff: float = 0.05,
                 route_backoff_max: float = 5.0, max_route_retries: int = 20,
                 route_silence: float = 10.0) -> None:
        self.symbols = check_symbols(symbols)
        self.ws_url, self.rest_url = resolve_urls(ws_url, rest_url)
        if trades not in (None, "trade", "aggTrade"):
            raise FeedSpecError(f"trades must be 'trade' or 'aggTrade', not {trades!r}")
        self.paths = {r: ("/" + p.strip("/")) if p.strip("/") else "" for r, p in
                      ((PUBLIC, public_path), (MARKET, market_path))}
        self.depth, self.trades, self.mark, self.book_ticker = depth, trades, mark, book_ticker
        self.snapshot_limit = snapshot_limit
        self.open_timeout = open_timeout
        self.max_snapshot_attempts = max_snapshot_attempts
        self.route_backoff, self.route_backoff_max = route_backoff, route_backoff_max
        self.max_route_retries = max_route_retries
        self.route_silence = route_silence
        want = set()
        if depth:
            want.add("depth")
        if trades:
            want.add(trades)
        if mark:
            want.add("mark")
        if book_ticker and not depth:
            want.add("bookTicker")
        self.decoder = WireDecoder(self.symbols, frozenset(want))
        self.routes = self.route_streams()
        if not self.routes:
            raise FeedSpecError("the Binance feed subscribes to nothing: enable depth, trades, mark or bookTicker")
        self.merger = RouteMerger(tuple(self.routes), merge_window)
        self.messages = 0
        self.snapshots = 0
        self.reconnects: dict[str, int] = {r: 0 for r in self.routes}
        self._ws: dict[str, ClientConnection] = {}
        self._http: aiohttp.ClientSession | None = None
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._fetching: set[str] = set()
        self._attempts: dict[str, int] = {}
        self._synced: set[str] = set()
        self._down: set[str] = set()
        self._held: dict[str, set[str]] = {r: set() for r in self.routes}
        self._last_ts = 0
        self._closing = False
        self._heard: dict[tuple[str, str], float] = {}  # (route, symbol) -> when it last sent about it

    def streams(self) -> list[str]:
        """The stream names this feed subscribes to."""
        out = []
        for s in self.symbols:
            low = s.lower()
            if self.depth:
                out.append(f"{low}@depth" + ("" if self.depth == "250ms" else f"@{self.depth}"))
            if self.trades:
                out.append(f"{low}@{self.trades}")
            if self.mark:
                out.append(f"{low}@markPrice@1s")
            if self.book_ticker:
                out.append(f"{low}@bookTicker")
        return out

    def route_streams(self) -> dict[str, list[str]]:
        """{route: its streams}, in the merge's route order, only the routes this feed needs."""
        by_route: dict[str, list[str]] = {}
        for stream in self.streams():
            by_route.setdefault(route_of(stream), []).append(stream)
        return {r: by_route[r] for r in ROUTES if r in by_route}

    @property
    def urls(self) -> dict[str, str]:
        """{route: the stream-mode URL its connection opens}."""
        return {r: routed_url(self.ws_url, self.paths[r], streams) for r, streams in self.routes.items()}

    async def __aenter__(self) -> Self:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.open_timeout))
        results = await asyncio.gather(*(self._connect(r) for r in self.routes), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        for route, res in zip(self.routes, results, strict=True):
            if isinstance(res, ClientConnection):
                self._ws[route] = res
        if failed:
            await self.aclose()
            refused = [e for e in failed if isinstance(e, FeedRefused)]
            raise (refused or failed)[0]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the websockets, the HTTP session and every task (route loops, snapshot requests)."""
        self._closing = True
        for ws in list(self._ws.values()):  # first, while the readers still drain: the close handshake gets through
            await ws.close()
        self._ws.clear()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._run()

    # ------------------------------------------------------------------ connections
    async def _connect(self, route: str) -> ClientConnection:
        url = self.urls[route]
        try:
            return await connect(url, open_timeout=self.open_timeout, max_size=2**24,
                                 ping_interval=20, ping_timeout=20, close_timeout=2)
        except InvalidURI as exc:
            raise FeedSpecError(f"bad websocket URL {url!r}: {exc}") from None
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = bytes(exc.response.body or b"").decode("utf-8", "replace").strip()[:200]
            what = f"the venue refused the {self.paths[route]} websocket {url}: HTTP {status}" + (
                f" {body}" if body else "")
            if 400 <= status < 500:
                raise FeedRefused(f"{what} (a retired or wrong URL: check [feeds.binance] ws_url, "
                                  "public_path and market_path)") from None
            raise FeedDisconnected(what) from None
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise FeedDisconnected(f"cannot connect to {url}: {exc!r}") from None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _route(self, route: str) -> None:
        """One route's loop: read until the connection drops, then reconnect with backoff."""
        attempt = 0
        why = ""
        while True:
            ws = self._ws.get(route)
            if ws is not None:
                why, got_data = await self._read(route, ws)
                self._ws.pop(route, None)
                if got_data:
                    attempt = 0
                self._queue.put_nowait(_RouteDown(route, why))
            if attempt >= self.max_route_retries:
                self._queue.put_nowait(FeedDisconnected(
                    f"{self.paths[route]}: gave up after {attempt} reconnects ({why})"))
                return
            await asyncio.sleep(min(self.route_backoff_max, self.route_backoff * 2**attempt))
            attempt += 1
            self.reconnects[route] += 1
            try:
                ws = await self._connect(route)
            except FeedDisconnected as exc:
                why = str(exc)
                continue
            except FeedError as exc:  # refused: retrying cannot help
                self._queue.put_nowait(exc)
                return
            if self._closing:
                await ws.close()
                return
            self._ws[route] = ws
            self._queue.put_nowait(_RouteUp(route))

    async def _read(self, route: str, ws: ClientConnection) -> tuple[str, bool]:
        """Queue the route's messages until the connection ends; (why it ended, any data?)."""
        url, got_data = self.urls[route], False
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    self._queue.put_nowait(FeedFormatError(f"{url}: not JSON: {str(raw)[:120]}"))
                    return "bad data", got_data
                if isinstance(msg, dict) and "data" in msg:
                    got_data = True
                    self._queue.put_nowait((route, msg))
            return f"{url} closed the stream", got_data
        except ConnectionClosed as exc:
            return f"{url} connection lost: {exc}", got_data
        except OSError as exc:
            return f"{url} connection error: {exc!r}", got_data

    # ------------------------------------------------------------------ the merged stream
    async def _run(self) -> AsyncIterator[Any]:
        if not self._ws:
            raise FeedError("use 'async with BinanceFeed(...)' before iterating")
        yield FeedSignal(ts=wall_ms(), symbol=",".join(self.symbols), kind=CONNECTED,
                         detail=" + ".join(self.urls.values()))
        for route in self.routes:
            self._spawn(self._route(route))
        if self.depth:
            for s in self.symbols:
                self._fetch_later(s, 0.0)
        loop = asyncio.get_running_loop()
        self._heard = {(r, s): loop.time() for r in self.routes for s in self.symbols}
        check = loop.time() + 1.0
        while True:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                deadline = min(check, self.merger.deadline() or check)
                try:
                    item = await asyncio.wait_for(self._queue.get(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    item = None
            if item is not None:
                for ev in self._take(item, loop.time()):
                    yield ev
            for route, msg in self.merger.pop_ready(loop.time()):
                for ev in self._message(route, msg):
                    yield ev
            if loop.time() >= check:
                check = loop.time() + min(1.0, self.route_silence / 4)
                for ev in self._silent(loop.time()):
                    yield ev

    def _take(self, item: Any, now: float) -> list[Any]:
        """One item from the connections or snapshot requests: merged, applied or raised."""
        if isinstance(item, tuple):
            route, msg = item
            self.merger.push(route, event_time(msg), msg, now)
            data = msg["data"]
            if isinstance(data, dict) and isinstance(data.get("s"), str):
                self._heard[route, data["s"].upper()] = now
            return []
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, BookSnapshot):
            self._fetching.discard(item.symbol)  # only now: a diff taken before it must not fetch again
            events = self._mark_resync(self.decoder.snapshot(item))
            self._after(item.symbol)
            return self._release(PUBLIC, item.symbol) + events
        if isinstance(item, _RouteDown):
            return self._route_down(item.route, item.why)
        if isinstance(item, _RouteUp):
            self._down.discard(item.route)
            self.merger.up(item.route)
            for symbol in self.symbols:
                self._heard[item.route, symbol] = now
        return []

    def _message(self, route: str, msg: dict[str, Any]) -> list[Any]:
        """One merged wire message → events (gap signal, release signal, book/trade/mark events)."""
        self.messages += 1
        data = msg.get("data", {})
        symbol = str(data.get("s", "")).upper() if isinstance(data, dict) else ""
        self._last_ts = max(self._last_ts, event_time(msg))
        sync = self.decoder.syncs.get(symbol)
        gaps = sync.gaps if sync else 0
        events = self._mark_resync(self.decoder.feed(msg))
        out: list[Any] = []
        if symbol and self.depth and symbol in self.decoder.syncs:
            sync = self.decoder.syncs[symbol]
            if sync.gaps > gaps:
                out.append(FeedSignal(ts=event_time(msg), symbol=symbol, kind=GAP, detail=sync.last_gap))
            self._after(symbol)
        if symbol:
            out.extend(self._release(route, symbol))
        out.extend(events)
        return out

    def _route_down(self, route: str, why: str) -> list[Any]:
        """A route's connection dropped: hold every symbol it serves; its book (if any) must resync."""
        self._down.add(route)
        self.merger.down(route)
        out: list[Any] = []
        for symbol in self.symbols:
            if route == PUBLIC and self.depth:
                self.decoder.sync(symbol).restart(f"{self.paths[route]} connection down")
            out.extend(self._hold(route, symbol, f"{self.paths[route]} connection down ({why}); reconnecting"))
        return out

    def _silent(self, now: float) -> list[Any]:
        """Hold the symbols a connected route has sent nothing about for ``route_silence`` seconds."""
        out: list[Any] = []
        for (route, symbol), heard in self._heard.items():
            idle = now - heard
            if idle >= self.route_silence and route not in self._down:
                out.extend(self._hold(route, symbol, f"no data on {self.paths[route]} for {idle:.1f}s"))
        return out

    def _hold(self, route: str, symbol: str, why: str) -> list[Any]:
        """The HELD signal when ``route`` is the first to hold ``symbol``."""
        if symbol in self._held[route]:
            return []
        already = any(symbol in held for held in self._held.values())
        self._held[route].add(symbol)
        return [] if already else [FeedSignal(ts=self._last_ts, symbol=symbol, kind=HELD, detail=why)]

    def _release(self, route: str, symbol: str) -> list[Any]:
        """The RELEASED signal when ``route`` serves ``symbol`` again and nothing else holds it."""
        held = self._held.get(route)
        if not held or symbol not in held or route in self._down:
            return []
        if route == PUBLIC and self.depth and not self.decoder.sync(symbol).synced:
            return []  # the book comes back with its fresh snapshot
        held.discard(symbol)
        if any(symbol in h for h in self._held.values()):
            return []
        return [FeedSignal(ts=self._last_ts, symbol=symbol, kind=RELEASED, detail=f"{self.paths[route]} back")]

    def _mark_resync(self, events: list[Any]) -> list[Any]:
        """The events, with a RESYNC signal before every book snapshot but a symbol's first."""
        out: list[Any] = []
        for ev in events:
            if isinstance(ev, BookSnapshot):
                if ev.symbol in self._synced:
                    detail = f"snapshot {ev.update_id}"
                    out.append(FeedSignal(ts=ev.ts, symbol=ev.symbol, kind=RESYNC, detail=detail))
                self._synced.add(ev.symbol)
            out.append(ev)
        return out

    # ------------------------------------------------------------------ depth snapshots
    def _after(self, symbol: str) -> None:
        """Fetch a snapshot when the sync asks for one (with a short pause between attempts)."""
        sync = self.decoder.syncs.get(symbol)
        if sync is None or not sync.needs_snapshot or symbol in self._fetching or PUBLIC in self._down:
            if sync is not None and sync.synced:
                self._attempts[symbol] = 0
            return
        n = self._attempts.get(symbol, 0)
        if n >= self.max_snapshot_attempts:
            self._queue.put_nowait(FeedDisconnected(f"{symbol}: no usable depth snapshot after {n} attempts"))
            return
        self._fetch_later(symbol, min(0.05 * 2**n, 2.0) if n else 0.0)

    def _fetch_later(self, symbol: str, delay: float) -> None:
        self._fetching.add(symbol)
        self._attempts[symbol] = self._attempts.get(symbol, 0) + 1
        self._spawn(self._fetch_snapshot(symbol, delay))

    async def _fetch_snapshot(self, symbol: str, delay: float) -> None:
        ok = False
        try:
            if delay:
                await asyncio.sleep(delay)
            assert self._http is not None
            url = f"{self.rest_url}/fapi/v1/depth"
            params = {"symbol": symbol, "limit": str(self.snapshot_limit)}
            async with self._http.get(url, params=params) as resp:
                if resp.status != 200:
                    text = await resp.text()
                    raise FeedDisconnected(f"depth snapshot {url} HTTP {resp.status}: {text[:200]}")
                data = await resp.json(content_type=None)
            self.snapshots += 1
            self._queue.put_nowait(depth_snapshot(data, symbol))
            ok = True
        except asyncio.CancelledError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._queue.put_nowait(FeedDisconnected(f"depth snapshot failed: {exc!r}"))
        except FeedError as exc:
            self._queue.put_nowait(exc)
        except ValueError:
            self._queue.put_nowait(FeedFormatError("depth snapshot is not JSON"))
        finally:
            if not ok:
                self._fetching.discard(symbol)

"""The Binance USDⓈ-M live market-data feed (websockets + a REST depth snapshot).

    async with BinanceFeed(["BTCUSDT"], ws_url=..., rest_url=...) as feed:
        async for event in feed:
            ...

One combined-stream connection ``<ws_url>/stream?streams=<sym>@depth@100ms/<sym>@trade/
<sym>@markPrice@1s`` per feed. Depth diffs are buffered until the REST snapshot
(``GET <rest_url>/fapi/v1/depth?symbol=..&limit=1000``) arrives and then synced with the U/u/pu
rules (``binance_wire.DepthSync``); a gap in the ``pu`` chain yields a ``FeedSignal(kind="gap")``,
a fresh snapshot is fetched while diffs keep being buffered, and the new ``BookSnapshot`` comes
with ``FeedSignal(kind="resync")``. Mark price updates give ``MarkPrice`` (index, funding rate,
next funding time) and a ``Funding`` settlement when the next funding time moves past a
settlement instant.

URLs: arguments first, then the environment (``EXSIM_BINANCE_WS_URL``, ``EXSIM_BINANCE_REST_URL``),
then the real venue. The feed does not reconnect: when the connection drops it raises
``FeedDisconnected`` and the runtime's reconnect loop (``exchange_sim.runtime.feeds``) opens a new
feed, which starts with a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any, Self

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from exchange_sim.core.messages import BookSnapshot

from .base import (
    CONNECTED,
    GAP,
    RESYNC,
    FeedDisconnected,
    FeedError,
    FeedFormatError,
    FeedSignal,
    FeedSpecError,
    check_symbols,
    wall_ms,
)
from .binance_wire import WireDecoder, depth_snapshot

DEFAULT_WS_URL = "wss://fstream.binance.com"
DEFAULT_REST_URL = "https://fapi.binance.com"


def resolve_urls(ws_url: str | None = None, rest_url: str | None = None) -> tuple[str, str]:
    """(ws base, REST base): arguments, else EXSIM_BINANCE_WS_URL / EXSIM_BINANCE_REST_URL, else Binance."""
    ws = ws_url or os.environ.get("EXSIM_BINANCE_WS_URL") or DEFAULT_WS_URL
    rest = rest_url or os.environ.get("EXSIM_BINANCE_REST_URL") or DEFAULT_REST_URL
    ws = ws.rstrip("/")
    for suffix in ("/stream", "/ws"):
        ws = ws.removesuffix(suffix)
    if not ws.startswith(("ws://", "wss://")):
        raise FeedSpecError(f"websocket URL must start with ws:// or wss://: {ws!r}")
    if not rest.startswith(("http://", "https://")):
        raise FeedSpecError(f"REST URL must start with http:// or https://: {rest!r}")
    return ws, rest.rstrip("/")


class BinanceFeed:
    """Live USDⓈ-M market data for some symbols as an async iterator of core events.

    ``depth``: diff stream speed (``"100ms"``, ``"250ms"``, ``"500ms"``, ``"0ms"``) or None for no book;
    ``trades``: ``"trade"``, ``"aggTrade"`` or None; ``mark``: subscribe ``@markPrice@1s``;
    ``book_ticker``: subscribe ``@bookTicker`` (used as a one-level book only when ``depth`` is None).
    """

    def __init__(self, symbols: Sequence[str], ws_url: str | None = None, rest_url: str | None = None, *,
                 depth: str | None = "100ms", trades: str | None = "trade", mark: bool = True,
                 book_ticker: bool = False, snapshot_limit: int = 1000, open_timeout: float = 10.0,
                 max_snapshot_attempts: int = 10) -> None:
        self.symbols = check_symbols(symbols)
        self.ws_url, self.rest_url = resolve_urls(ws_url, rest_url)
        if trades not in (None, "trade", "aggTrade"):
            raise FeedSpecError(f"trades must be 'trade' or 'aggTrade', not {trades!r}")
        self.depth, self.trades, self.mark, self.book_ticker = depth, trades, mark, book_ticker
        self.snapshot_limit = snapshot_limit
        self.open_timeout = open_timeout
        self.max_snapshot_attempts = max_snapshot_attempts
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
        self.messages = 0
        self.snapshots = 0
        self._ws: ClientConnection | None = None
        self._http: aiohttp.ClientSession | None = None
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._fetching: set[str] = set()
        self._attempts: dict[str, int] = {}
        self._synced: set[str] = set()

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

    @property
    def url(self) -> str:
        return f"{self.ws_url}/stream?streams={'/'.join(self.streams())}"

    async def __aenter__(self) -> Self:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.open_timeout))
        try:
            self._ws = await connect(self.url, open_timeout=self.open_timeout, max_size=2**24,
                                     ping_interval=20, ping_timeout=20, close_timeout=2)
        except InvalidURI as exc:
            await self._http.close()
            raise FeedSpecError(f"bad websocket URL {self.url!r}: {exc}") from None
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            await self._http.close()
            raise FeedDisconnected(f"cannot connect to {self.ws_url}: {exc!r}") from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the websocket, the HTTP session and any snapshot request in flight."""
        if self._ws is not None:  # first, while the reader still drains it: the close handshake gets through
            await self._ws.close()
            self._ws = None
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

    # ------------------------------------------------------------------ internals
    async def _run(self) -> AsyncIterator[Any]:
        if self._ws is None:
            raise FeedError("use 'async with BinanceFeed(...)' before iterating")
        ws = self._ws
        yield FeedSignal(ts=wall_ms(), symbol=",".join(self.symbols), kind=CONNECTED, detail=self.ws_url)
        reader = asyncio.create_task(self._read(ws))
        self._tasks.add(reader)
        if self.depth:
            for s in self.symbols:
                self._fetch_later(s, 0.0)
        while True:
            item = await self._queue.get()
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, BookSnapshot):
                for ev in self._mark_resync(self.decoder.snapshot(item)):
                    yield ev
                self._after(item.symbol)
                continue
            self.messages += 1
            symbol = str(item.get("data", {}).get("s", "")).upper()
            sync = self.decoder.syncs.get(symbol)
            gaps = sync.gaps if sync else 0
            for ev in self._mark_resync(self.decoder.feed(item)):
                yield ev
            if symbol and self.depth and symbol in self.decoder.syncs:
                sync = self.decoder.syncs[symbol]
                if sync.gaps > gaps:
                    yield FeedSignal(ts=int(item.get("data", {}).get("E", 0)), symbol=symbol, kind=GAP,
                                     detail=sync.last_gap)
                self._after(symbol)

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

    def _after(self, symbol: str) -> None:
        """Fetch a snapshot when the sync asks for one (with a short pause between attempts)."""
        sync = self.decoder.syncs.get(symbol)
        if sync is None or not sync.needs_snapshot or symbol in self._fetching:
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
        task = asyncio.create_task(self._fetch_snapshot(symbol, delay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fetch_snapshot(self, symbol: str, delay: float) -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
            assert self._http is not None
            url = f"{self.rest_url}/fapi/v1/depth"
            params = {"symbol": symbol, "limit": str(self.snapshot_limit)}
            async with self._http.get(url, params=params) as resp:
                if resp.status != 200:
                    text = await resp.text()
                    raise FeedDisconnected(f"depth snapshot HTTP {resp.status}: {text[:200]}")
                data = await resp.json(content_type=None)
            self.snapshots += 1
            self._queue.put_nowait(depth_snapshot(data, symbol))
        except asyncio.CancelledError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._queue.put_nowait(FeedDisconnected(f"depth snapshot failed: {exc!r}"))
        except FeedError as exc:
            self._queue.put_nowait(exc)
        except ValueError:
            self._queue.put_nowait(FeedFormatError("depth snapshot is not JSON"))
        finally:
            self._fetching.discard(symbol)

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    self._queue.put_nowait(FeedFormatError(f"not JSON: {str(raw)[:120]}"))
                    return
                if isinstance(msg, dict) and "data" in msg:
                    self._queue.put_nowait(msg)
            self._queue.put_nowait(FeedDisconnected(f"{self.ws_url} closed the stream"))
        except ConnectionClosed as exc:
            self._queue.put_nowait(FeedDisconnected(f"{self.ws_url} connection lost: {exc}"))
        except asyncio.CancelledError:
            raise
        except OSError as exc:
            self._queue.put_nowait(FeedDisconnected(f"{self.ws_url} connection error: {exc!r}"))

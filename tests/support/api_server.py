"""An in-process exchange-sim for tests: Exchange + Node + ApiServer on 127.0.0.1, ``manual`` feed.

    from tests.support.api_server import running_sim, ccxt_config

    async with running_sim() as sim:                  # free port, admin token "test-admin-token"
        alice = await sim.create_account("alice", deposit="10000")   # {"accountId","apiKey","apiSecret",...}
        await sim.market([{"type": "book", "symbol": "BTCUSDT", "bids": [["59990", "5"]],
                           "asks": [["60010", "5"]]},
                          {"type": "mark", "symbol": "BTCUSDT", "price": "60000"}])
        client = ccxt.async_support.binanceusdm(ccxt_config(sim.url, alice["apiKey"], alice["apiSecret"]))
        ...
        await client.close()

The only market data is what the test injects with ``sim.market`` (POST /sim/v1/market). Useful
attributes: ``sim.url`` (http base), ``sim.ws_url``, ``sim.port``, ``sim.node``, ``sim.exchange``
(the core, for snapshots/views in assertions), ``sim.server`` (ApiServer), ``sim.admin_token``.
``sim.admin(method, path, json=None, token=...)`` → (status, body) for any admin call.
``seed_book(sim, symbol="BTCUSDT", mid="60000")`` injects a simple two-sided book + mark + last trade.
Sync ccxt clients block: call them through ``await asyncio.to_thread(client.method, ...)`` so the
server keeps serving on the test's event loop.

For fully synchronous test code (hypothesis ``@given``, benchmarks), ``SimThread`` runs the same
simulator on its own loop in a background thread: ``with SimThread() as st: st.run(coro)``,
``st.call(fn, *args)``, ``st.sim.url``. ``business_state(exchange)`` is the core snapshot with the
last-seen timestamp zeroed: equal before and after a refused request means nothing changed.
``running_sim`` options: ``symbols``, ``config`` (ExchangeConfig), ``rate_limits`` (default: very
high, so tests never hit them), ``admin_token``, ``clock`` (ms), ``extra_routes`` (route installers).
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import threading
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, Self

import aiohttp

from exchange_sim.api import ApiConfig, ApiServer, RateLimits
from exchange_sim.core.exchange import Exchange, ExchangeConfig
from exchange_sim.profiles import load_profile
from exchange_sim.runtime import Node
from tests.support.api_ccxt import ccxt_config  # re-exported: the client config of binance-api.md

ADMIN_TOKEN = "test-admin-token"


class Sim:
    """Handle on a running in-process simulator (see module doc)."""

    def __init__(self, server: ApiServer, node: Node, exchange: Exchange, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.node = node
        self.session = session
        self._exchange = exchange

    @property
    def exchange(self) -> Exchange:
        return self.node.exchange

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ws_url(self) -> str:
        return self.server.ws_url

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def admin_token(self) -> str:
        return self.server.admin_token

    async def admin(self, method: str, path: str, json: Any = None, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.admin_token if token is None else token}"}
        async with self.session.request(method, self.url + path, json=json, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    async def create_account(self, name: str = "trader", deposit: str = "10000", parent: int | None = None) -> dict:
        body: dict[str, Any] = {"name": name, "deposit": deposit}
        if parent is not None:
            body["parent"] = parent
        status, data = await self.admin("POST", "/sim/v1/accounts", body)
        assert status == 200, data
        return data

    async def market(self, events: list[dict], *, force: bool = False) -> dict:
        """Inject market events; ``force`` moves the market past the bad-tick band on purpose."""
        body: dict[str, Any] = {"events": events, "force": True} if force else {"events": events}
        status, data = await self.admin("POST", "/sim/v1/market", body)
        assert status == 200, data
        return data


@contextlib.asynccontextmanager
async def running_sim(*, symbols: list[str] | None = None, config: ExchangeConfig | None = None,
                      rate_limits: RateLimits | None = None, admin_token: str = ADMIN_TOKEN,
                      clock: Any = None, extra_routes: Any = ()) -> AsyncIterator[Sim]:
    """Start Exchange + Node + ApiServer (port 0 on 127.0.0.1) and stop them all on exit."""
    exchange = Exchange(load_profile(symbols=symbols), config or ExchangeConfig())
    node = Node(exchange)
    await node.start()
    api_config = ApiConfig(host="127.0.0.1", port=0, admin_token=admin_token,
                           rate_limits=rate_limits or RateLimits(100_000, 100_000, 100_000))
    kwargs: dict[str, Any] = {"extra_routes": extra_routes, "announce": None}
    if clock is not None:
        kwargs["clock"] = clock
    server = ApiServer(node, api_config, **kwargs)
    await server.start()
    session = aiohttp.ClientSession()
    try:
        yield Sim(server, node, exchange, session)
    finally:
        await session.close()
        await server.stop()
        await node.stop()


async def seed_book(sim: Sim, symbol: str = "BTCUSDT", mid: str = "60000", spread: str = "10",
                    qty: str = "50", levels: int = 5) -> None:
    """A symmetric book around ``mid`` (``levels`` per side, 1 tick apart past the spread), mark and a trade."""
    mid_d, spread_d = Decimal(mid), Decimal(spread)
    step = Decimal(10) if symbol == "BTCUSDT" else Decimal(1)
    bids = [[str(mid_d - spread_d - step * i), qty] for i in range(levels)]
    asks = [[str(mid_d + spread_d + step * i), qty] for i in range(levels)]
    await sim.market([
        {"type": "book", "symbol": symbol, "bids": bids, "asks": asks},
        {"type": "mark", "symbol": symbol, "price": mid, "index": mid},
        {"type": "trade", "symbol": symbol, "price": mid, "qty": "0.01", "side": "BUY"},
    ])


def business_state(exchange: Exchange) -> bytes:
    """``exchange.snapshot()`` with the last-seen timestamp zeroed: equal before/after = nothing changed."""
    ex = type(exchange).restore(exchange.snapshot())
    ex.now = 0
    return pickle.dumps(ex, protocol=pickle.HIGHEST_PROTOCOL)


class SimThread:
    """``running_sim`` in a background thread with its own event loop, for synchronous test code.

        with SimThread() as st:
            st.run(st.sim.create_account("alice"))        # run a coroutine on the sim's loop
            st.call(business_state, st.sim.exchange)       # run a function on the sim's loop
            requests.get(st.sim.url + "/fapi/v1/time")     # talk to it from this thread
    """

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="sim-thread", daemon=True)
        self._error: BaseException | None = None
        self.sim: Sim | None = None

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with running_sim(**self._kwargs) as sim:
            self.sim = sim
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None or self.sim is None:
            raise RuntimeError(f"simulator thread did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def run(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    def call(self, fn: Any, *args: Any) -> Any:
        async def wrapper() -> Any:
            return fn(*args)
        return self.run(wrapper())


__all__ = ["ADMIN_TOKEN", "Sim", "SimThread", "business_state", "ccxt_config", "running_sim", "seed_book"]

"""The coroutines a cluster process runs: a shard member, a gateway, a market feed pump.

Each runs until SIGINT/SIGTERM (or forever under SIGKILL, which is the point of the fault
tests). They are what ``exchange-sim cluster shard|gateway|ingest`` call.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any

from exchange_sim.api import ApiConfig, ApiServer, RateLimits
from exchange_sim.core.exchange import Exchange, ExchangeConfig
from exchange_sim.profiles import load_profile

from .gateway import ClusterNode
from .ingest import MarketIngest
from .layout import Layout
from .listen_keys import SharedListenKeys, listen_key_bucket
from .shard import ShardProcess

log = logging.getLogger(__name__)


def exchange_factory(symbols: list[str] | None = None, config: ExchangeConfig | None = None) -> Callable[[], Exchange]:
    """A fresh core per call: the shipped profile (optionally some symbols), default config."""
    instruments = load_profile(symbols=symbols)

    def new_exchange() -> Exchange:
        return Exchange(instruments, config or ExchangeConfig())

    return new_exchange


async def _until_signalled(work: Any) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = loop.create_task(work)
    stopper = loop.create_task(stop.wait())
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        stopper.cancel()
        task.result()
    else:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


async def run_shard(urls: list[str], layout: Layout, shard: str, member: str, symbols: list[str] | None,
                    snapshot_every: int) -> None:
    proc = ShardProcess(urls, layout, shard, member, exchange_factory(symbols), snapshot_every=snapshot_every)

    async def work() -> None:
        await proc.open()
        print(f"shard {shard} member {member} ready", flush=True)
        try:
            await proc.run()
        finally:
            await proc.close()

    await _until_signalled(work())


class IngestSubmitter:
    """What the feed supervisor submits to: the market stream (a feed never talks to a shard)."""

    def __init__(self, ingest: MarketIngest) -> None:
        self.ingest = ingest

    async def submit(self, msg: Any) -> list:
        await self.ingest.publish(msg)
        return []


async def run_ingest(urls: list[str], layout: Layout, spec: str, symbols: list[str] | None,
                     on_end: Callable[[MarketIngest], None] | None = None) -> None:
    """A feed (``feeds.open_feed`` spec) into the venue's market stream, under the usual supervisor
    (reconnects, bad-tick guard, stale watchdog), until the feed ends or a signal."""
    from feeds import open_feed

    from exchange_sim.runtime.feeds import FeedSupervisor

    from . import connect

    instruments = load_profile(symbols=symbols)

    async def work() -> None:
        nc = await connect.connect(urls, "ingest")
        try:
            js = nc.jetstream()
            await connect.market_stream(js, layout)
            ingest = MarketIngest(js, layout)
            supervisor = FeedSupervisor(IngestSubmitter(ingest), lambda: open_feed(spec, instruments), list(instruments))
            await supervisor.start()
            print(f"ingest {spec} ready", flush=True)
            try:
                await supervisor.done.wait()
            finally:
                await supervisor.stop()
                print(f"ingest: {ingest.published} published, {ingest.duplicates} duplicates dropped", flush=True)
                if on_end is not None:
                    on_end(ingest)
        finally:
            await nc.drain()

    await _until_signalled(work())


async def run_gateway(urls: list[str], layout: Layout, host: str, port: int, admin_token: str | None,
                      symbols: list[str] | None, name: str, unlimited: bool) -> None:
    async def work() -> None:
        node = ClusterNode(urls, layout, exchange_factory(symbols), name=name)
        await node.start()
        limits = RateLimits(10**9, 10**9, 10**9) if unlimited else RateLimits()
        config = ApiConfig(host=host, port=port, admin_token=admin_token, rate_limits=limits)
        server = ApiServer(node, config)
        keys = SharedListenKeys(config.listen_key_ttl_ms, await listen_key_bucket(node.js, layout.replicas),
                                on_account=node.listen_to)
        server.ctx.listen_keys = keys  # type: ignore[assignment]  # the same surface, shared by every gateway
        server.ctx.event_log = node.event_log  # type: ignore[assignment]  # the shards' logs (query_async)
        node.serve_user_streams(server.ctx.hub)
        ready = asyncio.get_running_loop().create_future()
        mirror = asyncio.get_running_loop().create_task(keys.mirror(ready), name="listen-key-mirror")
        await ready
        await server.start()
        print(f"gateway {name} ready {server.url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            mirror.cancel()
            await server.stop()
            await node.stop()

    await _until_signalled(work())

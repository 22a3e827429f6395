"""The coroutines a cluster process runs: a shard member, a gateway, a fund member, a market feed pump.

Each runs until SIGINT/SIGTERM (or forever under SIGKILL, which is the point of the fault
tests). They are what ``exchange-sim cluster shard|gateway|fund|ingest`` call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from collections.abc import Callable
from typing import Any

from exchange_sim.api import ApiConfig, ApiServer, RateLimits
from exchange_sim.config import Settings, exchange_config, venue_instruments
from exchange_sim.core.exchange import Exchange, ExchangeConfig

from . import connect
from .adl import AdlCoordinator
from .fund import FundService
from .gateway import ClusterNode
from .ingest import MarketIngest
from .layout import Layout
from .listen_keys import SharedListenKeys, listen_key_bucket
from .shard import ShardProcess

log = logging.getLogger(__name__)


def cluster_config(settings: Settings) -> ExchangeConfig:
    """The config of every core in the cluster: ``exchange-sim run``'s from ``settings``, except
    that a shard's core starts with an empty insurance fund float: the venue's fund is the fund
    service's (its journal opens with ``venue_fund(settings)``) and it grants every float its slice
    (fund.py); and ADL is venue-wide: a claim for the coordinator, which ranks every shard (adl.py)."""
    return dataclasses.replace(exchange_config(settings), insurance_fund=0, venue_adl=True)


def venue_fund(settings: Settings) -> int:
    """The venue's insurance fund when the fund service first opens: the single node's balance."""
    return exchange_config(settings).insurance_fund


def exchange_factory(symbols: list[str] | None = None, config: ExchangeConfig | None = None, *,
                     settings: Settings | None = None, core: str | None = None) -> Callable[[], Exchange]:
    """A fresh core per call, built as ``exchange-sim run`` builds its core from ``settings``
    (config.toml's [profile] with its extra symbols, and [margin]; defaults without), optionally
    only some symbols, with the cluster's config (``cluster_config``). ``config`` replaces that
    ExchangeConfig; ``core`` ("module:Class", a subclass of ``Exchange``) is the core's class (the
    tests inject faults with it)."""
    settings = settings or Settings()
    instruments = venue_instruments(settings)
    if symbols:
        missing = [s for s in symbols if s not in instruments]
        if missing:
            raise KeyError(f"symbols not in profile {settings.profile.name!r}: {', '.join(missing)}")
        instruments = {s: instruments[s] for s in symbols}
    exchange_config_ = config or cluster_config(settings)
    core_class = _core_class(core) if core else Exchange

    def new_exchange() -> Exchange:
        return core_class(instruments, exchange_config_)

    return new_exchange


def _core_class(spec: str) -> type[Exchange]:
    import importlib

    module, _, name = spec.partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, Exchange)):
        raise TypeError(f"{spec} is not a subclass of Exchange")
    return cls


def settings_of(path: str | None) -> Settings:
    """The settings of config file ``path``; ./config.toml if there is one and no path was given."""
    from pathlib import Path

    from exchange_sim.config import load_config

    if path is None and Path("config.toml").is_file():
        path = "config.toml"
    return load_config(path)


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
                    snapshot_every: int, settings: Settings | None = None, core: str | None = None,
                    trim: bool = True) -> None:
    proc = ShardProcess(urls, layout, shard, member, exchange_factory(symbols, settings=settings, core=core),
                        snapshot_every=snapshot_every, trim=trim)

    async def work() -> None:
        await proc.open()
        print(f"shard {shard} member {member} ready", flush=True)
        try:
            await proc.run()
        finally:
            await proc.close()

    await _until_signalled(work())


async def run_fund(urls: list[str], layout: Layout, member: str, initial: int | None, target: int | None,
                   symbols: list[str] | None = None, settings: Settings | None = None, core: str | None = None) -> None:
    """A member of the venue's insurance fund service and of its ADL coordinator (each a standby
    until it holds its own lease: ``fund``, ``adl``). The coordinator's copies of the shards are
    built as the shards' cores (the same config: checked against the cluster's core digest)."""
    settings = settings or Settings()
    initial = venue_fund(settings) if initial is None else initial
    target = initial // (2 * len(layout.shards)) if target is None else target
    new_exchange = exchange_factory(symbols, settings=settings, core=core)
    service = FundService(urls, layout, member, initial=initial, target=target)

    async def work() -> None:
        await service.open()
        adl = AdlCoordinator(service.nc, layout, member, new_exchange)
        await adl.open()  # (creates the buckets if this process is the first)
        await connect.agreed_core(service.js, layout, new_exchange())
        print(f"fund member {member} ready", flush=True)
        try:
            await asyncio.gather(service.run(), adl.run())
        finally:
            adl.stop()
            await service.close()

    await _until_signalled(work())


class IngestSubmitter:
    """What the feed supervisor submits to: the market stream (a feed never talks to a shard)."""

    def __init__(self, ingest: MarketIngest) -> None:
        self.ingest = ingest

    async def submit(self, msg: Any) -> list:
        await self.ingest.publish(msg)
        return []


async def run_ingest(urls: list[str], layout: Layout, spec: str, symbols: list[str] | None,
                     on_end: Callable[[MarketIngest], None] | None = None, settings: Settings | None = None) -> None:
    """A feed (``feeds.open_feed`` spec) into the venue's market stream, under the usual supervisor
    (reconnects, bad-tick guard, stale watchdog), until the feed ends or a signal."""
    from feeds import open_feed

    from exchange_sim.runtime.feeds import FeedSupervisor

    instruments = exchange_factory(symbols, settings=settings)().instruments

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
                      symbols: list[str] | None, name: str, unlimited: bool, settings: Settings | None = None,
                      core: str | None = None) -> None:
    new_exchange = exchange_factory(symbols, settings=settings, core=core)

    async def work() -> None:
        node = ClusterNode(urls, layout, new_exchange, name=name)
        await node.start()
        await connect.agreed_core(node.js, layout, new_exchange())
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

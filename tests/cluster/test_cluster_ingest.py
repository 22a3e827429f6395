"""Market ingest: a recorded day through ``exchange-sim cluster ingest`` into the market stream,
then the same recording again (a restarted feed): not one tick doubled, every shard journals each
tick once, and the gateways' market view is the recording's last price."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import nats

from exchange_sim.cluster.layout import KIND, MARKET_SEQ, ShardNames
from tests.cluster.conftest import needs_nats
from tests.cluster.load import inputs
from tests.support.shared_data import CRASH_KLINES, require

pytestmark = needs_nats

def ingest(cluster, path) -> str:
    args = [sys.executable, "-m", "exchange_sim.cluster", "ingest", "--nats", ",".join(cluster.natsd.urls),
            "--shards", ",".join(cluster.layout.shards), "--replicas", str(cluster.layout.replicas),
            "--lease-ttl", str(cluster.layout.lease_ttl), "--symbols", "BTCUSDT,ETHUSDT",
            "--feed", f"replay:{path}?speed=0"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def market_count(cluster) -> int:
    nc = await nats.connect(servers=cluster.natsd.urls)
    try:
        return (await nc.jetstream().stream_info(cluster.layout.market_stream)).state.messages
    finally:
        await nc.close()


async def journaled_everywhere(cluster, market_seq: int) -> None:
    """Until every shard's last journaled market event is ``market_seq`` (bounded: 20 s)."""
    nc = await nats.connect(servers=cluster.natsd.urls)
    try:
        js = nc.jetstream()
        for shard in cluster.layout.shards:
            names = ShardNames(shard)
            for _ in range(200):
                last = await js.get_last_msg(names.input_stream, names.input_subject)
                if int((last.headers or {}).get(MARKET_SEQ, 0)) >= market_seq:
                    break
                await asyncio.sleep(0.1)
    finally:
        await nc.close()


async def test_a_restarted_feed_never_doubles_a_tick(cluster):
    path = Path(require(CRASH_KLINES))
    before = await market_count(cluster)
    first = await asyncio.to_thread(ingest, cluster, path)
    assert "1440 published, 0 duplicates dropped" in first
    assert await market_count(cluster) == before + 1440
    again = await asyncio.to_thread(ingest, cluster, path)
    assert "0 published, 1440 duplicates dropped" in again
    assert await market_count(cluster) == before + 1440

    last_close = path.read_text().strip().splitlines()[-1].split(",")[4]
    await journaled_everywhere(cluster, before + 1440)
    journals = [await inputs(cluster.natsd.urls, s) for s in cluster.layout.shards]
    for journal in journals:
        assert sum(1 for _, h, _ in journal if h.get(KIND) == "mkt") == before + 1440
    async with aiohttp.ClientSession() as session:
        for url in cluster.gateway_urls:
            for _ in range(50):
                async with session.get(url + "/fapi/v1/ticker/price", params={"symbol": "BTCUSDT"}) as r:
                    price = (await r.json())["price"]
                if float(price) == float(last_close):
                    break
                await asyncio.sleep(0.1)
            assert float(price) == float(last_close), (url, price, last_close)

"""Cluster mode capacity on this machine (issue 12). Prints one JSON line.

Brings up the local cluster of exchange_sim/cluster/local.py (3 nats-server nodes, JetStream R3;
3 shards, each a leader + a hot standby; 2 gateways) and, for comparison, the single node
(``exchange-sim run --feed manual`` with its default SQLite journal, rate limits lifted, as in
api_roundtrip.py). Workloads, each doing what its figure says:

- ``single_1c_*`` / ``gateway_1c_*``: one real ccxt async client placing resting limit buys one
  after another, on the single node and through one gateway: p50/p99 of ``create_order`` as the
  bot sees it; ``added_p50_ms``/``added_p99_ms`` are the NATS hop (gateway -> shard leader ->
  JetStream R3 append -> reply with the account's state) over the single node;
- ``single_8c_orders_per_s`` / ``gateway_8c_orders_per_s``: 8 clients (8 accounts) at once, one
  node vs one gateway; ``gateways2_8c_orders_per_s``: the same 8 clients split over both gateways;
- ``shard_inputs_per_s``: ``Deposit`` commands sent straight to one shard leader by NATS
  request/reply, 64 in flight (no gateway, no HTTP): what one shard sequences (append with
  expected-last-sequence, apply, answer) per second;
- ``cpu_ms_per_order_*`` / ``cpu_ms_per_market_event_*``: CPU time (user + system, from
  /proc/<pid>/stat) each kind of process spent during the 8-client one-gateway run, per order
  placed (``single_node``: the single node's process in its 8-client run), and during the ingest burst, per market event: ``gateway_serving`` (the gateway the
  clients use), ``gateway_idle`` (the other one, serving nobody: it holds no shard state and
  follows only the market stream), ``leaders`` and ``standbys`` (all three shards together), ``nats`` (all three nodes),
  ``fund_process`` (the fund service + ADL coordinator, leader and standby together: its ADL
  coordinator keeps a replica of every shard);
  these are what the README's capacity model divides a core by;
- ``refusal_rebuild_s`` / ``refusal_rebuild_inputs``: what a shard member does after its core
  raised on an input (exchange_sim/cluster/replica.py): a new core from the last snapshot plus
  every stored input after it, read back from JetStream (one ordered consumer) and applied; timed
  on a replica of shard 0 in this process, once its stream holds the ``shard_inputs`` deposits;
- ``ingest_published_per_s``: distinct ``MarkPrice`` events published to the market stream
  (256 in flight, each stored on 3 nodes); ``ingest_through_shards_per_s``: the same burst until
  every shard has journaled and applied the last one; ``ingest_duplicates_dropped``: the whole
  burst published again (a restarted feed): every event must come back as a duplicate.

On a 2-core machine every process of the cluster shares the same two cores with the clients, so
these figures are a floor; per-component figures are what the README's capacity model uses.
``leases_moved`` counts the shards whose lease changed hands during the run (CPU starvation lets
a lease lapse): when it is not 0, that shard's leader and standby figures are mixed.

    python scripts/bench/cluster.py
    EXSIM_BENCH_SMOKE=1 python scripts/bench/cluster.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from _common import SMOKE, emit  # noqa: E402
from api_roundtrip import ADMIN_TOKEN, load, sim_accounts, sim_process  # noqa: E402

from exchange_sim.cluster import codec, connect  # noqa: E402
from exchange_sim.cluster.ingest import MarketIngest  # noqa: E402
from exchange_sim.cluster.layout import MARKET_SEQ, REQUEST, ShardNames  # noqa: E402
from exchange_sim.cluster.local import LocalCluster  # noqa: E402
from exchange_sim.cluster.processes import exchange_factory  # noqa: E402
from exchange_sim.cluster.replica import ShardReplica  # noqa: E402
from exchange_sim.core import messages as m  # noqa: E402
from exchange_sim.core.fixed import to_fixed  # noqa: E402

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
PER_CLIENT_1 = 30 if SMOKE else 170  # + 20 warm-up: under the venue's 200 open orders per symbol
PER_CLIENT_8 = 10 if SMOKE else 150
SHARD_INPUTS = 200 if SMOKE else 4000
MARKET_EVENTS = 300 if SMOKE else 10000


async def single_node(workdir: Path) -> dict:
    async with sim_process(workdir, "single") as sim:
        creds = await sim_accounts(sim.url, 8)
        one = await load(sim.url, creds[:1], PER_CLIENT_1, 20)
        pid = sim.proc.pid if sim.proc is not None else None
        before = cpu_s(pid)
        eight = await load(sim.url, creds, PER_CLIENT_8, 5)
        cpu = 1000 * (cpu_s(pid) - before) / (8 * (PER_CLIENT_8 + 5))
    return {"single_1c_p50_ms": one["p50_ms"], "single_1c_p99_ms": one["p99_ms"],
            "single_8c_orders_per_s": eight["orders_per_s"], "cpu_ms_per_order_single_node": round(cpu, 4)}


def cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of a live process (0 if gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


LEADERS: list = []  # the members holding the shards' leases (read once the cluster is up)


def cpu_by_role(cluster: LocalCluster) -> dict[str, float]:
    def pid(child: object) -> int | None:
        proc = getattr(child, "proc", child)
        return proc.pid if proc is not None else None

    members = [c for ms in cluster.members.values() for c in ms]
    return {"gateway_serving": cpu_s(pid(cluster.gateways[0])), "gateway_idle": cpu_s(pid(cluster.gateways[1])),
            "leaders": sum(cpu_s(pid(c)) for c in members if c in LEADERS),
            "standbys": sum(cpu_s(pid(c)) for c in members if c not in LEADERS),
            "nats": sum(cpu_s(pid(p)) for p in cluster.natsd.procs),
            "fund_process": sum(cpu_s(pid(c)) for c in cluster.funds)}


def per_unit(before: dict[str, float], after: dict[str, float], units: int, name: str) -> dict[str, float]:
    return {f"cpu_ms_per_{name}_{role}": round(1000 * (after[role] - before[role]) / units, 4) for role in before}


async def gateways(cluster: LocalCluster) -> dict:
    gw0, gw1 = cluster.gateway_urls
    creds = await sim_accounts(gw0, 8)
    await asyncio.sleep(0.5)  # the keys reach gateway 1 through the KV watch
    one = await load(gw0, creds[:1], PER_CLIENT_1, 20)
    before = cpu_by_role(cluster)
    eight = await load(gw0, creds, PER_CLIENT_8, 5)
    cpu = per_unit(before, cpu_by_role(cluster), 8 * (PER_CLIENT_8 + 5), "order")
    halves = await asyncio.gather(load(gw0, creds[:4], PER_CLIENT_8, 5), load(gw1, creds[4:], PER_CLIENT_8, 5))
    both = sum(h["orders_per_s"] for h in halves)  # the two halves run at the same time
    return {"gateway_1c_p50_ms": one["p50_ms"], "gateway_1c_p99_ms": one["p99_ms"],
            "gateway_8c_orders_per_s": eight["orders_per_s"], "gateways2_8c_orders_per_s": round(both, 1),
            "gateways2_halves_orders_per_s": [h["orders_per_s"] for h in halves], **cpu}


async def shard_inputs(cluster: LocalCluster) -> dict:
    nc = await connect.connect(cluster.natsd.urls, "bench-shard")
    try:
        layout = cluster.layout
        shard = layout.shards[0]
        account = 1 if layout.shard_of(1) == shard else next(a for a in range(1, 99) if layout.shard_of(a) == shard)
        subject = ShardNames(shard).command_subject
        sent = 0
        latencies: list[float] = []

        async def worker(w: int) -> None:
            nonlocal sent
            while sent < SHARD_INPUTS:
                sent += 1
                msg = m.Deposit(ts=int(time.time() * 1000), account=account, amount=to_fixed("1"))
                t = time.perf_counter()
                reply = await nc.request(subject, codec.dump_input(msg), timeout=10,
                                         headers={REQUEST: f"bench-{w}-{sent}"})
                latencies.append(time.perf_counter() - t)
                assert not isinstance(codec.load_reply(reply.data)[0], str)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(64)))
        wall = time.perf_counter() - t0
        return {"shard_inputs_per_s": round(len(latencies) / wall, 1),
                "shard_input_p50_ms": round(1000 * statistics.median(latencies), 3)}
    finally:
        await nc.close()


async def refusal_rebuild(cluster: LocalCluster) -> dict:
    nc = await connect.connect(cluster.natsd.urls, "bench-rebuild")
    try:
        js = nc.jetstream()
        store = (await connect.buckets(js, cluster.layout))["snapshots"]
        replica = ShardReplica(js, store, cluster.layout, cluster.layout.shards[0], exchange_factory(SYMBOLS))
        await replica.restore()
        await replica.catch_up()
        replica.broken = True  # as after a failed apply
        t0 = time.perf_counter()
        await replica.rebuild()
        wall = time.perf_counter() - t0
        return {"refusal_rebuild_s": round(wall, 3), "refusal_rebuild_inputs": replica.applied_seq - replica.snapshot_seq}
    finally:
        await nc.close()


async def ingest(cluster: LocalCluster) -> dict:
    nc = await connect.connect(cluster.natsd.urls, "bench-ingest")
    try:
        js = nc.jetstream()
        ing = MarketIngest(js, cluster.layout)
        base = int(time.time() * 1000)
        events = [m.MarkPrice(ts=base + i, symbol="ETHUSDT", mark=to_fixed("3000") + i) for i in range(MARKET_EVENTS)]
        cpu_before = cpu_by_role(cluster)
        t0 = time.perf_counter()
        seqs: list[int] = []
        for i in range(0, len(events), 256):
            seqs += await ing.publish_many(events[i:i + 256])
        published = time.perf_counter() - t0
        last = max(seqs)
        for shard in cluster.layout.shards:
            names = ShardNames(shard)
            for _ in range(6000):  # bounded: 10 minutes at most
                msg = await js.get_last_msg(names.input_stream, names.input_subject)
                if int((msg.headers or {}).get(MARKET_SEQ, 0) or 0) >= last:
                    break
                await asyncio.sleep(0.1)
        through = time.perf_counter() - t0
        await asyncio.sleep(1.0)  # the gateways' market views and the standbys' replicas finish applying the burst
        cpu = per_unit(cpu_before, cpu_by_role(cluster), len(events), "market_event")
        before = ing.duplicates
        for i in range(0, len(events), 256):
            await ing.publish_many(events[i:i + 256])
        return {"ingest_events": len(events), "ingest_published_per_s": round(len(events) / published, 1),
                "ingest_through_shards_per_s": round(len(events) / through, 1),
                "ingest_duplicates_dropped": ing.duplicates - before, **cpu}
    finally:
        await nc.close()


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="exsim-bench-cluster-"))
    figures: dict = {"workload": "resting limit buys via ccxt; Deposit commands by NATS request/reply; "
                                 "distinct MarkPrice events into the market stream",
                     "cluster": "3 nats-server (R3), 3 shards x (leader + standby), 2 gateways, one machine"}
    figures.update(await single_node(workdir))
    cluster = LocalCluster(workdir / "cluster", gateways=2, shards=3, standbys=1, symbols=SYMBOLS,
                           admin_token=ADMIN_TOKEN)
    cluster.start()  # from this thread: the children die with the thread that started them
    try:
        for _ in range(100):  # every shard's lease taken (a member may still be starting)
            holders = [await cluster.lease_holder(shard) for shard in cluster.layout.shards]
            if all(holders):
                break
            await asyncio.sleep(0.1)
        LEADERS.extend(holders)
        figures.update(await gateways(cluster))
        figures.update(await shard_inputs(cluster))
        figures.update(await refusal_rebuild(cluster))
        figures.update(await ingest(cluster))
        # a lease that moved during the run swaps what "leaders" and "standbys" measured: say so
        now = [await cluster.lease_holder(shard) for shard in cluster.layout.shards]
        figures["leases_moved"] = sum(a is not b for a, b in zip(LEADERS, now, strict=True))
    finally:
        cluster.stop()
    figures["added_p50_ms"] = round(figures["gateway_1c_p50_ms"] - figures["single_1c_p50_ms"], 3)
    figures["added_p99_ms"] = round(figures["gateway_1c_p99_ms"] - figures["single_1c_p99_ms"], 3)
    emit("cluster", figures)


if __name__ == "__main__":
    asyncio.run(main())

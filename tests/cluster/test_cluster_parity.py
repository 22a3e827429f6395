"""The same command script gives the same per-account event logs on the cluster as on one node.

A real 3-node nats-server cluster, three shards (leader + standby) and two gateways run as
processes; real ccxt clients and user-data websockets go through both gateways. The single node
is the in-process ``exchange-sim`` server (tests/support/api_server.py) with the same symbols
and core settings. What must be equal: every account's event log (from the gateway's
``/sim/v1/events`` and, independently, from the shard leaders' ``exsim.events.<shard>.<account>``
publications), and what the ccxt clients and user streams saw.
"""

from __future__ import annotations

import aiohttp
import nats

from exchange_sim.api.wire import readable
from exchange_sim.cluster.layout import Layout
from exchange_sim.core import messages as m
from tests.cluster.conftest import SYMBOLS, needs_nats
from tests.cluster.script import Venue, normalised, run_script
from tests.support.api_server import running_sim

pytestmark = needs_nats


def names_on_every_shard(layout: Layout) -> list[str]:
    """Four master-account names whose shards cover all three (the fourth gets a sub-account)."""
    picked: dict[str, str] = {}
    for i in range(1000):
        name = f"trader{i}"
        shard = layout.shard_for_new(name)
        if shard not in picked:
            picked[shard] = name
        if len(picked) == len(layout.shards):
            break
    names = list(picked.values())
    return names + [next(f"trader{i}" for i in range(1000, 2000) if f"trader{i}" not in names)]


async def account_logs(session: aiohttp.ClientSession, url: str, token: str, accounts: dict) -> dict:
    out = {}
    names = {a["accountId"]: name for name, a in accounts.items()}
    for name, account in accounts.items():
        async with session.get(f"{url}/sim/v1/events", params={"account": account["accountId"], "limit": "10000"},
                               headers={"Authorization": f"Bearer {token}"}) as r:
            out[name] = normalised((await r.json())["events"], names)
    return out


async def test_cluster_matches_single_node(cluster):
    layout = cluster.layout
    names = names_on_every_shard(layout)
    assert {layout.shard_for_new(n) for n in names} == set(layout.shards)

    async with running_sim(symbols=SYMBOLS) as sim, aiohttp.ClientSession() as session:
        single = Venue([sim.url], sim.admin_token, session)
        try:
            single_seen = await run_script(single, names)
        finally:
            await single.close()
        single_logs = await account_logs(session, sim.url, sim.admin_token, single.accounts)

    published: dict[int, list] = {}
    nc = await nats.connect(servers=cluster.natsd.urls)

    async def on_event(msg):
        event = m.loads(msg.data)
        published.setdefault(event.account, []).append(dict(readable(m.encode(event))))

    await nc.subscribe("exsim.events.>", cb=on_event)
    try:
        async with aiohttp.ClientSession() as session:
            clustered = Venue(cluster.gateway_urls, cluster.admin_token, session)
            try:
                cluster_seen = await run_script(clustered, names)
            finally:
                await clustered.close()
            gateway_logs = [await account_logs(session, url, cluster.admin_token, clustered.accounts)
                            for url in cluster.gateway_urls]
        await nc.flush()
    finally:
        await nc.close()

    accounts = clustered.accounts
    shards_used = {layout.shard_of(a["accountId"]) for a in accounts.values()}
    assert shards_used == set(layout.shards)  # the script really spans every shard
    assert layout.shard_of(accounts[f"{names[3]}-sub"]["accountId"]) == layout.shard_of(accounts[names[3]]["accountId"])

    ids = {a["accountId"]: name for name, a in accounts.items()}
    leader_logs = {ids[aid]: normalised(rows, ids) for aid, rows in published.items()}
    for name in single_logs:
        assert len(single_logs[name]) > 2, name
        assert gateway_logs[0][name] == single_logs[name], name
        assert gateway_logs[1][name] == single_logs[name], name
        assert leader_logs[name] == single_logs[name], name
    kinds = {row["type"] for rows in single_logs.values() for row in rows}
    assert {"OrderUpdate", "Liquidation", "MarginCall", "PositionUpdate", "BalanceUpdate"} <= kinds
    assert cluster_seen == single_seen
    assert any(shape[3] == "LIQUIDATION" for shape in single_seen["carol-stream"] if shape[0] == "ORDER_TRADE_UPDATE")

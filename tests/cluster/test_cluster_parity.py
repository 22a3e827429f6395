"""The same command script gives the same per-account event logs on the cluster as on one node.

A real 3-node nats-server cluster, three shards (leader + standby) and two gateways run as
processes; real ccxt clients and user-data websockets go through both gateways. The single node
is the in-process ``exchange-sim`` server (tests/support/api_server.py) with the same symbols
and core settings. What must be equal: every account's event log (from the gateway's
``/sim/v1/events`` and, independently, from the shard leaders' ``exsim.events.<shard>.<account>``
publications), and what the ccxt clients and user streams saw.
"""

from __future__ import annotations

import asyncio

import aiohttp
import ccxt.async_support as ccxt_async
import msgspec
import nats

from exchange_sim.api import wire
from exchange_sim.api.wire import readable
from exchange_sim.cluster.errors import WriterRefused
from exchange_sim.cluster.gateway import ClusterNode
from exchange_sim.cluster.layout import KEY_BUCKET, REQUEST, Layout
from exchange_sim.cluster.market_view import MarketView
from exchange_sim.cluster.placement import ACCOUNT_BUCKET
from exchange_sim.cluster.processes import exchange_factory
from exchange_sim.cluster.shard import ShardProcess
from exchange_sim.core import messages as m
from exchange_sim.core.fixed import to_fixed
from tests.cluster.conftest import SYMBOLS, needs_nats
from tests.cluster.load import inputs
from tests.cluster.script import Venue, normalised, run_script
from tests.support.api_ccxt import ccxt_config
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
    assert [shape[0] for shape in single_seen["public-stream"]].count("forceOrder") == 1
    assert [shape[0] for shape in single_seen["public-stream"]].count("markPriceUpdate") == 3


async def test_a_late_gateway_answers_history_through_the_shards(cluster):
    """History (closed orders, fills, income) is a read model of each shard's input stream, kept by
    the shard's members: a gateway started after the trading reads it through the shards and
    answers exactly what the running gateway answers."""

    async with aiohttp.ClientSession() as session:
        async with session.get(cluster.gateway_urls[0] + "/sim/v1/accounts",
                               headers={"Authorization": f"Bearer {cluster.admin_token}"}) as r:
            listed = await r.json()
    assert listed, "run after the parity test"
    late = cluster.add_gateway()
    nc = await nats.connect(servers=cluster.natsd.urls)
    keys = await nc.jetstream().key_value(KEY_BUCKET)
    by_account = {}
    for key in await keys.keys():
        data = msgspec.json.decode((await keys.get(key)).value)
        by_account[data["account"]] = (key, data["secret"])
    await nc.close()
    compared = 0
    for row in listed:
        key, secret = by_account[row["accountId"]]
        answers = []
        for url in (cluster.gateway_urls[0], late):
            client = ccxt_async.binanceusdm(ccxt_config(url, key, secret))
            try:
                await client.load_markets()
                trades = await client.fetch_my_trades("BTC/USDT:USDT")
                orders = await client.fetch_orders("BTC/USDT:USDT")
                income = await client.fapiPrivateGetIncome()
            finally:
                await client.close()
            answers.append(([(t["id"], t["price"], t["amount"]) for t in trades],
                            [(o["id"], o["status"], o["filled"]) for o in orders],
                            [(i["tranId"], i["incomeType"], i["income"]) for i in income]))
        assert answers[0] == answers[1], row["name"]
        compared += bool(answers[0][0] or answers[0][1])
    assert compared >= 3


async def test_a_zombie_writer_is_refused(cluster):
    """A member that thinks it leads but lost the lease appends with a stale expected-last-sequence:
    JetStream refuses it and the member applies nothing."""

    shard = cluster.layout.shards[0]
    zombie = ShardProcess(cluster.natsd.urls, cluster.layout, shard, "zombie", exchange_factory(SYMBOLS))
    await zombie.open()
    try:
        await zombie.replica.catch_up()
        seen = zombie.replica.applied_seq
        # meanwhile the real leader journals another input (an account placed on this shard)
        name = next(f"late{i}" for i in range(1000) if cluster.layout.shard_for_new(f"late{i}") == shard)
        async with aiohttp.ClientSession() as session:
            async with session.post(cluster.gateway_urls[1] + "/sim/v1/accounts", json={"name": name},
                                    headers={"Authorization": f"Bearer {cluster.admin_token}"}) as r:
                assert r.status == 200
        journal_before = await inputs(cluster.natsd.urls, shard)
        assert journal_before[-1][0] > seen

        class Request:  # what the command subscription hands the sequencer: payload, headers, no reply
            headers = {REQUEST: "zombie-1"}
            reply = ""

        deposit = m.Deposit(ts=1, account=cluster.layout.next_owned_id(shard, 0), amount=1)
        try:
            await zombie.sequence([("cmd", 0, m.dumps(deposit).encode(), Request())], asyncio.Queue())
        except WriterRefused:
            pass
        else:
            raise AssertionError("the stale append was accepted")
        assert zombie.replica.applied_seq == seen  # nothing applied
        assert await inputs(cluster.natsd.urls, shard) == journal_before  # nothing journaled
    finally:
        await zombie.nc.close()


async def test_a_gateway_holds_no_shard_state_and_other_accounts_traffic_does_not_reach_it(cluster):
    """A gateway started after the trading holds no account and no shard core: it follows only the
    market stream (a core with no account), answers an account's query by asking its shard, and
    while another gateway serves that account's commands it receives no message for them."""

    async with aiohttp.ClientSession() as session:
        h = {"Authorization": f"Bearer {cluster.admin_token}"}
        async with session.get(cluster.gateway_urls[0] + "/sim/v1/accounts", headers=h) as r:
            listed = await r.json()
        assert listed, "run after the parity test"
        probe = ClusterNode(cluster.natsd.urls, cluster.layout, exchange_factory(SYMBOLS), name="probe")
        await probe.start()
        try:
            assert probe.market.ex.account_ids() == []  # its only core: market data, no account
            assert not probe.exchange.states
            for row in listed:  # the account's shard answers, and the answer is the serving gateway's
                await probe.prepare(row["accountId"], "account_info")
                view = probe.exchange.account_view(row["accountId"])
                assert view is not None and view.name == row["name"]
                assert wire.money(view.wallet_balance) == row["walletBalance"], row["name"]
            probe.exchange.states.clear()

            other = listed[0]["accountId"]
            received = probe.nc.stats["in_msgs"]
            commands = 100
            for _ in range(commands):
                async with session.post(f"{cluster.gateway_urls[0]}/sim/v1/accounts/{other}/deposit", headers=h,
                                        json={"amount": "1"}) as r:
                    assert r.status == 200, await r.text()
            received = probe.nc.stats["in_msgs"] - received
            print(f"\nIDLE GATEWAY: {received} NATS messages in while another gateway served {commands} commands")
            assert not probe.exchange.states  # it fetched nothing for the other gateway's traffic
            # what reached it meanwhile is the market stream's heartbeats (one a second), not the commands
            assert received < commands // 4, received
            await probe.prepare(other, "account_info")
            after = next(r for r in listed if r["accountId"] == other)
            assert probe.exchange.account_view(other).wallet_balance == (
                to_fixed(after["walletBalance"]) + commands * to_fixed("1"))

            # its market view's snapshot: a gateway started later restores it instead of replaying the stream
            assert probe.market.market_seq > 0
            saved = await probe.market.save_snapshot()
            later = MarketView(probe.js, cluster.layout, exchange_factory(SYMBOLS), store=probe.market.store)
            await later.restore()
            assert later.market_seq == saved and later.ex.account_ids() == []
            for symbol in SYMBOLS:
                assert later.ex.market(symbol) == probe.market.ex.market(symbol)
                assert later.ex.book_levels(symbol, 20) == probe.market.ex.book_levels(symbol, 20)
            await later.follow()
            await later.stop()
        finally:
            await probe.stop()


async def test_account_placement_is_recorded_in_kv_and_routing_reads_it(cluster):
    """Every account's shard is in the exsim-accounts bucket, written by the shard that created it:
    a master where the placement rule put it, a sub-account on its master's shard; the bucket
    agrees with where each CreateAccount was journaled; a gateway routes by it."""

    layout = cluster.layout
    nc = await nats.connect(servers=cluster.natsd.urls)
    try:
        bucket = await nc.jetstream().key_value(ACCOUNT_BUCKET)
        placed = {int(k): msgspec.json.decode((await bucket.get(k)).value)["shard"] for k in await bucket.keys()}
    finally:
        await nc.close()
    journaled: dict[str, str] = {}  # account name -> the shard whose input stream created it
    parents: dict[str, int | None] = {}
    for shard in layout.shards:
        for _, headers, msg in await inputs(cluster.natsd.urls, shard):
            if isinstance(msg, m.CreateAccount) and msg.name and headers.get("Exsim-Kind") == "cmd":
                journaled[msg.name] = shard
                parents[msg.name] = msg.parent
    async with aiohttp.ClientSession() as session:
        async with session.get(cluster.gateway_urls[1] + "/sim/v1/accounts",
                               headers={"Authorization": f"Bearer {cluster.admin_token}"}) as r:
            listed = await r.json()
    assert len(listed) >= 5 and {row["accountId"] for row in listed} <= set(placed)
    for row in listed:
        shard = placed[row["accountId"]]
        assert shard == journaled[row["name"]], row["name"]
        parent = parents[row["name"]]
        if parent is None:
            assert shard == layout.shard_for_new(row["name"]), row["name"]
        else:
            assert shard == placed[parent], row["name"]
    assert len(set(placed.values())) == len(layout.shards)

    # a gateway's mirror of the bucket is what it routes by; an account it has not seen is looked up
    node = ClusterNode(cluster.natsd.urls, layout, exchange_factory(SYMBOLS), name="router")
    await node.start()
    try:
        assert {a: s for a, s in node.placement.shard_of.items() if a in placed} == placed
        node.placement.shard_of.clear()
        some = listed[-1]["accountId"]
        assert await node.placement.lookup(some) == placed[some]
        assert await node.placement.lookup(10**9) is None
        events = await node.submit(m.Deposit(ts=1, account=some, amount=1))
        assert [type(e).__name__ for e in events] == ["BalanceUpdate"]
        assert node.written[some] > 0  # it went to the shard the bucket names (that shard answered)
    finally:
        await node.stop()

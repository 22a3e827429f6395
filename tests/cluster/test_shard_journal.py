"""A shard's journal: a core bug refuses its input (journaled by a marker), config.toml reaches the
shards, and the input stream is trimmed behind the snapshots without losing anything.

One small cluster for the module (3 NATS nodes, one shard with a leader and a standby, one
gateway), built from a config.toml with a non-default ``[margin]`` and a core with an injected
bug (tests/cluster/faulty.py): a deposit of 13.13 raises the first time each process applies it,
one of 66.6 every time, both *after* changing the core.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import aiohttp
import ccxt.async_support as ccxt_async
import pytest

from exchange_sim import config as config_module
from exchange_sim.cluster import connect
from exchange_sim.cluster.layout import KIND, REFUSAL, REFUSES, REQUEST, ShardNames
from exchange_sim.cluster.local import LocalCluster
from exchange_sim.cluster.natsd import nats_server_binary
from exchange_sim.cluster.processes import exchange_factory
from exchange_sim.cluster.replica import ShardReplica
from exchange_sim.core.fixed import to_fixed
from exchange_sim.journal.history import History
from tests.cluster.conftest import SYMBOLS, needs_nats
from tests.cluster.load import duplicated, inputs
from tests.cluster.script import normalised
from tests.support.api_ccxt import ccxt_config
from tests.support.api_server import running_sim
from tests.support.journal_session import observable_state

pytestmark = needs_nats

MARGIN = """[margin]
margin_call_ratio = 0.5
warning_ratio = 0.3
"""
FAULTY = "tests.cluster.faulty:FaultyExchange"


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "config.toml"
    path.write_text(MARGIN)
    return path, config_module.load_config(path)


@pytest.fixture(scope="module")
def small(tmp_path_factory, settings):
    if nats_server_binary() is None:
        pytest.skip("nats-server is not installed (apt-get install nats-server; .ci/run does)")
    os.environ.setdefault("PYTHONPATH", os.getcwd())
    keep = os.environ.get("EXSIM_CLUSTER_LOGS")
    where = Path(tempfile.mkdtemp(prefix="cluster-", dir=keep)) if keep else tmp_path_factory.mktemp("small")
    with LocalCluster(where, gateways=1, shards=1, standbys=1, symbols=SYMBOLS, lease_ttl=1.5,
                      snapshot_every=40, config=settings[0], core=FAULTY) as c:
        yield c


class Admin:
    def __init__(self, cluster: LocalCluster, session: aiohttp.ClientSession, url: str | None = None) -> None:
        self.url = url or cluster.gateway_urls[0]
        self.session = session
        self.auth = {"Authorization": f"Bearer {cluster.admin_token}"}

    async def call(self, method: str, path: str, body: object = None) -> tuple[int, dict]:
        async with self.session.request(method, self.url + path, json=body, headers=self.auth) as r:
            return r.status, await r.json()

    async def ok(self, method: str, path: str, body: object = None) -> dict:
        status, data = await self.call(method, path, body)
        assert status == 200, (path, data)
        return data

    async def wallet(self, aid: int) -> str:
        return (await self.ok("GET", f"/sim/v1/accounts/{aid}"))["walletBalance"]


async def standing_by(member, since: int = 0, text: str = "standing by", timeout: float = 30.0) -> str:
    """Until ``member``'s log after character ``since`` says ``text`` (by default: it started and
    caught up; a loaded machine imports slowly); that part of the log. Bounded."""
    for _ in range(int(timeout / 0.1)):
        if text in member.log_text()[since:]:
            return member.log_text()[since:]
        await asyncio.sleep(0.1)
    raise AssertionError(f"{member.name} never logged {text!r}:\n{member.log_text()[-2000:]}")


async def replica_state(cluster: LocalCluster, new_exchange) -> tuple[int, object]:
    """A replica of the shard built here, from the snapshot and the stream: (applied seq, its
    core's observable state and its history read model)."""
    nc = await connect.connect(cluster.natsd.urls, "verifier")
    try:
        js = nc.jetstream()
        store = (await connect.buckets(js, cluster.layout))["snapshots"]
        history = History.temporary()
        replica = ShardReplica(js, store, cluster.layout, cluster.layout.shards[0], new_exchange, history=history)
        await replica.restore()
        await replica.catch_up()
        return replica.applied_seq, (observable_state(replica.ex), history.fingerprint(), history.counts())
    finally:
        await nc.close()
        history.close()


async def test_a_core_bug_is_refused_journaled_and_every_member_agrees(small, settings):
    shard = small.layout.shards[0]
    async with aiohttp.ClientSession() as session:
        admin = Admin(small, session)
        aid = (await admin.ok("POST", "/sim/v1/accounts", {"name": "alice", "deposit": "100"}))["accountId"]
        answers = []
        for amount in ("13.13", "13.13", "66.6", "66.6", "1"):  # a transient fault retried, a bug retried
            answers.append(await admin.call("POST", f"/sim/v1/accounts/{aid}/deposit", {"amount": amount}))
        codes = [(status, body.get("code")) for status, body in answers]
        assert codes == [(400, -1000), (200, None), (400, -1000), (400, -1000), (200, None)], answers
        assert "refused" in answers[0][1]["msg"]
        assert await admin.wallet(aid) == "114.13000000"  # 100 + 13.13 once + 1; nothing of the refused

    journal = await inputs(small.natsd.urls, shard)
    markers = [(seq, int(h[REFUSES])) for seq, h, _ in journal if h.get(KIND) == REFUSAL]
    assert len(markers) == 3
    by_seq = {seq: (h, msg) for seq, h, msg in journal}
    for marker_seq, refused in markers:
        assert refused < marker_seq
        assert by_seq[refused][1].amount in (to_fixed("13.13"), to_fixed("66.6"))
    assert duplicated(journal, exchange_factory(SYMBOLS, settings=settings[1])) == 0
    assert len({h[REQUEST] for _, h, _ in journal if h.get(KIND) == "cmd"}) == sum(
        1 for _, h, _ in journal if h.get(KIND) == "cmd")

    leader = await small.lease_holder(shard)
    assert leader is not None
    log = leader.log_text()
    assert "exchange.apply raised RuntimeError" in log and "Traceback" in log and "injected core fault" in log
    standby = next(c for c in small.members[shard] if c is not leader)
    refused_seqs = sorted(refused for _, refused in markers)  # (after the fund service's first grant)
    assert len(refused_seqs) == 3
    # its core raised too and was rebuilt
    await standing_by(standby, text=f"refused inputs {refused_seqs} skipped")

    # a replica with the buggy core and one with the bug fixed (it applies the refused deposits
    # without trouble, then meets their markers) both end in the leader's state
    faulty_seq, faulty = await replica_state(small, exchange_factory(SYMBOLS, settings=settings[1], core=FAULTY))
    fixed_seq, fixed = await replica_state(small, exchange_factory(SYMBOLS, settings=settings[1]))
    assert faulty_seq == fixed_seq == journal[-1][0]
    assert faulty == fixed
    assert faulty[2]["history_income"] == 3  # the deposits of 100, 13.13 and 1: none of the refused ones

    # the standby takes over from its own replica: it has the same state and keeps serving
    leader.kill()
    async with aiohttp.ClientSession() as session:
        admin = Admin(small, session)
        status, body = await admin.call("POST", f"/sim/v1/accounts/{aid}/deposit", {"amount": "1"})
        assert status == 200, body
        assert await admin.wallet(aid) == "115.13000000"
    assert await small.lease_holder(shard) is standby
    leader.start()  # a standby again for the next test


async def test_the_margin_config_reaches_the_shards(small, settings):
    """[margin] margin_call_ratio = 0.5 (warning 0.3): a ratio of 0.55 is a MARGIN_CALL on the
    cluster exactly as on a single node built from the same config.toml, and nothing at all on
    one with the default 0.8 / 0.6."""

    async def scenario(url: str, token: str, session: aiohttp.ClientSession) -> list:
        auth = {"Authorization": f"Bearer {token}"}

        async def post(path: str, body: object) -> dict:
            async with session.post(url + path, json=body, headers=auth) as r:
                data = await r.json()
                assert r.status == 200, (path, data)
                return data

        async def mark(price: str) -> None:
            await post("/sim/v1/market", {"events": [{"type": "mark", "symbol": "BTCUSDT", "price": price,
                                                      "index": price}]})

        await post("/sim/v1/market", {"events": [
            {"type": "book", "symbol": "BTCUSDT", "bids": [["59990", "5"]], "asks": [["60000", "5"]]}]})
        await mark("60000")
        account = await post("/sim/v1/accounts", {"name": "margined", "deposit": "400"})
        client = ccxt_async.binanceusdm(ccxt_config(url, account["apiKey"], account["apiSecret"]))
        try:
            await client.load_markets()
            await client.create_order("BTC/USDT:USDT", "market", "buy", 0.1)
        finally:
            await client.close()
        for price in ("56700", "56440"):  # margin ratio ~0.34, then ~0.55
            await mark(price)
        async with session.get(url + "/sim/v1/events", params={"account": account["accountId"], "limit": "1000"},
                               headers=auth) as r:
            return normalised((await r.json())["events"], {account["accountId"]: "margined"})

    def calls(log: list) -> list:
        return [row.get("level") for row in log if row["type"] == "MarginCall"]

    async with aiohttp.ClientSession() as session:
        clustered = await scenario(small.gateway_urls[0], small.admin_token, session)
        async with running_sim(symbols=SYMBOLS, config=config_module.exchange_config(settings[1])) as sim:
            single = await scenario(sim.url, sim.admin_token, session)
        async with running_sim(symbols=SYMBOLS) as sim:
            default = await scenario(sim.url, sim.admin_token, session)
    assert calls(single) == ["WARNING", "MARGIN_CALL"]
    assert calls(default) == []
    assert clustered == single


async def history_of(url: str, account: dict) -> tuple:
    client = ccxt_async.binanceusdm(ccxt_config(url, account["apiKey"], account["apiSecret"]))
    try:
        await client.load_markets()
        trades = await client.fetch_my_trades("BTC/USDT:USDT")
        orders = await client.fetch_orders("BTC/USDT:USDT")
        income = await client.fapiPrivateGetIncome({"limit": 1000})
    finally:
        await client.close()
    return ([(t["id"], t["price"], t["amount"]) for t in trades], [(o["id"], o["status"], o["filled"]) for o in orders],
            [(i["tranId"], i["incomeType"], i["income"]) for i in income])


async def stream_state(cluster: LocalCluster) -> tuple[int, int]:
    """(first, last) sequence of the shard's input stream."""
    nc = await connect.connect(cluster.natsd.urls, "stream-reader")
    try:
        state = (await nc.jetstream().stream_info(ShardNames(cluster.layout.shards[0]).input_stream)).state
        return state.first_seq, state.last_seq
    finally:
        await nc.close()


async def test_trimmed_input_stream_recovers_everything(small):
    """Past two snapshots the leader purges its input stream up to the older one; a member
    restarted cold after that takes over from the snapshot (core, answers and history) and the
    kept inputs: every acknowledged deposit and order is there, and a gateway started after the
    trim answers the same history (fills, closed orders, income) as the one that saw it all."""
    shard = small.layout.shards[0]
    first_before, _ = await stream_state(small)
    async with aiohttp.ClientSession() as session:
        admin = Admin(small, session)
        await admin.ok("POST", "/sim/v1/market", {"events": [
            {"type": "book", "symbol": "BTCUSDT", "bids": [["59990", "50"]], "asks": [["60000", "50"]]},
            {"type": "mark", "symbol": "BTCUSDT", "price": "60000", "index": "60000"}]})
        account = await admin.ok("POST", "/sim/v1/accounts", {"name": "historian", "deposit": "100000"})
        aid = account["accountId"]
        client = ccxt_async.binanceusdm(ccxt_config(small.gateway_urls[0], account["apiKey"], account["apiSecret"]))
        try:
            await client.load_markets()
            for _ in range(3):  # fills, commissions, realized pnl: history rows
                await client.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
                await client.create_order("BTC/USDT:USDT", "market", "sell", 0.01)
            resting = await client.create_order("BTC/USDT:USDT", "limit", "buy", 0.01, 58000)
            await client.cancel_order(resting["id"], "BTC/USDT:USDT")
        finally:
            await client.close()
        deposits = 0
        for _ in range(200):  # acknowledged deposits until two snapshots are stored and the stream trimmed
            await admin.ok("POST", f"/sim/v1/accounts/{aid}/deposit", {"amount": "1"})
            deposits += 1
            if deposits % 20 == 0 and (await stream_state(small))[0] > max(first_before, 1):
                break
        first, last = await stream_state(small)
        assert first > max(first_before, 1), (first, last)  # trimmed
        wallet = await admin.wallet(aid)
        seen = await history_of(small.gateway_urls[0], account)
        assert len(seen[0]) == 6 and len(seen[1]) == 7 and seen[2]

        # the standby is restarted cold (the stream no longer holds its start), then the leader killed
        leader = await small.lease_holder(shard)
        standby = next(c for c in small.members[shard] if c is not leader)
        standby.kill()
        since = len(standby.log_text())
        standby.start()
        assert "restored snapshot" in await standing_by(standby, since)
        leader.kill()
        await admin.ok("POST", f"/sim/v1/accounts/{aid}/deposit", {"amount": "1"})  # the new leader journals it
        assert await small.lease_holder(shard) is standby
        assert float(await admin.wallet(aid)) == float(wallet) + 1
        leader.start()

    # a gateway started now restores every shard from its snapshot and the trimmed stream
    after = await history_of(small.gateway_urls[0], account)
    assert after[:2] == seen[:2] and after[2][:-1] == seen[2] and after[2][-1][1:] == ("TRANSFER", "1.00000000")
    late = small.add_gateway()
    assert await history_of(late, account) == after
    async with aiohttp.ClientSession() as session:
        assert float(await Admin(small, session, late).wallet(aid)) == float(wallet) + 1


async def test_the_market_stream_keeps_six_hours(small):
    """The market stream has a retention limit (README: six hours); the input streams none (they
    are trimmed behind the snapshots instead)."""
    nc = await connect.connect(small.natsd.urls, "stream-reader")
    try:
        js = nc.jetstream()
        market = (await js.stream_info(small.layout.market_stream)).config
        journal = (await js.stream_info(ShardNames(small.layout.shards[0]).input_stream)).config
    finally:
        await nc.close()
    assert market.max_age == 6 * 3600
    assert market.duplicate_window <= market.max_age
    assert not journal.max_age and (journal.max_msgs or -1) < 0

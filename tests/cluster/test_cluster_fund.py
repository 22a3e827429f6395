"""The venue-wide insurance fund on a real 3-node NATS cluster (exchange_sim/cluster/fund.py).

Three shards (leader + standby), two gateways and a fund service (leader + standby) whose floats
are 1,000 USDT (granted below 500, swept above 2,000). What is checked, independently of the
service's own account: every shard's input stream is replayed into a fresh core, its fund
changes summed, and the venue's fund (the service journal's balance + every replayed float +
what is in transit) must equal the initial balance plus those changes; every transfer ref must be
applied exactly once on its shard.
"""

from __future__ import annotations

import asyncio
import io
import os
import pickle
import tempfile
from pathlib import Path

import aiohttp
import ccxt.async_support as ccxt_async
import msgspec
import nats
import pytest

from exchange_sim.cluster.fund import FUND_STREAM, FUND_SUBJECT, GRANT, SWEEP, FundEntry, read_book, venue_total
from exchange_sim.cluster.layout import EXPECTED_LAST_SEQ, KIND, REFUSAL, REFUSES, REQUEST, SNAPSHOT_STORE, ShardNames
from exchange_sim.cluster.local import LocalCluster
from exchange_sim.cluster.natsd import nats_server_binary
from exchange_sim.cluster.processes import exchange_factory, venue_fund
from exchange_sim.cluster.replica import ShardReplica
from exchange_sim.config import Settings
from exchange_sim.core import messages as m
from exchange_sim.core.exchange import ExchangeConfig
from exchange_sim.core.fixed import to_fixed as F
from tests.cluster.conftest import SYMBOLS, needs_nats
from tests.cluster.load import inputs
from tests.cluster.script import BTC, Venue
from tests.support.api_ccxt import ccxt_config
from tests.support.api_server import running_sim

pytestmark = needs_nats

FLOAT = F("1000")
VENUE_FUND = venue_fund(Settings())  # the cluster reads ./config.toml: no [margin] change of the fund


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if nats_server_binary() is None:
        pytest.skip("nats-server is not installed (apt-get install nats-server; .ci/run does)")
    os.environ.setdefault("PYTHONPATH", os.getcwd())
    keep = os.environ.get("EXSIM_CLUSTER_LOGS")
    where = Path(tempfile.mkdtemp(prefix="fund-", dir=keep)) if keep else tmp_path_factory.mktemp("fund")
    # untrimmed input streams: the checks replay each whole journal from seq 1 into a fresh core
    with LocalCluster(where, gateways=2, shards=3, standbys=1, symbols=SYMBOLS, lease_ttl=1.5,
                      snapshot_every=50, trim=False, fund_args=("--float", "1000")) as c:
        yield c


async def journal(urls: list[str], shard: str) -> list[tuple[int, object]]:
    """The inputs of ``shard``'s stream that happened: without refusal markers and what they refuse."""
    stored = await inputs(urls, shard)
    refused = {int(h[REFUSES]) for _, h, _ in stored if h.get(KIND) == REFUSAL}
    return [(seq, msg) for seq, h, msg in stored if h.get(KIND) != REFUSAL and seq not in refused]


async def replayed(urls: list[str], shards) -> dict[str, dict]:
    """Per shard, from its input stream replayed into a fresh core: float, fund changes, transfer refs."""
    out = {}
    for shard in shards:
        core = exchange_factory(SYMBOLS)()
        changes, refs, adl = 0, [], []
        for _, msg in await journal(urls, shard):
            if isinstance(msg, (m.AutoDeleverage, m.CloseAdlClaim)):
                adl.append(msg)
            for event in core.apply(msg):
                if isinstance(event, m.InsuranceFundChange):
                    changes += event.change
                elif isinstance(event, m.InsuranceFundTransferred):
                    refs.append(event.ref)
                elif isinstance(event, (m.Adl, m.AdlClaim, m.AdlClaimClosed)):
                    adl.append(event)
        out[shard] = {"float": core.insurance_fund, "changes": changes, "refs": refs, "core": core, "adl": adl}
    return out


async def fund_book(urls: list[str]):
    nc = await nats.connect(servers=urls)
    try:
        return await read_book(nc.jetstream())
    finally:
        await nc.close()


async def settled(cluster, timeout: float = 30.0, want=None):
    """Wait until no transfer is in transit (and ``want(book)`` holds); the book and replayed shards."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        book = await fund_book(cluster.natsd.urls)
        if not book.pending and (want is None or want(book)):
            return book, await replayed(cluster.natsd.urls, cluster.layout.shards)
        assert asyncio.get_running_loop().time() < deadline, f"fund never settled: {book.pending} {book.granted}"
        await asyncio.sleep(0.3)


def assert_conserved(book, shards: dict) -> None:
    changes = sum(s["changes"] for s in shards.values())
    floats = {name: (s["float"], s["refs"]) for name, s in shards.items()}
    assert venue_total(book, floats) == VENUE_FUND + changes
    for name, s in shards.items():
        assert len(s["refs"]) == len(set(s["refs"])), name  # no transfer applied twice
        if not book.pending:  # settled: the float is what the journal granted less swept, plus its changes
            assert s["float"] == book.granted.get(name, 0) + s["changes"], name


def name_on(layout, shard: str, tag: str) -> str:
    return next(f"{tag}{i}" for i in range(10_000) if layout.shard_for_new(f"{tag}{i}") == shard)


async def liquidate(v: Venue, name: str) -> None:
    """A 10x isolated long of 1 BTC at 60,000 taken over at 54,000 and unwound at a 53,400 mark: the
    shard's float pays 600 (bankruptcy 54,000, no bid above 50,000 to fill the liquidation order)."""
    v.accounts[name] = await v.admin("POST", "/sim/v1/accounts", {"name": name, "deposit": "100000"})
    await v.admin("POST", "/sim/v1/market", {"force": True, "events": [
        {"type": "book", "symbol": "BTCUSDT", "bids": [["59990", "20"]], "asks": [["60000", "20"]]},
        {"type": "mark", "symbol": "BTCUSDT", "price": "60000", "index": "60000"}]})
    c = ccxt_async.binanceusdm(ccxt_config(v.url(), v.accounts[name]["apiKey"], v.accounts[name]["apiSecret"]))
    try:
        await c.load_markets()
        await c.set_margin_mode("isolated", BTC)
        await c.set_leverage(10, BTC)
        await c.create_order(BTC, "market", "buy", 1)
    finally:
        await c.close()
    await v.admin("POST", "/sim/v1/market", {"force": True, "events": [  # a gap, on purpose
        {"type": "book", "symbol": "BTCUSDT", "bids": [["50000", "5"]], "asks": [["50100", "5"]]},
        {"type": "mark", "symbol": "BTCUSDT", "price": "53400"}]})


async def test_a_drained_float_is_granted_and_the_venue_total_is_conserved(cluster):
    layout = cluster.layout
    book, shards = await settled(cluster)
    assert all(book.granted.get(s) == FLOAT for s in layout.shards)  # every float granted at start
    assert book.balance == VENUE_FUND - 3 * FLOAT
    assert_conserved(book, shards)
    shard = layout.shards[1]
    async with aiohttp.ClientSession() as session:
        v = Venue(cluster.gateway_urls, cluster.admin_token, session)
        await liquidate(v, name_on(layout, shard, "drain"))
        book, shards = await settled(cluster, want=lambda b: b.granted.get(shard, 0) > FLOAT)
        assert shards[shard]["changes"] == -F("600")  # the takeover, paid from the float ...
        assert book.granted[shard] == FLOAT + F("600") and shards[shard]["float"] == FLOAT  # ... and refilled
        assert book.balance == VENUE_FUND - 3 * FLOAT - F("600")
        assert_conserved(book, shards)
        for url in cluster.gateway_urls:  # both gateways report the venue's fund
            fund = await v.admin("GET", "/sim/v1/insurance-fund", url=url)
            assert F(fund["balance"]) == VENUE_FUND - F("600"), url
    await same_state_from_snapshot_and_from_scratch(cluster)


def every_value(ex) -> bytes:
    """The core's whole state as bytes, every value written out where it occurs. (A snapshot's
    pickle writes an object met before as a reference to it: two equal strings that are one object
    in a fresh core and two in a restored one would pickle differently for the same state.)"""
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.fast = True  # no memo (a cycle would raise, not pass)
    pickler.dump(ex)
    return out.getvalue()


async def same_state_from_snapshot_and_from_scratch(cluster) -> None:
    """Determinism: each shard's last snapshot + the rest of its stream (what a standby restores)
    and a fresh core fed the whole stream are the same state, value for value. 60 repeats of the
    current mark first (distinct index prices: the market stream drops a repeated event), so every
    shard has written a snapshot (every 50 inputs here)."""
    async with aiohttp.ClientSession() as session:
        v = Venue(cluster.gateway_urls, cluster.admin_token, session)
        async with session.get(cluster.gateway_urls[0] + "/fapi/v1/premiumIndex?symbol=BTCUSDT") as r:
            price = (await r.json())["markPrice"]
        await v.admin("POST", "/sim/v1/market", {"force": True, "events": [
            {"type": "mark", "symbol": "BTCUSDT", "price": price, "index": str(40_000 + i)} for i in range(60)]})
    await asyncio.sleep(1.0)  # the object store write follows the batch
    nc = await nats.connect(servers=cluster.natsd.urls)
    try:
        js = nc.jetstream()
        store = await js.object_store(SNAPSHOT_STORE)
        for shard in cluster.layout.shards:
            replica = ShardReplica(js, store, cluster.layout, shard, exchange_factory(SYMBOLS))
            await replica.restore()
            assert replica.snapshot_seq > 0, shard  # the restore path really starts from a snapshot
            await replica.catch_up()
            fresh = exchange_factory(SYMBOLS)()
            for seq, msg in await journal(cluster.natsd.urls, shard):
                if seq <= replica.applied_seq:
                    fresh.apply(msg)
            assert fresh.snapshot().partition(b"\n")[0] == replica.ex.snapshot().partition(b"\n")[0]  # format
            assert every_value(fresh) == every_value(replica.ex), shard
    finally:
        await nc.close()


async def adl_script(v: Venue, names: dict[str, str]) -> None:
    """A 10x isolated long of 1 BTC at 60,000 gapped through its 54,000 bankruptcy price (mark
    50,050: a 3,950 loss, more than a 1,000 float) with three profitable shorts: "winner" (rank 1),
    "small" (more margin: rank 2) and "third" (far more margin, and on the loser's shard: last)."""
    await v.admin("POST", "/sim/v1/market", {"force": True, "events": [
        {"type": "book", "symbol": "BTCUSDT", "bids": [["59990", "20"]], "asks": [["60000", "20"]]},
        {"type": "mark", "symbol": "BTCUSDT", "price": "60000", "index": "60000"}]})
    plan = (("winner", "10000", "sell", 0.6, "cross"), ("small", "100000", "sell", 0.6, "cross"),
            ("third", "1000000", "sell", 0.3, "cross"), ("loser", "10000", "buy", 1, "isolated"))
    for role, deposit, side, qty, mode in plan:
        name = names[role]
        v.accounts[name] = await v.admin("POST", "/sim/v1/accounts", {"name": name, "deposit": deposit})
        c = ccxt_async.binanceusdm(ccxt_config(v.url(), v.accounts[name]["apiKey"], v.accounts[name]["apiSecret"]))
        try:
            await c.load_markets()
            if mode == "isolated":
                await c.set_margin_mode(mode, BTC)
            await c.set_leverage(10, BTC)
            await c.create_order(BTC, "market", side, qty)
        finally:
            await c.close()
    await v.admin("POST", "/sim/v1/market", {"force": True, "events": [
        {"type": "book", "symbol": "BTCUSDT", "bids": [["50000", "5"]], "asks": [["50100", "5"]]},
        {"type": "mark", "symbol": "BTCUSDT", "price": "50050"}]})


async def test_a_liquidation_on_one_shard_is_deleveraged_on_the_others_in_venue_rank_order(cluster):
    layout = cluster.layout
    s_a, s_b, s_c = layout.shards
    names = {"loser": name_on(layout, s_a, "adl-loser"), "third": name_on(layout, s_a, "adl-third"),
             "winner": name_on(layout, s_b, "adl-winner"), "small": name_on(layout, s_c, "adl-small")}
    # the reference: a single node whose whole fund is one float (1,000), ranking every account itself
    async with running_sim(symbols=SYMBOLS, config=ExchangeConfig(insurance_fund=FLOAT)) as sim, \
            aiohttp.ClientSession() as session:
        single = Venue([sim.url], sim.admin_token, session)
        await adl_script(single, names)
        ids = {a["accountId"]: n for n, a in single.accounts.items()}
        rows = (await single.admin("GET", "/sim/v1/events?type=adl&limit=100"))["events"]
        expected = [(ids[r["account"]], r["qty"], r["price"]) for r in rows]
    assert [n for n, _, _ in expected] == [names["winner"], names["small"]]  # the venue's rank order
    await settled(cluster)
    async with aiohttp.ClientSession() as session:
        v = Venue(cluster.gateway_urls, cluster.admin_token, session)
        await adl_script(v, names)
        ids = {a["accountId"]: n for n, a in v.accounts.items()}

        deadline = asyncio.get_running_loop().time() + 30
        while True:
            shards = await replayed(cluster.natsd.urls, layout.shards)
            if any(isinstance(e, m.AdlClaimClosed) and ids.get(e.account) == names["loser"]
                   for e in shards[s_a]["adl"]):
                break
            assert asyncio.get_running_loop().time() < deadline, shards[s_a]["adl"]
            await asyncio.sleep(0.5)
        rows = (await v.admin("GET", "/sim/v1/events?type=adl&limit=1000"))["events"]
    (claim,) = [e for e in shards[s_a]["adl"] if isinstance(e, m.AdlClaim) and ids.get(e.account) == names["loser"]]
    parts = sorted((int(msg.ref.rsplit(":", 1)[1]), ids[msg.account], msg.qty) for s in shards.values()
                   for msg in s["adl"] if isinstance(msg, m.AutoDeleverage) and msg.ref.startswith(f"{s_a}:{claim.claim}:"))
    assert [(name, qty) for _, name, qty in parts] == [(n, F(q)) for n, q, _ in expected]  # rank order, venue-wide
    assert [ids.get(r["account"]) for r in rows if ids.get(r["account"])] == [n for n, _, _ in expected]
    assert [(ids[r["account"]], r["qty"], r["price"]) for r in rows if r["account"] in ids] == expected
    (close,) = [e for e in shards[s_a]["adl"] if isinstance(e, m.AdlClaimClosed) and e.claim == claim.claim]
    assert (close.qty, close.change) == (0, 0)  # filled: the float paid nothing
    book, shards = await settled(cluster)
    assert_conserved(book, shards)
    await same_state_from_snapshot_and_from_scratch(cluster)


async def journal_intent(nc, op: str, shard: str, amount: int) -> str:
    """Journal a transfer intent as a fund leader would, then 'crash' (nothing more); its ref."""
    js = nc.jetstream()
    last = (await js.stream_info(FUND_STREAM)).state.last_seq
    ref = f"fund-{last + 1}"
    await js.publish(FUND_SUBJECT, msgspec.json.encode(FundEntry(op, ref, shard, amount)), stream=FUND_STREAM,
                     headers={EXPECTED_LAST_SEQ: str(last)})
    return ref


async def test_fund_leader_killed_mid_transfer_nothing_doubled_or_lost(cluster):
    layout = cluster.layout
    await settled(cluster)
    leader = await cluster.fund_holder()
    assert leader is not None
    leader.kill()  # the standby takes the lease and grants the next drained float
    async with aiohttp.ClientSession() as session:
        v = Venue(cluster.gateway_urls, cluster.admin_token, session)
        shard = layout.shards[2]
        before = (await fund_book(cluster.natsd.urls)).granted.get(shard, 0)
        await liquidate(v, name_on(layout, shard, "kill"))
        book, shards = await settled(cluster, want=lambda b: b.granted.get(shard, 0) > before)
        assert_conserved(book, shards)
    standby = await cluster.fund_holder()
    assert standby is not None and standby is not leader
    # both members gone; the crashed leader left: A) a grant journaled, never sent; B) a grant
    # journaled and applied by the shard, its "done" never journaled; C) the same for a sweep
    standby.kill()
    s_a, s_b, s_c = layout.shards
    nc = await nats.connect(servers=cluster.natsd.urls)
    try:
        ref_a = await journal_intent(nc, GRANT, s_a, F("111"))
        ref_b = await journal_intent(nc, GRANT, s_b, F("222"))
        ref_c = await journal_intent(nc, SWEEP, s_c, F("100"))
        for ref, shard, amount in ((ref_b, s_b, F("222")), (ref_c, s_c, -F("100"))):
            msg = m.InsuranceFundTransfer(ts=1_700_000_000_000, amount=amount, ref=ref)
            reply = await nc.request(ShardNames(shard).command_subject, m.dumps(msg).encode(), timeout=5,
                                     headers={REQUEST: ref})
            assert b"InsuranceFundTransferred" in reply.data
    finally:
        await nc.close()
    mid = await fund_book(cluster.natsd.urls)
    assert set(mid.pending) == {ref_a, ref_b, ref_c}
    assert_conserved(mid, await replayed(cluster.natsd.urls, layout.shards))  # in transit, counted once
    leader.start()  # a cold member settles the three from the journal
    book, shards = await settled(cluster)
    for ref, shard in ((ref_a, s_a), (ref_b, s_b), (ref_c, s_c)):
        assert shards[shard]["refs"].count(ref) == 1, ref
    assert book.balance == mid.balance + F("100")  # A's and B's debits stand (journaled first); C credited
    assert_conserved(book, shards)
    standby.start()


async def test_a_shard_leader_killed_mid_transfer(cluster):
    layout = cluster.layout
    await settled(cluster)
    for member in cluster.funds:
        member.kill()
    shard = layout.shards[0]
    nc = await nats.connect(servers=cluster.natsd.urls)
    try:
        ref = await journal_intent(nc, GRANT, shard, F("50"))
    finally:
        await nc.close()
    leader = await cluster.lease_holder(shard)
    assert leader is not None
    leader.kill()
    for member in cluster.funds:
        member.start()  # the service asks a shard that is failing over until its standby answers
    book, shards = await settled(cluster, timeout=45)
    assert shards[shard]["refs"].count(ref) == 1
    assert_conserved(book, shards)
    assert await cluster.lease_holder(shard) not in (None, leader)
    leader.start()


async def test_adl_coordinator_killed_mid_claim_continues_from_the_journals(cluster):
    layout = cluster.layout
    s_a, s_b, s_c = layout.shards
    await settled(cluster)
    for member in cluster.funds:
        member.kill()  # no coordinator: the next claim stays open
    names = {"loser": name_on(layout, s_a, "adk-loser"), "third": name_on(layout, s_a, "adk-third"),
             "winner": name_on(layout, s_b, "adk-winner"), "small": name_on(layout, s_c, "adk-small")}
    async with aiohttp.ClientSession() as session:
        v = Venue(cluster.gateway_urls, cluster.admin_token, session)
        await adl_script(v, names)
        ids = {a["accountId"]: n for n, a in v.accounts.items()}
    loser = v.accounts[names["loser"]]["accountId"]
    shards = await replayed(cluster.natsd.urls, layout.shards)
    (claim,) = [e for e in shards[s_a]["adl"] if isinstance(e, m.AdlClaim) and e.account == loser]
    key = f"{s_a}:{claim.claim}"
    assert claim.claim in shards[s_a]["core"].liquidation.claims.open_claims  # open: the window
    assert not [x for s in shards.values() for x in s["adl"] if isinstance(x, m.AutoDeleverage)
                and x.ref.startswith(key + ":")]
    # the crashed coordinator had sent part 1 (the winner's 0.6) and died before the rest
    winner = v.accounts[names["winner"]]["accountId"]
    nc = await nats.connect(servers=cluster.natsd.urls)
    try:
        part = m.AutoDeleverage(ts=1_700_000_000_000, account=winner, symbol="BTCUSDT", side=claim.side,
                                position_side="BOTH", qty=F("0.6"), price=claim.price, counterparty=loser,
                                ref=f"{key}:1")
        reply = await nc.request(ShardNames(s_b).command_subject, m.dumps(part).encode(), timeout=5,
                                 headers={REQUEST: part.ref})
        assert b'"Adl"' in reply.data
    finally:
        await nc.close()
    for member in cluster.funds:
        member.start()
    deadline = asyncio.get_running_loop().time() + 45
    while True:
        shards = await replayed(cluster.natsd.urls, layout.shards)
        closes = [e for e in shards[s_a]["adl"] if isinstance(e, m.AdlClaimClosed) and e.claim == claim.claim]
        if closes:
            break
        assert asyncio.get_running_loop().time() < deadline, "the claim was never settled"
        await asyncio.sleep(0.5)
    parts = sorted((int(x.ref.rsplit(":", 1)[1]), x.account, x.qty) for s in shards.values() for x in s["adl"]
                   if isinstance(x, m.AutoDeleverage) and x.ref.startswith(key + ":"))
    assert [n for n, _, _ in parts] == list(range(1, len(parts) + 1))  # every part once, none redone
    assert parts[0][1:] == (winner, F("0.6")) and winner not in [a for _, a, _ in parts[1:]]
    closed = sum(qty for s in shards.values() for ref, qty in s["core"].liquidation.claims.parts.items()
                 if ref.startswith(key + ":"))
    assert closed == claim.qty and closes[0].qty == 0  # the whole claim deleveraged, exactly
    adl_events = [e for s in shards.values() for e in s["adl"] if isinstance(e, m.Adl) and e.counterparty == loser]
    assert sum(e.qty for e in adl_events) == claim.qty
    assert [e.account for e in adl_events].count(winner) == 1
    assert ids[winner] == names["winner"]
    book, shards = await settled(cluster)
    assert_conserved(book, shards)

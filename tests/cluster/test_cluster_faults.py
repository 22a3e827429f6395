"""Faults under load: SIGKILL a shard leader (twice), SIGKILL a NATS node, SIGKILL a gateway.

Bots (tests/cluster/load.py) keep placing resting orders through both gateways while a process
is killed. Afterwards every acknowledged order must be open (nothing lost), no input may have
been applied twice (each shard's journal is read back and replayed into a fresh core), and both
gateways must answer the same. Each test prints its figures: kills, acknowledged actions, lost,
duplicated, and the takeover time (kill -> first acknowledged order on the killed part).
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import ccxt
import nats
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import NoKeysError

from exchange_sim.cluster.layout import KEY_BUCKET
from exchange_sim.cluster.processes import exchange_factory
from tests.cluster.conftest import SYMBOLS, needs_nats
from tests.cluster.load import Bot, duplicated, inputs

pytestmark = needs_nats

BOTS_PER_SHARD = 2


async def make_bots(cluster, session, tag: str) -> list[Bot]:
    layout = cluster.layout
    h = {"Authorization": f"Bearer {cluster.admin_token}"}
    url = cluster.gateway_urls[-1]
    async with session.post(url + "/sim/v1/market", headers=h, json={"events": [
            {"type": "book", "symbol": "BTCUSDT", "bids": [["59990", "50"]], "asks": [["60000", "50"]]},
            {"type": "mark", "symbol": "BTCUSDT", "price": "60000", "index": "60000"}]}) as r:
        assert r.status == 200, await r.text()
    wanted = {s: BOTS_PER_SHARD for s in layout.shards}
    bots = []
    i = 0
    while any(wanted.values()):
        i += 1
        name = f"{tag}{i}"
        shard = layout.shard_for_new(name)
        if not wanted[shard]:
            continue
        wanted[shard] -= 1
        for attempt in range(40):  # a 503 "try again" while the cluster settles after an earlier test's
            async with session.post(url + "/sim/v1/accounts", headers=h,  # NATS node restart: retried
                                    json={"name": name, "deposit": "100000"}) as r:
                account = await r.json()
            if r.status != 503 or attempt == 39:
                break
            await asyncio.sleep(0.5)
        assert r.status == 200, account
        bots.append(Bot(name, account, cluster.gateway_urls, len(bots) % len(cluster.gateway_urls), shard))
    await wait_keys_everywhere(cluster, session, bots)
    return bots


async def wait_keys_everywhere(cluster, session, bots) -> None:
    """API keys reach the other gateways through the KV watch: wait until every gateway knows them."""
    for bot in bots:
        for url in cluster.gateway_urls:
            for _ in range(100):
                async with session.post(url + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": bot.account["apiKey"]}) as r:
                    if r.status == 200:
                        break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError(f"{url} never learnt {bot.name}'s key")


async def open_ids_read(bot: Bot, url: str, slow_reads: list[float]) -> list[str]:
    """``bot``'s open client ids through the gateway at ``url``. Right after a NATS node is killed a
    read can outlast the ccxt client's timeout while the shard members reconnect and JetStream
    re-elects (a gateway retries a read for up to 15 s): retried, bounded, and counted."""
    started = time.monotonic()
    for attempt in range(6):
        try:
            ids = await bot.open_client_ids(url)
        except (ccxt.RequestTimeout, ccxt.ExchangeNotAvailable):
            if attempt == 5:
                raise
            continue
        if attempt:
            slow_reads.append(round(time.monotonic() - started, 1))
        return ids
    raise AssertionError("unreachable")


async def verify(cluster, bots: list[Bot], label: str, kills: int, takeover: float | None) -> dict:
    acknowledged = sum(len(b.acknowledged) for b in bots)
    lost = 0
    slow_reads: list[float] = []  # seconds a verification read took when it needed retries
    for bot in bots:
        # both gateways answer the same (each asks the account's shard; a standby that answers
        # may be a few inputs late for a moment after a NATS node kill): bounded wait, then the check
        for _ in range(50):
            open_ids = [await open_ids_read(bot, url, slow_reads) for url in cluster.gateway_urls]
            if open_ids[0] == open_ids[1]:
                break
            await asyncio.sleep(0.1)
        assert open_ids[0] == open_ids[1], bot.name
        missing = set(bot.acknowledged) - set(open_ids[0])
        lost += len(missing)
        assert len(open_ids[0]) == len(set(open_ids[0]))
    dup = 0
    for shard in cluster.layout.shards:
        dup += duplicated(await inputs(cluster.natsd.urls, shard), exchange_factory(SYMBOLS))
    figures = {"kills": kills, "acknowledged": acknowledged, "lost": lost, "duplicated": dup,
               "takeover_s": None if takeover is None else round(takeover, 3),
               "client_retries": sum(b.failures for b in bots), "gateway_switches": sum(b.switches for b in bots),
               "slow_verification_reads_s": slow_reads}
    print(f"\nFAULT {label}: {figures}")
    assert lost == 0
    assert dup == 0
    assert acknowledged > 0
    return figures


async def run_load(bots: list[Bot], seconds_before: float, fault, seconds_after: float,
                   recovered: tuple[str, ...] = ()) -> float:
    """Run the bots, call ``fault()`` after ``seconds_before``; the kill's monotonic time. The load
    goes on ``seconds_after`` the kill, and longer (up to 60 s) until the bots of every shard in
    ``recovered`` have an order acknowledged after the kill."""
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(b.run(stop)) for b in bots]
    try:
        for _ in range(400):  # bounded (20 s): every bot is trading before the clock starts
            if all(b.acknowledged for b in bots):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(seconds_before)
        killed_at = time.monotonic()
        await fault()
        await asyncio.sleep(seconds_after)
        for _ in range(600):
            if all(first_ack_after(bots, killed_at, shard) is not None for shard in recovered):
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for b in bots:
            await b.close()
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
    return killed_at


def first_ack_after(bots: list[Bot], t: float, shard: str | None = None) -> float | None:
    """The takeover time: the longest pause in acknowledgements (of ``shard``'s accounts) that
    ends after the kill at ``t``; None if nothing was acknowledged after it."""
    times = sorted(x for b in bots if shard is None or b.shard == shard for x in b.ack_times)
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False) if later > t]
    if not gaps:
        return None
    return max(gaps)


async def test_shard_leader_sigkill_twice(cluster):
    async with aiohttp.ClientSession() as session:
        bots = await make_bots(cluster, session, "lk")
    shard = cluster.layout.shards[1]
    first = await cluster.lease_holder(shard)
    assert first is not None

    async def kill_first():
        first.kill()

    killed_at = await run_load(bots, 1.5, kill_first, 4.0, recovered=(shard,))
    takeover = first_ack_after(bots, killed_at, shard)
    second = await cluster.lease_holder(shard)
    assert second is not None and second is not first  # the standby leads now
    figures = await verify(cluster, bots, "shard leader SIGKILL", 1, takeover)

    # the killed member comes back cold: it restores the last snapshot and replays the journal;
    # then the second leader is killed and the first takes over again from what it rebuilt
    journal = await inputs(cluster.natsd.urls, shard)
    assert len(journal) >= 50  # so the shard has written a snapshot (every 50 inputs in these tests)
    first.start()
    await asyncio.sleep(3.0)
    async with aiohttp.ClientSession() as session:  # new accounts: the venue allows 200 open orders per symbol
        bots = await make_bots(cluster, session, "lk2-")

    async def kill_second():
        second.kill()

    killed_at = await run_load(bots, 1.0, kill_second, 4.0, recovered=(shard,))
    assert await cluster.lease_holder(shard) is first
    again = await verify(cluster, bots, "restarted member takes over after a second SIGKILL", 1,
                         first_ack_after(bots, killed_at, shard))
    assert "restored snapshot" in first.log_text()
    second.start()  # leave the shard with a standby for the next test
    assert figures["lost"] == again["lost"] == 0


async def test_nats_node_sigkill(cluster):
    async with aiohttp.ClientSession() as session:
        bots = await make_bots(cluster, session, "nk")

    async def kill_node():
        cluster.natsd.kill(0)

    killed_at = await run_load(bots, 1.5, kill_node, 5.0, recovered=cluster.layout.shards)
    stalls = [first_ack_after(bots, killed_at, s) for s in cluster.layout.shards]
    assert all(s is not None for s in stalls)  # every shard carried on
    await verify(cluster, bots, "NATS node SIGKILL", 1, max(stalls))
    cluster.natsd.start_node(0)


async def test_gateway_sigkill(cluster):
    async with aiohttp.ClientSession() as session:
        bots = await make_bots(cluster, session, "gk")
        watched = next(b for b in bots if b.gateway == 0)
        gw0, gw1 = cluster.gateway_urls[:2]
        async with session.post(gw0 + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": watched.account["apiKey"]}) as r:
            listen_key = (await r.json())["listenKey"]
        ws = await session.ws_connect(f"{gw0.replace('http', 'ws')}/ws/{listen_key}")
        await asyncio.sleep(0.3)  # the server registers the stream right after the handshake

        async def kill_gateway():
            cluster.kill_gateway(0)

        killed_at = await run_load(bots, 1.5, kill_gateway, 3.0)
        moved = [b for b in bots if b.switches]
        assert moved  # the bots on gateway 0 reconnected to gateway 1 ...
        assert all(any(t > killed_at for t in b.ack_times) for b in moved)  # ... and carried on there
        figures = await verify_one_gateway(cluster, bots, killed_at)
        assert figures["lost"] == 0

        # the user-data stream that was on gateway 0 reconnects to gateway 1 with the same listenKey
        before = 0
        while (await ws.receive(5)).type == aiohttp.WSMsgType.TEXT:  # the frames of before the kill, then the end
            before += 1
        assert before > 0
        ws = await session.ws_connect(f"{gw1.replace('http', 'ws')}/ws/{listen_key}")
        await asyncio.sleep(0.3)
        watched.gateway = 1
        await watched.place(10_000, time.monotonic() + 20)
        await watched.close()
        assert watched.acknowledged[-1] == f"{watched.name}-10000"
        frame = None
        while frame is None or frame.get("e") != "ORDER_TRADE_UPDATE":
            frame = json.loads((await ws.receive(15)).data)
        assert frame["o"]["c"] == f"{watched.name}-10000"
        await ws.close()
    cluster.gateways[0].start()


async def verify_one_gateway(cluster, bots, killed_at):
    acknowledged = sum(len(b.acknowledged) for b in bots)
    lost = 0
    for bot in bots:
        open_ids = await bot.open_client_ids(cluster.gateway_urls[1])
        lost += len(set(bot.acknowledged) - set(open_ids))
    dup = sum([duplicated(await inputs(cluster.natsd.urls, s), exchange_factory(SYMBOLS)) for s in cluster.layout.shards])
    figures = {"kills": 1, "acknowledged": acknowledged, "lost": lost, "duplicated": dup,
               "takeover_s": first_ack_after([b for b in bots if b.switches], killed_at),
               "gateway_switches": sum(b.switches for b in bots)}
    print(f"\nFAULT gateway SIGKILL: {figures}")
    assert dup == 0
    return figures


async def test_a_gateway_started_after_the_load_answers_at_once(cluster):
    """After the fault tests' load (thousands of journaled inputs) a new gateway process is ready as
    soon as it has the key, placement and market data (it rebuilds no shard) and answers every
    account's open orders exactly as the gateway that served them."""

    journaled = sum([len(await inputs(cluster.natsd.urls, s)) for s in cluster.layout.shards])
    assert journaled >= 1000, journaled
    started = time.monotonic()
    late = cluster.add_gateway()
    ready_s = time.monotonic() - started
    served = cluster.gateway_urls[1]
    async with aiohttp.ClientSession() as session:
        async with session.get(served + "/sim/v1/accounts", headers={"Authorization": f"Bearer {cluster.admin_token}"}) as r:
            listed = await r.json()
        nc = await nats.connect(servers=cluster.natsd.urls)
        try:
            keys = await nc.jetstream().key_value(KEY_BUCKET)
            for attempt in range(20):  # the bucket's replica on the NATS node restarted by an earlier
                try:                   # test may still be catching up: its listing can come back empty
                    names = await keys.keys()
                    break
                except (NoKeysError, NatsTimeout):
                    if attempt == 19:
                        raise
                    await asyncio.sleep(0.5)
            secrets = {}
            for key in names:
                data = json.loads((await keys.get(key)).value)
                secrets[data["account"]] = (key, data["secret"])
        finally:
            await nc.close()
    compared = 0
    for row in listed:
        if row["accountId"] not in secrets:
            continue
        key, secret = secrets[row["accountId"]]
        bot = Bot(row["name"], {"apiKey": key, "apiSecret": secret}, [served, late], 0, "")
        seen = [await bot.open_client_ids(url) for url in (served, late)]
        assert seen[0] == seen[1], row["name"]
        compared += bool(seen[0])
    print(f"\nLATE GATEWAY: ready {ready_s:.2f} s after {journaled} journaled inputs; {compared} accounts' "
          "open orders compared")
    assert compared >= 6

"""A core bug refuses its input for good: the journal says so, live state equals recovered state.

``FaultyExchange`` is the real core with one injected fault: on a chosen input it applies the
input (so the core really is half-changed, the worst case) and then raises. The node must refuse
that input (``InputRefused``; the API answers −1000), rebuild its core without it, keep serving,
and a restart, with the buggy core or a fixed one, must give exactly the live state.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from exchange_sim.api import ApiConfig, ApiServer, RateLimits
from exchange_sim.core import messages as m
from exchange_sim.core.exchange import Exchange
from exchange_sim.core.fixed import to_fixed
from exchange_sim.journal import Journal, JournalConfig, compare_session, recover
from exchange_sim.runtime import InputRefused, Node
from tests.support.journal_session import genesis, observable_state

F = to_fixed
GROUP = JournalConfig(snapshot_every=5, keep_snapshots=2, group_commit=True)


class FaultyExchange(Exchange):
    """The real core, raising after it applied an input whose ``ts`` is in ``poison_ts``.

    ``one_shot``: each poisoned ts raises once (a transient fault), so a retry or a replay of the
    same input would go through; otherwise it raises every time (a deterministic bug).
    """

    poison_ts: set[int] = set()
    one_shot = False

    def apply(self, msg: object) -> list:
        events = super().apply(msg)
        ts = getattr(msg, "ts", None)
        if ts in FaultyExchange.poison_ts:
            if FaultyExchange.one_shot:
                FaultyExchange.poison_ts.discard(ts)
            raise RuntimeError(f"injected core fault on ts={ts}")
        return events


@pytest.fixture(autouse=True)
def _reset_faults():
    FaultyExchange.poison_ts = set()
    FaultyExchange.one_shot = False
    yield
    FaultyExchange.poison_ts = set()


def faulty_genesis() -> FaultyExchange:
    plain = genesis()
    return FaultyExchange(plain.instruments, plain.config)


async def start(journal: Journal) -> Node:
    exchange, _ = recover(journal, faulty_genesis, exchange_type=FaultyExchange)
    node = Node(exchange, journal)
    node.add_listener(journal.record)
    await node.start()
    return node


def account(ts: int, name: str, deposit: str) -> m.CreateAccount:
    return m.CreateAccount(ts=ts, name=name, deposit=F(deposit), api_key=name[0] * 64, api_secret=name[0] * 64)


def wallet(exchange: Exchange, aid: int) -> int:
    return exchange.account_view(aid).wallet_balance


async def test_a_deterministic_core_bug_is_refused_and_recovery_reproduces_the_live_state(tmp_path, caplog):
    db = tmp_path / "s.db"
    FaultyExchange.poison_ts = {1003}
    journal = Journal(db, GROUP)
    node = await start(journal)
    await node.submit(account(1000, "alice", "100"))
    await node.submit(m.Deposit(ts=1001, account=1, amount=F("1")))
    await node.submit(m.Deposit(ts=1002, account=1, amount=F("0.00000001")))
    with caplog.at_level(logging.ERROR, logger="exchange_sim.runtime.node"):
        with pytest.raises(InputRefused):
            await node.submit(m.Deposit(ts=1003, account=1, amount=F("13")))
    traceback = [r for r in caplog.records if "exchange.apply raised" in r.getMessage()]
    assert traceback and traceback[0].exc_info is not None  # the traceback is in the log
    assert wallet(node.exchange, 1) == F("101.00000001")  # the half-applied deposit is gone
    # the node keeps serving, with the same core type
    await node.submit(m.Deposit(ts=1004, account=1, amount=F("2")))
    assert isinstance(node.exchange, FaultyExchange) and node.refused == 1
    live = observable_state(node.exchange)
    refused_seq = 4  # CreateAccount, Deposit, Deposit, then the poisoned Deposit
    assert journal.refused_seqs() == {refused_seq}
    await node.stop()
    journal.close()
    # restart with the same buggy core: no JournalCorruptError, the same state
    with Journal(db, GROUP) as again:
        recovered, next_seq = recover(again, exchange_type=FaultyExchange)
        assert next_seq == 6 and observable_state(recovered) == live
    # the bug fixed in between: the refused deposit is still not applied
    FaultyExchange.poison_ts = set()
    with Journal(db, GROUP) as again:
        fixed, _ = recover(again, exchange_type=Exchange)
        assert observable_state(fixed) == live and wallet(fixed, 1) == F("103.00000001")
    assert compare_session(db).identical  # the event log is the replay's, byte for byte


async def test_a_refusal_inside_a_batch_keeps_the_inputs_around_it(tmp_path):
    db = tmp_path / "s.db"
    journal = Journal(db, GROUP)
    node = await start(journal)
    await node.submit(account(1000, "alice", "100"))
    for i in range(7):  # past a snapshot, so the rebuild starts from one
        await node.submit(m.Deposit(ts=1001 + i, account=1, amount=F("1")))
    FaultyExchange.poison_ts = {2001}
    results = await asyncio.gather(*(node.submit(m.Deposit(ts=2000 + i, account=1, amount=F(str(10 ** i))))
                                     for i in range(4)), return_exceptions=True)
    assert [isinstance(r, InputRefused) for r in results] == [False, True, False, False]
    assert wallet(node.exchange, 1) == F("107") + F("1") + F("100") + F("1000")
    live = observable_state(node.exchange)
    await node.stop()
    journal.close()
    with Journal(db, GROUP) as again:
        recovered, _ = recover(again, exchange_type=FaultyExchange)
        assert observable_state(recovered) == live


async def test_the_api_answers_minus_1000_and_a_retrying_client_gets_its_deposit_once(tmp_path):
    """A transient fault (raises once): the client's retry goes through, applied exactly once."""
    db = tmp_path / "s.db"
    journal = Journal(db, GROUP)
    node = await start(journal)
    now = [1_722_800_000_000]
    server = ApiServer(node, ApiConfig(port=0, admin_token="t", rate_limits=RateLimits(10**5, 10**5, 10**5)),
                       clock=lambda: now[0], announce=None)
    await server.start()
    auth = {"Authorization": "Bearer t"}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(server.url + "/sim/v1/accounts", json={"name": "bob", "deposit": "100"},
                                 headers=auth) as resp:
                aid = (await resp.json())["accountId"]
            FaultyExchange.poison_ts, FaultyExchange.one_shot = {now[0] + 1}, True
            answers = []
            for _attempt in range(2):  # the client retries after the refusal
                now[0] += 1
                async with http.post(f"{server.url}/sim/v1/accounts/{aid}/deposit", json={"amount": "13"},
                                     headers=auth) as resp:
                    answers.append((resp.status, await resp.json()))
            async with http.get(f"{server.url}/sim/v1/accounts/{aid}", headers=auth) as resp:
                assert resp.status == 200  # still serving
    finally:
        await server.stop()
        await node.stop()
    (status1, body1), (status2, _) = answers
    assert status1 == 400 and body1["code"] == -1000 and "refused" in body1["msg"]
    assert status2 == 200
    live = observable_state(node.exchange)
    assert wallet(node.exchange, aid) == F("113")
    journal.close()
    with Journal(db, GROUP) as again:
        recovered, _ = recover(again, exchange_type=Exchange)
        assert observable_state(recovered) == live and wallet(recovered, aid) == F("113")


async def test_without_group_commit_the_refusal_is_stored_too(tmp_path):
    db = tmp_path / "s.db"
    FaultyExchange.poison_ts = {1001}
    journal = Journal(db, JournalConfig(snapshot_every=0))
    node = await start(journal)
    await node.submit(account(1000, "alice", "100"))
    with pytest.raises(InputRefused):
        await node.submit(m.Deposit(ts=1001, account=1, amount=F("5")))
    await node.submit(m.Deposit(ts=1002, account=1, amount=F("1")))
    live = observable_state(node.exchange)
    await node.stop()
    journal.close()
    with Journal(db) as again:
        recovered, _ = recover(again, exchange_type=FaultyExchange)
        assert observable_state(recovered) == live and wallet(recovered, 1) == F("101")

"""The runtime node: one consumer, journal before apply, ordered results, bounded fan-out."""

from __future__ import annotations

import asyncio

import pytest

from exchange_sim.core import messages as m
from exchange_sim.core.exchange import Exchange, ExchangeConfig
from exchange_sim.core.fixed import to_fixed
from exchange_sim.profiles import load_profile
from exchange_sim.runtime import InputRefused, Node, NodeStopped


class RecordingCore:
    """A stand-in core that records inputs (used only where a real Exchange can't show the point)."""

    def __init__(self, fail_on: object = None) -> None:
        self.applied: list = []
        self.fail_on = fail_on

    def apply(self, msg: object) -> list:
        if msg is self.fail_on:
            raise RuntimeError("core bug")
        self.applied.append(msg)
        return [("event-of", msg)]


class Journal:
    def __init__(self, fail_on: object = None) -> None:
        self.entries: list = []
        self.flushes = 0
        self.fail_on = fail_on

    def append(self, msg: object) -> None:
        if msg is self.fail_on:
            raise OSError("disk full")
        self.entries.append(msg)

    def flush(self) -> None:
        self.flushes += 1


def real_exchange() -> Exchange:
    return Exchange(load_profile(), ExchangeConfig())


async def test_submit_returns_the_events_of_a_real_command():
    node = Node(real_exchange())
    async with node:
        events = await node.submit(m.CreateAccount(ts=1, name="alice", deposit=to_fixed("100"),
                                                   api_key="k" * 64, api_secret="s" * 64))
        assert any(isinstance(e, m.AccountCreated) for e in events)
        rejected = await node.submit(m.Deposit(ts=2, account=99, amount=to_fixed("1")))
        assert len(rejected) == 1 and isinstance(rejected[0], m.CommandRejected)
    assert node.exchange.account_view(1).wallet_balance == to_fixed("100")


async def test_inputs_are_applied_in_submission_order_and_journaled_first():
    core, journal = RecordingCore(), Journal()
    node = Node(core, journal)
    await node.start()
    msgs = [object() for _ in range(50)]
    results = await asyncio.gather(*(node.submit(x) for x in msgs))
    await node.stop()
    assert core.applied == msgs
    assert journal.entries == msgs
    assert [r[0][1] for r in results] == msgs
    assert journal.flushes >= 1


async def test_journal_failure_rejects_the_input_and_does_not_apply_it():
    bad = object()
    core, journal = RecordingCore(), Journal(fail_on=bad)
    async with Node(core, journal) as node:
        first = object()
        await node.submit(first)
        with pytest.raises(OSError):
            await node.submit(bad)
        after = object()
        await node.submit(after)
    assert core.applied == [first, after]


async def test_core_exception_reaches_the_submitter_and_the_node_survives():
    bad = object()
    core = RecordingCore(fail_on=bad)
    async with Node(core) as node:
        with pytest.raises(InputRefused):
            await node.submit(bad)
        ok = object()
        assert await node.submit(ok) == [("event-of", ok)]


async def test_subscribers_get_every_applied_input_in_order():
    async with Node(RecordingCore()) as node:
        q = node.subscribe()
        msgs = [object() for _ in range(10)]
        for x in msgs:
            await node.submit(x)
        got = [q.get_nowait() for _ in range(10)]
        assert [g[0] for g in got] == msgs
        node.unsubscribe(q)
        await node.submit(object())
        assert q.empty()


async def test_a_slow_subscriber_is_dropped_and_counted_never_blocking_the_core():
    async with Node(RecordingCore()) as node:
        slow = node.subscribe(maxsize=3)
        fast = node.subscribe(maxsize=100)
        for _ in range(10):
            await node.submit(object())
        assert slow.qsize() == 3
        assert node.dropped(slow) == 7
        assert fast.qsize() == 10 and node.dropped(fast) == 0


async def test_listeners_run_before_the_submitter_resumes_and_errors_are_contained():
    seen = []

    def listener(msg, events):
        seen.append(msg)

    def broken(msg, events):
        raise ValueError("listener bug")

    async with Node(RecordingCore()) as node:
        node.add_listener(broken)
        node.add_listener(listener)
        x = object()
        await node.submit(x)
        assert seen == [x]
        node.remove_listener(listener)
        await node.submit(object())
        assert seen == [x]


async def test_submit_on_a_stopped_node_raises():
    node = Node(RecordingCore())
    with pytest.raises(NodeStopped):
        await node.submit(object())
    await node.start()
    await node.stop()
    with pytest.raises(NodeStopped):
        await node.submit(object())


async def test_stop_applies_what_was_queued_before_it():
    core = RecordingCore()
    node = Node(core)
    await node.start()
    futures = [asyncio.ensure_future(node.submit(object())) for _ in range(5)]
    await asyncio.sleep(0)
    await node.stop()
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert len(core.applied) == 5
    assert all(isinstance(r, list) for r in results)


class CommitLog(Journal):
    """A journal noting, at each commit, how many inputs were appended and how many submitters had resumed."""

    def __init__(self) -> None:
        super().__init__()
        self.resumed = 0
        self.commits: list[tuple[int, int]] = []  # (inputs appended so far, submitters resumed so far)

    def flush(self) -> None:
        super().flush()
        self.commits.append((len(self.entries), self.resumed))


async def test_a_lone_turns_first_input_commits_at_once_the_rest_share_one_commit_nobody_resumes_early():
    journal = CommitLog()
    core = RecordingCore()
    node = Node(core, journal)
    await node.start()
    q = node.subscribe()

    async def client(x: object) -> list:
        events = await node.submit(x)
        journal.resumed += 1
        return events

    msgs = [object() for _ in range(40)]
    results = await asyncio.gather(*(client(x) for x in msgs))  # all applied in one turn of the loop
    # the first alone (its client resumed at once), the other 39 in one group commit before any of them resumed
    assert journal.commits == [(1, 0), (40, 1)]
    assert [r[0][1] for r in results] == msgs and core.applied == msgs
    assert [q.get_nowait()[0] for _ in range(40)] == msgs
    await asyncio.gather(*(client(object()) for _ in range(40)))  # right after a busy turn: all 40 in one commit
    assert journal.commits[2:] == [(80, 40)]
    for i in range(6):  # one client at a time, some in a new loop turn: never acknowledged before its commit
        await client(object())
        if i % 2:
            await asyncio.sleep(0)
    assert [n for n, _ in journal.commits][-1] == 86
    for (_, resumed), (stored_before, _) in zip(journal.commits[1:], journal.commits, strict=False):
        assert resumed <= stored_before
    await node.stop()


async def test_a_lone_client_commits_at_once_without_suspending():
    journal = CommitLog()
    async with Node(RecordingCore(), journal) as node:
        await node.submit(object())
        await asyncio.sleep(0)  # a turn with one input: the next lone input is committed at once
        loop_turns = 0

        def count_turn() -> None:
            nonlocal loop_turns
            loop_turns += 1

        asyncio.get_running_loop().call_soon(count_turn)
        before = len(journal.commits)
        await node.submit(object())
        assert len(journal.commits) == before + 1 and loop_turns == 0  # committed, and no loop turn passed


async def test_a_batch_is_committed_at_max_batch_inputs():
    from exchange_sim.runtime.node import MAX_BATCH

    journal = CommitLog()
    async with Node(RecordingCore(), journal) as node:
        await asyncio.gather(*(node.submit(object()) for _ in range(MAX_BATCH + 10)))
        assert [n for n, _ in journal.commits] == [1, MAX_BATCH + 1, MAX_BATCH + 10]  # the first, then batches


async def test_an_input_submitted_while_a_batch_waits_for_its_commit_keeps_its_place():
    """A coroutine woken by a commit hook submits during the commit turn: applied after the batch, in order."""
    journal = CommitLog()
    core = RecordingCore()
    node = Node(core, journal)
    await node.start()
    later: list[asyncio.Task] = []
    node.add_commit_hook(lambda stored: later.append(asyncio.ensure_future(node.submit("after"))) if not later else None)
    first = [object() for _ in range(3)]
    await asyncio.gather(*(node.submit(x) for x in first))
    await later[0]
    assert core.applied == [*first, "after"]
    assert [n for n, _ in journal.commits] == [1, 4]  # the first at once; the rest and "after" together
    await node.stop()

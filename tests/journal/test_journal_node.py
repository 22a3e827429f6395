"""The journal behind the real runtime node: journaled before applied, refused when not stored."""

from __future__ import annotations

import asyncio

import pytest

from exchange_sim.core.fixed import to_fixed
from exchange_sim.core.messages import CreateAccount, PlaceOrder, dumps
from exchange_sim.journal import Journal, JournalWriteError, recover
from tests.support.journal_faults import fill_disk, make_read_only
from tests.support.journal_session import observable_state, reference_run, session_inputs, start_journaled_node

F = to_fixed


async def start_node(path):
    journal = Journal(path)
    _, node = await start_journaled_node(journal)
    return journal, node


async def test_node_session_recovers_to_the_same_state_and_event_log(tmp_path):
    inputs = session_inputs(seed=21, n=200)
    journal, node = await start_node(tmp_path / "s.db")
    returned = []
    for msg in inputs:
        returned.extend(await node.submit(msg))
    await node.stop()
    state = observable_state(node.exchange)
    journal.close()
    with Journal(tmp_path / "s.db") as reopened:
        recovered, next_seq = recover(reopened)
        assert next_seq == len(inputs) + 1
        assert observable_state(recovered) == state
        assert list(reopened.event_bodies()) == [dumps(e) for e in returned]
    assert [dumps(e) for e in reference_run(inputs)[1]] == [dumps(e) for e in returned]


@pytest.mark.parametrize("fault", [fill_disk, make_read_only], ids=["disk-full", "read-only"])
async def test_nothing_is_acknowledged_that_was_not_stored(tmp_path, fault):
    inputs = session_inputs(seed=4, n=60)
    journal, node = await start_node(tmp_path / "s.db")
    queue = node.subscribe()
    for msg in inputs:
        await node.submit(msg)
    while not queue.empty():
        queue.get_nowait()
    before = observable_state(node.exchange)
    stored_before = journal.last_seq

    fault(journal)
    big = CreateAccount(ts=inputs[-1].ts + 1, name="n" * 50_000, deposit=F("100"))  # needs new pages
    order = PlaceOrder(ts=inputs[-1].ts + 2, account=1, symbol="BTCUSDT", side="BUY", order_type="LIMIT",
                       qty=F("0.01"), price=F("1000"), client_order_id="never-stored")
    for msg in (big, order):
        with pytest.raises(JournalWriteError, match="refusing all further input"):
            await node.submit(msg)
    await asyncio.sleep(0)
    assert ("disk is full" if fault is fill_disk else "readonly") in journal.failure
    assert queue.empty()  # nothing was published
    assert observable_state(node.exchange) == before  # nothing was applied
    assert node.exchange.order(1, client_order_id="never-stored") is None
    await node.stop()
    journal.close()

    with Journal(tmp_path / "s.db") as reopened:  # after a restart: exactly what was acknowledged
        recovered, next_seq = recover(reopened)
        assert next_seq == stored_before + 1
        assert observable_state(recovered) == before


async def test_group_commit_acknowledges_a_batch_only_after_it_is_stored(tmp_path):
    """Concurrent submitters share one commit; a commit that fails acknowledges and publishes nothing."""
    from exchange_sim.journal import JournalConfig
    from exchange_sim.runtime.node import NodeError

    class CommitFails(Journal):
        """The real journal, whose commit can be made to fail (the inputs were staged, not stored)."""

        armed = False
        spare = 0  # commits still allowed once armed

        def flush(self) -> None:
            if self.armed and not self.spare:
                raise JournalWriteError("injected: the commit failed")
            if self.armed and self._db.in_transaction:
                self.spare -= 1
            super().flush()

    path = tmp_path / "g.db"
    journal = CommitFails(path, JournalConfig(group_commit=True))
    _, node = await start_journaled_node(journal)
    inputs = session_inputs(seed=9, n=80)
    results = await asyncio.gather(*(node.submit(m) for m in inputs))  # a few batches, one commit each
    assert len(results) == len(inputs)
    await node.submit(CreateAccount(ts=inputs[-1].ts, name="alone", deposit=F("1")))  # a quiet turn: the
    await asyncio.sleep(0)  # next turn's first input then commits at once, before the rest of its batch
    queue = node.subscribe()
    stored_states = []
    node.add_commit_hook(lambda stored: stored_states.append(observable_state(node.exchange)) if stored else None)
    journal.armed, journal.spare = True, 1  # the loop turn's first input commits alone (stored), its batch fails
    first = CreateAccount(ts=inputs[-1].ts, name="first", deposit=F("100"))
    more = [CreateAccount(ts=inputs[-1].ts + i, name=f"late{i}", deposit=F("100")) for i in range(1, 4)]
    outcomes = await asyncio.gather(node.submit(first), *(node.submit(m) for m in more), return_exceptions=True)
    assert isinstance(outcomes[0], list)  # acknowledged: it was stored
    assert all(isinstance(o, JournalWriteError) for o in outcomes[1:])
    state = stored_states[-1]  # the core after the last stored input
    assert queue.qsize() == 1 and queue.get_nowait()[0] is first  # nothing of the failed batch was published
    with pytest.raises(NodeError, match="commit failed"):  # and the node refuses input until restarted
        await node.submit(more[0])
    await node.stop()  # its last flush fails too: the staged batch is never stored
    if journal._db.in_transaction:
        journal._db.execute("ROLLBACK")  # what the process's death does to an uncommitted transaction
    journal.armed = False
    journal.close()
    with Journal(path) as reopened:  # a restart recovers exactly what was acknowledged
        recovered, _ = recover(reopened)
        assert observable_state(recovered) == state

"""The journal behind the real runtime node: journaled before applied, refused when not stored."""

from __future__ import annotations

import asyncio

import pytest

from exchange_sim.core.fixed import to_fixed
from exchange_sim.core.messages import CreateAccount, PlaceOrder, dumps
from exchange_sim.journal import Journal, JournalWriteError, recover
from exchange_sim.runtime.node import Node
from tests.support.journal_faults import fill_disk, make_read_only
from tests.support.journal_session import genesis, observable_state, reference_run, session_inputs

F = to_fixed


async def start_node(path):
    journal = Journal(path)
    exchange, _ = recover(journal, genesis)
    node = Node(exchange, journal)
    node.add_listener(journal.record)
    await node.start()
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

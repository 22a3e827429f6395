"""The input log (``journal/input_log.py``): what a crash leaves in it is recovered, exactly once.

Decided by the tables a plain journal (no input log) writes for the same inputs, and by bytes
cut off or damaged by hand, as a crash or a bad disk would leave them.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from exchange_sim.journal import Journal, JournalConfig, recover
from exchange_sim.journal.errors import JournalCorruptError, JournalError
from exchange_sim.journal.input_log import InputLog, log_path, read_records
from tests.support.journal_session import genesis, run_journaled, session_inputs

LOGGED = JournalConfig(snapshot_every=0, group_commit=True, deferred_events=True, input_log=True)
PLAIN = JournalConfig(snapshot_every=0, group_commit=True)
N = 60


def stored_inputs(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as other:
        return list(other.execute("SELECT seq, type, ts, body FROM inputs ORDER BY seq"))


def crashed_copy(tmp_path: Path, inputs: list, *, written: int) -> Path:
    """A session file as a crash leaves it: ``written`` inputs stored and acknowledged, none of them
    copied into the tables yet (the copy of the files is taken while the journal is open)."""
    db, copy = tmp_path / "live.db", tmp_path / "crashed.db"
    with Journal(db, LOGGED) as journal:
        exchange, _ = recover(journal, genesis)
        journal.flush()
        run_journaled(journal, exchange, inputs[:written], flush=True)  # stored in the input log only
        assert journal.deferred >= written  # every input (and the events of most) kept back
        for suffix in ("", "-wal", "-inputs"):
            shutil.copyfile(str(db) + suffix, str(copy) + suffix)
    return copy


def reference(tmp_path: Path, inputs: list) -> list[tuple]:
    db = tmp_path / "plain.db"
    with Journal(db, PLAIN) as journal:
        exchange, _ = recover(journal, genesis)
        run_journaled(journal, exchange, inputs, flush=True)
    return stored_inputs(db)


def test_a_batch_is_one_append_and_the_tables_follow(tmp_path):
    inputs = session_inputs(41, N)
    copy = crashed_copy(tmp_path, inputs, written=N)
    assert len(read_records(log_path(copy))) == N
    assert stored_inputs(copy) == []  # the crash came before the tables were written
    with Journal(copy, LOGGED) as journal:  # opening folds the log into the tables and empties it
        assert journal.last_seq == N
        assert log_path(copy).stat().st_size == 0
    assert stored_inputs(copy) == reference(tmp_path, inputs[:N])


def test_a_torn_last_record_is_dropped_and_the_rest_recovered(tmp_path):
    inputs = session_inputs(42, N)
    copy = crashed_copy(tmp_path, inputs, written=20)
    log = log_path(copy)
    log.write_bytes(log.read_bytes()[:-7])  # the 20th record's write never finished: never acknowledged
    with Journal(copy, LOGGED) as journal:
        exchange, next_seq = recover(journal, None)
    assert next_seq == 20
    assert stored_inputs(copy) == reference(tmp_path, inputs[:19])


def test_recovering_twice_stores_each_input_once(tmp_path):
    inputs = session_inputs(43, N)
    copy = crashed_copy(tmp_path, inputs, written=30)
    saved = log_path(copy).read_bytes()
    with Journal(copy, LOGGED):
        pass
    log_path(copy).write_bytes(saved)  # a crash right after the tables were committed, before the log was emptied
    with Journal(copy, LOGGED) as journal:
        assert journal.last_seq == 30
    assert stored_inputs(copy) == reference(tmp_path, inputs[:30])


def test_a_damaged_record_before_good_ones_is_corruption(tmp_path):
    inputs = session_inputs(44, N)
    copy = crashed_copy(tmp_path, inputs, written=10)
    data = bytearray(log_path(copy).read_bytes())
    data[12] ^= 0xFF  # inside the first record's payload
    log_path(copy).write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError, match="damaged record"):
        Journal(copy, LOGGED)


def test_a_refusal_in_the_log_is_kept(tmp_path):
    inputs = session_inputs(45, N)
    copy = crashed_copy(tmp_path, inputs, written=6)
    log = InputLog(log_path(copy))  # the refusal of input 6, stored in the log only (its SQLite commit lost)
    log.add_refusal(6, "RuntimeError in exchange.apply")
    log.write()
    log.close()
    with Journal(copy, LOGGED) as journal:
        assert journal.refused_seqs() == {6}
        exchange, next_seq = recover(journal, None)
        assert [seq for seq, _ in journal.inputs()] == [1, 2, 3, 4, 5]
    assert next_seq == 7


def test_the_input_log_needs_group_commit_and_deferred_rows():
    with pytest.raises(JournalError, match="input_log needs"):
        JournalConfig(input_log=True)


def test_the_node_stores_by_the_log_and_fills_the_tables_shortly_after(tmp_path):
    import asyncio

    from exchange_sim.runtime.node import DEFERRED_WRITE_S
    from tests.support.journal_session import start_journaled_node

    db = tmp_path / "s.db"
    inputs = session_inputs(46, 40)

    async def main() -> tuple[int, int, int, int]:
        journal = Journal(db, LOGGED)
        _, node = await start_journaled_node(journal)
        try:
            for msg in inputs:
                await node.submit(msg)
            logged, in_table = len(read_records(log_path(db))), len(stored_inputs(db))
            await asyncio.sleep(DEFERRED_WRITE_S * 5)
            return logged, in_table, len(read_records(log_path(db))), len(stored_inputs(db))
        finally:
            await node.stop()
            journal.close()

    logged, in_table, logged_after, in_table_after = asyncio.run(main())
    assert logged > 0 and in_table < len(inputs), "the inputs went straight to the tables: nothing was logged"
    assert (logged_after, in_table_after) == (0, len(inputs))
    assert stored_inputs(db) == reference(tmp_path, inputs)


def test_rows_a_read_staged_are_committed_by_the_node_too(tmp_path):
    """A read between a reply and the node's copy stages the kept rows on the journal's connection;
    they must still be committed (and the log emptied) shortly after, not left in an open transaction."""
    import asyncio

    from exchange_sim.journal.history import Page
    from exchange_sim.runtime.node import DEFERRED_WRITE_S
    from tests.support.journal_session import start_journaled_node

    db = tmp_path / "s.db"
    inputs = session_inputs(47, 40)

    async def main() -> tuple[int, int]:
        journal = Journal(db, LOGGED)
        _, node = await start_journaled_node(journal)
        try:
            for msg in inputs:
                await node.submit(msg)
            journal.history.orders(1, Page(limit=10))  # an allOrders, say: stages every kept row
            assert journal.deferred == 0
            await asyncio.sleep(DEFERRED_WRITE_S * 5)
            return len(read_records(log_path(db))), len(stored_inputs(db))
        finally:
            await node.stop()
            journal.close()

    assert asyncio.run(main()) == (0, len(inputs))

"""Deferred event and history rows (``JournalConfig(deferred_events=True)``, what ``exchange-sim run`` uses).

An input's own commit holds the input row only; its event-log and history rows follow in a later
commit. Decided against the journal without deferral (the same inputs must give the same event log
and history tables, row for row) and against a second, read-only connection to the same file
(what is committed, as another process or a crash would find it). Crash recovery with rows still
kept is in ``test_journal_sigkill.py`` (the deferred trials).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from exchange_sim.core.messages import PlaceOrder
from exchange_sim.journal import Journal, JournalConfig, recover
from exchange_sim.journal.history import Page
from exchange_sim.runtime.node import DEFERRED_WRITE_S
from tests.support.journal_session import genesis, run_journaled, session_inputs, start_journaled_node

N = 120
DEFERRED = JournalConfig(snapshot_every=0, group_commit=True, deferred_events=True)
PLAIN = JournalConfig(snapshot_every=0, group_commit=True)


def committed(db: Path, sql: str) -> int:
    """What another connection (another process, or the file after a crash) finds committed."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as other:
        return int(other.execute(sql).fetchone()[0])


def run(db: Path, config: JournalConfig, inputs: list) -> tuple[list[str], tuple]:
    """Each input as the node does it (append, apply, record, flush); then the log and the history."""
    with Journal(db, config) as journal:
        exchange, _ = recover(journal, genesis)
        run_journaled(journal, exchange, inputs, flush=True)
        return list(journal.event_bodies()), journal.history.fingerprint()


def test_deferred_rows_equal_the_rows_written_at_once(tmp_path):
    inputs = session_inputs(31, N)
    assert run(tmp_path / "deferred.db", DEFERRED, inputs) == run(tmp_path / "plain.db", PLAIN, inputs)


def test_an_inputs_commit_holds_the_input_and_a_read_still_sees_its_rows(tmp_path):
    db = tmp_path / "s.db"
    inputs = session_inputs(32, N)
    with Journal(db, DEFERRED) as journal:
        exchange, _ = recover(journal, genesis)
        placed = 0
        for msg in inputs:
            journal.append(msg)
            events = exchange.apply(msg)
            journal.record(msg, events)
            journal.flush()
            placed += isinstance(msg, PlaceOrder)
        kept = journal.deferred
        assert kept > 0
        # stored: every input; not yet stored: the kept inputs' events
        assert committed(db, "SELECT COUNT(*) FROM inputs") == len(inputs)
        logged_before = committed(db, "SELECT COUNT(*) FROM events")
        # a read on the journal's own connection sees them all at once (read-your-writes)
        account = next(msg.account for msg in inputs if isinstance(msg, PlaceOrder))
        orders = journal.history.orders(account, Page(limit=1000))
        assert journal.deferred == 0
        every = list(journal.event_bodies())
        journal.flush()
        assert committed(db, "SELECT COUNT(*) FROM events") == len(every) > logged_before
        assert len(orders) == committed(db, f"SELECT COUNT(*) FROM history_orders WHERE account = {account} "
                                            "AND closed = 1")
    # the same inputs without deferral: the same log
    assert every == run(tmp_path / "plain.db", PLAIN, inputs)[0]


def test_a_snapshot_never_runs_ahead_of_the_stored_events(tmp_path):
    db = tmp_path / "s.db"
    inputs = session_inputs(33, N)
    config = JournalConfig(snapshot_every=10, keep_snapshots=2, group_commit=True, deferred_events=True)
    with Journal(db, config) as journal:
        exchange, _ = recover(journal, genesis)
        for msg in inputs:
            journal.append(msg)
            journal.record(msg, exchange.apply(msg))
            journal.flush()
            assert journal.snapshot_seqs()[-1] <= journal.events_through
    with Journal(db, config) as journal:
        recover(journal, None)
        logged = list(journal.event_bodies())
    assert logged == run(tmp_path / "plain.db", PLAIN, inputs)[0]


def test_the_node_commits_the_kept_rows_shortly_after_the_reply(tmp_path):
    db = tmp_path / "s.db"
    inputs = session_inputs(34, 40)

    async def main() -> tuple[int, int, int]:
        journal = Journal(db, DEFERRED)
        _, node = await start_journaled_node(journal)
        try:
            for msg in inputs:
                await node.submit(msg)
            kept = journal.deferred
            before = committed(db, "SELECT COUNT(*) FROM events")
            await asyncio.sleep(DEFERRED_WRITE_S * 5)
            return kept, before, committed(db, "SELECT COUNT(*) FROM events")
        finally:
            await node.stop()
            journal.close()

    kept, before, after = asyncio.run(main())
    reference = run(tmp_path / "plain.db", PLAIN, inputs)[0]
    assert kept > 0 and before < len(reference), "nothing was deferred: the test shows nothing"
    assert after == len(reference)
    with Journal(db, DEFERRED) as journal:
        assert list(journal.event_bodies()) == reference
        assert journal.events_through == len(inputs)


def test_every_event_of_a_stopped_node_is_stored(tmp_path):
    db = tmp_path / "s.db"
    inputs = session_inputs(35, 30)

    async def main() -> None:
        journal = Journal(db, DEFERRED)
        _, node = await start_journaled_node(journal)
        for msg in inputs:
            await node.submit(msg)
        await node.stop()
        journal.close()

    asyncio.run(main())
    with sqlite3.connect(db) as other:
        bodies = [row[0] for row in other.execute("SELECT body FROM events ORDER BY seq")]
    assert bodies == run(tmp_path / "plain.db", PLAIN, inputs)[0]

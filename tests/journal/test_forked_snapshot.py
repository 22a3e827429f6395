"""Snapshots pickled by a forked child (``JournalConfig(background_snapshot=True)``).

The parent never pickles the core (a counting core shows the parent's count stays 0, the
counting happens in the child's copy), every stored snapshot restores to exactly the state after
its input (compared with an uninterrupted run), and files a killed process left are removed.
"""

from __future__ import annotations

import os
import time

from exchange_sim.core.exchange import Exchange
from exchange_sim.journal import Journal, JournalConfig, recover
from exchange_sim.journal.forked_snapshot import ForkedSnapshot
from exchange_sim.runtime import Node
from tests.support.journal_session import genesis, observable_state, reference_run, session_inputs


class CountingExchange(Exchange):
    snapshots_here = 0  # snapshot() calls in this process

    def snapshot(self) -> bytes:
        CountingExchange.snapshots_here += 1
        return super().snapshot()


def counting_genesis() -> CountingExchange:
    plain = genesis()
    return CountingExchange(plain.instruments, plain.config)


async def test_the_child_takes_the_snapshots_and_each_restores_its_input_exactly(tmp_path):
    db = tmp_path / "s.db"
    inputs = session_inputs(7, 120)
    journal = Journal(db, JournalConfig(snapshot_every=15, keep_snapshots=0, background_snapshot=True))
    exchange, _ = recover(journal, counting_genesis, exchange_type=CountingExchange)
    CountingExchange.snapshots_here = 0  # genesis was snapshotted here, on purpose (snapshot 0)
    node = Node(exchange, journal)
    node.add_listener(journal.record)
    await node.start()
    for msg in inputs:
        await node.submit(msg)
    await node.stop()
    journal.close()
    assert CountingExchange.snapshots_here == 0  # never pickled in the parent
    with Journal(db, read_only=True) as stored:
        seqs = stored.snapshot_seqs()
        assert len(seqs) >= 2 and seqs[0] == 0  # a busy child only delays the next snapshot
        for seq in seqs[1:]:
            restored = Exchange.restore(stored.snapshot_at(seq))
            reference, _ = reference_run(inputs[:seq])
            assert observable_state(restored) == observable_state(reference), f"snapshot {seq}"
    with Journal(db) as again:
        recovered, next_seq = recover(again)
        assert next_seq == len(inputs) + 1
        assert observable_state(recovered) == observable_state(reference_run(inputs)[0])


def test_leftover_snapshot_files_of_a_killed_process_are_removed(tmp_path):
    db = tmp_path / "s.db"
    stray = [tmp_path / "s.db-snapshot-123-40", tmp_path / "s.db-snapshot-123-80.tmp"]
    for path in stray:
        path.write_bytes(b"half")
    keep = tmp_path / "other.db-snapshot-1-1"
    keep.write_bytes(b"not ours")
    with Journal(db, JournalConfig(background_snapshot=True)):
        assert not any(p.exists() for p in stray)
    assert keep.exists() and os.path.exists(db)


class Hangs:
    def snapshot(self) -> bytes:
        time.sleep(30)  # in the child: never finishes in time
        return b""


def test_a_hung_child_is_killed_and_the_next_snapshot_can_start(tmp_path):
    forked = ForkedSnapshot(tmp_path / "s.db", max_seconds=0.2)
    forked.start(10, Hangs())
    assert forked.busy and forked.poll() is None  # still working, within its time
    time.sleep(0.3)
    assert forked.poll() is None and not forked.busy and forked.failed == 1
    assert not list(tmp_path.glob("s.db-snapshot-*"))

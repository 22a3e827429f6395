"""Snapshots carry the core's snapshot format; one from an older core is refused and recovery
falls back to the journal's inputs."""

from __future__ import annotations

import pickle
import sqlite3

import pytest

from exchange_sim.core.exchange import SNAPSHOT_FORMAT, Exchange, SnapshotVersionError
from exchange_sim.journal import Journal, JournalConfig, JournalCorruptError, recover, replay_session
from tests.support.journal_session import genesis, observable_state, reference_run, run_journaled, session_inputs


def test_a_snapshot_restores_and_one_of_another_format_is_refused_clearly():
    ex = genesis()
    data = ex.snapshot()
    assert data.startswith(f"exchange-sim core snapshot v{SNAPSHOT_FORMAT}\n".encode())
    assert observable_state(Exchange.restore(data)) == observable_state(ex)
    with pytest.raises(SnapshotVersionError, match="older core.*journal"):
        Exchange.restore(pickle.dumps(ex))  # what the core before format 2 wrote
    older = SNAPSHOT_FORMAT - 1
    with pytest.raises(SnapshotVersionError, match=f"format {older}, this core reads format {SNAPSHOT_FORMAT}"):
        Exchange.restore(f"exchange-sim core snapshot v{older}\n".encode() + pickle.dumps(ex))


def _age_snapshots(path) -> None:
    """Make every stored snapshot look like one written by the core before format 2."""
    db = sqlite3.connect(path)
    with db:
        for (seq,) in db.execute("SELECT seq FROM snapshots").fetchall():
            db.execute("UPDATE snapshots SET state = ? WHERE seq = ?", (pickle.dumps(("old", seq)), seq))
    db.close()


def test_recovery_replays_the_whole_journal_when_no_snapshot_is_of_this_format(tmp_path):
    inputs = session_inputs(seed=5, n=120)
    config = JournalConfig(snapshot_every=30, keep_snapshots=10)
    with Journal(tmp_path / "s.db", config) as journal:
        exchange, _ = recover(journal, genesis)
        run_journaled(journal, exchange, inputs)
        before = observable_state(exchange)
        assert len(journal.snapshot_seqs()) > 1
    _age_snapshots(tmp_path / "s.db")
    with Journal(tmp_path / "s.db", config) as journal:
        with pytest.raises(JournalCorruptError, match="no snapshot can be restored"):
            recover(journal)  # without genesis there is nothing to start from
        recovered, next_seq = recover(journal, genesis)
        assert next_seq == len(inputs) + 1
        assert observable_state(recovered) == before
    reference, _ = reference_run(inputs)
    assert observable_state(reference) == before
    with pytest.raises(SnapshotVersionError):
        list(replay_session(tmp_path / "s.db"))  # a replay starts from the oldest snapshot: refused

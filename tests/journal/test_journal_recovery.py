"""Recovery and replay with the real exchange core: same state, same events, byte for byte."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_sim.core.messages import dumps
from exchange_sim.journal import (
    Journal,
    JournalConfig,
    JournalCorruptError,
    JournalError,
    compare_session,
    recover,
    replay_session,
)
from tests.support.journal_session import (
    genesis,
    observable_state,
    reference_run,
    run_journaled,
    session_inputs,
)


def test_a_new_journal_starts_with_the_genesis_snapshot(tmp_path):
    with Journal(tmp_path / "s.db") as journal:
        exchange, next_seq = recover(journal, genesis)
        assert next_seq == 1 and journal.snapshot_seqs() == [0]
        assert observable_state(exchange) == observable_state(genesis())
    with Journal(tmp_path / "s.db") as journal:
        with pytest.raises(JournalError, match="genesis"):
            recover(Journal(tmp_path / "other.db"))
        exchange, next_seq = recover(journal)  # the file alone is enough now
        assert next_seq == 1


@pytest.mark.parametrize("snapshot_every", [0, 1, 37, 10_000])
def test_recovered_state_equals_the_state_before_and_carries_on_identically(tmp_path, snapshot_every):
    inputs = session_inputs(seed=11, n=250)
    cut = 180
    config = JournalConfig(snapshot_every=snapshot_every, keep_snapshots=2)
    with Journal(tmp_path / "s.db", config) as journal:
        exchange, _ = recover(journal, genesis)
        run_journaled(journal, exchange, inputs[:cut])
        before = observable_state(exchange)
    with Journal(tmp_path / "s.db", config) as journal:
        recovered, next_seq = recover(journal)
        assert next_seq == cut + 1
        assert observable_state(recovered) == before
        later = run_journaled(journal, recovered, inputs[cut:])
    reference, all_events = reference_run(inputs)
    assert observable_state(recovered) == observable_state(reference)
    ref_later = all_events[len(all_events) - len(later):]
    assert [dumps(e) for e in later] == [dumps(e) for e in ref_later]


def test_compaction_keeps_recovery_exact_and_the_file_small(tmp_path):
    inputs = session_inputs(seed=5, n=400)
    config = JournalConfig(snapshot_every=40, keep_snapshots=2)
    with Journal(tmp_path / "s.db", config) as journal:
        exchange, _ = recover(journal, genesis)
        run_journaled(journal, exchange, inputs)
        stats = journal.stats()
        assert stats.snapshots == 2 and stats.inputs < 2 * 40 + 40
        assert journal.first_input_seq() == journal.snapshot_seqs()[0] + 1
    with Journal(tmp_path / "s.db", config) as journal:
        recovered, _ = recover(journal)
    assert observable_state(recovered) == observable_state(reference_run(inputs)[0])


def test_lost_event_rows_are_rebuilt_on_recovery(tmp_path):
    """A crash between storing an input and committing its events: recovery writes them."""
    inputs = session_inputs(seed=3, n=200)
    path = tmp_path / "s.db"
    with Journal(path) as journal:
        exchange, _ = recover(journal, genesis)
        run_journaled(journal, exchange, inputs)
    raw = sqlite3.connect(path)  # as if the last 60 inputs' events never got committed
    with raw:
        raw.execute("DELETE FROM events WHERE input_seq > ?", (len(inputs) - 60,))
        raw.execute("UPDATE meta SET value = ? WHERE key = 'events_through'", (str(len(inputs) - 60),))
    raw.close()
    with Journal(path) as journal:
        recover(journal)
        stored = list(journal.event_bodies())
    assert stored == [dumps(e) for e in reference_run(inputs)[1]]


@pytest.mark.parametrize("compacted", [False, True])
def test_replay_session_reproduces_the_event_log_byte_for_byte(tmp_path, compacted):
    inputs = session_inputs(seed=8, n=300)
    config = JournalConfig(snapshot_every=50, keep_snapshots=2) if compacted else JournalConfig()
    path = tmp_path / "s.db"
    with Journal(path, config) as journal:
        exchange, _ = recover(journal, genesis)
        run_journaled(journal, exchange, inputs)
        start = journal.snapshot_seqs()[0]
        stored = list(journal.event_bodies(after_input=start))
    assert (start > 0) == compacted
    replayed = [dumps(e) for e in replay_session(path)]
    assert replayed == stored
    assert any('"type":"Liquidation"' in body for body in stored) or compacted
    report = compare_session(path)
    assert report.identical and report.replayed_events == len(stored) and report.start_seq == start


def test_a_tampered_event_log_is_caught(tmp_path):
    inputs = session_inputs(seed=9, n=120)
    path = tmp_path / "s.db"
    with Journal(path) as journal:
        exchange, _ = recover(journal, genesis)
        run_journaled(journal, exchange, inputs)
    raw = sqlite3.connect(path)
    with raw:
        raw.execute("UPDATE events SET body = replace(body, '\"ts\":', '\"ts\": ') WHERE seq = 10")
    raw.close()
    report = compare_session(path)
    assert not report.identical and report.first_difference == 9


def test_a_gap_in_the_inputs_is_refused(tmp_path):
    path = tmp_path / "s.db"
    with Journal(path) as journal:
        exchange, _ = recover(journal, genesis)
        run_journaled(journal, exchange, session_inputs(seed=1, n=50))
    raw = sqlite3.connect(path)
    with raw:
        raw.execute("DELETE FROM inputs WHERE seq = 20")
    raw.close()
    with Journal(path) as journal, pytest.raises(JournalCorruptError, match="inputs 20..20 are missing"):
        recover(journal)
    with pytest.raises(JournalCorruptError):
        list(replay_session(path))


def test_an_unreadable_snapshot_falls_back_to_an_older_one(tmp_path):
    inputs = session_inputs(seed=2, n=150)
    path = tmp_path / "s.db"
    config = JournalConfig(snapshot_every=30, keep_snapshots=3)
    with Journal(path, config) as journal:
        exchange, _ = recover(journal, genesis)
        run_journaled(journal, exchange, inputs)
        newest = journal.snapshot_seqs()[-1]
    raw = sqlite3.connect(path)
    with raw:
        raw.execute("UPDATE snapshots SET state = X'00' WHERE seq = ?", (newest,))
    raw.close()
    with Journal(path, config) as journal:
        recovered, _ = recover(journal)
    assert observable_state(recovered) == observable_state(reference_run(inputs)[0])


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), cut=st.integers(1, 160), snapshot_every=st.integers(0, 60),
       keep=st.integers(0, 3))
def test_any_cut_any_cadence_recovers_exactly(tmp_path_factory, seed, cut, snapshot_every, keep):
    inputs = session_inputs(seed, n=140)[:cut]
    path = tmp_path_factory.mktemp("r") / "s.db"
    config = JournalConfig(snapshot_every=snapshot_every, keep_snapshots=keep, synchronous="NORMAL")
    with Journal(path, config) as journal:
        exchange, _ = recover(journal, genesis)
        events = run_journaled(journal, exchange, inputs)
    with Journal(path, config) as journal:
        recovered, next_seq = recover(journal)
        start = journal.snapshot_seqs()[0]
        stored = list(journal.event_bodies(after_input=start))
    reference, reference_events = reference_run(inputs)
    assert next_seq == len(inputs) + 1
    assert observable_state(recovered) == observable_state(reference) == observable_state(exchange)
    assert [dumps(e) for e in events] == [dumps(e) for e in reference_events]
    assert stored == [dumps(e) for e in replay_session(path)]

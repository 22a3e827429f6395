"""The journal's storage layer with messages alone: order, durability, failure, snapshots, compaction."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_sim.core.messages import (
    BalanceUpdate,
    BookDelta,
    CreateAccount,
    MarkPrice,
    PlaceOrder,
    Trade,
    dumps,
)
from exchange_sim.journal import Journal, JournalConfig, JournalError, JournalWriteError
from tests.support.journal_faults import fill_disk, make_read_only

FIX = 10**8
REPO = Path(__file__).resolve().parents[2]


def order(ts: int, account: int = 1, qty: int = FIX // 1000) -> PlaceOrder:
    return PlaceOrder(ts=ts, account=account, symbol="BTCUSDT", side="BUY", order_type="LIMIT",
                      qty=qty, price=60_000 * FIX)


def test_append_gives_gapless_seqs_and_stores_canonical_json(tmp_path):
    msgs = [CreateAccount(ts=1, name="ann", deposit=1000 * FIX, api_key="k", api_secret="s"),
            BookDelta(ts=2, symbol="BTCUSDT", bids=((60_000 * FIX, FIX),), asks=(), first_update_id=5,
                      final_update_id=6, prev_final_update_id=4),
            order(3)]
    with Journal(tmp_path / "s.db") as journal:
        assert journal.next_seq == 1
        assert [journal.append(m) for m in msgs] == [1, 2, 3]
        assert [(seq, m) for seq, m in journal.inputs()] == list(enumerate(msgs, start=1))
    raw = sqlite3.connect(tmp_path / "s.db")
    try:
        rows = raw.execute("SELECT seq, type, ts, body FROM inputs ORDER BY seq").fetchall()
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()
    assert rows == [(i, type(m).__name__, m.ts, dumps(m)) for i, m in enumerate(msgs, start=1)]


def test_a_returned_append_survives_sigkill(tmp_path):
    """A writer process is SIGKILLed right after append returned: the input is in the file."""
    path = tmp_path / "s.db"
    script = textwrap.dedent(f"""
        import os, signal
        from exchange_sim.core.messages import Trade
        from exchange_sim.journal import Journal
        j = Journal({str(path)!r})
        for i in range(1, 51):
            j.append(Trade(ts=i, symbol="BTCUSDT", price=i, qty=1))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", script], cwd=str(tmp_path), env=env, timeout=60, check=False)
    assert proc.returncode == -9
    with Journal(path) as journal:
        assert journal.last_seq == 50
        assert [m.ts for _, m in journal.inputs()] == list(range(1, 51))


def test_events_are_logged_with_their_input_and_account(tmp_path):
    with Journal(tmp_path / "s.db") as journal:
        seq = journal.append(order(1))
        ev = [BalanceUpdate(ts=1, account=7, wallet=5, change=5, reason="DEPOSIT"),
              BalanceUpdate(ts=1, account=8, wallet=6, change=6, reason="DEPOSIT")]
        journal.record(order(1), ev)
        journal.append(Trade(ts=2, symbol="BTCUSDT", price=1, qty=1))
        journal.record(None, [])
        assert journal.events_through == 2
        assert journal.events() == [(1, ev[0]), (2, ev[1])]
        assert journal.events(account=8) == [(2, ev[1])]
        assert journal.events(after=1) == [(2, ev[1])]
        assert list(journal.event_bodies(after_input=seq)) == []
    with Journal(tmp_path / "s.db") as journal:  # committed with the next append
        assert [e for _, e in journal.events()] == ev
        assert journal.events_through == 1  # input 2 had no events: nothing of its own was written


def test_disk_full_refuses_the_input_and_everything_after(tmp_path, caplog):
    journal = Journal(tmp_path / "s.db")
    journal.append(order(1))
    fill_disk(journal)
    big = CreateAccount(ts=2, name="x" * 20_000)  # needs new pages
    with pytest.raises(JournalWriteError, match="database or disk is full"):
        journal.append(big)
    assert journal.failure is not None and "restarted" in journal.failure
    assert caplog.text.count("database or disk is full") == 1  # said once, loudly, for the operator
    with pytest.raises(JournalWriteError):  # sticky: even a small input is refused now
        journal.append(order(3))
    with pytest.raises(JournalWriteError):
        journal.flush()
    assert journal.last_seq == 1
    journal.close()
    with Journal(tmp_path / "s.db") as reopened:
        assert [seq for seq, _ in reopened.inputs()] == [1]
        assert reopened.append(order(4)) == 2  # a restart with space again carries on without a gap


def test_read_only_file_refuses_input(tmp_path):
    journal = Journal(tmp_path / "s.db")
    journal.append(order(1))
    make_read_only(journal)
    with pytest.raises(JournalWriteError, match="readonly"):
        journal.append(order(2))
    assert journal.last_seq == 1
    assert [seq for seq, _ in journal.inputs()] == [1]  # reads still work
    journal.close()


def test_opened_read_only_it_never_writes(tmp_path):
    with Journal(tmp_path / "s.db") as journal:
        journal.append(order(1))
    with Journal(tmp_path / "s.db", read_only=True) as journal:
        with pytest.raises(JournalWriteError, match="read-only"):
            journal.append(order(2))
        assert journal.last_seq == 1


def test_unopenable_path_is_a_journal_error(tmp_path):
    with pytest.raises(JournalError, match="cannot open"):
        Journal(tmp_path / "no-such-dir" / "s.db")


def test_not_a_message_is_refused_before_anything_is_written(tmp_path):
    with Journal(tmp_path / "s.db") as journal:
        with pytest.raises(JournalError, match="not a core message"):
            journal.append(object())
        assert journal.failure is None
        assert journal.append(order(1)) == 1


class Counter:
    """A snapshot source: its state is the number of inputs applied (stands for the core's bytes)."""

    def __init__(self) -> None:
        self.applied = 0

    def snapshot(self) -> bytes:
        return str(self.applied).encode()


def drive(journal: Journal, source: Counter, n: int) -> None:
    for _ in range(n):
        msg = MarkPrice(ts=source.applied + 1, symbol="BTCUSDT", mark=60_000 * FIX)
        journal.append(msg)
        source.applied += 1
        journal.record(msg, [])


def test_snapshots_every_n_inputs_and_compaction_keeps_the_last_k(tmp_path):
    config = JournalConfig(snapshot_every=10, keep_snapshots=2)
    with Journal(tmp_path / "s.db", config) as journal:
        source = Counter()
        journal.save_snapshot(0, source.snapshot())
        journal.bind(source)
        drive(journal, source, 45)
        assert journal.snapshot_seqs() == [30, 40]
        assert journal.snapshot_at(40) == b"40"
        assert journal.first_input_seq() == 31  # inputs 1..30 are covered by snapshot 30
        assert journal.last_seq == 45
        stats = journal.stats()
        assert (stats.inputs, stats.snapshots, stats.first_seq, stats.last_seq) == (15, 2, 31, 45)
    with Journal(tmp_path / "s.db", config) as journal:
        assert journal.last_seq == 45 and journal.next_seq == 46


def test_keep_snapshots_zero_keeps_the_whole_session(tmp_path):
    with Journal(tmp_path / "s.db", JournalConfig(snapshot_every=10, keep_snapshots=0)) as journal:
        source = Counter()
        journal.save_snapshot(0, source.snapshot())
        journal.bind(source)
        drive(journal, source, 45)
        assert journal.snapshot_seqs() == [0, 10, 20, 30, 40] and journal.first_input_seq() == 1


def test_compaction_bounds_the_file(tmp_path):
    """Thirty snapshot cycles take no more room than five: compacted pages are reused."""
    config = JournalConfig(snapshot_every=200, keep_snapshots=2, synchronous="NORMAL")
    with Journal(tmp_path / "s.db", config) as journal:
        source = Counter()
        journal.save_snapshot(0, source.snapshot())
        journal.bind(source)
        drive(journal, source, 5 * 200)
        early = journal.stats()
        drive(journal, source, 25 * 200)
        late = journal.stats()
    assert late.inputs == early.inputs and late.last_seq == 30 * 200
    assert late.page_bytes <= early.page_bytes * 1.5
    main_file = (tmp_path / "s.db").stat().st_size
    assert main_file <= early.page_bytes * 3


def test_no_snapshot_once_an_input_was_not_recorded_as_applied(tmp_path):
    """If the core failed to apply an input, its state is no longer 'the inputs so far'."""
    with Journal(tmp_path / "s.db", JournalConfig(snapshot_every=2)) as journal:
        source = Counter()
        journal.bind(source)
        journal.append(order(1))  # never recorded: apply failed
        drive(journal, source, 10)
        assert journal.snapshot_seqs() == []


def test_group_commit_stores_at_flush(tmp_path):
    path = tmp_path / "s.db"
    journal = Journal(path, JournalConfig(group_commit=True))
    journal.append(order(1))
    journal.append(order(2))
    with Journal(path, read_only=True) as other:
        assert other.last_seq == 0  # not committed yet: nothing may have been acknowledged
    journal.flush()
    with Journal(path, read_only=True) as other:
        assert other.last_seq == 2
    journal.close()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**62), st.integers(1, 2**62), st.sampled_from(["BUY", "SELL"]),
                          st.text(max_size=12)), min_size=1, max_size=20))
def test_any_message_reads_back_equal(tmp_path_factory, items):
    path = tmp_path_factory.mktemp("j") / "s.db"
    msgs = []
    for ts, qty, side, coid in items:
        msgs.append(PlaceOrder(ts=ts, account=1, symbol="ETHUSDT", side=side, order_type="MARKET", qty=qty,
                               client_order_id=coid))
        msgs.append(Trade(ts=ts, symbol="ETHUSDT", price=qty, qty=qty, taker_side=side))
    with Journal(path, JournalConfig(synchronous="NORMAL")) as journal:  # the codec, not durability
        for m in msgs:
            journal.append(m)
    with Journal(path, read_only=True) as journal:
        assert [m for _, m in journal.inputs()] == msgs


def test_one_writer_per_file_readers_welcome(tmp_path):
    with Journal(tmp_path / "s.db") as journal:
        journal.append(order(1))
        with pytest.raises(JournalError, match="in use by another process"):
            Journal(tmp_path / "s.db")
        with Journal(tmp_path / "s.db", read_only=True) as reader:
            assert reader.last_seq == 1
    with Journal(tmp_path / "s.db") as again:  # released on close
        assert again.last_seq == 1


def test_event_queries(tmp_path):
    with Journal(tmp_path / "s.db") as journal:
        events = [BalanceUpdate(ts=10 * i, account=i % 2, wallet=i, change=1, reason="DEPOSIT") for i in range(1, 7)]
        for e in events:
            journal.append(order(e.ts))
            journal.record(None, [e])
        assert [e.ts for _, e in journal.events(since=30)] == [30, 40, 50, 60]
        assert [e.ts for _, e in journal.events(limit=2, newest=True)] == [50, 60]
        assert [e.ts for _, e in journal.events(account=1, limit=2)] == [10, 30]
        assert [s for s, _ in journal.events(types=("BalanceUpdate",), after=4)] == [5, 6]
        assert journal.events(types=("Liquidation",)) == []


def test_a_core_that_cannot_snapshot_does_not_stop_the_journal(tmp_path, caplog):
    class Broken(Counter):
        def snapshot(self) -> bytes:
            raise RuntimeError("cannot pickle")

    with Journal(tmp_path / "s.db", JournalConfig(snapshot_every=5)) as journal:
        source = Broken()
        journal.bind(source)
        drive(journal, source, 20)
        assert journal.snapshot_seqs() == [] and journal.last_seq == 20 and journal.failure is None
    assert caplog.text.count("could not be snapshotted") == 1


def test_background_checkpoints_restart_the_wal_under_sustained_writes(tmp_path):
    """With background_checkpoint a helper process copies the WAL and the writer finishes a cheap
    checkpoint after a commit, so the WAL restarts from its top while writes never pause: written
    frames far exceed what the WAL ever holds, and every input is still there after reopening."""
    from exchange_sim.core.messages import Deposit
    from exchange_sim.journal import JournalConfig
    from exchange_sim.journal.checkpoint import RESTART_FRAMES, SAFETY_AUTOCHECKPOINT_PAGES

    path = tmp_path / "bg.db"
    n = 12_000
    with Journal(path, JournalConfig(background_checkpoint=True, snapshot_every=0)) as journal:
        assert journal._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == SAFETY_AUTOCHECKPOINT_PAGES
        checkpointer = journal._checkpointer
        most = last = restarts = 0
        for i in range(n):
            journal.append(Deposit(ts=i, account=1, amount=10**8))
            frames, _copied = checkpointer.wal_frames()
            most, restarts, last = max(most, frames), restarts + (frames < last), frames
        helper = checkpointer._process
        assert checkpointer.finishes > 0 and restarts > 0, "the WAL was never restarted"
        assert most < SAFETY_AUTOCHECKPOINT_PAGES  # the writer never had to checkpoint it all itself
        assert most >= RESTART_FRAMES  # ... and the workload did fill the WAL to the restart point
    assert helper.poll() is not None  # the helper process ended with the journal
    with Journal(path) as reopened:
        assert reopened.last_seq == n
        assert [seq for seq, _ in reopened.inputs()] == list(range(1, n + 1))

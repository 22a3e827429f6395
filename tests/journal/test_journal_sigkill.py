"""SIGKILL the journaled node process at random points; every restart recovers exactly.

Each trial runs ``tests.support.journal_writer`` (a real ``Node`` + ``Journal`` in its own
process) over a seeded session, kills it with SIGKILL after a seeded random number of
acknowledged inputs (twice), restarts it on the same file, and lets it finish. After every kill
the recovered state and event log must equal an uninterrupted run over the stored inputs, every
acknowledged input must be stored, and every acknowledged order must exist. Odd trials take
their snapshots in forked children (``JournalConfig(background_snapshot=True)``). The deferred
trials run the journal as ``exchange-sim run`` does (group commit, ``deferred_events``: an input's
event and history rows are committed after its acknowledgement), so a kill usually lands with rows
not yet written: recovery must rewrite them, and the event log and history tables must equal those
of the uninterrupted run.
``EXSIM_NODE_CRASH_TRIALS`` sets the number of trials (default 10; the whole-server test,
``test_crash_recovery.py``, runs 20).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from exchange_sim.core.messages import PlaceOrder, dumps
from exchange_sim.journal import Journal, JournalConfig, recover
from exchange_sim.journal.history import History
from tests.support.journal_session import genesis, observable_state, reference_run, session_inputs

REPO = Path(__file__).resolve().parents[2]
TRIALS = int(os.environ.get("EXSIM_NODE_CRASH_TRIALS", "10"))
N = 100
SNAPSHOT_EVERY = 25


def run_writer(db: Path, seed: int, kill_after: int | None, acked: dict[int, int], mode: str = "") -> bool:
    """Run the writer; SIGKILL it after ``kill_after`` acks (None: let it finish). True if it finished.

    ``mode`` (journal_writer's): ``"forked"``, snapshots taken by forked children
    (``background_snapshot``); ``"deferred"``, the journal as ``exchange-sim run`` configures it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.journal_writer", str(db), str(seed), str(N),
                             str(SNAPSHOT_EVERY)] + ([mode] if mode else []),
                            stdout=subprocess.PIPE, cwd=str(REPO), env=env, text=True)
    finished = False
    try:
        assert proc.stdout is not None
        if kill_after == 0:
            proc.send_signal(signal.SIGKILL)
        else:
            count = 0
            for line in proc.stdout:
                if line.startswith("ack "):
                    _, seq, order_id = line.split()
                    acked[int(seq)] = int(order_id)
                    count += 1
                    if kill_after is not None and count >= kill_after:
                        proc.send_signal(signal.SIGKILL)
                        break
                elif line.strip() == "done":
                    finished = True
    finally:
        proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()
    if not finished:
        assert proc.returncode in (-signal.SIGKILL, 0), f"writer failed with {proc.returncode}"
    return finished


def check_recovery(db: Path, inputs: list, acked: dict[int, int]) -> int:
    """Restart-style recovery, compared with the uninterrupted run over the stored inputs."""
    with Journal(db, JournalConfig(snapshot_every=SNAPSHOT_EVERY, keep_snapshots=2)) as journal:
        exchange, next_seq = recover(journal, None)
        stored = next_seq - 1
        logged = list(journal.event_bodies())
        history = journal.history.fingerprint()
    assert not acked or max(acked) <= stored, "an acknowledged input was lost"
    reference, events = reference_run(inputs[:stored])
    assert observable_state(exchange) == observable_state(reference)
    assert logged == [dumps(e) for e in events]
    assert history == reference_history(inputs[:stored]), "the history tables differ from the uninterrupted run's"
    for seq, order_id in acked.items():
        msg = inputs[seq - 1]
        if isinstance(msg, PlaceOrder) and order_id:
            assert exchange.order(msg.account, order_id) is not None, f"acknowledged order {order_id} is gone"
    return stored


def reference_history(inputs: list) -> tuple:
    """The history tables of the uninterrupted run, built input by input in a private store."""
    exchange = genesis()
    history = History.temporary()
    try:
        for msg in inputs:
            history.record_committed(msg, exchange.apply(msg))
        return history.fingerprint()
    finally:
        history.close()


def kill_then_finish(db: Path, seed: int, inputs: list, kills: list[int], acked: dict[int, int], mode: str) -> None:
    """Kill the writer after each of ``kills`` acks (checking recovery after each), then let it finish."""
    for kill_after in kills:
        if run_writer(db, seed, kill_after, acked, mode):
            break
        if db.exists():  # a kill before the first ack may come before the file exists
            check_recovery(db, inputs, acked)
    while not run_writer(db, seed, None, acked, mode):
        pass
    assert check_recovery(db, inputs, acked) == len(inputs)


@pytest.mark.parametrize("trial", range(TRIALS))
def test_sigkill_at_random_points_then_restart_recovers_exactly(tmp_path, trial):
    rng = random.Random(1000 + trial)
    seed = 500 + trial
    inputs = session_inputs(seed, N)
    db = tmp_path / "session.db"
    acked: dict[int, int] = {}
    kills = [rng.choice([0, rng.randint(1, 20), rng.randint(1, len(inputs))]) for _ in range(2)]
    mode = "forked" if trial % 2 == 1 else ""  # odd trials: snapshots pickled by forked children, killed with the writer
    kill_then_finish(db, seed, inputs, kills, acked, mode)


@pytest.mark.parametrize("trial", range(max(2, TRIALS // 2)))
def test_sigkill_with_deferred_event_rows_rewrites_them_on_restart(tmp_path, trial):
    rng = random.Random(2000 + trial)
    seed = 700 + trial
    inputs = session_inputs(seed, N)
    db = tmp_path / "session.db"
    acked: dict[int, int] = {}
    kill_then_finish(db, seed, inputs, [rng.randint(5, len(inputs) - 5), rng.randint(1, 30)], acked, "deferred")

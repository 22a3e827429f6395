"""Journal commit tail under sustained writes (issue 14, item 7). Prints one JSON line.

In-process, no HTTP: the runtime node with the journal exactly as ``exchange-sim run`` configures
it (``serve.journal_config``: group commit, background WAL checkpoints, forked snapshots,
``synchronous=NORMAL``, snapshot every 10,000 inputs, keep 3) on a file in a temporary directory.
16 clients (16 accounts, one asyncio task each) place resting BTCUSDT limit orders back to back
through ``node.submit``; every 150 orders a client cancels its open ones (the venue's 200-order
cap), untimed. Every ``journal.flush`` (one group commit, what every acknowledgement waits on) is
timed, and the WAL's state is read from its shared-memory index (``-shm``: frames in the WAL,
frames already copied into the database) after each commit.

Figures: commits, max / p99 / p50 commit time, commits over 10 / 20 ms and the WAL frames at
each of the five slowest (and whether that commit stored a snapshot); the WAL's largest extent in frames (pages) and on disk; WAL restarts
(the frame count fell back: a checkpoint completed and the writer started the log from the top)
and the background thread's completed checkpoints; a WAL timeline (every 10% of the run: frames
in the log, frames backfilled).

    python scripts/bench/journal_commit_tail.py                  # 40,000 orders
    EXSIM_BENCH_ORDERS=10000 python scripts/bench/journal_commit_tail.py
    EXSIM_BENCH_SMOKE=1 python scripts/bench/journal_commit_tail.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SMOKE, emit  # noqa: E402

from exchange_sim.config import Settings  # noqa: E402
from exchange_sim.core.fixed import to_fixed as F  # noqa: E402
from exchange_sim.core.messages import BookSnapshot, CancelAllOrders, CreateAccount, MarkPrice, PlaceOrder  # noqa: E402
from exchange_sim.journal import Journal, recover  # noqa: E402
from exchange_sim.runtime.node import Node  # noqa: E402
from exchange_sim.serve import journal_config, new_exchange  # noqa: E402

SYM = "BTCUSDT"
CLIENTS = 16
ORDERS = 2_000 if SMOKE else int(os.environ.get("EXSIM_BENCH_ORDERS", "40000"))
CANCEL_EVERY = 150


class WalIndex:
    """(frames in the WAL, frames backfilled into the database) from the WAL-index header.

    The -shm file starts with the WalIndexHdr (mxFrame at byte 16, native order) and, at byte 96,
    the checkpoint info (nBackfill first): https://www.sqlite.org/walformat.html#the_wal_index_file_format
    The descriptor stays open until the journal is closed: closing any descriptor of the file
    would drop this process's POSIX locks on it, SQLite's own included.
    """

    def __init__(self, shm: Path) -> None:
        self.fd = os.open(shm, os.O_RDONLY)

    def __call__(self) -> tuple[int, int]:
        return wal_index(os.pread(self.fd, 100, 0))


def wal_index(head: bytes) -> tuple[int, int]:
    if len(head) < 100:
        return 0, 0
    (mx_frame,) = struct.unpack_from("=I", head, 16)
    (backfill,) = struct.unpack_from("=I", head, 96)
    return mx_frame, backfill


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(db: Path) -> dict:
    settings = Settings()
    journal = Journal(db, journal_config(settings))
    exchange, _ = recover(journal, lambda: new_exchange(settings, lessons=False))
    node = Node(exchange, journal)
    node.add_listener(journal.record)
    shm = WalIndex(Path(str(db) + "-shm"))
    wal = Path(str(db) + "-wal")
    commits: list[tuple[float, int, bool]] = []  # (ms, WAL frames just after, stored a snapshot)
    timeline: list[tuple[int, int]] = []
    restarts, last_frames, max_frames, max_wal_bytes = 0, 0, 0, 0
    flush = journal.flush

    def timed_flush() -> None:
        nonlocal restarts, last_frames, max_frames
        snapshot_before = journal._last_snapshot
        t0 = time.perf_counter()
        flush()
        ms = (time.perf_counter() - t0) * 1000
        frames, _ = shm()
        if frames < last_frames:
            restarts += 1
        last_frames, max_frames = frames, max(max_frames, frames)
        commits.append((ms, frames, journal._last_snapshot != snapshot_before))

    journal.flush = timed_flush  # type: ignore[method-assign]
    await node.start()
    ts = 1_700_000_000_000
    await node.submit(BookSnapshot(ts, SYM, ((F("59999.9"), F("50")),), ((F("60000"), F("50")),), 1))
    await node.submit(MarkPrice(ts, SYM, F("60000"), F("60000"), 0, ts + 8 * 3600_000))
    accounts = []
    for i in range(CLIENTS):
        events = await node.submit(CreateAccount(ts, f"c{i}", None, F("1000000")))
        accounts.append(events[0].account)
    commits.clear()
    restarts = 0
    per_client = ORDERS // CLIENTS
    placed = 0

    async def client(account: int) -> None:
        nonlocal placed
        for n in range(per_client):
            price = F("59000") - F("0.1") * (n % CANCEL_EVERY)
            await node.submit(PlaceOrder(ts + n, account, SYM, "BUY", "LIMIT", qty=F("0.002"), price=price))
            placed += 1
            if (n + 1) % CANCEL_EVERY == 0:
                await node.submit(CancelAllOrders(ts + n, account, SYM))

    async def watch() -> None:
        nonlocal max_wal_bytes
        step = max(1, ORDERS // 10)
        next_mark = step
        while placed < per_client * CLIENTS:
            await asyncio.sleep(0.01)
            max_wal_bytes = max(max_wal_bytes, wal.stat().st_size if wal.exists() else 0)
            if placed >= next_mark:
                timeline.append(shm())
                next_mark += step

    t0 = time.perf_counter()
    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(client(a) for a in accounts))
    elapsed = time.perf_counter() - t0
    await watcher
    checkpointer = journal._checkpointer
    checkpoints = getattr(checkpointer, "checkpoints", None)
    finishes = getattr(checkpointer, "finishes", None)
    finish_ms_max = getattr(checkpointer, "finish_ms_max", None)
    await node.stop()
    journal.close()
    os.close(shm.fd)
    times = [ms for ms, _, _ in commits]
    worst = sorted(commits, reverse=True)[:5]
    return {
        "workload": f"{CLIENTS} clients x {per_client} resting limit orders via node.submit, "
                    f"cancel-all every {CANCEL_EVERY}; journal as `exchange-sim run` (group commit, "
                    "background checkpoints, forked snapshots, synchronous=NORMAL)",
        "orders": per_client * CLIENTS,
        "seconds": round(elapsed, 2),
        "orders_per_s": round(per_client * CLIENTS / elapsed),
        "commits": len(times),
        "commit_ms_max": round(max(times), 2),
        "commit_ms_p99": round(pct(times, 0.99), 3),
        "commit_ms_p50": round(statistics.median(times), 3),
        "commits_over_10ms": sum(t > 10 for t in times),
        "commits_over_20ms": sum(t > 20 for t in times),
        "slowest_commits_ms_wal_frames_snapshot": [[round(ms, 1), frames, stored] for ms, frames, stored in worst],
        "wal_max_frames": max_frames,
        "wal_max_mb_on_disk": round(max_wal_bytes / 2**20, 1),
        "wal_restarts": restarts,
        "background_checkpoints_completed": checkpoints,
        "inline_finishes": finishes,
        "inline_finish_ms_max": None if finish_ms_max is None else round(finish_ms_max, 2),
        "wal_timeline_frames_backfilled": timeline,
        "load_average": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="commit-tail-") as tmp:
        emit("journal_commit_tail", asyncio.run(run(Path(tmp) / "session.db")))


if __name__ == "__main__":
    main()

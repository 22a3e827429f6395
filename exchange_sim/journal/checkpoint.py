"""WAL checkpoints off the simulator's critical path: bulk copying in a helper process, a small
finish by the writer.

SQLite moves the WAL's pages into the database file at a checkpoint and, once a checkpoint has
copied *every* frame, the writer's next commit starts the log again from its top (a WAL
restart). Left to itself SQLite checkpoints inside whichever commit crosses
``wal_autocheckpoint`` pages, with fsyncs, and that commit (and every acknowledgement waiting on
it) stalls.

Another connection's checkpoints alone do not keep the WAL small under sustained writes: a
PASSIVE checkpoint copies the frames that existed when it began, the writer commits new ones
meanwhile, so it never *completes* and the WAL is never restarted (checkpoint starvation,
https://sqlite.org/wal.html#avoiding_excessively_large_wal_files). RESTART and TRUNCATE would
complete, but they hold the writer lock for the whole copy and its fsyncs: the writer (the event
loop) would wait for them instead. Measured before this design
(``scripts/bench/journal_commit_tail.py``, 40,000 orders): the WAL grew to the 16,384-page
safety limit and each commit crossing it checkpointed inline for 20–105 ms. A thread was tried
too: starved of the GIL by the busy event loop, it lagged ~1,000 frames behind the writer.

So the work is split:

* ``Checkpointer`` starts a small helper process (this file run as a script, standard library
  only, its own connection, no GIL shared with the simulator) that runs a PASSIVE checkpoint
  whenever ``PASS_FRAMES`` frames wait to be copied, and fsyncs the database file after each pass: the bulk of the
  copying and every large fsync happen there, never blocking the writer. It exits when the
  simulator closes its end of the pipe (including when the simulator dies).
* The writer, right after a commit (``Journal`` calls ``finish``), reads the WAL index header
  (``-shm``, https://sqlite.org/walformat.html): once the WAL holds ``restart_frames`` or more and
  at most ``finish_frames`` of them are not yet copied, it runs one PASSIVE checkpoint on its own
  connection. That copies only the few frames left and completes, because no other writer exists;
  the next commit restarts the WAL. The journal sets ``journal_size_limit`` above the safety net,
  so the file is reused in place, never truncated (truncating a 64 MB WAL cost a restarting commit
  40 ms here), and skips the finish while a forked snapshot is being written.

Measured after (same benchmark, three runs each, load ~2.8): max commit 8–34 ms instead of 77–80 ms,
p99 3.0–6.3 ms instead of 18–19 ms, commits over 20 ms 0–2 instead of 20–24 of 2,517; what is left
is the latency of small fsyncs on a shared disk.
The writer's ``wal_autocheckpoint`` stays high only as a safety net for when the helper cannot run.
"""

from __future__ import annotations

import logging
import os
import select
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

SAFETY_AUTOCHECKPOINT_PAGES = 65_536  # the writer checkpoints by itself only past ~256 MB of WAL
RESTART_FRAMES = 8_192  # restart the WAL from ~32 MB: few restarts (each costs the writer a finish)
FINISH_FRAMES = 1_024  # ... once the helper has left at most this many frames to copy
_WAL_INDEX_VERSION = 3007000
PASS_FRAMES = 512  # the helper copies once this many frames wait (~2 MB)
SKIP_FRAMES_PER_COMMIT = 64  # finish() reads the WAL index again after (frames to restart) / this commits ...
SKIP_MAX = 32  # ... at most: a read costs ~10 us on a busy loop, a late finish only a slightly longer WAL


class Checkpointer:
    """The writer's side: starts the helper process and finishes a checkpoint when it is cheap."""

    def __init__(self, path: Path, *, restart_frames: int = RESTART_FRAMES, finish_frames: int = FINISH_FRAMES,
                 interval: float = 0.01) -> None:
        self.path = path
        self.restart_frames = restart_frames
        self.finish_frames = finish_frames
        self.interval = interval
        self.finishes = 0  # checkpoints the writer completed (each lets the next commit restart the WAL)
        self.finish_ms_max = 0.0
        self._process: subprocess.Popen[bytes] | None = None
        self._shm: int | None = None
        self._skip = 0  # commits to pass before reading the WAL index again

    def start(self) -> None:
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", __file__, str(self.path), str(self.interval)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, close_fds=True)
        except OSError as exc:
            log.warning("journal %s: no background checkpoints (%s)", self.path, exc)

    def stop(self) -> None:
        """End the helper (before the writer closes its connection)."""
        if self._process is None:
            return
        process, self._process = self._process, None
        if process.stdin is not None:
            process.stdin.close()  # the helper's signal to exit
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def release(self) -> None:
        """Close the WAL index file; only *after* the writer's connection is closed: closing any
        descriptor of a file drops every POSIX lock this process holds on it, SQLite's included."""
        if self._shm is not None:
            os.close(self._shm)
            self._shm = None

    def wal_frames(self) -> tuple[int, int] | None:
        """(frames in the WAL, frames already copied into the database), or None if unknown."""
        if self._shm is None:
            try:
                self._shm = os.open(str(self.path) + "-shm", os.O_RDONLY)
            except OSError:
                return None
        return read_wal_index(self._shm)

    def finish(self, db: sqlite3.Connection) -> None:
        """After a commit, outside a transaction: complete the checkpoint if only a few frames are
        left to copy and the WAL is big enough to be worth restarting."""
        if db.in_transaction:
            return
        if self._skip:  # the WAL was far from restart_frames: no need to read its index after every commit
            self._skip -= 1
            return
        state = self.wal_frames()
        if state is None:
            return
        frames, copied = state
        if frames < self.restart_frames:
            # a commit writes ~10 frames (a snapshot's more): look again after a fraction of the way left
            self._skip = min(SKIP_MAX, (self.restart_frames - frames) // SKIP_FRAMES_PER_COMMIT)
            return
        if frames - copied > self.finish_frames:
            return
        t0 = time.perf_counter()
        try:
            busy, frames, done = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            return  # the next commit tries again
        if not busy and done == frames:
            self.finishes += 1
            self.finish_ms_max = max(self.finish_ms_max, (time.perf_counter() - t0) * 1000)


def read_wal_index(fd: int) -> tuple[int, int] | None:
    """(mxFrame, nBackfill) from the WAL index header; None while it is not valid. The descriptor
    must stay open as long as a connection of this process is: see ``Checkpointer.release``."""
    head = os.pread(fd, 100, 0)
    if len(head) < 100 or head[:48] != head[48:96]:
        return None  # not initialised, or being rewritten right now
    if struct.unpack_from("=I", head, 0)[0] != _WAL_INDEX_VERSION:
        return None
    return struct.unpack_from("=I", head, 16)[0], struct.unpack_from("=I", head, 96)[0]


def _helper(path: str, interval: float) -> None:
    """The helper process: a PASSIVE checkpoint once ``PASS_FRAMES`` frames wait to be copied (or
    any, once the WAL is big enough to restart), looking every ``interval``; until stdin closes.
    Copying in batches keeps its fsyncs few: a pass after every commit made one client's orders
    slower (its fsyncs write back the very WAL pages the writer is writing)."""
    db = sqlite3.connect(path, isolation_level=None, timeout=0.05)
    db.execute("PRAGMA wal_checkpoint(PASSIVE)")  # opens the WAL and its index
    fd = os.open(path, os.O_RDONLY)
    shm = os.open(path + "-shm", os.O_RDONLY)  # open for the process's life (POSIX locks)
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], interval)
        if ready and not os.read(sys.stdin.fileno(), 4096):
            return  # the simulator closed the pipe (or died)
        state = read_wal_index(shm)
        if state is not None:
            frames, copied = state
            if frames - copied < PASS_FRAMES and not (frames >= RESTART_FRAMES and frames > copied):
                continue
        try:
            _busy, frames, done = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            continue  # busy or locked: the next round tries again
        if done:
            os.fsync(fd)  # a pass overtaken by a commit copies pages without this fsync


if __name__ == "__main__":
    _helper(sys.argv[1], float(sys.argv[2]))

"""WAL checkpoints in a background thread, off the simulator's critical path.

SQLite moves the WAL's pages into the database file at a checkpoint. Left to itself it does so
inside whichever commit crosses ``wal_autocheckpoint`` pages, with fsyncs, and that commit (and the
liquidation waiting on it) stalls for milliseconds. ``Checkpointer`` instead runs a PASSIVE
checkpoint from its own connection every ``interval`` seconds: it never blocks the writer, and
sqlite3 releases the GIL while it does I/O, so the event loop keeps going. The writer keeps a high
``wal_autocheckpoint`` only as a safety net for when this thread falls behind.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

SAFETY_AUTOCHECKPOINT_PAGES = 16_384  # the writer checkpoints itself only past ~64 MB of WAL


class Checkpointer:
    def __init__(self, path: Path, interval: float = 0.5) -> None:
        self.path = path
        self.interval = interval
        self.checkpoints = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"wal-checkpoint {path.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=0.05)
        except sqlite3.Error as exc:
            log.warning("journal %s: no background checkpoints (%s)", self.path, exc)
            return
        try:
            while not self._stop.wait(self.interval):
                try:
                    busy, frames, done = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:
                    continue  # busy or locked: the next round tries again
                if frames > 0 and done == frames:
                    self.checkpoints += 1
        finally:
            db.close()

"""Snapshots taken by a forked child, off the simulator's critical path.

``Exchange.snapshot()`` pickles the whole core: with 50,000 resting orders that is ~10 MB and
~0.5 s of CPU, and taken inline (``Journal.record``) it stalls every request and liquidation
waiting behind it. ``ForkedSnapshot`` instead forks: the child holds a copy-on-write image of
the core exactly as it is after the input being recorded, pickles it, writes the bytes to a file
next to the journal and exits; the parent goes on at once (a fork costs a few ms: the page
tables) and, at a later ``poll``, reads the file and stores it as the snapshot of that input.

The child does nothing but pickle, write and ``os._exit``: it first closes every inherited
descriptor (SQLite's files, the API's sockets: a child outliving a SIGKILLed parent must hold
none of them; the journal's writer lock is a POSIX lock, never inherited), then no logging, no SQLite, no asyncio, the collector off, default
signal handling (so a Ctrl-C meant for the simulator does not reach
the parent's event loop through the inherited wakeup fd). A child whose parent was killed
finishes its file and exits; the file is left over and removed when the journal is next opened
(``remove_leftovers``). A child still working after ``max_seconds`` (hung) is killed and the next
snapshot is tried. Only where ``os.fork`` exists (POSIX); otherwise the journal snapshots inline.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import time
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

AVAILABLE = hasattr(os, "fork")


def _max_fd() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (OSError, ValueError):
        return 65536


def remove_leftovers(db_path: Path) -> None:
    """Delete snapshot files a killed process (or its orphaned child) left next to ``db_path``."""
    for stray in db_path.parent.glob(db_path.name + "-snapshot-*"):
        with contextlib.suppress(OSError):
            stray.unlink()


class ForkedSnapshot:
    """At most one snapshot being taken by a child process at a time (see module doc)."""

    def __init__(self, db_path: Path, max_seconds: float = 120.0) -> None:
        self.db_path = db_path
        self.max_seconds = max_seconds  # a child still working after this long is killed (hung)
        self._pid = 0
        self._started_at = 0.0
        self._seq = 0
        self._file: Path | None = None
        self.started = 0
        self.failed = 0

    @property
    def busy(self) -> bool:
        return self._pid != 0

    def start(self, seq: int, source: Any) -> None:
        """Fork a child that writes ``source.snapshot()`` (the state after input ``seq``) to a file."""
        assert not self.busy
        path = self.db_path.parent / f"{self.db_path.name}-snapshot-{os.getpid()}-{seq}"
        with warnings.catch_warnings():
            # Python >= 3.12 warns that fork() in a threaded process may deadlock the child: this
            # child takes no lock a thread could hold (no logging, no SQLite, no imports)
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                gc.disable()
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(sig, signal.SIG_DFL)
                # let go of every inherited descriptor (SQLite's files, the API's sockets): a child
                # outliving a killed parent must hold none of them
                os.closerange(3, _max_fd())
                data = source.snapshot()
                tmp = path.with_name(path.name + ".tmp")
                with open(tmp, "wb") as out:
                    out.write(data)
                os.replace(tmp, path)
                code = 0
            finally:
                os._exit(code)
        self._pid, self._seq, self._file = pid, seq, path
        self._started_at = time.monotonic()
        self.started += 1

    def poll(self, wait: bool = False) -> tuple[int, bytes] | None:
        """(seq, state) once the child is done, None while it works (or if it failed, logged)."""
        if not self._pid:
            return None
        try:
            pid, status = os.waitpid(self._pid, 0 if wait else os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere: look for its file all the same
            pid, status = self._pid, 0
        if pid == 0:
            if time.monotonic() - self._started_at <= self.max_seconds:
                return None
            log.error("journal %s: the snapshot child for input %d is still working after %.0f s; killed",
                      self.db_path, self._seq, self.max_seconds)
            with contextlib.suppress(OSError):
                os.kill(self._pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self._pid, 0)
            status = 1
        seq, path = self._seq, self._file
        self._pid, self._file = 0, None
        assert path is not None
        try:
            ok = os.waitstatus_to_exitcode(status) == 0
            data = path.read_bytes() if ok else None
        except OSError:
            data = None
        finally:
            for leftover in (path, path.with_name(path.name + ".tmp")):
                with contextlib.suppress(OSError):
                    leftover.unlink()
        if data is None:
            self.failed += 1
            log.error("journal %s: the snapshot child for input %d failed (status %d); the next one retries",
                      self.db_path, seq, status)
            return None
        return seq, data

    def finish(self, timeout: float = 30.0) -> tuple[int, bytes] | None:
        """Wait (at most ``timeout`` s) for a running child: its snapshot, or None."""
        deadline = time.monotonic() + timeout
        while self.busy and time.monotonic() < deadline:
            done = self.poll()
            if done is not None or not self.busy:
                return done
            time.sleep(0.005)
        if self.busy:  # a child that hangs: stop it, its snapshot is lost (the next run takes one)
            with contextlib.suppress(OSError):
                os.kill(self._pid, signal.SIGKILL)
            self.poll(wait=True)
        return None

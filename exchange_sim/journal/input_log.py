"""The journal's input log: an append-only file beside the session file, where an input is stored first.

    log = InputLog(Path("session.db-inputs"), fsync=False)
    log.add_input(seq, "PlaceOrder", ts, body)     # kept in memory
    log.add_refusal(seq, reason)
    log.write()                                    # one write() for everything added: stored
    ...                                            # the same rows committed to SQLite, then:
    log.clear()                                    # the file starts again from empty
    records = read_records(path)                   # what a crash left: [(kind, seq, type, ts, body)]

Why: an input must be stored before it is acknowledged, and committing a SQLite transaction
costs a dozen system calls (locks on the WAL index, a frame header and a page per changed page);
appending one record to a file costs one ``write``. With ``JournalConfig(input_log=True)`` the
journal stores each batch of inputs here (``flush``) and copies them into its ``inputs`` table
with their events a moment later (``write_deferred``), then empties this file. ``write`` returns
once the records are in the operating system's page cache: like ``synchronous=NORMAL`` they
survive any crash of the process; with ``fsync`` (``synchronous=FULL``) an ``fdatasync`` follows,
so they survive a power cut too.

Each record is ``<length u32><crc32 u32><payload>`` (little-endian), the payload
``kind \\t seq \\t type \\t ts \\t body`` in UTF-8: kind ``i`` an input (body: its canonical JSON),
``r`` a refusal (``Journal.refuse``; type and ts empty, body the reason). A crash (or power cut)
can leave the last record incomplete; it was never acknowledged (``write`` had not returned) and
``read_records`` drops it. A bad record followed by good ones is corruption, not a torn tail.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import zlib
from pathlib import Path

from .errors import JournalCorruptError, JournalWriteError

log = logging.getLogger(__name__)

_HEAD = struct.Struct("<II")
INPUT, REFUSAL = "i", "r"
Record = tuple[str, int, str, int, str]  # kind, seq, type, ts, body


def log_path(db: Path) -> Path:
    return Path(str(db) + "-inputs")


def _encode(kind: str, seq: int, type_name: str, ts: int, body: str) -> bytes:
    payload = f"{kind}\t{seq}\t{type_name}\t{ts}\t{body}".encode()
    return _HEAD.pack(len(payload), zlib.crc32(payload)) + payload


class InputLog:
    """The writer's side of the input log (one writer: the journal's lock covers this file too)."""

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        self.path = path
        self.fsync = fsync
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = os.fstat(self._fd).st_size
        self._pending: list[bytes] = []

    def add_input(self, seq: int, type_name: str, ts: int, body: str) -> None:
        self._pending.append(_encode(INPUT, seq, type_name, ts, body))

    def add_refusal(self, seq: int, reason: str) -> None:
        self._pending.append(_encode(REFUSAL, seq, "", 0, reason.replace("\t", " ")))

    def write(self) -> None:
        """Store every added record (one ``write``, plus ``fdatasync`` with ``fsync``). If that fails,
        the file is cut back to where it was, so nothing of these records is stored, and it raises."""
        if not self._pending:
            return
        data = b"".join(self._pending)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            if self.fsync:
                os.fdatasync(self._fd)
        except OSError as exc:
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
            raise JournalWriteError(f"input log {self.path}: cannot write: {exc.strerror}") from None
        self._size += len(data)
        self._pending.clear()

    def discard_pending(self) -> None:
        """Forget the records added and not written (their inputs were committed to SQLite instead)."""
        self._pending.clear()

    def clear(self) -> None:
        """Empty the file: call only once every record in it is committed to SQLite."""
        if self._size:
            os.ftruncate(self._fd, 0)
            self._size = 0

    def close(self) -> None:
        os.close(self._fd)


def read_records(path: Path) -> list[Record]:
    """Every complete record of the log at ``path`` (none if there is no file), oldest first."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    out: list[Record] = []
    at = 0
    while at < len(data):
        if at + _HEAD.size > len(data):
            break  # a torn header: the tail of an unfinished write
        length, crc = _HEAD.unpack_from(data, at)
        payload = data[at + _HEAD.size:at + _HEAD.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            if _later_record(data, at + 1):
                raise JournalCorruptError(f"input log {path}: a damaged record at byte {at} before good ones")
            break
        kind, seq, type_name, ts, body = payload.decode().split("\t", 4)
        out.append((kind, int(seq), type_name, int(ts or 0), body))
        at += _HEAD.size + length
    if at < len(data):
        log.warning("input log %s: dropped an incomplete last record (%d bytes): it was never acknowledged",
                    path, len(data) - at)
    return out


def fold_input_log(db: sqlite3.Connection, path: Path, last_seq: int) -> int:
    """Copy what the log at ``path`` holds beyond input ``last_seq`` into the journal's ``inputs``
    (and ``refused``) tables, commit, empty the log; the new last seq. What ``Journal`` does when it
    opens a file for writing: what a crash left in the log is stored, so it is never skipped. A gap
    after the stored inputs is corruption."""
    records = read_records(path)
    if not records:
        if path.exists() and path.stat().st_size:
            os.truncate(path, 0)  # only a torn record, never acknowledged
        return last_seq
    expected, inputs, refusals = last_seq + 1, [], []
    for kind, seq, type_name, ts, body in records:
        if kind != INPUT:
            refusals.append((seq, body))
        elif seq >= expected:
            if seq != expected:
                raise JournalCorruptError(f"input log {path}: input {seq} after input {expected - 1}")
            inputs.append((seq, type_name, ts, body))
            expected += 1
    db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT INTO inputs VALUES (?, ?, ?, ?)", inputs)
    db.executemany("INSERT OR REPLACE INTO refused VALUES (?, ?)", refusals)
    db.execute("COMMIT")
    os.truncate(path, 0)
    if inputs:
        log.info("input log %s: %d inputs stored from it (%d..%d)", path, len(inputs), inputs[0][0], inputs[-1][0])
    return expected - 1


def _later_record(data: bytes, start: int) -> bool:
    """Whether a valid record starts anywhere at or after ``start`` (a damaged record in the middle)."""
    for at in range(start, len(data) - _HEAD.size):
        length, crc = _HEAD.unpack_from(data, at)
        end = at + _HEAD.size + length
        if length and end <= len(data) and zlib.crc32(data[at + _HEAD.size:end]) == crc:
            return True
    return False

"""The session record: an append-only input journal, core snapshots and the event log, in SQLite.

    journal = Journal("session.db")                   # creates the file (WAL mode) if needed
    exchange, next_seq = recover(journal, genesis)    # see ``recovery``; binds the exchange
    node = Node(exchange, journal)                    # node calls journal.append(msg) before apply
    node.add_listener(journal.record)                 # ... and journal.record(msg, events) after

Tables (one file, ``PRAGMA journal_mode=WAL``):

``inputs(seq, type, ts, body)``
    Every state-changing input (client and admin commands, the market events the core
    consumed), ``seq`` from 1 without gaps, ``body`` the canonical JSON of
    ``exchange_sim.core.messages.dumps``.
``snapshots(seq, taken, state)``
    ``Exchange.snapshot()`` after the input ``seq`` was applied; seq 0 is the genesis state
    (the empty exchange with its profile and config), written by ``recover`` on a new file.
``events(seq, input_seq, type, account, ts, body)``
    The core's output events in order (canonical JSON), with the input that caused them; what
    ``/sim/v1/events`` and ``replay-session`` read.
``refused(seq, reason)``
    Inputs the core raised on (a bug): stored, but never part of the session. ``inputs`` and
    every replay skip them; the live node rebuilt its core without them (``refuse``).
``meta(key, value)``
    ``format`` and ``events_through`` (the last input whose events are in ``events``).
``history_orders``, ``history_trades``, ``history_income``, ``history_liquidations``
    The session's history, a read model of ``events`` kept by ``history.History``
    (``journal.history``): ``record`` and ``write_events`` derive its rows in the same
    transaction as the events; a file without these tables gets them rebuilt when opened.

Durability: "acknowledged means stored"
    ``append`` returns only after its own transaction committed. With ``synchronous=NORMAL`` (the
    simulator's default) the WAL frames are in the operating system's page cache when the commit
    returns, so a returned ``append`` survives a SIGKILL or any crash of the process; a power cut
    or kernel panic could roll back the last commits. ``FULL`` adds an fsync of the WAL on every
    commit (about 0.3 ms here) and survives those too. Because every append commits, a caller
    may acknowledge a command as soon as ``append`` returned and the core applied it.

    Group commit (``JournalConfig(group_commit=True)``): ``append`` only stages the row and
    ``flush`` commits. This is allowed only if the caller acknowledges and publishes nothing
    before ``flush`` returned, and fails every command of the batch if ``flush`` raises. The
    runtime node does exactly that (``runtime/node.py``), and ``exchange-sim run`` turns it on.

    ``record`` (the events of an input) is staged and committed with the next ``append`` or
    ``flush``: events are a pure function of the inputs, so ``recover`` rewrites any that a
    crash lost (``events_through`` tells which). An input without events writes nothing of its
    own (``events_through`` rides along with the next append), so market data costs one commit
    per input and the node's flush-when-idle costs nothing when no events are staged.

    Deferred events (``JournalConfig(deferred_events=True)``, what ``exchange-sim run`` uses):
    ``record`` only keeps the events in memory, so an input's own commit writes the input row
    alone (one or two WAL pages instead of about ten: the event log, the history tables and their
    indexes). ``write_deferred`` stages the kept rows, oldest first, in the open transaction; the
    node calls it shortly after a commit (``runtime/node.py``: at most ``DEFERRED_WRITE_S`` later)
    and commits them together, so a lone client's request never waits for its event and history
    rows, and many inputs share their pages. Nothing is lost: the inputs are stored before they
    are acknowledged, and ``recover`` rewrites the events of every input after ``events_through``
    exactly as it does after any crash. Nothing reads stale: every read of the event log or the
    history (``events``, ``history.orders``...) and every snapshot first stages what is kept, on
    this connection, so a reply after an acknowledgement sees its rows. Readers on *other*
    connections (``replay-session`` on a live file) see them once they are committed, within
    ``DEFERRED_WRITE_S``. At most ``MAX_DEFERRED`` inputs are kept; then ``record`` writes them.

    Input log (``JournalConfig(input_log=True)``, with group commit and deferred events; what
    ``exchange-sim run`` uses): ``append`` does not touch SQLite at all. ``flush`` stores the batch
    by one append to ``<file>-inputs`` (``input_log.py``), and ``write_deferred`` puts those inputs
    into ``inputs`` with their events; the commit that holds the last of them empties the log.
    Opening the file copies into ``inputs`` whatever the log holds beyond them (what a crash left),
    whatever the config, so nothing stored is ever skipped. A refusal is logged too. If SQLite then
    fails to commit, the inputs are stored in the log even though the batch is reported failed
    (its clients got "try again": they may find their order, as after a timeout on the venue).

One writer: a second writer on the same file is refused (a POSIX lock on ``<file>-lock``); readers
(``read_only=True``, ``replay-session``) may open it any time.

Failure: any SQLite error while storing turns the journal *failed*: that ``append`` raises
``JournalWriteError`` (nothing of the input stored, it must not be applied) and so does every
later write, until the file is reopened (restart, ``recover``). Reads keep working.

Snapshots: ``record`` takes one every ``snapshot_every`` inputs. Inline it pickles the whole core
on the caller's thread (~0.5 s with 50,000 resting orders); with ``background_snapshot`` a forked
child pickles a copy-on-write image of the core and a later ``record``/``flush`` stores it
(``forked_snapshot.py``): the writer never waits for the pickling.

Compaction: after each snapshot, when more than ``keep_snapshots`` exist (0: never compact, for
sessions that must replay from the very start), the older snapshots
and every input they cover (``seq <=`` the oldest kept snapshot) are deleted; freed pages are
reused, so the file stops growing at about ``(keep_snapshots + 1) * snapshot_every`` inputs.
The event log is kept (it is the session's record) unless ``compact_events`` is set.

Size (``python -m tests.support.journal_sizing``, the recorded Binance BTCUSDT feed at the live
feed's rates, ~73 inputs/s a symbol, ~615 bytes stored per input): a day of BTCUSDT + ETHUSDT
would be ~12.6 M inputs, ~7.7 GB uncompacted; with the defaults (snapshot every 10,000 inputs,
keep 3) the file levels off near 25 MB plus the WAL (~8 MB; with background checkpoints restarted
in place from ~32 MB, checkpoint.py), plus the event log
(~0.4 kB an event, ~2 kB a filled order).
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self

from exchange_sim.core.messages import dumps, loads

from . import forked_snapshot
from .input_log import InputLog, fold_input_log, log_path
from .checkpoint import SAFETY_AUTOCHECKPOINT_PAGES, Checkpointer
from .errors import JournalCorruptError, JournalError, JournalWriteError
from .history import History, rebuild

FORMAT = "1"
MAX_DEFERRED = 256  # inputs whose events ``record`` keeps before it writes them itself (deferred_events)
log = logging.getLogger(__name__)
_WRITERS: set[str] = set()  # lock files this process holds (see Journal._lock)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS inputs (seq INTEGER PRIMARY KEY, type TEXT NOT NULL, ts INTEGER NOT NULL,
                                   body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (seq INTEGER PRIMARY KEY, taken INTEGER NOT NULL, state BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, input_seq INTEGER NOT NULL, type TEXT NOT NULL,
                                   account INTEGER, ts INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_input ON events (input_seq);
CREATE INDEX IF NOT EXISTS events_by_account ON events (account, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS refused (seq INTEGER PRIMARY KEY, reason TEXT NOT NULL);
"""


class SnapshotSource(Protocol):
    def snapshot(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class JournalConfig:
    """How often to snapshot, how much to keep, how hard to sync."""

    snapshot_every: int = 10_000  # inputs between snapshots (0: never snapshot automatically)
    keep_snapshots: int = 3  # snapshots kept by compaction; inputs before the oldest go (0: keep all)
    synchronous: str = "NORMAL"  # NORMAL (safe against any crash of the process) or FULL (also power loss)
    group_commit: bool = False  # see the module docstring before turning this on
    compact_events: bool = False  # also delete the event log of compacted inputs
    wal_size_limit: int = 8 * 1024 * 1024  # bytes the WAL is truncated to after a checkpoint (background: never)
    background_checkpoint: bool = False  # WAL copied by a helper process, finished cheaply by the writer (checkpoint.py)
    background_snapshot: bool = False  # snapshots pickled by a forked child, not inline (forked_snapshot.py)
    deferred_events: bool = False  # event-log and history rows written after the input's commit (module doc)
    input_log: bool = False  # inputs stored by one append to ``<file>-inputs`` (input_log.py); needs the two above

    def __post_init__(self) -> None:
        if self.snapshot_every < 0:
            raise JournalError(f"snapshot_every = {self.snapshot_every}: must be >= 0")
        if self.keep_snapshots < 0:
            raise JournalError(f"keep_snapshots = {self.keep_snapshots}: must be >= 0 (0 keeps everything)")
        if self.synchronous not in ("FULL", "NORMAL"):
            raise JournalError(f"synchronous = {self.synchronous!r}: must be FULL or NORMAL")
        if self.input_log and not (self.group_commit and self.deferred_events):
            raise JournalError("input_log needs group_commit and deferred_events")


@dataclass(frozen=True, slots=True)
class JournalStats:
    inputs: int  # rows now in the journal (after compaction)
    first_seq: int  # first input seq still stored (0 if none)
    last_seq: int  # last input seq ever stored
    events: int
    snapshots: int
    snapshot_bytes: int  # the newest snapshot's size
    file_bytes: int  # main file + WAL on disk
    wal_bytes: int  # the WAL alone
    page_bytes: int  # pages in use (file minus free pages), what the data really takes


def _account_of(event: Any) -> int | None:
    account = getattr(event, "account", None)
    return account if isinstance(account, int) and not isinstance(account, bool) else None


class Journal:
    """One session's SQLite file: ``append`` inputs, ``record`` their events, snapshot, compact, read."""

    def __init__(self, path: str | os.PathLike[str], config: JournalConfig = JournalConfig(), *,
                 read_only: bool = False) -> None:
        self.path = Path(path)
        self.config = config
        self.read_only = read_only
        self.failure: str | None = None  # why writes are refused, once failed
        self._source: SnapshotSource | None = None
        self._in_sync = True  # every appended input was recorded as applied (snapshots allowed)
        self._pending_record: int | None = None  # appended seq whose record() has not come yet
        self._deferred: list[tuple[int, Any, list[Any]]] = []  # (seq, input, events) not written yet
        self._log_rows: list[tuple[int, str, int, str]] = []  # inputs in the input log, not yet in ``inputs``
        self._input_log: InputLog | None = None
        self._lock_fd: int | None = None if read_only else self._lock()
        try:
            if read_only:
                uri = "file:" + str(self.path.resolve()) + "?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, isolation_level=None)
            else:
                self._db = sqlite3.connect(str(self.path), isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(f"PRAGMA synchronous={config.synchronous}")
                size_limit = int(config.wal_size_limit)
                if config.background_checkpoint:
                    self._db.execute(f"PRAGMA wal_autocheckpoint={SAFETY_AUTOCHECKPOINT_PAGES}")
                    # the WAL restarts in place below the safety net: never truncate it (checkpoint.py)
                    size_limit = max(size_limit, SAFETY_AUTOCHECKPOINT_PAGES * (self._scalar("PRAGMA page_size") + 24))
                self._db.execute(f"PRAGMA journal_size_limit={size_limit}")
                self._db.executescript(_SCHEMA)
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (FORMAT,))
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('events_through', '0')")
            fmt = self._meta("format")
            # closed orders, fills, income, liquidations: derived from the events, in the same transactions
            fresh = self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'history_orders'").fetchone() is None
            self.history = History(self._db, create=not read_only)
            if config.deferred_events and not read_only:
                self.history.before_read = self.write_deferred  # a read sees every recorded input's rows
            self._last_seq = self._scalar("SELECT COALESCE(MAX(seq), 0) FROM inputs")
            self._last_seq = max(self._last_seq, self._scalar("SELECT COALESCE(MAX(seq), 0) FROM snapshots"))
            self._last_event = self._scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
            self._last_snapshot = self._scalar("SELECT COALESCE(MAX(seq), -1) FROM snapshots")
            self._events_through = int(self._meta("events_through") or 0)
            # a file written before refused inputs existed, opened read-only, has no such table
            self._refused_table = bool(self._scalar(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'refused'"))
            self._stored_through = self._events_through  # what the meta row says (or will, at commit)
            if fresh and not read_only and self._last_event:  # a file from before the history tables
                self.history = rebuild(self._db)
            if not read_only:  # whatever config this is opened with: the logged inputs are stored
                self._last_seq = fold_input_log(self._db, log_path(self.path), self._last_seq)
        except JournalCorruptError:
            self._db.close()
            self._unlock()
            raise
        except sqlite3.Error as exc:
            self._unlock()
            raise JournalError(f"journal {self.path}: cannot open: {_describe(exc)}") from None
        if fmt != FORMAT:
            self._db.close()
            self._unlock()
            raise JournalCorruptError(f"journal {self.path}: format {fmt!r}, this version reads {FORMAT!r}")
        if config.input_log and not read_only:
            self._input_log = InputLog(log_path(self.path), fsync=config.synchronous == "FULL")
        self._checkpointer: Checkpointer | None = None
        if config.background_checkpoint and not read_only:
            self._checkpointer = Checkpointer(self.path)
            self._checkpointer.start()
        self._forked: forked_snapshot.ForkedSnapshot | None = None
        if config.background_snapshot and forked_snapshot.AVAILABLE and not read_only:
            forked_snapshot.remove_leftovers(self.path)
            self._forked = forked_snapshot.ForkedSnapshot(self.path)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Store a snapshot still being taken, commit what is staged (if healthy) and close the file."""
        if self._forked is not None and self._forked.busy:
            self._store_forked(self._forked.finish())
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.stop()
        try:
            if self.failure is None and not self.read_only:
                self.write_deferred()
            if self._db.in_transaction and self.failure is None:
                self._stage_events_through()
                self._db.execute("COMMIT")
                if self._input_log is not None:  # every logged input is in ``inputs`` now
                    self._input_log.discard_pending()
                    self._input_log.clear()
        except (sqlite3.Error, OSError):
            pass
        finally:
            if self._input_log is not None:
                self._input_log.close()
            self._db.close()
            if checkpointer is not None:
                checkpointer.release()  # after the connection: see Checkpointer.release
            self._unlock()

    def _lock(self) -> int:
        """One writer per file: an exclusive POSIX lock on ``<file>-lock``, released on close or death.

        A POSIX (``lockf``) lock, not ``flock``: a forked snapshot child (``forked_snapshot``) does
        not inherit it, so a child outliving a killed simulator never keeps a restart out. POSIX
        locks do not exclude the same process, so this process's writers are also kept in
        ``_WRITERS`` (checked before the lock file is opened: closing any descriptor of the file
        would drop the lock held by the first writer).
        """
        lock_path = str(self.path) + "-lock"
        key = os.path.realpath(lock_path)
        in_use = JournalError(f"journal {self.path} is in use by another process (a simulator already "
                              "running on this session file?)")
        if key in _WRITERS:
            raise in_use
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise JournalError(f"journal {self.path}: cannot open: {exc.strerror}") from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise in_use from None
        _WRITERS.add(key)
        self._lock_key = key
        return fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
            _WRITERS.discard(self._lock_key)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def bind(self, source: SnapshotSource | None) -> None:
        """Take automatic snapshots of ``source`` (the exchange the appended inputs are applied to)."""
        self._source = source

    # ------------------------------------------------------------------ writing

    @property
    def last_seq(self) -> int:
        """The seq of the last stored input (0 for a new journal)."""
        return self._last_seq

    @property
    def next_seq(self) -> int:
        return self._last_seq + 1

    @property
    def events_through(self) -> int:
        """The last input seq whose events are in the event log (or staged for it)."""
        return self._events_through

    def append(self, msg: Any) -> int:
        """Store ``msg`` as the next input and return its seq; durable when this returns.

        Raises JournalWriteError if it could not be stored: then nothing was stored and the
        caller must neither apply nor acknowledge ``msg``.
        """
        self._writable()
        try:
            body = dumps(msg)
        except (TypeError, ValueError, AttributeError) as exc:
            raise JournalError(f"journal {self.path}: {type(msg).__name__} is not a core message: {exc}") from None
        if self._pending_record is not None:
            self._in_sync = False  # the previous input was never recorded as applied: no more snapshots
        seq = self._last_seq + 1
        if self._input_log is not None:  # stored by the next flush's one write; into ``inputs`` later
            row = (seq, type(msg).__name__, int(getattr(msg, "ts", 0) or 0), body)
            self._input_log.add_input(*row)
            self._log_rows.append(row)
            self._last_seq = seq
            self._pending_record = seq
            return seq
        try:
            if not self._db.in_transaction:
                self._db.execute("BEGIN IMMEDIATE")
            self._stage_events_through()
            self._db.execute("INSERT INTO inputs VALUES (?, ?, ?, ?)",
                             (seq, type(msg).__name__, int(getattr(msg, "ts", 0) or 0), body))
            if not self.config.group_commit:
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._fail(f"could not store input {seq} ({type(msg).__name__})", exc)
        self._last_seq = seq
        self._pending_record = seq
        if not self.config.group_commit:
            self._finish_checkpoint()
        return seq

    def record(self, msg: Any, events: list[Any]) -> None:
        """Add ``events``, what the last appended input ``msg`` caused, to the event log.

        Staged, committed with the next ``append`` or ``flush``. Takes the periodic snapshot and
        compacts when due. Meant as a node listener: ``node.add_listener(journal.record)``.
        """
        if self.failure is not None or self.read_only:
            return
        seq = self._pending_record
        if seq is None:
            return  # an input that was never journaled (no journal at append time): nothing to add
        self._pending_record = None
        if self.config.deferred_events and (events or self._deferred):  # written later (module doc)
            self._deferred.append((seq, msg, events))
            if len(self._deferred) >= MAX_DEFERRED:
                self.write_deferred()
        elif events or self._db.in_transaction:
            try:
                if not self._db.in_transaction:
                    self._db.execute("BEGIN IMMEDIATE")
                self._insert_events(seq, events)
                self.history.record(msg, events)
            except sqlite3.Error as exc:
                self._fail(f"could not store the events of input {seq}", exc)
        else:  # nothing to write now: the next transaction (an append) carries events_through along
            self._events_through = max(self._events_through, seq)
        if self._forked is not None and self._forked.busy:
            self._store_forked(self._forked.poll())
        if (self._source is not None and self._in_sync and self.config.snapshot_every
                and seq - self._last_snapshot >= self.config.snapshot_every):
            self.write_deferred()  # a snapshot never runs ahead of the stored events
            if self._forked is not None:
                if not self._forked.busy:  # else the next input tries again, once the child is done
                    self._fork_snapshot(seq)
                return
            try:
                state = self._source.snapshot()
            except Exception:  # a core that cannot snapshot: keep journaling, recovery replays further
                log.exception("journal %s: the core could not be snapshotted; automatic snapshots are off",
                              self.path)
                self._source = None
                return
            self.save_snapshot(seq, state)

    def refuse(self, seq: int, reason: str) -> None:
        """Mark input ``seq`` (the last appended) refused: the core raised on it, so it is not part of
        the session. Committed with that input (group commit) or at once; no events are recorded."""
        self._writable()
        self.write_deferred()  # events_through moves past ``seq``: the kept rows before it go first
        try:
            if not self._db.in_transaction:
                self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR REPLACE INTO refused VALUES (?, ?)", (seq, reason[:500]))
            if self._input_log is not None:
                self._input_log.add_refusal(seq, reason[:500])
            if self._pending_record == seq:
                self._pending_record = None
            self._events_through = max(self._events_through, seq)
            self._stage_events_through()
            if not self.config.group_commit:
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._fail(f"could not mark input {seq} refused", exc)

    def _fork_snapshot(self, seq: int) -> None:
        try:
            self._forked.start(seq, self._source)  # type: ignore[union-attr]
        except OSError as exc:  # no fork (out of memory, process limit): snapshot inline this time
            log.warning("journal %s: cannot fork for the snapshot after input %d (%s); taking it inline",
                        self.path, seq, exc)
            assert self._source is not None
            self.save_snapshot(seq, self._source.snapshot())

    def _store_forked(self, done: tuple[int, bytes] | None) -> None:
        """Store the snapshot a forked child finished (if the journal can still write)."""
        if done is None or self.failure is not None or self.read_only:
            return
        seq, state = done
        if seq > self._last_snapshot:
            self.save_snapshot(seq, state)

    def rebuild(self, exchange_type: Any = None) -> Any:
        """The exchange after every appended input but the refused ones (``recovery.rebuild``)."""
        from .recovery import rebuild  # recovery builds on the store: imported when used

        return rebuild(self, exchange_type)

    def flush(self) -> None:
        """Commit everything staged (``record`` rows, group-committed inputs); durable on return."""
        if self.failure is not None:
            raise JournalWriteError(self.failure)
        if self._forked is not None and self._forked.busy:
            self._store_forked(self._forked.poll())
        if self._input_log is not None:
            if self._db.in_transaction:  # a transaction holds every logged input its events come after
                self.write_deferred()
            try:
                self._input_log.write()  # the batch's inputs: stored when this returns
            except JournalWriteError as exc:
                self._fail("could not store inputs", exc)
        if self.read_only or not self._db.in_transaction:
            return
        try:
            self._stage_events_through()
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._fail("could not commit", exc)
        if self._input_log is not None and not self._log_rows:
            try:
                self._input_log.clear()  # all it held is committed to ``inputs``
            except OSError as exc:
                self._fail("could not empty the input log", exc)
        self._finish_checkpoint()

    def _finish_checkpoint(self) -> None:
        """After a commit: let the checkpointer finish a WAL checkpoint if it is cheap now (checkpoint.py).
        Not while a forked child writes a snapshot: its file's blocks would ride along the fsyncs."""
        if self._checkpointer is not None and not (self._forked is not None and self._forked.busy):
            self._checkpointer.finish(self._db)

    def save_snapshot(self, seq: int, state: bytes, *, taken: int = 0) -> None:
        """Store ``state``, the core after input ``seq``; then compact. Committed with the next write."""
        self._writable()
        self.write_deferred()
        try:
            if not self._db.in_transaction:
                self._db.execute("BEGIN IMMEDIATE")
            self._stage_events_through()
            self._db.execute("INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?)", (seq, taken, bytes(state)))
            self._compact()
            if self.config.group_commit is False and seq == 0:
                self._db.execute("COMMIT")  # the genesis snapshot is what makes a new file a session
        except sqlite3.Error as exc:
            self._fail(f"could not store the snapshot after input {seq}", exc)
        self._last_snapshot = max(self._last_snapshot, seq)
        self._last_seq = max(self._last_seq, seq)

    @property
    def deferred(self) -> int:
        """How many inputs' rows are kept for ``write_deferred`` (events and history; logged inputs)."""
        return len(self._deferred) + len(self._log_rows)

    def write_deferred(self) -> bool:
        """Stage what is kept, oldest first, in the open transaction (begun if needed; the next
        ``flush`` commits it): logged inputs' rows (``input_log``), then event and history rows
        (``deferred_events``). True if there was anything."""
        if not (self._deferred or self._log_rows) or self.failure is not None or self.read_only:
            return False
        kept, self._deferred = self._deferred, []
        rows, self._log_rows = self._log_rows, []
        seq = kept[0][0] if kept else rows[0][0]
        try:
            if not self._db.in_transaction:
                self._db.execute("BEGIN IMMEDIATE")
            if rows:  # the logged inputs first: the input log is emptied once they are committed
                self._db.executemany("INSERT INTO inputs VALUES (?, ?, ?, ?)", rows)
            for seq, msg, events in kept:
                self._insert_events(seq, events)
                self.history.record(msg, events)
        except sqlite3.Error as exc:
            self._fail(f"could not store the events of input {seq}", exc)
        return True

    def write_events(self, input_seq: int, events: list[Any]) -> None:
        """Store the events of an input replayed by ``recover`` (committed by ``flush``)."""
        self._writable()
        try:
            if not self._db.in_transaction:
                self._db.execute("BEGIN IMMEDIATE")
            self._insert_events(input_seq, events)
            self.history.record(self._input(input_seq), events)
        except sqlite3.Error as exc:
            self._fail(f"could not store the events of input {input_seq}", exc)

    def _insert_events(self, input_seq: int, events: list[Any]) -> None:
        rows = []
        for event in events:
            self._last_event += 1
            rows.append((self._last_event, input_seq, type(event).__name__, _account_of(event),
                         int(getattr(event, "ts", 0) or 0), dumps(event)))
        if rows:
            self._db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", rows)
        self._events_through = max(self._events_through, input_seq)  # written by the commit (flush or append)

    def _stage_events_through(self) -> None:
        """Write ``events_through`` into the open transaction if it moved: once per commit (``flush``,
        ``close`` and an ungrouped ``append`` call it), in the transaction holding those events."""
        if self._events_through != self._stored_through:
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'events_through'", (str(self._events_through),))
            self._stored_through = self._events_through

    def _compact(self) -> None:
        if not self.config.keep_snapshots:
            return  # keep the whole session (replay-session from the very start)
        seqs = [r[0] for r in self._db.execute("SELECT seq FROM snapshots ORDER BY seq DESC")]
        if len(seqs) <= self.config.keep_snapshots:
            return
        oldest_kept = seqs[self.config.keep_snapshots - 1]
        self._db.execute("DELETE FROM snapshots WHERE seq < ?", (oldest_kept,))
        self._db.execute("DELETE FROM inputs WHERE seq <= ?", (oldest_kept,))
        self._db.execute("DELETE FROM refused WHERE seq <= ?", (oldest_kept,))
        if self.config.compact_events:
            self._db.execute("DELETE FROM events WHERE input_seq <= ?", (oldest_kept,))

    def _writable(self) -> None:
        if self.read_only:
            raise JournalWriteError(f"journal {self.path} is open read-only")
        if self.failure is not None:
            raise JournalWriteError(self.failure)

    def _fail(self, what: str, exc: sqlite3.Error | OSError | JournalWriteError) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        self._last_seq = self._scalar_or("SELECT COALESCE(MAX(seq), 0) FROM inputs", self._last_seq)
        self.failure = (f"journal {self.path}: {what}: {_describe(exc)}; "
                        "refusing all further input until the simulator is restarted")
        log.error("%s", self.failure)  # once: the operator's clear message (clients get "try again")
        raise JournalWriteError(self.failure) from None

    # ------------------------------------------------------------------ reading

    def inputs(self, after: int = 0, upto: int | None = None) -> Iterator[tuple[int, Any]]:
        """Stored inputs with ``after < seq <= upto``, in order, decoded; refused ones left out."""
        self.write_deferred()  # logged inputs not yet in the table: staged on this connection first
        hi = self._last_seq if upto is None else upto
        skip = " AND seq NOT IN (SELECT seq FROM refused)" if self._refused_table else ""
        cursor = self._db.execute(f"SELECT seq, body FROM inputs WHERE seq > ? AND seq <= ?{skip} ORDER BY seq",
                                  (after, hi))
        for seq, body in cursor:
            yield seq, _decode(self.path, "input", seq, body)

    def refused_seqs(self, after: int = 0) -> set[int]:
        """Seqs of the refused inputs after ``after`` (see ``refuse``)."""
        if not self._refused_table:
            return set()
        return {r[0] for r in self._db.execute("SELECT seq FROM refused WHERE seq > ?", (after,))}
    def _input(self, seq: int) -> Any:
        """The stored input ``seq`` decoded, or None if it is not stored (compacted)."""
        row = self._db.execute("SELECT body FROM inputs WHERE seq = ?", (seq,)).fetchone()
        return _decode(self.path, "input", seq, row[0]) if row else None

    def first_input_seq(self) -> int:
        """The oldest input still stored (0 if there is none)."""
        return self._scalar("SELECT COALESCE(MIN(seq), 0) FROM inputs")

    def snapshot_seqs(self) -> list[int]:
        """Seqs of the stored snapshots, oldest first."""
        return [r[0] for r in self._db.execute("SELECT seq FROM snapshots ORDER BY seq")]

    def snapshot_at(self, seq: int) -> bytes:
        row = self._db.execute("SELECT state FROM snapshots WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            raise JournalCorruptError(f"journal {self.path}: no snapshot after input {seq}")
        return bytes(row[0])

    def events(self, after: int = 0, limit: int | None = None, *, account: int | None = None,
               types: tuple[str, ...] = (), since: int | None = None, newest: bool = False) -> list[tuple[int, Any]]:
        """Logged events as (seq, event), oldest first: ``seq > after``, optionally one account's, some
        types (class names), ``ts >= since``; at most ``limit`` (the newest ones if ``newest``)."""
        self.write_deferred()
        sql, args = "SELECT seq, body FROM events WHERE seq > ?", list[Any]([after])
        if account is not None:
            sql += " AND account = ?"
            args.append(account)
        if types:
            sql += f" AND type IN ({','.join('?' * len(types))})"
            args.extend(types)
        if since is not None:
            sql += " AND ts >= ?"
            args.append(since)
        sql += " ORDER BY seq DESC" if newest else " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        rows = self._db.execute(sql, args).fetchall()
        if newest:
            rows.reverse()
        return [(seq, _decode(self.path, "event", seq, body)) for seq, body in rows]

    def event_bodies(self, after_input: int = 0) -> Iterator[str]:
        """The canonical JSON of every logged event caused by an input after ``after_input``, in order."""
        self.write_deferred()
        cursor = self._db.execute("SELECT body FROM events WHERE input_seq > ? ORDER BY seq", (after_input,))
        for (body,) in cursor:
            yield body

    def last_event_seq(self) -> int:
        self.write_deferred()
        return self._last_event

    def stats(self) -> JournalStats:
        """Row counts and bytes on disk (main file + WAL)."""
        newest = self._db.execute("SELECT LENGTH(state) FROM snapshots ORDER BY seq DESC LIMIT 1").fetchone()
        wal = Path(str(self.path) + "-wal")
        wal_size = wal.stat().st_size if wal.exists() else 0
        size = (self.path.stat().st_size if self.path.exists() else 0) + wal_size
        page_size = self._scalar("PRAGMA page_size")
        used = (self._scalar("PRAGMA page_count") - self._scalar("PRAGMA freelist_count")) * page_size
        return JournalStats(
            inputs=self._scalar("SELECT COUNT(*) FROM inputs"),
            first_seq=self.first_input_seq(),
            last_seq=self._last_seq,
            events=self._scalar("SELECT COUNT(*) FROM events"),
            snapshots=self._scalar("SELECT COUNT(*) FROM snapshots"),
            snapshot_bytes=newest[0] if newest else 0,
            file_bytes=size,
            wal_bytes=wal_size,
            page_bytes=used,
        )

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _scalar(self, sql: str) -> int:
        return int(self._db.execute(sql).fetchone()[0])

    def _scalar_or(self, sql: str, default: int) -> int:
        try:
            return self._scalar(sql)
        except sqlite3.Error:
            return default


def _decode(path: Path, what: str, seq: int, body: str) -> Any:
    try:
        return loads(body)
    except (KeyError, TypeError, ValueError) as exc:
        raise JournalCorruptError(f"journal {path}: {what} {seq} cannot be decoded: {exc!r}") from None


def _describe(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", "")
    return f"{exc} ({name})" if name else str(exc)

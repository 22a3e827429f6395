"""The journal's errors: one root, ``JournalError``; SQLite's own errors never leak out."""

from __future__ import annotations


class JournalError(Exception):
    """Root of every journal error: the session record could not be written or read."""


class JournalWriteError(JournalError):
    """An input could not be stored (disk full, read-only file, I/O error).

    Nothing of that input was stored, and the journal refuses every later write until it is
    reopened: the caller must refuse the command (never acknowledge it) and must not apply it.
    """


class JournalCorruptError(JournalError):
    """The file does not hold a consistent session (a gap in the inputs, an unknown message,
    a snapshot that cannot be restored, a replay that fails)."""

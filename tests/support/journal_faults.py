"""Real SQLite write failures for journal tests: a full disk, a read-only file, a failing commit.

``fill_disk`` caps the database at its current size with ``PRAGMA max_page_count``, so the next
write that needs a page fails inside SQLite with SQLITE_FULL ("database or disk is full"), the
very error a full filesystem gives. ``make_read_only`` swaps the journal's connection for a
read-only one (the tests run as root, for whom ``chmod 444`` would not stop writes), so writes
fail with SQLITE_READONLY.
"""

from __future__ import annotations

import sqlite3

from exchange_sim.journal import Journal


def fill_disk(journal: Journal) -> None:
    """From now on the journal's file cannot grow by a single page."""
    db = journal._db  # the test reaches into the journal on purpose: this is fault injection
    if db.in_transaction:
        db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count={pages}")


def make_read_only(journal: Journal) -> None:
    """Reopen the journal's file read-only underneath it, as if the file had become read-only."""
    if journal._db.in_transaction:
        journal._db.execute("COMMIT")
    journal._db.close()
    journal._db = sqlite3.connect("file:" + str(journal.path.resolve()) + "?mode=ro", uri=True,
                                  isolation_level=None)


def fail_next_commit(journal: Journal) -> None:
    """The journal's next COMMIT fails inside SQLite (a deferred foreign-key violation), while every
    write before it (appends, events) succeeds: the commit-time failure a group commit can meet."""
    db = journal._db
    if db.in_transaction:
        db.execute("COMMIT")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("CREATE TABLE IF NOT EXISTS fault_parent (id INTEGER PRIMARY KEY)")
    db.execute("CREATE TABLE IF NOT EXISTS fault_child (parent INTEGER REFERENCES fault_parent (id) "
               "DEFERRABLE INITIALLY DEFERRED)")
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO fault_child VALUES (1)")  # no such parent: refused only at COMMIT

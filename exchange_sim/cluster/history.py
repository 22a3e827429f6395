"""History through the shard: each shard member keeps the read model, a gateway reads it per request.

The API reads closed orders, fills, income and liquidations from ``ctx.history`` (a
``journal.history.History``), which it takes from ``node.journal.history`` when the node has
one. In a cluster the read model lives with the data: every member of a shard (leader and
standby) has its replica record what it applies into a ``History`` of its own (a private
temporary SQLite file, stored with each snapshot: replica.py), so a standby that takes over has
it, and a member started later restores it from the snapshot and the input stream after it
(the rows are a pure function of the shard's inputs).

A gateway asks the account's shard for the account's rows (``account_rows``) before a request
that reads history and loads them into a small in-memory ``History`` (``history_of_rows``, ``ShardedHistory.load_rows``);
``ShardedHistory`` is the ``History`` the API holds and sends each read to the loaded rows of
that account. The API's query code is the single node's.
"""

from __future__ import annotations

import collections
import sqlite3
from typing import Any

from exchange_sim.journal.history import TABLES, History, Page

ROWS_KEPT = 256  # accounts whose loaded rows a gateway keeps (each read loads them afresh)


def account_rows(history: History, account: int) -> dict[str, list[list]]:
    """Every row of ``account`` in each history table (what a gateway loads)."""
    db = history._db  # noqa: SLF001 - the same module family: the rows are copied, not interpreted
    return {t: [list(r) for r in db.execute(f"SELECT * FROM {t} WHERE account = ?", (account,))] for t in TABLES}


def history_of_rows(rows: dict[str, list[list]]) -> History:
    """A ``History`` in memory holding exactly ``rows`` (as ``account_rows`` gave them)."""
    history = History(sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False))
    db = history._db  # noqa: SLF001
    for table in TABLES:
        found = rows.get(table) or []
        if found:
            marks = ",".join("?" * len(found[0]))
            db.executemany(f"INSERT INTO {table} VALUES ({marks})", found)
    return history


class ShardedHistory(History):
    """The gateway's ``History``: reads answered from the account's rows loaded for this request."""

    def __init__(self) -> None:  # no super().__init__: no table of its own
        self.loaded: collections.OrderedDict[int, History] = collections.OrderedDict()
        self._empty = History(sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False))

    def load_rows(self, account: int, rows: dict[str, list[list]]) -> None:
        old = self.loaded.pop(account, None)
        if old is not None:
            old.close()
        self.loaded[account] = history_of_rows(rows)
        while len(self.loaded) > ROWS_KEPT:
            self.loaded.popitem(last=False)[1].close()

    def of(self, account: int) -> History:
        return self.loaded.get(account, self._empty)

    def record(self, msg: Any, events: Any) -> None:
        raise TypeError("a gateway keeps no history: the shards do")

    def record_committed(self, msg: Any, events: list) -> None:
        self.record(msg, events)

    def close(self) -> None:
        for store in self.loaded.values():
            store.close()
        self.loaded.clear()
        self._empty.close()

    def order(self, account: int, order_id: int = 0, client_order_id: str = "") -> Any:
        return self.of(account).order(account, order_id=order_id, client_order_id=client_order_id)

    def orders(self, account: int, page: Page, **filters: Any) -> list:
        return self.of(account).orders(account, page, **filters)

    def trades(self, account: int, page: Page, **filters: Any) -> list:
        return self.of(account).trades(account, page, **filters)

    def income(self, account: int, page: Page, **filters: Any) -> list:
        return self.of(account).income(account, page, **filters)

    def wallet_transfers(self, account: int, kind: str, **filters: Any) -> Any:
        return self.of(account).wallet_transfers(account, kind, **filters)

    def liquidations(self, account: int | None = None) -> list:
        if account is None:
            return [e for store in self.loaded.values() for e in store.liquidations()]
        return self.of(account).liquidations(account)


class StreamJournal:
    """What the API reads of a node's journal; a cluster's journal is the shards' input streams."""

    failure = None

    def __init__(self, history: ShardedHistory) -> None:
        self.history = history

"""History on a gateway: one read model per shard, each fed from that shard's replica.

The API reads closed orders, fills, income and liquidations from ``ctx.history`` (a
``journal.history.History``), which it takes from ``node.journal.history`` when the node has
one. The core numbers orders and trades per shard, so two shards' rows would collide in one
table: ``ShardedHistory`` keeps a ``History`` per shard (a private temporary SQLite file each,
which the gateway's replica of that shard restores from its snapshot and writes as it applies
the input stream: replica.py) and sends every read to the account's shard. It is a ``History``
only so that the API takes it; it has no table itself. A gateway started later has the same
rows: they are a pure function of the shard's inputs.
"""

from __future__ import annotations

from typing import Any

from exchange_sim.journal.history import History, Page

from .layout import Layout


class ShardedHistory(History):
    """A ``History`` per shard behind the ``History`` read methods (see module doc)."""

    def __init__(self, layout: Layout) -> None:  # no super().__init__: no table of its own
        self.layout = layout
        self.stores = {shard: History.temporary() for shard in layout.shards}

    def of(self, account: int) -> History:
        return self.stores[self.layout.shard_of(account) if account >= 1 else self.layout.shards[0]]

    def record(self, msg: Any, events: Any) -> None:
        raise TypeError("a sharded history is written per shard, by each shard's replica (replica.py)")

    def record_committed(self, msg: Any, events: list) -> None:
        self.record(msg, events)

    def close(self) -> None:
        for store in self.stores.values():
            store.close()

    def order(self, account: int, order_id: int = 0, client_order_id: str = "") -> Any:
        return self.of(account).order(account, order_id=order_id, client_order_id=client_order_id)

    def orders(self, account: int, page: Page, **filters: Any) -> list:
        return self.of(account).orders(account, page, **filters)

    def trades(self, account: int, page: Page, **filters: Any) -> list:
        return self.of(account).trades(account, page, **filters)

    def income(self, account: int, page: Page, **filters: Any) -> list:
        return self.of(account).income(account, page, **filters)

    def liquidations(self, account: int | None = None) -> list:
        if account is not None:
            return self.of(account).liquidations(account)
        every = [e for store in self.stores.values() for e in store.liquidations()]
        return sorted(every, key=lambda e: e.ts)

    def fingerprint(self) -> tuple:
        return tuple(self.stores[s].fingerprint() for s in self.layout.shards)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for store in self.stores.values():
            for table, n in store.counts().items():
                out[table] = out.get(table, 0) + n
        return out


class StreamJournal:
    """What the API reads of a node's journal; a cluster's journal is the shards' input streams."""

    failure = None

    def __init__(self, history: ShardedHistory) -> None:
        self.history = history

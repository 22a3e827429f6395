"""The gateway's side of the node seam: ``ClusterNode`` is what ``ApiServer`` takes as its node.

The API (exchange_sim/api) talks to its node through a small surface: ``submit(msg)`` returns the
events an input caused, ``exchange`` answers queries, ``add_listener``/``subscribe`` deliver
``(input, events)`` for every applied input. ``ClusterNode`` implements it on NATS, so a gateway
is the unchanged Binance-compatible server:

- ``submit(command)`` goes to the account's shard leader by request/reply (``exsim.cmd.<shard>``)
  with a request id, retried under the same id until a leader answers (so a failover loses or
  doubles nothing), then waits until this gateway's replica of that shard has applied the
  sequence the command was journaled at, so the handler's next query sees its own write;
- ``submit(market event)`` (the admin API's injections) publishes it once to the market stream
  and waits until every shard applied it, returning what it caused on all shards;
- ``exchange`` is a ``ShardedExchange``: per-account queries go to the account's shard replica,
  market queries to the first shard's replica (every shard applies the same market stream);
- listeners and subscribers get every replica's applied inputs in the single node's order
  (``merge.py``): a market input once, with what it caused on every shard;
- ``CreateAccount`` leaves the gateway without its API key and secret: those go to the
  ``exsim-keys`` KV bucket, which every gateway watches (``account_by_api_key``/``api_secret``).

The replicas make the gateway's answers exactly the single node's (same pure core, same inputs);
the price is that every gateway applies every shard's input stream (see README, capacity).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
from collections.abc import Callable
from typing import Any

import msgspec
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from exchange_sim.core import messages as m
from exchange_sim.core.exchange import Exchange
from exchange_sim.runtime.node import InputRefused, NodeError, NodeStopped

from . import codec, connect
from .errors import ShardUnavailable
from .history import ShardedHistory, StreamJournal
from .merge import InputMerger
from .ingest import MarketIngest
from .layout import REQUEST, Layout, ShardNames
from .replica import Applied, ShardReplica
from .replica import owned_event as _owned_event

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 2.0   # one attempt
COMMAND_DEADLINE_S = 15.0  # all attempts (longer than a lease expiry + takeover)
_MARKET_TYPES = tuple(m.MARKET_EVENTS)


class KeyCache:
    """API key -> (account, secret), mirrored from the ``exsim-keys`` bucket by a KV watch."""

    def __init__(self) -> None:
        self.by_key: dict[str, int] = {}
        self.secret_of: dict[int, str] = {}

    def put(self, key: str, account: int, secret: str) -> None:
        self.by_key[key] = account
        self.secret_of[account] = secret

    def on_entry(self, entry: Any) -> None:
        if entry is None or entry.value is None or entry.operation is not None:
            return
        data = msgspec.json.decode(entry.value)
        self.put(entry.key, int(data["account"]), str(data["secret"]))


class ShardedExchange:
    """The query surface of ``Exchange`` over one replica per shard (see module doc)."""

    def __init__(self, layout: Layout, replicas: dict[str, ShardReplica], keys: KeyCache) -> None:
        self.layout = layout
        self.replicas = replicas
        self.keys = keys
        self.first = replicas[layout.shards[0]]

    def core_of(self, account: int) -> Exchange:
        return self.replicas[self.layout.shard_of(account)].ex if account >= 1 else self.first.ex

    @property
    def instruments(self) -> dict:
        return self.first.ex.instruments

    @property
    def config(self) -> Any:
        return self.first.ex.config

    @property
    def insurance_fund(self) -> int:
        """The venue's fund: its initial balance plus what every shard's slice of it gained or paid."""
        initial = self.first.ex.config.insurance_fund
        return initial + sum(r.ex.insurance_fund - initial for r in self.replicas.values())

    # authentication (secrets come from KV, not from the core)
    def account_by_api_key(self, key: str) -> int | None:
        return self.keys.by_key.get(key)

    def api_secret(self, account: int) -> str:
        return self.keys.secret_of.get(account, "")

    # per-account queries: the account's shard
    def account_view(self, aid: int) -> Any:
        return self.core_of(aid).account_view(aid) if self._owned(aid) else None

    def account_ids(self) -> list[int]:
        return sorted(a for shard, r in self.replicas.items() for a in r.ex.account_ids()
                      if self.layout.owns(shard, a))

    def _owned(self, aid: int) -> bool:
        return isinstance(aid, int) and aid >= 1

    def children(self, aid: int) -> list[int]:
        return self.core_of(aid).children(aid)

    def hedge_mode(self, aid: int) -> bool:
        return self.core_of(aid).hedge_mode(aid)

    def is_isolated(self, aid: int, symbol: str) -> bool:
        return self.core_of(aid).is_isolated(aid, symbol)

    def leverage(self, aid: int, symbol: str, position_side: str = m.BOTH) -> int:
        return self.core_of(aid).leverage(aid, symbol, position_side)

    def positions(self, aid: int, symbol: str | None = None) -> list:
        return self.core_of(aid).positions(aid, symbol)

    def open_orders(self, aid: int, symbol: str | None = None) -> list:
        return self.core_of(aid).open_orders(aid, symbol)

    def all_orders(self, aid: int, symbol: str | None = None) -> list:
        return self.core_of(aid).all_orders(aid, symbol)

    def order(self, aid: int, order_id: int = 0, client_order_id: str = "") -> Any:
        return self.core_of(aid).order(aid, order_id=order_id, client_order_id=client_order_id)

    def trades(self, aid: int, symbol: str | None = None) -> list:
        return self.core_of(aid).trades(aid, symbol)

    def income(self, aid: int) -> list:
        return self.core_of(aid).income(aid)

    def spot_wallet(self, aid: int) -> int:
        return self.core_of(aid).spot_wallet(aid)

    # market queries: identical on every shard
    def market(self, symbol: str) -> Any:
        return self.first.ex.market(symbol)

    def book_levels(self, symbol: str, depth: int = 20) -> tuple[list, list, int]:
        return self.first.ex.book_levels(symbol, depth)


def route(layout: Layout, msg: Any) -> str:
    """The shard a command goes to."""
    if isinstance(msg, m.CreateAccount):
        return layout.shard_of(msg.parent) if msg.parent is not None else layout.shard_for_new(msg.name)
    if isinstance(msg, m.Transfer):
        return layout.shard_of(msg.from_account)
    return layout.shard_of(msg.account) if msg.account >= 1 else layout.shards[0]


class ClusterNode:
    """The node seam of ``exchange_sim.api`` on a NATS cluster (see module doc)."""

    def __init__(self, urls: list[str], layout: Layout, new_exchange: Callable[[], Exchange], *,
                 name: str = "gateway", subscriber_queue_size: int = 10_000) -> None:
        self.urls = urls
        self.layout = layout
        self.name = name
        self.new_exchange = new_exchange
        self.subscriber_queue_size = subscriber_queue_size
        self.keys = KeyCache()
        self.history = ShardedHistory(layout)
        self.merger = InputMerger(layout.shards, self._deliver)
        self.journal = StreamJournal(self.history)  # the API reads its history read model from here
        self.replicas: dict[str, ShardReplica] = {}
        self.exchange: ShardedExchange | None = None  # set by start()
        self.applied = 0
        self._listeners: list[Callable[[Any, list], None]] = []
        self._commit_hooks: list[Callable[[bool], None]] = []
        self._subscribers: dict[asyncio.Queue, int] = {}
        self._ids = itertools.count(1)
        self._prefix = f"{name}-{os.getpid()}-{os.urandom(4).hex()}"
        self._running = False
        self.nc: Any = None
        self.js: Any = None
        self.ingest: MarketIngest | None = None
        self._kv: dict[str, Any] = {}
        self._key_watch: Any = None
        self._key_task: asyncio.Task | None = None
        self._watchdogs: list[asyncio.Task] = []

    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        """Connect, restore and follow every shard, mirror the key bucket."""
        self.nc = await connect.connect(self.urls, self.name)
        self.js = self.nc.jetstream()
        await connect.market_stream(self.js, self.layout)
        self._kv = await connect.buckets(self.js, self.layout)
        await connect.agreed_layout(self._kv["layout"], self.layout)
        self.ingest = MarketIngest(self.js, self.layout)
        for shard in self.layout.shards:
            await connect.input_stream(self.js, self.layout, shard)
            replica = ShardReplica(self.js, self._kv["snapshots"], self.layout, shard, self.new_exchange,
                                   on_applied=functools.partial(self._fan_out, shard),
                                   history=self.history.stores[shard])  # the replica records it
            await replica.restore()
            self.merger.start(shard, replica.market_seq)
            self.replicas[shard] = replica
        self.exchange = ShardedExchange(self.layout, self.replicas, self.keys)
        self._key_watch = await self._kv["keys"].watchall()
        ready = asyncio.get_running_loop().create_future()
        self._key_task = asyncio.get_running_loop().create_task(self._mirror_keys(ready), name="key-mirror")
        await ready
        for replica in self.replicas.values():
            await connect.retrying(f"catch up {replica.shard}", replica.catch_up)
            await connect.retrying(f"follow {replica.shard}", replica.follow)
        self._watchdogs = [asyncio.get_running_loop().create_task(r.keep_following(), name=f"follow-{r.shard}")
                           for r in self.replicas.values()]
        self._running = True

    async def _mirror_keys(self, ready: asyncio.Future) -> None:
        async for entry in self._key_watch:
            if entry is None:  # the initial values are in
                if not ready.done():
                    ready.set_result(None)
                continue
            self.keys.on_entry(entry)
        if not ready.done():
            ready.set_result(None)

    async def stop(self) -> None:
        self._running = False
        for task in self._watchdogs:
            task.cancel()
        if self._key_task is not None:
            self._key_task.cancel()
        for replica in self.replicas.values():
            await replica.unfollow()
        if self.nc is not None:
            try:
                await self.nc.drain()
            except Exception:  # noqa: BLE001 - already disconnected
                pass
        self.history.close()

    async def __aenter__(self) -> ClusterNode:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ input

    async def submit(self, msg: Any) -> list:
        """Apply ``msg`` on the cluster; the events it caused (see module doc)."""
        if not self._running:
            raise NodeStopped("gateway is not running")
        if isinstance(msg, _MARKET_TYPES):
            return await self._submit_market(msg)
        secret = None
        if isinstance(msg, m.CreateAccount) and (msg.api_key or msg.api_secret):
            secret = (msg.api_key, msg.api_secret)
            if msg.api_key in self.keys.by_key:
                return [m.CommandRejected(msg.ts, None, "CreateAccount", -1102, "API key already in use.")]
            msg = m.CreateAccount(ts=msg.ts, name=msg.name, parent=msg.parent, deposit=msg.deposit)
        events = await self._command(route(self.layout, msg), msg)
        if secret is not None:
            created = next((e for e in events if isinstance(e, m.AccountCreated)), None)
            if created is not None:
                await self._store_key(secret[0], created.account, secret[1])
        return events

    async def _store_key(self, key: str, account: int, secret: str) -> None:
        value = msgspec.json.encode({"account": account, "secret": secret})
        await connect.retrying("store API key", lambda: self._kv["keys"].put(key, value), timeout=COMMAND_DEADLINE_S)
        self.keys.put(key, account, secret)

    async def _command(self, shard: str, msg: Any) -> list:
        request = f"{self._prefix}-{next(self._ids)}"
        payload = codec.dump_input(msg)
        subject = ShardNames(shard).command_subject
        loop = asyncio.get_running_loop()
        deadline = loop.time() + COMMAND_DEADLINE_S
        while True:
            try:
                reply = await self.nc.request(subject, payload, timeout=COMMAND_TIMEOUT_S, headers={REQUEST: request})
            except (NoRespondersError, NatsTimeout, asyncio.TimeoutError) as exc:
                if loop.time() > deadline:
                    raise ShardUnavailable(f"{shard}: no leader answered ({type(exc).__name__})") from None
                await asyncio.sleep(0.05)
                continue
            except Exception as exc:  # noqa: BLE001 - reconnecting: same request id again
                if loop.time() > deadline:
                    raise ShardUnavailable(f"{shard}: {type(exc).__name__}") from None
                await asyncio.sleep(0.05)
                continue
            answer = codec.load_reply(reply.data)
            if isinstance(answer[0], str):
                if answer[0] == "refused":  # the shard's core raised on it (journaled as refused): -1000
                    raise InputRefused(f"{type(msg).__name__} refused by {shard}: {answer[1]}")
                raise NodeError(f"{shard} refused the input: {answer[0]}: {answer[1]}")
            seq, events = answer
            await self.replicas[shard].wait_applied(seq, timeout=COMMAND_DEADLINE_S)
            return events

    async def _submit_market(self, msg: Any) -> list:
        assert self.ingest is not None
        market_seq = await self.ingest.publish(msg)
        out: list = []
        for shard in self.layout.shards:
            out.extend(e for e in await self.replicas[shard].wait_market(market_seq, COMMAND_DEADLINE_S)
                       if _owned_event(self.layout, shard, e))
        return out

    # ------------------------------------------------------------------ output

    def _fan_out(self, shard: str, applied: Applied) -> None:
        """A replica applied an input (and recorded its history): hand it to the merger (module doc)."""
        if applied.kind == "pad" or (applied.refused and not applied.market_seq):
            return  # a refused command never happened (a refused market event still orders the merge)
        events = [e for e in applied.events if _owned_event(self.layout, shard, e)]
        self.merger.add(shard, applied, events)

    def _deliver(self, msg: Any, events: list) -> None:
        """Listeners, then commit hooks (every input here is already stored), then subscribers."""
        self.applied += 1
        for listener in tuple(self._listeners):
            try:
                listener(msg, events)
            except Exception:
                log.exception("listener %r failed", listener)
        for hook in tuple(self._commit_hooks):
            try:
                hook(True)
            except Exception:
                log.exception("commit hook %r failed", hook)
        item = (msg, events)
        for q in tuple(self._subscribers):
            try:
                q.put_nowait(item)
            except asyncio.QueueFull:
                self._subscribers[q] += 1

    def subscribe(self, maxsize: int | None = None) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(maxsize=maxsize or self.subscriber_queue_size)
        self._subscribers[q] = 0
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self._subscribers.pop(q, None)

    def dropped(self, q: asyncio.Queue) -> int:
        return self._subscribers.get(q, 0)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def add_listener(self, listener: Callable[[Any, list], None]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Any, list], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def add_commit_hook(self, hook: Callable[[bool], None]) -> None:
        """``hook(True)`` after each delivered input: it is in its shard's input stream already."""
        self._commit_hooks.append(hook)

    def remove_commit_hook(self, hook: Callable[[bool], None]) -> None:
        if hook in self._commit_hooks:
            self._commit_hooks.remove(hook)

"""The gateway's side of the node seam: ``ClusterNode`` is what ``ApiServer`` takes as its node.

A gateway is stateless: it holds no shard's core, only a market-only view and what the request
in hand needs. The API (exchange_sim/api) talks to its node through a small surface, which
``ClusterNode`` implements on NATS, so a gateway is the unchanged Binance-compatible server:

- ``prepare(account, reader, params)`` (called by the API after it authenticated a request, before
  the handler runs): asks the account's shard, by request/reply on ``exsim.read.<shard>``
  (reads.py), for the account's state (``account_state.py``): its views, the order the request
  names, and for a history read the account's history rows. The shard member that answers
  (leader or standby, a queue group) has applied at least the input this gateway last wrote
  for the account (read-your-writes). A venue-wide read (admin, open interest) asks every
  shard for every account; the venue's insurance fund (``/sim/v1/insurance-fund``) asks every
  shard only for its float and adds the fund service's book, which the gateway follows
  (``FundFollower``, fund.py);
- ``exchange`` is a ``ShardedExchange``: account queries answered from those states, market
  queries from the gateway's ``MarketView`` (the market stream applied to an account-less core);
- ``submit(command)`` goes to the account's shard leader by request/reply (``exsim.cmd.<shard>``)
  with a request id, retried under the same id until a leader answers (so a failover loses or
  doubles nothing); the answer carries the account's state after the command, so the handler's
  next query sees its own write;
- ``submit(market event)`` (the admin API's injections) publishes it once to the market stream
  and waits until every shard applied it, returning what it caused there;
- listeners and subscribers get the market view's inputs (market frames); liquidations come
  from the shards (``exsim.public.<shard>``, for ``@forceOrder``); user-data frames are built by
  the shards and relayed as they are (``exsim.user.<shard>.<account>``, user_frames.py);
- routing reads the ``exsim-accounts`` bucket (placement.py); API keys and secrets come from
  the ``exsim-keys`` bucket (a secret never enters an input stream).

So a gateway's work is per request it serves plus the market stream, whatever the venue's
order rate (README, capacity model).
"""

from __future__ import annotations

import asyncio
import collections
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
from exchange_sim.runtime.fanout import Fanout
from exchange_sim.runtime.node import InputRefused, NodeError, NodeStopped

from . import account_state, codec, connect
from .account_state import AccountState
from .errors import ShardUnavailable
from .fund import FundFollower, venue_total
from .history import ShardedHistory, StreamJournal
from .ingest import MarketIngest
from .layout import REQUEST, Layout, ShardNames
from .market_view import MarketView
from .placement import Placement
from .reads import read_subject
from .replica import drop
from .user_frames import PUBLIC_SUBJECTS, account_of_subject, user_subjects_of

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 2.0   # one attempt
COMMAND_DEADLINE_S = 15.0  # all attempts (longer than a lease expiry + takeover)
READ_TIMEOUT_S = 2.0
STATES_KEPT = 10_000  # account states a gateway keeps between requests (each request fetches its own)
_MARKET_TYPES = tuple(m.MARKET_EVENTS)

# the API readers (handler names) that read the account's history, and those that name an order
HISTORY_READERS = frozenset({"all_orders", "all_algo_orders", "user_trades", "force_orders", "income",
                             "transfer_history"})  # (an order named by id is looked up by the shard)
ORDER_PARAMS = (("orderId", "origClientOrderId"), ("algoId", "clientAlgoId"))
# readers of the account's open orders (the others get the state without that list, which can be long)
ORDER_LIST_READERS = frozenset({"open_orders", "open_algo_orders", "all_orders", "all_algo_orders", "cancel_batch",
                                "admin:show_account"})
VENUE_READERS = frozenset({"open_interest"})  # public readers that read every account
# readers that read nothing before their command, and afterwards only what its answer carries
WRITE_ONLY_READERS = frozenset({"new_order", "new_algo_order", "new_batch", "set_leverage", "set_margin_type",
                                "position_margin", "set_position_mode", "cancel_all_open_orders",
                                "cancel_algo_open_orders", "transfer"})
ADMIN_OWN_READS = frozenset({"admin:events_log", "admin:inject_market"})  # admin readers that fetch their own
FUND_READER = "admin:insurance_fund"  # reads the shards' floats only (``read_fund``)


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
    """The query surface of ``Exchange``: account states from the shards, markets from the view."""

    def __init__(self, market: MarketView, keys: KeyCache, fund: FundFollower) -> None:
        self.market_view = market
        self.keys = keys
        self.fund = fund  # the fund service's journal (fund.py)
        self.states: collections.OrderedDict[int, AccountState] = collections.OrderedDict()
        self.venue: list[int] = []  # every account, as the last venue-wide read found them
        self.floats: dict[str, tuple[int, list[str]]] = {}  # shard -> (its float, refs applied), as last read

    def keep(self, state: AccountState) -> None:
        """Remember ``state`` unless a newer one of that account is known (a command's partial
        answer brings the known state forward: ``AccountState.after``)."""
        old = self.states.pop(state.account, None)
        self.states[state.account] = state if old is None else old.after(state) if old.seq <= state.seq else old
        while len(self.states) > STATES_KEPT:
            self.states.popitem(last=False)

    def _state(self, aid: int) -> AccountState | None:
        return self.states.get(aid) if isinstance(aid, int) else None

    @property
    def instruments(self) -> dict:
        return self.market_view.ex.instruments

    @property
    def config(self) -> Any:
        return self.market_view.ex.config

    @property
    def insurance_fund(self) -> int:
        """The venue's fund: the fund service's balance, every shard's float and what is in
        transit (the floats as the last fund read found them: ``ClusterNode.read_fund``)."""
        return venue_total(self.fund.book, self.floats)

    # authentication (secrets come from KV, not from the core)
    def account_by_api_key(self, key: str) -> int | None:
        return self.keys.by_key.get(key)

    def api_secret(self, account: int) -> str:
        return self.keys.secret_of.get(account, "")

    # per-account queries: the account's state as its shard gave it
    def account_view(self, aid: int) -> Any:
        state = self._state(aid)
        return state.view if state is not None else None

    def account_ids(self) -> list[int]:
        return list(self.venue)

    def children(self, aid: int) -> list[int]:
        state = self._state(aid)
        return list(state.children) if state is not None else []

    def hedge_mode(self, aid: int) -> bool:
        state = self._state(aid)
        return bool(state is not None and state.hedge)

    def is_isolated(self, aid: int, symbol: str) -> bool:
        state = self._state(aid)
        return bool(state is not None and symbol in state.isolated)

    def leverage(self, aid: int, symbol: str, position_side: str = m.BOTH) -> int:
        state = self._state(aid)
        default = self.config.default_leverage
        return state.leverage_of(symbol, position_side, default) if state is not None else default

    def positions(self, aid: int, symbol: str | None = None) -> list:
        state = self._state(aid)
        return state.positions(symbol) if state is not None else []

    def open_orders(self, aid: int, symbol: str | None = None) -> list:
        state = self._state(aid)
        return state.orders_open(symbol) if state is not None else []

    def order(self, aid: int, order_id: int = 0, client_order_id: str = "") -> Any:
        state = self._state(aid)
        return state.order(order_id, client_order_id) if state is not None else None

    def spot_wallet(self, aid: int) -> int:
        state = self._state(aid)
        return state.spot_wallet if state is not None else 0

    # market queries: the gateway's market view
    def market(self, symbol: str) -> Any:
        return self.market_view.ex.market(symbol)

    def book_levels(self, symbol: str, depth: int = 20) -> tuple[list, list, int]:
        return self.market_view.ex.book_levels(symbol, depth)


class ShardEventLog:
    """``GET /sim/v1/events`` from the shards' event logs (reads.py): the account's shard, or all."""

    def __init__(self, node: ClusterNode) -> None:
        self.node = node

    def __call__(self, msg: object, events: list) -> None:
        return None  # the shards record the events

    def query(self, *args: Any) -> list:
        raise TypeError("the cluster's event log is read with query_async")

    async def query_async(self, account: int | None, kinds: set[str] | None, since: int | None,
                          after_seq: int | None, limit: int) -> list:
        from exchange_sim.api.context import LoggedEvent

        node = self.node
        request = {"op": "events", "account": account, "kinds": sorted(kinds) if kinds is not None else None,
                   "since": since, "after": after_seq, "limit": limit}
        if account is not None:
            shard = await node.placement.lookup(account)
            shards = [shard] if shard is not None else []
        else:
            shards = list(node.layout.shards)
        n = len(node.layout.shards)
        rows: list[LoggedEvent] = []
        for shard in shards:
            index = node.layout.index_of(shard)
            if account is None and after_seq is not None:  # venue-wide numbers: shard seq * n + index
                request["after"] = after_seq // n
            answer = await node.read(shard, request, min_seq=node.written.get(account or 0, 0))
            for seq, raw in msgspec.json.decode(answer, type=list[tuple[int, msgspec.Raw]]):
                number = seq if account is not None else seq * n + index
                if account is None and after_seq is not None and number <= after_seq:
                    continue
                rows.append(LoggedEvent(number, m.loads(bytes(raw))))
        if account is None:
            rows.sort(key=lambda r: (r.ts, r.seq))
            rows = rows[:limit] if after_seq is not None else rows[-limit:]
        return rows


def route_account(msg: Any) -> int | None:
    """The account whose shard a command goes to (None: a new master account)."""
    if isinstance(msg, m.CreateAccount):
        return msg.parent
    if isinstance(msg, m.Transfer):
        return msg.from_account
    account = getattr(msg, "account", None)
    return account if isinstance(account, int) else None


class ClusterNode(Fanout):
    """The node seam of ``exchange_sim.api`` on a NATS cluster (see module doc)."""

    def __init__(self, urls: list[str], layout: Layout, new_exchange: Callable[[], Exchange], *,
                 name: str = "gateway", subscriber_queue_size: int = 10_000) -> None:
        super().__init__(subscriber_queue_size)
        self.urls = urls
        self.layout = layout
        self.name = name
        self.new_exchange = new_exchange
        self.keys = KeyCache()
        self.history = ShardedHistory()
        self.journal = StreamJournal(self.history)  # the API reads its history read model from here
        self.event_log = ShardEventLog(self)
        self.market = MarketView(None, layout, new_exchange, on_applied=self._deliver)
        self.fund = FundFollower(layout)  # the fund service's journal: the venue's fund (fund.py)
        self.exchange = ShardedExchange(self.market, self.keys, self.fund)
        self.placement: Placement = None  # type: ignore[assignment]  # set by start()
        self.written: dict[int, int] = {}  # account -> the input sequence this gateway last wrote for it
        self.applied = 0
        self.hub: Any = None  # the API's StreamHub, for user-data frames (``serve_user_streams``)
        self._ids = itertools.count(1)
        self._prefix = f"{name}-{os.getpid()}-{os.urandom(4).hex()}"
        self._running = False
        self.nc: Any = None
        self.js: Any = None
        self.ingest: MarketIngest | None = None
        self._kv: dict[str, Any] = {}
        self._key_watch: Any = None
        self._key_task: asyncio.Task | None = None
        self._subs: list[Any] = []
        self._user_subs: dict[int, asyncio.Task] = {}  # account -> its subscription (being) made

    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        """Connect, mirror the key and placement buckets, follow the market stream."""
        self.nc = await connect.connect(self.urls, self.name)
        self.js = self.nc.jetstream()
        await connect.market_stream(self.js, self.layout)
        self._kv = await connect.buckets(self.js, self.layout)
        await connect.agreed_layout(self._kv["layout"], self.layout)
        self.ingest = MarketIngest(self.js, self.layout)
        self.placement = await Placement.open(self.js, self.layout)
        await self.placement.follow()
        await self.fund.start(self.js)
        self._key_watch = await self._kv["keys"].watchall()
        ready = asyncio.get_running_loop().create_future()
        self._key_task = asyncio.get_running_loop().create_task(self._mirror_keys(ready), name="key-mirror")
        await ready
        self._subs.append(await self.nc.subscribe(PUBLIC_SUBJECTS, cb=self._on_public, pending_msgs_limit=100_000))
        self.market.js, self.market.store = self.js, self._kv["snapshots"]
        await self.market.restore()
        await connect.retrying("follow the market stream", self.market.follow)
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
        if self._key_task is not None:
            self._key_task.cancel()
        if self.placement is not None:
            self.placement.stop()
        await self.market.stop()
        await self.fund.stop()
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

    # ------------------------------------------------------------------ reads

    async def read(self, shard: str, request: dict, min_seq: int = 0) -> bytes:
        """One read request to ``shard``'s members; the ``ok`` part of the answer (reads.py)."""
        payload = msgspec.json.encode(dict(request, min_seq=min_seq))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + COMMAND_DEADLINE_S
        while True:
            try:
                reply = await self.nc.request(read_subject(shard), payload, timeout=READ_TIMEOUT_S)
                parts = msgspec.json.decode(reply.data, type=dict[str, msgspec.Raw])
            except (NoRespondersError, NatsTimeout, asyncio.TimeoutError, msgspec.DecodeError) as exc:
                if loop.time() > deadline:
                    raise ShardUnavailable(f"{shard}: no member answered the read ({type(exc).__name__})") from None
                await asyncio.sleep(0.05)
                continue
            if "ok" in parts:
                return bytes(parts["ok"])
            kind = msgspec.json.decode(parts.get("error", b'"?"'))
            if kind != "behind" or loop.time() > deadline:
                raise NodeError(f"{shard} refused the read: {kind}")
            await asyncio.sleep(0.01)  # a standby a few inputs behind: ask again

    async def prepare(self, account: int | None, reader: str, params: Any = None) -> None:
        """Fetch what the API's ``reader`` (a handler's name) will read (see module doc)."""
        if account is None:
            named = params.raw("id") if params is not None and reader.startswith("admin:") else None
            if named is not None and named.isdigit():  # an admin read of one account
                account = int(named)
            else:
                if reader == FUND_READER:
                    await self.read_fund()
                elif reader in VENUE_READERS or (reader.startswith("admin:") and reader not in ADMIN_OWN_READS):
                    await self.read_venue()
                return
        if reader in WRITE_ONLY_READERS:
            return
        shard = await self.placement.lookup(account)
        if shard is None:
            return  # an account nobody placed: the queries find nothing, as on a single node
        request: dict[str, Any] = {"op": "state", "accounts": [account], "history": reader in HISTORY_READERS,
                                   "orders": reader in ORDER_LIST_READERS}
        if params is not None:
            for id_name, client_name in ORDER_PARAMS:
                order_id, client_id = params.raw(id_name), params.raw(client_name)
                if order_id is not None or client_id is not None:
                    request["order_id"] = int(order_id) if order_id is not None and order_id.isdigit() else 0
                    request["client_order_id"] = client_id or ""
                    break
        answer = msgspec.json.decode(await self.read(shard, request, self.written.get(account, 0)),
                                     type=dict[str, msgspec.Raw])
        for state in account_state.decode_list(answer["states"]):
            self.exchange.keep(state)
        rows = msgspec.json.decode(answer["rows"])
        if rows is not None:
            self.history.load_rows(account, rows)

    async def read_venue(self) -> None:
        """Every account's state from every shard, without open-order lists (admin and venue-wide
        public reads; a reader of one account's open orders names it: ``admin:show_account``)."""
        venue: list[int] = []
        for shard in self.layout.shards:
            answer = msgspec.json.decode(await self.read(shard, {"op": "all", "orders": False}),
                                         type=dict[str, msgspec.Raw])
            for state in account_state.decode_list(answer["states"]):
                self.exchange.keep(state)
                venue.append(state.account)
        self.exchange.venue = sorted(venue)

    async def read_fund(self) -> None:
        """Every shard's float and the transfers it applied, then the fund journal up to its end:
        read in that order, the book is never behind the floats (``fund.venue_total``)."""
        floats = {}
        for shard in self.layout.shards:
            answer = msgspec.json.decode(await self.read(shard, {"op": "fund"}))
            floats[shard] = (int(answer["float"]), list(answer["applied"]))
        await self.fund.caught_up()
        self.exchange.floats = floats

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
        account = route_account(msg)
        if account is None:
            shard = self.placement.shard_for_new_master(msg.name)
        else:
            found = await self.placement.lookup(account)
            if found is None:  # no such account: the core of any shard says so in the venue's words
                found = self.layout.shards[0]
            shard = found
        events = await self._command(shard, msg)
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
            seq, events, state = codec.load_reply(reply.data)
            if isinstance(seq, str) or isinstance(events, str):
                if seq == "refused":  # the shard's core raised on it (journaled as refused): -1000
                    raise InputRefused(f"{type(msg).__name__} refused by {shard}: {events}")
                raise NodeError(f"{shard} refused the input: {seq}: {events}")
            if state is not None:
                known = account_state.decode(state)
                self.exchange.keep(known)
                self.written[known.account] = max(self.written.get(known.account, 0), seq)
                self.placement.shard_of.setdefault(known.account, shard)
            return events

    async def _submit_market(self, msg: Any) -> list:
        assert self.ingest is not None
        market_seq = await self.ingest.publish(msg)
        await self.market.wait(market_seq, COMMAND_DEADLINE_S)
        out: list = []
        for shard in self.layout.shards:
            answer = await self.read(shard, {"op": "market", "market_seq": market_seq})
            out.extend(codec.load_events(answer))
        return out

    # ------------------------------------------------------------------ output

    def _deliver(self, msg: Any, events: list) -> None:
        """Listeners, then commit hooks (every input here is already stored), then subscribers."""
        self.applied += 1
        self._tell_listeners(msg, events)
        self._after_commit(True)
        self._to_subscribers((msg, events))

    async def _on_public(self, msg: Any) -> None:
        """A shard's liquidation: to the listeners (the ``@forceOrder`` stream)."""
        try:
            event = m.loads(msg.data)
        except (ValueError, TypeError):
            return
        self._tell_listeners(None, [event])
        self._after_commit(True)

    async def _on_user_frame(self, msg: Any) -> None:
        """A shard's user-data frame: to this gateway's streams of that account, as it is."""
        hub = self.hub
        if hub is None:
            return
        account = account_of_subject(msg.subject)
        if account is None or not hub.wants_account(account):
            return
        try:
            hub.publish_account(account, msgspec.json.decode(msg.data))
        except Exception:
            log.exception("user frame of %d not relayed", account)

    def serve_user_streams(self, hub: Any) -> None:
        """Relay the shards' user-data frames to ``hub`` (the API's ``StreamHub``)."""
        self.hub = hub

    def listen_to(self, account: int, listening: bool) -> None:
        """Receive ``account``'s user-data frames (from whichever shard holds it) once its listenKey is
        opened or used here, until it is closed or expires (``SharedListenKeys.on_account``): a
        gateway gets no frame of an account that does not use it. The subscription goes out before
        any later command of this gateway, on the same connection, so no frame of one is missed."""
        if listening:
            if account not in self._user_subs:
                self._user_subs[account] = asyncio.get_running_loop().create_task(
                    self.nc.subscribe(user_subjects_of(account), cb=self._on_user_frame))
            return
        task = self._user_subs.pop(account, None)
        if task is not None:
            task.add_done_callback(_unsubscribe)


def _unsubscribe(task: asyncio.Task) -> None:
    """Undo a user-frame subscription once it is made (a done callback)."""
    if task.cancelled() or task.exception() is not None:
        return
    asyncio.get_running_loop().create_task(drop(task.result()))

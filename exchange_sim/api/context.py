"""What every API handler shares: the node, the clock, limits, projections and the request plumbing.

``ApiContext`` is built once per server. Handlers are written as plain coroutines taking
``(ctx, params)`` (public) or ``(ctx, caller)`` (signed) and wrapped by ``public``/``signed``,
which parse the raw query and body, authenticate, rate-limit, and turn the result into JSON.
Commands go through ``ctx.submit``: a core ``CommandRejected`` becomes the venue's error answer,
so a refused request changes nothing and says why.
"""

from __future__ import annotations

import collections
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from exchange_sim.core import messages as m
from exchange_sim.core.exchange import Exchange
from exchange_sim.core.instruments import Instrument
from exchange_sim.journal.errors import JournalError
from exchange_sim.runtime.market_guard import GuardConfig
from exchange_sim.runtime.node import InputRefused
from exchange_sim.journal.history import History

from . import errors
from .auth import Caller, RateLimiter, RateLimits, api_key_of, verify_signed
from .depth import DEFAULT_LEVELS, DepthTracker
from .errors import ApiError
from .futures_data import FuturesData
from .kline_store import KlineHistory
from .market_stats import MarketStats
from .params import Params, parse_pairs
from .streams import StreamHub
from .wire import readable

log = logging.getLogger(__name__)

MAX_BODY = 4 * 1024 * 1024  # request bodies (admin book injections can be large)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """Settings of one API server (the CLI builds it from config.toml / flags / environment)."""

    host: str = "127.0.0.1"
    port: int = 8765
    admin_token: str | None = None  # None: generate one at start and print it
    rate_limits: RateLimits = field(default_factory=RateLimits)
    depth_levels: int = DEFAULT_LEVELS
    listen_key_ttl_ms: int = 60 * 60 * 1000
    event_log_size: int = 100_000
    bad_tick_band: int = GuardConfig().band  # injected market data this far from the market is refused


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    seq: int
    event: Any

    @property
    def ts(self) -> int:
        return getattr(self.event, "ts", 0)

    @property
    def kind(self) -> str:
        return type(self.event).__name__

    @property
    def account(self) -> int | None:
        account = getattr(self.event, "account", None)
        return account if isinstance(account, int) else None

    @property
    def body(self) -> dict:
        """The event as JSON-ready data (money as decimal text), built when asked for."""
        return readable(m.encode(self.event))


class EventLog:
    """The last ``size`` core events (not market data), numbered, for ``GET /sim/v1/events``.

    Events are frozen, so they are kept as they are and only encoded when queried.
    """

    def __init__(self, size: int) -> None:
        self._events: collections.deque[LoggedEvent] = collections.deque(maxlen=size)
        self._seq = 0

    def __call__(self, msg: object, events: list) -> None:
        for event in events:
            self._seq += 1
            self._events.append(LoggedEvent(self._seq, event))

    def query(self, account: int | None, kinds: set[str] | None, since: int | None,
              after_seq: int | None, limit: int) -> list[LoggedEvent]:
        out = []
        for ev in self._events:
            if after_seq is not None and ev.seq <= after_seq:
                continue
            if since is not None and ev.ts < since:
                continue
            if account is not None and ev.account != account:
                continue
            if kinds is not None and ev.kind.lower() not in kinds:
                continue
            out.append(ev)
        return out[:limit] if after_seq is not None else out[-limit:]  # paging forward: the oldest after it


def _event_type_names() -> dict[str, str]:
    """Lower-case, underscore-free name -> message class name (``margincall`` -> ``MarginCall``)."""
    return {name.lower(): name for name, obj in vars(m).items()
            if isinstance(obj, type) and issubclass(obj, m.Message) and obj is not m.Message}


class JournalEventLog:
    """``GET /sim/v1/events`` read from the journal's event log: it survives a restart, numbered by
    the journal (an event keeps its ``seq`` for the life of the session file).

    The journal writes the events itself (``node.add_listener(journal.record)``, added before the
    API's listeners), so reads right after ``submit`` see them; calling this log does nothing.
    """

    def __init__(self, journal: Any) -> None:
        self.journal = journal
        self._types = _event_type_names()

    def __call__(self, msg: object, events: list) -> None:
        return None  # the journal records the events

    def query(self, account: int | None, kinds: set[str] | None, since: int | None,
              after_seq: int | None, limit: int) -> list[LoggedEvent]:
        types: tuple[str, ...] = ()
        if kinds is not None:
            types = tuple(sorted(self._types[k] for k in kinds if k in self._types))
            if not types:
                return []  # only unknown types asked for: nothing matches (an empty filter would be "all")
        rows = self.journal.events(after=after_seq or 0, limit=limit, account=account, types=types,
                                   since=since, newest=after_seq is None)
        return [LoggedEvent(seq, event) for seq, event in rows]


def has_event_log(journal: Any) -> bool:
    """Whether ``journal`` keeps an event log the API can read (``exchange_sim.journal.Journal`` does)."""
    return (journal is not None and callable(getattr(journal, "events", None))
            and callable(getattr(journal, "last_event_seq", None)))


class ListenKeys:
    """listenKey → account, one live key per account, expiring after ``ttl_ms`` without keepalive."""

    def __init__(self, ttl_ms: int) -> None:
        self.ttl_ms = ttl_ms
        self._by_key: dict[str, tuple[int, int]] = {}  # key -> (account, expires)
        self._by_account: dict[int, str] = {}

    def open(self, account: int, now: int) -> str:
        key = self._by_account.get(account)
        if key is None or self._by_key.get(key, (0, 0))[1] <= now:
            key = secrets.token_hex(32)
            self._by_account[account] = key
        self._by_key[key] = (account, now + self.ttl_ms)
        return key

    def keepalive(self, account: int, now: int) -> str | None:
        key = self._by_account.get(account)
        if key is None or self._by_key.get(key, (0, 0))[1] <= now:
            return None
        self._by_key[key] = (account, now + self.ttl_ms)
        return key

    def close(self, account: int) -> str | None:
        key = self._by_account.pop(account, None)
        if key is not None:
            self._by_key.pop(key, None)
        return key

    def expire(self, now: int) -> list[str]:
        """Forget every key not kept alive in time; the keys that just expired."""
        gone = [key for key, (_, expires) in self._by_key.items() if expires <= now]
        for key in gone:
            account, _ = self._by_key.pop(key)
            if self._by_account.get(account) == key:
                del self._by_account[account]
        return gone

    def account_of(self, key: str, now: int) -> int | None:
        found = self._by_key.get(key)
        if found is None or found[1] <= now:
            return None
        return found[0]


class ApiContext:
    """Shared state of one API server (see module doc)."""

    def __init__(self, node: Any, config: ApiConfig, clock: Callable[[], int] = wall_clock_ms) -> None:
        self.node = node
        self.config = config
        self.clock = clock
        self.admin_token = config.admin_token or secrets.token_urlsafe(24)
        self.instruments: dict[str, Instrument] = dict(node.exchange.instruments)
        self.limiter = RateLimiter(config.rate_limits, clock)
        self.hub = StreamHub()
        self.depth = DepthTracker(lambda s, n: self.ex.book_levels(s, n), self.instruments, config.depth_levels,
                                  eager=self.hub.wants_book)
        self.stats = MarketStats()
        self.klines = KlineHistory()  # the past before the feed started (a history source loads it)
        self.futures_data = FuturesData()  # /futures/data/*: the upstream venue's, when the feed is live
        self.listen_keys = ListenKeys(config.listen_key_ttl_ms)
        journal = getattr(node, "journal", None)
        # with a journal the event log survives restarts; without one (--no-journal, tests) it is in memory
        self.event_log: EventLog | JournalEventLog = (JournalEventLog(journal) if has_event_log(journal)
                                                      else EventLog(config.event_log_size))
        # closed orders, fills, income: the journal's history tables (written in its batch transactions);
        # without a journal the same store in a private temporary SQLite file, fed by ``history_listener``
        journal_history = getattr(journal, "history", None)
        self.history: History = journal_history if isinstance(journal_history, History) else History.temporary()
        self.history_listener = None if self.history is journal_history else self.history.record_committed
        self._prepare = getattr(node, "prepare", None)  # a node whose core is elsewhere (a cluster gateway)

    @property
    def ex(self) -> Exchange:
        """The core (read it between inputs only: the node's task owns it)."""
        return self.node.exchange

    def now(self) -> int:
        return self.clock()

    async def prepare(self, account: int | None, reader: str, params: Params | None = None) -> None:
        """Before the handler ``reader`` (by name) runs: let the node fetch what it reads of ``account``
        (None: no account, or every account). A node holding its core has nothing to fetch; a cluster
        gateway asks the account's shard. If it cannot, the caller gets the venue's "try again"."""
        if self._prepare is None:
            return
        try:
            await self._prepare(account, reader, params)
        except Exception as exc:  # noqa: BLE001 - shard unreachable: nothing was read or changed
            log.error("node could not prepare %s: %s", reader, type(exc).__name__)
            raise ApiError(errors.INTERNAL, "Internal error; unable to process your request. Please try again.",
                           503) from None

    async def apply(self, msg: Any) -> list:
        """Apply ``msg`` through the node and return its events (a rejection is just an event here).

        If the node cannot take it (stopped, journal failure) nothing was applied and the caller
        gets the venue's "try again" answer: −1001, HTTP 503. If the core raised on it (a bug) the
        input was refused for good (journaled as refused, nothing kept): −1000, HTTP 400.
        """
        try:
            return await self.node.submit(msg)
        except InputRefused:
            raise ApiError(errors.UNKNOWN, "An unknown error occured while processing the request: the "
                           "simulator refused it after an internal error and kept nothing of it.", 400) from None
        except Exception as exc:  # noqa: BLE001 - NodeError, JournalError or a core fault: all "not applied"
            if isinstance(exc, JournalError):  # its text names the file and the SQLite error, never a secret
                log.error("node refused %s: %s: %s", type(msg).__name__, type(exc).__name__, exc)
            else:  # a core fault's text could quote the command (api secrets): the type only
                log.error("node refused %s: %s", type(msg).__name__, type(exc).__name__)
            raise ApiError(errors.INTERNAL, "Internal error; unable to process your request. Please try again.",
                           503) from None

    async def submit(self, msg: Any) -> list:
        """Apply ``msg``; a core ``CommandRejected`` raises the venue's ApiError (nothing changed)."""
        events = await self.apply(msg)
        if events and isinstance(events[0], m.CommandRejected):
            rejected = events[0]
            raise errors.from_rejection(rejected.code, rejected.msg)
        return events

    def instrument(self, symbol: str) -> Instrument:
        inst = self.instruments.get(symbol)
        if inst is None:
            raise errors.invalid_symbol()
        return inst


# ----------------------------------------------------------------------------- handler wrappers

CTX = web.AppKey("exchange_sim_api", ApiContext)

PublicHandler = Callable[[ApiContext, Params], Awaitable[Any]]
SignedHandler = Callable[[ApiContext, Caller], Awaitable[Any]]


async def _raw(request: web.Request) -> tuple[str, str]:
    raw_query = request.rel_url.raw_query_string
    body = await request.read() if request.can_read_body else b""  # app client_max_size bounds it
    try:
        return raw_query, body.decode("ascii")
    except UnicodeDecodeError:
        raise ApiError(errors.ILLEGAL_CHARS, "Illegal characters found in a parameter.") from None


_encode = msgspec.json.Encoder().encode


def _json(result: Any, used_weight: int | None = None) -> web.Response:
    # msgspec encodes the reply several times faster than json.dumps (it is on every request's path)
    response = web.Response(body=_encode(result), content_type="application/json", charset="utf-8")
    if used_weight is not None:
        response.headers["X-MBX-USED-WEIGHT-1M"] = str(used_weight)
    return response


def public(handler: PublicHandler, weight: int = 1) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A MARKET_DATA endpoint: no signature; its weight counts per client address, as the venue's IP
    limits do (an ``X-MBX-APIKEY`` header, made up or not, changes nothing: it is no way around the limit)."""

    async def endpoint(request: web.Request) -> web.StreamResponse:
        ctx = request.app[CTX]
        who = f"ip:{request.remote}"
        ctx.limiter.request(who, weight)  # before parsing: a malformed request costs its weight too
        raw_query, raw_body = await _raw(request)
        params = Params(parse_pairs(raw_query, raw_body))
        await ctx.prepare(None, handler.__name__, params)
        return _json(await handler(ctx, params), ctx.limiter.used_weight(who))

    return endpoint


def signed(handler: SignedHandler, weight: int = 1, *, order: bool = False) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A TRADE/USER_DATA endpoint: API key + HMAC signature + recvWindow, limited per key."""

    async def endpoint(request: web.Request) -> web.StreamResponse:
        ctx = request.app[CTX]
        raw_query, raw_body = await _raw(request)
        try:
            caller = verify_signed(raw_query, raw_body, request.headers, ctx.ex, ctx.now())
        except ApiError:
            ctx.limiter.request(f"ip:{request.remote}", weight)  # refused requests count per address
            raise
        who = f"key:{caller.api_key}"
        ctx.limiter.request(who, weight)
        if order:
            ctx.limiter.order(who)
        await ctx.prepare(caller.account, handler.__name__, caller.params)
        return _json(await handler(ctx, caller), ctx.limiter.used_weight(who))

    return endpoint


def keyed(handler: Callable[[ApiContext, int, Params], Awaitable[Any]]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A USER_STREAM endpoint (listenKey): API-key header only, no signature."""

    async def endpoint(request: web.Request) -> web.StreamResponse:
        ctx = request.app[CTX]
        raw_query, raw_body = await _raw(request)
        try:
            account, key = api_key_of(request.headers, ctx.ex)
        except ApiError:
            ctx.limiter.request(f"ip:{request.remote}", 1)  # refused requests count per address
            raise
        ctx.limiter.request(f"key:{key}", 1)
        return _json(await handler(ctx, account, Params(parse_pairs(raw_query, raw_body))))

    return endpoint

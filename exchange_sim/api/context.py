"""What every API handler shares: the node, the clock, limits, projections and the request plumbing.

``ApiContext`` is built once per server. Handlers are written as plain coroutines taking
``(ctx, params)`` (public) or ``(ctx, caller)`` (signed) and wrapped by ``public``/``signed``,
which parse the raw query and body, authenticate, rate-limit, and turn the result into JSON.
Commands go through ``ctx.submit``: a core ``CommandRejected`` becomes the venue's error answer,
so a refused request changes nothing and says why.
"""

from __future__ import annotations

import collections
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web

from exchange_sim.core import messages as m
from exchange_sim.core.instruments import Instrument

from . import errors
from .auth import Caller, RateLimiter, RateLimits, api_key_of, verify_signed
from .depth import DEFAULT_LEVELS, DepthTracker
from .errors import ApiError
from .market_stats import MarketStats
from .params import Params, parse_pairs
from .streams import StreamHub
from .wire import readable

MAX_BODY = 64 * 1024


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


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    seq: int
    ts: int
    kind: str
    account: int | None
    body: dict


class EventLog:
    """The last ``size`` core events (not market data), numbered, for ``GET /sim/v1/events``."""

    def __init__(self, size: int) -> None:
        self._events: collections.deque[LoggedEvent] = collections.deque(maxlen=size)
        self._seq = 0

    def __call__(self, msg: object, events: list) -> None:
        for event in events:
            self._seq += 1
            account = getattr(event, "account", None)
            self._events.append(LoggedEvent(self._seq, getattr(event, "ts", 0), type(event).__name__,
                                            account if isinstance(account, int) else None,
                                            readable(m.encode(event))))

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
        return out[-limit:]


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

    def close(self, account: int) -> None:
        key = self._by_account.pop(account, None)
        if key is not None:
            self._by_key.pop(key, None)

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
        self.depth = DepthTracker(lambda s, n: self.ex.book_levels(s, n), self.instruments, config.depth_levels)
        self.stats = MarketStats()
        self.hub = StreamHub()
        self.listen_keys = ListenKeys(config.listen_key_ttl_ms)
        self.event_log = EventLog(config.event_log_size)

    @property
    def ex(self) -> Any:
        return self.node.exchange

    def now(self) -> int:
        return self.clock()

    async def submit(self, msg: Any) -> list:
        """Apply ``msg`` through the node; a core rejection raises the venue's ApiError."""
        events = await self.node.submit(msg)
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


def _json(result: Any) -> web.Response:
    if isinstance(result, web.StreamResponse):
        return result  # type: ignore[return-value]
    return web.json_response(result)


def public(handler: PublicHandler, weight: int = 1) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A MARKET_DATA endpoint: no signature; limited per API key if sent, else per address."""

    async def endpoint(request: web.Request) -> web.StreamResponse:
        ctx = request.app[CTX]
        raw_query, raw_body = await _raw(request)
        params = Params(parse_pairs(raw_query, raw_body))
        key = request.headers.get("X-MBX-APIKEY")
        ctx.limiter.request(f"key:{key}" if key else f"ip:{request.remote}", weight)
        return _json(await handler(ctx, params))

    return endpoint


def signed(handler: SignedHandler, weight: int = 1, *, order: bool = False) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A TRADE/USER_DATA endpoint: API key + HMAC signature + recvWindow, limited per key."""

    async def endpoint(request: web.Request) -> web.StreamResponse:
        ctx = request.app[CTX]
        raw_query, raw_body = await _raw(request)
        caller = verify_signed(raw_query, raw_body, request.headers, ctx.ex, ctx.now())
        ctx.limiter.request(f"key:{caller.api_key}", weight)
        if order:
            ctx.limiter.order(f"key:{caller.api_key}")
        return _json(await handler(ctx, caller))

    return endpoint


def keyed(handler: Callable[[ApiContext, int, Params], Awaitable[Any]]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A USER_STREAM endpoint (listenKey): API-key header only, no signature."""

    async def endpoint(request: web.Request) -> web.StreamResponse:
        ctx = request.app[CTX]
        raw_query, raw_body = await _raw(request)
        account, key = api_key_of(request.headers, ctx.ex)
        ctx.limiter.request(f"key:{key}", 1)
        return _json(await handler(ctx, account, Params(parse_pairs(raw_query, raw_body))))

    return endpoint

"""The aiohttp application and server: routes, the error middleware, start and stop.

    server = ApiServer(node, ApiConfig(port=0, admin_token="t"))
    await server.start()          # node must be started; server.url is http://127.0.0.1:<port>
    ...
    await server.stop()

or ``server = await serve(node, "127.0.0.1", 8765, admin_token=None)`` (a token is generated and
announced when none is given). ``extra_routes`` installers (``fn(app)``, e.g. the dashboard's)
are called on the application before it starts; handlers reach shared state through
``request.app[CTX]`` (an ``ApiContext``: ``ctx.node``, ``ctx.ex``, ``ctx.hub``, ...).

Every error leaves as the venue's JSON: an ``ApiError`` as itself, an unknown path as −5000/404,
anything unexpected as −1000/500 (logged, without request parameters or secrets).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any, Self

from aiohttp import web

from . import account, admin, errors, futures_data, orders, public, sapi, user_stream, ws_api
from .context import CTX, MAX_BODY, ApiConfig, ApiContext, wall_clock_ms
from .errors import ApiError
from .market_publisher import MarketPublisher
from .streams import MARKET, PUBLIC, WS_CLOSE_TIMEOUT, WS_HEARTBEAT, Connection, serve_connection, wrong_route

log = logging.getLogger(__name__)

RouteInstaller = Callable[[web.Application], None]
LISTEN_KEY_SWEEP_S = 30.0  # how often expired listenKeys are looked for


MAX_LINE = 8190  # the venue's (and aiohttp's default) limit on the request line and each header line
PARSER_LIMIT = 64 * 1024  # what the HTTP parser itself takes, so longer lines reach ``venue_errors``


class _OneLine(logging.Filter):
    """aiohttp's parser refusals (a line over ``PARSER_LIMIT``...) logged as one line, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()}: {type(record.exc_info[1]).__name__}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


http_log = logging.getLogger("exchange_sim.api.http")
http_log.addFilter(_OneLine())


def _oversized(request: web.Request) -> ApiError | None:
    """The venue's answer for a request line or header line over ``MAX_LINE`` bytes."""
    if len(request.method) + len(request.raw_path) + 10 > MAX_LINE:
        return ApiError(errors.ILLEGAL_CHARS, f"Request line over {MAX_LINE} bytes.")
    for name, value in request.raw_headers:
        if len(name) + len(value) + 2 > MAX_LINE:
            return ApiError(errors.ILLEGAL_CHARS, f"Header line over {MAX_LINE} bytes.")
    return None


@web.middleware
async def venue_errors(request: web.Request, handler: Callable) -> web.StreamResponse:
    """Turn every failure into the venue's ``{"code", "msg"}`` answer."""
    oversized = _oversized(request)
    if oversized is not None:
        return oversized.response()
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPNotFound:
        return errors.path_invalid(request.method, request.path).response()
    except web.HTTPMethodNotAllowed:
        return ApiError(errors.PATH_INVALID, f"Path {request.path}, Method {request.method} is invalid",
                        405).response()
    except web.HTTPRequestEntityTooLarge:
        return ApiError(errors.ILLEGAL_CHARS, "Request body too large.", 413).response()
    except web.HTTPException as exc:
        return ApiError(errors.UNKNOWN, exc.reason or "Request refused.", exc.status).response()
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:
        log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.path, exc_info=exc)
        return errors.unknown_error().response()


# ----------------------------------------------------------------------------- market websockets


async def market_ws(request: web.Request) -> web.StreamResponse:
    """``/public`` and ``/market`` (``/ws[/<streams>]``, ``/stream?streams=``) and the legacy root paths."""
    ctx = request.app[CTX]
    ws = web.WebSocketResponse(timeout=WS_CLOSE_TIMEOUT, heartbeat=WS_HEARTBEAT, max_msg_size=64 * 1024)
    if not ws.can_prepare(request).ok:
        raise ApiError(errors.PATH_INVALID, "This endpoint only accepts websocket connections.")
    head, _, rest = request.path.strip("/").partition("/")
    route = head if head in (PUBLIC, MARKET) else ""  # "": legacy /ws and /stream, any stream
    tail = request.match_info.get("tail", "")
    if not route and tail and "@" not in tail and user_stream.is_listen_key(ctx, tail):
        return await user_stream._serve_private(request, [(tail, None)])
    combined = (rest if route else head).startswith("stream")
    initial: list[str] = []
    if combined:
        initial = [s for s in request.query.get("streams", "").split("/") if s]
    elif "@" in tail:
        initial = [s for s in tail.split("/") if s]
    refused = wrong_route(route, initial)
    if refused:
        raise ApiError(errors.INVALID_PARAMETER, refused)
    await ws.prepare(request)
    conn = Connection(ws=ws, combined=combined, route=route)
    return await serve_connection(request, ctx.hub, conn, initial[:200])


def make_app(ctx: ApiContext, extra_routes: Iterable[RouteInstaller] = ()) -> web.Application:
    """The aiohttp application for ``ctx`` with every route installed."""
    app = web.Application(middlewares=[venue_errors], client_max_size=MAX_BODY)
    app[CTX] = ctx
    public.add_routes(app)
    futures_data.add_routes(app)
    sapi.add_routes(app)
    ws_api.add_routes(app)
    orders.add_routes(app)
    account.add_routes(app)
    user_stream.add_routes(app)
    admin.add_routes(app)
    for path in ("/ws", "/stream", "/public/ws", "/public/stream", "/market/ws", "/market/stream"):
        app.router.add_get(path, market_ws)
        app.router.add_get(path + "/{tail:.*}", market_ws)
    for install in extra_routes:
        install(app)
    return app


class ApiServer:
    """The Binance-compatible REST + websocket server and admin API around a running node."""

    def __init__(self, node: Any, config: ApiConfig | None = None, *, clock: Callable[[], int] = wall_clock_ms,
                 extra_routes: Iterable[RouteInstaller] = (),
                 announce: Callable[[str], None] | None = print) -> None:
        self.config = config or ApiConfig()
        self.ctx = ApiContext(node, self.config, clock)
        self.app = make_app(self.ctx, extra_routes)
        self._announce = announce
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._user_publisher: user_stream.UserStreamPublisher | None = None
        self._publisher: MarketPublisher | None = None
        self._sweeper: asyncio.Task | None = None
        self.port = self.config.port

    @property
    def node(self) -> Any:
        return self.ctx.node

    @property
    def admin_token(self) -> str:
        return self.ctx.admin_token

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.config.host}:{self.port}/ws"

    async def start(self) -> None:
        """Hook into the node, then listen on (host, port); port 0 picks a free one (see ``port``)."""
        ctx = self.ctx
        now = ctx.now()
        for symbol in ctx.instruments:  # seed the depth mirrors with whatever book exists already
            ctx.depth.refresh(symbol, now)
        # ``ctx.ex`` read at each call: the node replaces its core when it rebuilds it after a core bug
        self._publisher = MarketPublisher(ctx.hub, ctx.instruments, ctx.depth, ctx.stats,
                                          lambda symbol: ctx.ex.market(symbol), ctx.clock, ctx.klines)
        ctx.node.add_listener(ctx.event_log)
        ctx.node.add_listener(ctx.klines)
        if ctx.history_listener is not None:
            ctx.node.add_listener(ctx.history_listener)
        ctx.node.add_listener(self._publisher)
        ctx.node.add_commit_hook(self._publisher.on_commit)  # frames leave once their batch is stored
        self._user_publisher = user_stream.UserStreamPublisher(ctx)
        ctx.node.add_listener(self._user_publisher.stage)
        ctx.node.add_commit_hook(self._user_publisher.on_commit)  # user-data frames too, once stored
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, logger=http_log,
                                     max_line_size=PARSER_LIMIT, max_field_size=PARSER_LIMIT)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await self._site.start()
        server = getattr(self._site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever(), name="listen-key-sweeper")
        if self.config.admin_token is None and self._announce is not None:
            self._announce(f"exchange-sim admin token (set EXSIM_ADMIN_TOKEN to choose one): {ctx.admin_token}")

    def sweep_listen_keys(self) -> list[str]:
        """Expire listenKeys not kept alive: their streams get ``listenKeyExpired`` and are closed."""
        ctx = self.ctx
        now = ctx.now()
        expired = ctx.listen_keys.expire(now)
        for key in expired:
            ctx.hub.disconnect_listen_key(key, {"e": "listenKeyExpired", "E": now, "listenKey": key})
        return expired

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(LISTEN_KEY_SWEEP_S)
            self.sweep_listen_keys()

    async def stop(self) -> None:
        """Close websockets, stop listening, unhook from the node (the node keeps running)."""
        ctx = self.ctx
        if self._sweeper is not None:
            self._sweeper.cancel()
            try:
                await self._sweeper
            except asyncio.CancelledError:
                pass
            self._sweeper = None
        await ctx.hub.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._user_publisher is not None:
            ctx.node.remove_listener(self._user_publisher.stage)
            ctx.node.remove_commit_hook(self._user_publisher.on_commit)
            self._user_publisher = None
        if self._publisher is not None:
            ctx.node.remove_listener(self._publisher)
            ctx.node.remove_commit_hook(self._publisher.on_commit)
            self._publisher = None
        ctx.node.remove_listener(ctx.klines)
        await ctx.futures_data.close()
        ctx.node.remove_listener(ctx.event_log)
        if ctx.history_listener is not None:  # the store is this server's own temporary file: done with it
            ctx.node.remove_listener(ctx.history_listener)
            ctx.history.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def serve(node: Any, host: str = "127.0.0.1", port: int = 8765, admin_token: str | None = None,
                extra_routes: Iterable[RouteInstaller] = (), **config: Any) -> ApiServer:
    """Start an ``ApiServer`` for a running node and return it (call ``await server.stop()``)."""
    server = ApiServer(node, ApiConfig(host=host, port=port, admin_token=admin_token, **config),
                       extra_routes=extra_routes)
    await server.start()
    return server

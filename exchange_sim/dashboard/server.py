"""The dashboard's HTTP routes and its websocket, installed into the simulator's aiohttp app.

    add_routes(app, node, admin_token="...", margin_call_ratio=0.8)

Routes:
- ``GET /``                          the page (static/index.html): the teacher's view, leaderboard
- ``GET /trade``                     the students' trading page (static/trade.html): it talks only to
  the Binance-compatible API, signing in the browser with the student's key and secret
- ``GET /dashboard/static/{file}``   the page's own JS/CSS
- ``GET /dashboard/vendor/lightweight-charts.js``  TradingView lightweight-charts, served from the
  npm package installed next to this module (never copied into the repository)
- ``GET /dashboard/state``           the current document as JSON
- ``GET /dashboard/ws``              websocket: the document on connect, then again whenever
  inputs were applied (at most ``push_interval`` apart)
- ``POST /dashboard/api/shock``      ``{"symbol", "percent", "seconds", "steps"}``: move the mark
  (and last price) by N% over M seconds; admin token required (``Authorization: Bearer``)
- ``POST /dashboard/api/reset``      ``{"accounts": [ids]}``: reset accounts (to their deposit)
- ``POST /dashboard/api/lesson``     ``{"name", "step_seconds"}``: play a scripted lesson (on the lesson
  instruments, e.g. ``LESSONBTCUSDT``, unless the feed is manual: a live market is never moved)

The hub is a node listener and commit hook: it folds each stored batch into its state right after
the commit (no task per input) and marks the document dirty; one task pushes the newest document
at most every ``push_interval``, so a slow page never slows the core.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import re
import time
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from exchange_sim.core import messages as m
from exchange_sim.api.errors import ApiError
from exchange_sim.api.params import fixed_from_json, load_json
from exchange_sim.core.fixed import to_fixed

from .assets import ChartLibraryMissing, find_chart_js
from .state import DashboardState

log = logging.getLogger(__name__)
HUB_KEY: web.AppKey[DashboardHub] = web.AppKey("exchange_sim_dashboard_hub")
MAX_SHOCK_SECONDS = 600
MAX_SHOCK_STEPS = 600
MAX_BODY_BYTES = 64 * 1024  # instructor actions are small JSON objects
_DECIMAL = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,12})?")
HISTORY_TAIL = 5  # price points per symbol in a live push (the page keeps what it got on connect)


class DashboardHub:
    """Follows the node and pushes the dashboard document to every connected page."""

    def __init__(self, node: Any, *, admin_token: str | None = None, margin_call_ratio: float = 0.8,
                 warning_ratio: float = 0.6, push_interval: float = 0.25, chart_js: str | None = None,
                 shock_moves_book: bool = False, lessons: bool = False, feed: str = "manual",
                 clock: Any = None) -> None:
        self.node = node
        self.feed = feed
        self.clock = clock or (lambda: int(time.time() * 1000))
        self.lessons_allowed = lessons
        self.shock_moves_book = shock_moves_book
        self.admin_token = admin_token
        self.state = DashboardState(margin_call_ratio=margin_call_ratio, warning_ratio=warning_ratio)
        self.push_interval = push_interval
        self.chart_js = chart_js
        self.clients: set[web.WebSocketResponse] = set()
        self._staged: list[tuple[Any, list]] = []  # applied inputs whose batch is not committed yet
        self._following = False
        self._tasks: list[asyncio.Task] = []
        self._dirty = asyncio.Event()
        self._shocks: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self, _app: web.Application | None = None) -> None:
        if self._tasks:
            return
        self.node.add_listener(self._stage)
        self.node.add_commit_hook(self._on_commit)
        self._following = True
        self._tasks = [asyncio.get_running_loop().create_task(self._push(), name="dashboard-push")]

    async def close_clients(self, _app: web.Application | None = None) -> None:
        for ws in tuple(self.clients):
            await ws.close(code=1001, message=b"server shutdown")
        self.clients.clear()

    async def stop(self, _app: web.Application | None = None) -> None:
        for task in (*self._tasks, *self._shocks):
            task.cancel()
        for task in (*self._tasks, *self._shocks):
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # a failed shock or follower: already over, just report it
                log.exception("dashboard task %s failed", task.get_name())
        self._tasks = []
        self._shocks.clear()
        if self._following:
            self.node.remove_listener(self._stage)
            self.node.remove_commit_hook(self._on_commit)
            self._following = False

    # ------------------------------------------------------------------ following the node

    def _stage(self, msg: Any, events: list) -> None:
        self._staged.append((msg, events))

    def _on_commit(self, stored: bool) -> None:
        """The node committed a batch (``stored``) or failed to: fold it into the state, or forget it."""
        staged, self._staged = self._staged, []
        if stored and staged:
            for msg, events in staged:
                try:
                    self.state.observe(msg, events)
                except Exception:  # a projection bug must not stop the dashboard for the rest
                    log.exception("dashboard state failed on %s", type(msg).__name__)
            self._dirty.set()

    def document(self, history_tail: int | None = None) -> dict[str, Any]:
        return self.state.snapshot(self.node.exchange, history_tail) | {"feed": self.feed, "now": self.clock()}

    async def _push(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            if self.clients:
                text = json.dumps({"type": "state", "state": self.document(history_tail=HISTORY_TAIL)})
                for ws in tuple(self.clients):
                    if ws.closed:
                        self.clients.discard(ws)
                        continue
                    try:
                        await ws.send_str(text)
                    except (ConnectionError, RuntimeError):
                        self.clients.discard(ws)
            await asyncio.sleep(self.push_interval)

    # ------------------------------------------------------------------ handlers

    async def page(self, _request: web.Request) -> web.StreamResponse:
        return web.Response(text=_static_text("index.html"), content_type="text/html", charset="utf-8")

    async def trade_page(self, _request: web.Request) -> web.StreamResponse:
        return web.Response(text=_static_text("trade.html"), content_type="text/html", charset="utf-8")

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        types = {".js": "application/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}
        suffix = Path(name).suffix
        if "/" in name or "\\" in name or name.startswith(".") or suffix not in types:
            raise web.HTTPNotFound()
        try:
            text = _static_text(name)
        except FileNotFoundError:
            raise web.HTTPNotFound() from None
        return web.Response(text=text, content_type=types[suffix], charset="utf-8")

    async def chart_library(self, _request: web.Request) -> web.StreamResponse:
        try:
            path = find_chart_js(self.chart_js)
        except ChartLibraryMissing as exc:
            body = f"console.error({json.dumps(str(exc))}); window.CHART_LIBRARY_MISSING = {json.dumps(str(exc))};"
            return web.Response(text=body, content_type="application/javascript")
        return web.FileResponse(path, headers={"Content-Type": "application/javascript",
                                               "Cache-Control": "max-age=3600"})

    async def state_json(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response(self.document())

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        self.clients.add(ws)
        try:
            await ws.send_str(json.dumps({"type": "state", "state": self.document()}))
            async for msg in ws:  # the page only pings; anything else is ignored
                if msg.type == WSMsgType.TEXT and msg.data == "ping":
                    await ws.send_str(json.dumps({"type": "pong"}))
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.clients.discard(ws)
        return ws

    def _authorized(self, request: web.Request) -> None:
        if not self.admin_token:
            raise _error(403, "the dashboard's instructor actions are disabled (no admin token configured)")
        header = request.headers.get("Authorization", "")
        given = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if not given or not hmac.compare_digest(given.encode(), self.admin_token.encode()):
            raise _error(401, "admin token required: Authorization: Bearer <token>")

    async def shock(self, request: web.Request) -> web.StreamResponse:
        self._authorized(request)
        body = await _json_body(request)
        symbol = str(body.get("symbol", ""))
        if symbol not in self.node.exchange.instruments:
            raise _error(400, f"symbol {symbol!r} unknown; one of {', '.join(sorted(self.node.exchange.instruments))}")
        percent = _number(body.get("percent"))
        seconds = _number(body.get("seconds", 0))
        if percent is None or seconds is None:
            raise _error(400, "percent and seconds must be numbers, steps an integer")
        steps = _number(body.get("steps", max(1, min(MAX_SHOCK_STEPS, int(seconds * 4) or 1)))
                        if 0 <= seconds <= MAX_SHOCK_SECONDS else 1)
        if steps is None or steps != int(steps):
            raise _error(400, "percent and seconds must be numbers, steps an integer")
        steps = int(steps)
        if not -99 < percent < 1000 or not 0 <= seconds <= MAX_SHOCK_SECONDS or not 1 <= steps <= MAX_SHOCK_STEPS:
            raise _error(400, f"need -99 < percent < 1000, 0 <= seconds <= {MAX_SHOCK_SECONDS}, "
                              f"1 <= steps <= {MAX_SHOCK_STEPS}")
        market = self.node.exchange.market(symbol)
        start = market.mark or market.last_price
        if not start:
            raise _error(409, f"{symbol} has no price yet to shock from")
        inst = self.node.exchange.instruments[symbol]
        targets = []
        for i in range(1, steps + 1):
            price = int(start * (1 + percent / 100 * i / steps))
            targets.append(max(inst.tick_size, price - price % inst.tick_size))
        task = asyncio.get_running_loop().create_task(self._run_shock(symbol, targets, seconds / steps))
        self._shocks.add(task)
        task.add_done_callback(self._shocks.discard)
        return web.json_response({"symbol": symbol, "from": start / 1e8, "to": targets[-1] / 1e8,
                                  "steps": steps, "seconds": seconds})

    async def _run_shock(self, symbol: str, prices: list[int], pause: float) -> None:
        """Each step: (optionally a one-level book at the price,) a mark and a trade at the price.

        The book is moved only without a live book feed (manual or synthetic markets): replacing a
        live feed's book would break its diff chain; there the real book stays and liquidations
        fill against it.
        """
        tick = self.node.exchange.instruments[symbol].tick_size
        for i, price in enumerate(prices):
            if i and pause > 0:
                await asyncio.sleep(pause)
            ts = self.clock()
            if self.shock_moves_book:
                market = self.node.exchange.market(symbol)
                depth = max(market.best_bid_qty, market.best_ask_qty, to_fixed("1000"))
                await self.node.submit(m.BookSnapshot(ts=ts, symbol=symbol, bids=((price, depth),),
                                                      asks=((price + tick, depth),),
                                                      update_id=market.book_update_id + 1))
            await self.node.submit(m.Trade(ts=ts, symbol=symbol, price=price, qty=to_fixed("0.001"),
                                           taker_side=m.SELL if price < prices[0] else m.BUY))
            await self.node.submit(m.MarkPrice(ts=ts, symbol=symbol, mark=price))

    async def lesson(self, request: web.Request) -> web.StreamResponse:
        """Play a scripted lesson into this simulator for the class to watch (manual feed only)."""
        from exchange_sim.lessons import LESSONS, lesson_scenario
        from exchange_sim.lessons.live import play_on_node
        from exchange_sim.lessons.scenario import on_lesson_symbols

        self._authorized(request)
        body = await _json_body(request)
        name = str(body.get("name", ""))
        if name not in LESSONS:
            raise _error(400, f"lesson {name!r} unknown; one of {', '.join(LESSONS)}")
        if not self.lessons_allowed:
            raise _error(409, "lessons are disabled on this simulator (start it with --feed manual)")
        step_seconds = _number(body.get("step_seconds", 1.0))
        if step_seconds is None or not 0 <= step_seconds <= 60:
            raise _error(400, "step_seconds must be between 0 and 60")
        scenario = lesson_scenario(name)
        if self.feed != "manual":
            scenario = on_lesson_symbols(scenario)
            missing = [s for s in scenario.start_prices if s not in self.node.exchange.instruments]
            if missing:
                raise _error(409, f"this session has no lesson instrument {missing[0]}: a lesson would move "
                                  "the live market; restart with --fresh (a new session has them) or --feed manual")
        task = asyncio.get_running_loop().create_task(play_on_node(scenario, self.node, step_seconds=step_seconds,
                                                                   now_ms=self.clock))
        self._shocks.add(task)
        task.add_done_callback(self._shocks.discard)
        return web.json_response({"lesson": name, "steps": len(scenario.path), "step_seconds": step_seconds})

    async def reset(self, request: web.Request) -> web.StreamResponse:
        self._authorized(request)
        body = await _json_body(request)
        ids = body.get("accounts")
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise _error(400, 'accounts must be a list of account ids, e.g. {"accounts": [2, 3]}')
        deposit = None
        if body.get("deposit") is not None:
            try:
                deposit = fixed_from_json(body["deposit"], "deposit")
            except ApiError:
                raise _error(400, "deposit must be a decimal amount from 0 to 10,000,000,000 USDT, "
                                  'e.g. {"deposit": "1000"}') from None
        results = []
        for aid in ids:
            events = await self.node.submit(m.ResetAccount(ts=self.clock(), account=aid, deposit=deposit))
            rejected = [e for e in events if isinstance(e, m.CommandRejected)]
            results.append({"account": aid, "ok": not rejected, **({"msg": rejected[0].msg} if rejected else {})})
        return web.json_response({"results": results})


class _Refused(Exception):
    """An instructor request refused: answered as JSON ``{"error": ...}`` with ``status``."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def _error(status: int, text: str) -> _Refused:
    return _Refused(status, text)


def _answers_refusals(handler: Any) -> Any:
    """Turn ``_Refused`` into a JSON response here, so the API's error middleware passes it through."""
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except _Refused as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
    return wrapped


def _number(value: Any) -> float | None:
    """A finite JSON number, or a decimal string of ASCII digits (``"１０"`` is no number), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            return None
        value = float(value)
    if not isinstance(value, (int, float)) or not math.isfinite(value) or abs(value) > 1e12:
        return None
    return float(value)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = load_json(await request.read(), MAX_BODY_BYTES)
    except ValueError as exc:
        raise _error(400, f"{exc}: send a JSON object") from None
    if not isinstance(body, dict):
        raise _error(400, "body must be a JSON object")
    return body


def _static_text(name: str) -> str:
    return resources.files("exchange_sim.dashboard").joinpath("static", name).read_text(encoding="utf-8")


def add_routes(app: web.Application, node: Any, *, admin_token: str | None = None, margin_call_ratio: float = 0.8,
               warning_ratio: float = 0.6, chart_js: str | None = None,
               push_interval: float = 0.25, shock_moves_book: bool = False,
               lessons: bool = False, feed: str = "manual", clock: Any = None) -> DashboardHub:
    """Install the dashboard into ``app`` (before it starts); returns its hub.

    ``shock_moves_book``: set it when no live feed maintains the book (``manual``, ``synthetic``);
    ``lessons``: allow playing scripted lessons from the page; ``feed``: the feed's kind (a lesson
    on anything but ``manual`` plays on the lesson instruments); ``clock``: the session clock (ms).
    """
    hub = DashboardHub(node, admin_token=admin_token, margin_call_ratio=margin_call_ratio,
                       warning_ratio=warning_ratio, chart_js=chart_js, push_interval=push_interval,
                       shock_moves_book=shock_moves_book, lessons=lessons, feed=feed, clock=clock)
    app[HUB_KEY] = hub
    app.router.add_get("/", hub.page)
    app.router.add_get("/dashboard", hub.page)
    app.router.add_get("/trade", hub.trade_page)
    app.router.add_get("/dashboard/static/{name}", hub.static)
    app.router.add_get("/dashboard/vendor/lightweight-charts.js", hub.chart_library)
    app.router.add_get("/dashboard/state", hub.state_json)
    app.router.add_get("/dashboard/ws", hub.websocket)
    app.router.add_post("/dashboard/api/shock", _answers_refusals(hub.shock))
    app.router.add_post("/dashboard/api/reset", _answers_refusals(hub.reset))
    app.router.add_post("/dashboard/api/lesson", _answers_refusals(hub.lesson))
    app.on_startup.append(hub.start)
    app.on_shutdown.append(hub.close_clients)
    app.on_cleanup.append(hub.stop)
    return hub


def make_app(node: Any, **kwargs: Any) -> web.Application:
    """A web app serving only the dashboard (tests, or a simulator without the API module)."""
    app = web.Application()
    add_routes(app, node, **kwargs)
    return app

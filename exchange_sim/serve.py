"""The composition root: settings → feed → node (+ journal) → API, dashboard and MQTT, until stopped.

The layer just inside the CLI (tests/core/test_architecture.py): it may import every other part.

    code = await serve(settings, on_ready=print_banner)       # what `exchange-sim run` does
    code = await serve(settings, stop=event)                  # tests stop it by setting the event

In order: the feed is checked before anything listens (a file that is missing, a scenario or
venue that does not exist, a host that does not answer: one ``ServeError`` line), the session is
recovered from its journal, the node starts, the API (with the dashboard's routes) listens, the
feed supervisor starts and ``on_ready`` gets a ``ServeInfo``. A feed that fails before it ever
delivered data stops the server with one line and exit code 1; one that fails later is retried
by the supervisor (live feeds) or ends (recordings, scripts) while the server keeps serving.

One clock: every part (feed stamps, API, dashboard shocks, lessons) reads ``SessionClock``. It
is the wall clock, except for a recording replayed with its original times
(``--feed replay:FILE?times=original``), where it follows the recording.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exchange_sim.config import Settings, exchange_config, venue_instruments

NO_INTERNET_HINT = "start offline with --feed synthetic or --feed replay:<file>"


class ServeError(Exception):
    """A reason the simulator cannot start (or had to stop) that the user can fix: one line."""


# ----------------------------------------------------------------------------- building blocks


def build_instruments(settings: Settings, *, lessons: bool = True) -> dict[str, Any]:
    """The profile's instruments, the config's extra symbols and (``lessons``) the lesson clones."""
    from exchange_sim.lessons.scenario import lesson_clones

    instruments = venue_instruments(settings)
    if lessons:
        instruments.update(lesson_clones(instruments))
    return dict(sorted(instruments.items()))


def journal_config(settings: Settings) -> Any:
    """JournalConfig with the [journal] settings.

    Group commit is on: the node acknowledges and publishes a batch of inputs only after the
    journal has committed it (exchange_sim/runtime/node.py), so one commit serves every client
    whose input arrived meanwhile and nothing acknowledged is ever unstored. WAL checkpoints are
    copied by a helper process and only finished, a few frames, after a commit (journal/checkpoint.py),
    and snapshots are pickled by a forked child (journal/forked_snapshot.py), not on the loop. A
    batch of inputs is stored by one append to the session's input log (``input_log``,
    journal/input_log.py); the inputs' table rows, event log and history are committed just after the
    replies (``deferred_events``, journal/store.py).
    """
    from exchange_sim.journal import JournalConfig

    j = settings.journal
    return JournalConfig(snapshot_every=j.snapshot_every, keep_snapshots=j.keep_snapshots,
                         synchronous=j.synchronous, compact_events=j.compact_events, group_commit=True,
                         background_checkpoint=True, background_snapshot=True, deferred_events=True,
                         input_log=True)


def new_exchange(settings: Settings, *, lessons: bool = True) -> Any:
    from exchange_sim.core.exchange import Exchange

    return Exchange(build_instruments(settings, lessons=lessons), exchange_config(settings))


class SessionClock:
    """The session's one clock (ms): the wall clock, or the market's time when ``follow_market``.

    Following the market (a recording replayed with its original times) it reads the latest
    market timestamp plus the wall time since it arrived; install ``observe`` as a node listener.
    """

    def __init__(self, follow_market: bool = False, *, wall: Callable[[], int] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.follow_market = follow_market
        self._wall = wall or (lambda: time.time_ns() // 1_000_000)
        self._monotonic = monotonic
        self._market_ts: int | None = None
        self._seen = 0.0

    def now_ms(self) -> int:
        if self.follow_market and self._market_ts is not None:
            return self._market_ts + int((self._monotonic() - self._seen) * 1000)
        return self._wall()

    def observe(self, msg: Any, _events: list) -> None:
        if not self.follow_market:
            return  # a node listener on every input: the wall clock needs nothing from it
        from feeds.base import is_market_event

        if is_market_event(msg) and (self._market_ts is None or msg.ts >= self._market_ts):
            self._market_ts, self._seen = msg.ts, self._monotonic()


# ----------------------------------------------------------------------------- the feed


async def reachable(host: str, port: int, timeout: float = 5.0) -> str | None:
    """None when a TCP connection to host:port opens, else why not."""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return f"{host}:{port} did not answer within {timeout:.0f}s"
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return None


async def url_reachable(url: str, timeout: float = 5.0) -> str | None:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    default = {"wss": 443, "https": 443, "mqtts": 8883, "mqtt": 1883}.get(parts.scheme, 80)
    return await reachable(parts.hostname or "", parts.port or default, timeout)


async def check_feed(settings: Settings, spec: str, instruments: dict[str, Any]) -> str:
    """The feed's kind, after checking it can start at all (else one ``ServeError`` line)."""
    from feeds import FeedError, FeedSpecError, open_feed, parse_spec

    where = f"--feed {spec}"
    try:
        fs = parse_spec(spec)
    except FeedSpecError as exc:
        raise ServeError(f"{where}: {exc}") from None
    if fs.kind == "binance":
        why = await url_reachable(settings.binance.ws_url)
        if why is not None:
            raise ServeError(f"cannot reach Binance ({why}): no internet? {NO_INTERNET_HINT}")
    elif fs.kind == "mqtt":
        why = await url_reachable(fs.target)
        if why is not None:
            raise ServeError(f"{where}: the MQTT broker does not answer ({why})")
    elif fs.kind == "ccxt":
        try:
            import ccxt.pro as ccxtpro
        except ImportError:
            raise ServeError(f"{where}: ccxt is not installed (pip install ccxt)") from None
        if fs.target not in getattr(ccxtpro, "exchanges", ()):
            raise ServeError(f"{where}: ccxt.pro has no exchange {fs.target!r} (see ccxt.pro.exchanges)")
    if fs.kind in ("replay", "synthetic"):
        symbols = {s: instruments[s] for s in settings.feed.symbols if s in instruments}
        try:
            feed = open_feed(fs, symbols, endless=True)
            if fs.kind == "replay" and await asyncio.to_thread(feed.first_event) is None:
                raise ServeError(f"{where}: the recording holds no market events for {', '.join(symbols)}")
        except FeedError as exc:
            raise ServeError(f"{where}: {exc}") from None
    return fs.kind


def binance_kwargs(settings: Settings) -> dict[str, Any]:
    """``open_feed``'s keyword arguments for the Binance feed: root URLs and route paths."""
    b = settings.binance
    return {"ws_url": b.ws_url, "rest_url": b.rest_url, "routes": {"public": b.public_path, "market": b.market_path}}


def feed_factory(settings: Settings, spec: str, instruments: dict[str, Any], clock: SessionClock | None = None,
                 exchange: Callable[[], Any] | None = None) -> Callable[[], Any]:
    """A zero-argument callable opening the feed (``feeds.open_feed``) for the supervisor.

    With the session ``clock`` the feed stamps on it; with ``exchange`` (a callable returning the
    node's current core: the node may replace it) a synthetic walk continues from the market's
    last price (a shock's end).
    """
    from feeds import open_feed

    kwargs: dict[str, Any] = {"endless": True}
    if clock is not None:
        kwargs["clock"] = clock.now_ms
    if exchange is not None:
        kwargs["anchor"] = lambda s: exchange().market(s).last_price or None
    if spec.startswith("binance"):
        kwargs |= binance_kwargs(settings)
    symbols = {s: instruments[s] for s in settings.feed.symbols if s in instruments}
    return lambda: open_feed(spec, symbols, **kwargs)


async def attach_history(server: Any, spec: str, settings: Settings, warn: Callable[[str], None]) -> None:
    """The feed's kline/funding history into the API (``feeds.history``): a backfill or a first-trade hook."""
    from feeds import parse_spec
    from feeds.binance import resolve_urls
    from feeds.history import history_source, install

    if parse_spec(spec).kind == "binance":  # /futures/data/* from the venue the feed comes from
        server.ctx.futures_data.upstream = resolve_urls(settings.binance.ws_url, settings.binance.rest_url)[1]
    instruments = server.node.exchange.instruments
    symbols = {s: instruments[s] for s in settings.feed.symbols if s in instruments}
    try:
        await install(server.ctx.klines, history_source(spec, symbols, rest_url=settings.binance.rest_url))
    except Exception as exc:  # noqa: BLE001 - history is a convenience: the simulator runs without it
        warn(f"no kline history: {exc}")


# ----------------------------------------------------------------------------- the session file


def fresh_session(db: str) -> str | None:
    """Move an existing session file (and its WAL) aside; returns where it went (None: nothing there)."""
    path = Path(db)
    if not path.exists():
        return None
    lock = str(path) + "-lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ServeError(f"session file {db} is in use by a running simulator; stop it first") from None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = path.with_name(f"{path.stem}.{stamp}{path.suffix}")
        for suffix in ("", "-wal", "-shm", "-inputs"):
            src = Path(str(path) + suffix)
            if src.exists():
                src.rename(str(aside) + suffix)
    finally:
        os.close(fd)
    return str(aside)


# ----------------------------------------------------------------------------- serve


@dataclass(frozen=True, slots=True)
class ServeInfo:
    """What a running simulator tells its user (the CLI prints it as the banner)."""

    url: str
    ws_url: str
    admin_token: str
    token_generated: bool
    feed: str
    symbols: tuple[str, ...]
    session: str
    mqtt: str
    dashboard: str | None
    notes: tuple[str, ...] = field(default=())


async def serve(settings: Settings, *, journal: bool = True, fresh: bool = False,
                on_ready: Callable[[ServeInfo], None] | None = None,
                say: Callable[[str], None] = print, warn: Callable[[str], None] = print,
                stop: asyncio.Event | None = None, handle_signals: bool = True) -> int:
    """Run the simulator until ``stop`` is set or SIGINT/SIGTERM; returns the exit code.

    Raises ``ServeError`` (one line) when it cannot start. ``say``/``warn`` get one-line notices.
    """
    from exchange_sim.api import ApiConfig, ApiServer
    from exchange_sim.dashboard import add_routes
    from exchange_sim.runtime.feeds import FeedSupervisor, SupervisorConfig
    from exchange_sim.runtime.node import Node
    from feeds import parse_spec, replay_times

    spec = settings.feed.spec
    instruments = build_instruments(settings)
    kind = await check_feed(settings, spec, instruments)
    clock = SessionClock(follow_market=kind == "replay" and replay_times(parse_spec(spec).params) == "original")

    bus_config = None
    if settings.mqtt.url:
        from exchange_sim.bus import BusConfig, BusError
        try:
            bus_config = BusConfig.from_settings(settings.mqtt)
        except BusError as exc:
            why = str(exc)
            for secret in (settings.mqtt.password, _url_password(settings.mqtt.url)):
                if secret:
                    why = why.replace(secret, "***")
            raise ServeError(f"[mqtt]: {why}") from None

    token = settings.server.admin_token or secrets.token_urlsafe(18)
    notes: list[str] = []
    store = None
    if journal:
        from exchange_sim.journal import Journal, JournalError, recover
        if fresh:
            aside = fresh_session(settings.journal.db)
            if aside:
                notes.append(f"--fresh: the previous session was moved to {aside}")
        try:
            store = Journal(settings.journal.db, journal_config(settings))
            exchange, next_seq = recover(store, lambda: new_exchange(settings))
        except JournalError as exc:
            if store is not None:
                store.close()
            raise ServeError(f"session file {settings.journal.db}: {exc}") from None
        if next_seq > 1:
            n_accounts = len(exchange.account_ids())
            session = f"{settings.journal.db} (next input {next_seq}): the previous session, resumed"
            notes.append(f"resumed the previous session in {settings.journal.db} ({n_accounts} accounts, its positions "
                         "and last prices); --fresh starts a new one")
        else:
            session = f"{settings.journal.db} (next input 1): a new session"
    else:
        exchange, next_seq = new_exchange(settings), 1
        session = "in memory (--no-journal)"
    node = Node(exchange, store)
    if store is not None:
        node.add_listener(store.record)
    node.add_listener(clock.observe)
    await node.start()
    # short collector passes: the recovered state is frozen, the oldest generation is re-frozen
    # every few seconds, full collections run while the class is idle (runtime/collector.py)
    from exchange_sim.runtime.collector import CollectorPolicy
    collector = CollectorPolicy(node)
    collector.start()
    # MQTT sees every event from the start: a listener and commit hook of the node (bus/publisher.py)
    publisher = None
    if bus_config is not None:
        from exchange_sim.bus import MqttPublisher
        publisher = MqttPublisher(bus_config, account_view=lambda aid: node.exchange.account_view(aid))
        publisher.attach(node)

    def dashboard_routes(web_app: Any) -> None:
        add_routes(web_app, node, admin_token=token, margin_call_ratio=settings.margin.margin_call_ratio,
                   warning_ratio=settings.margin.warning_ratio, chart_js=settings.dashboard.chart_js,
                   shock_moves_book=kind in ("manual", "synthetic"), lessons=True, feed=kind,
                   clock=clock.now_ms)

    from exchange_sim.core.fixed import to_fixed
    from exchange_sim.runtime.market_guard import GuardConfig
    guard = GuardConfig(band=to_fixed(str(settings.feed.bad_tick_band)))
    server = ApiServer(node, ApiConfig(host=settings.server.host, port=settings.server.port, admin_token=token,
                                       bad_tick_band=guard.band),
                       clock=clock.now_ms, extra_routes=[dashboard_routes] if settings.dashboard.enabled else [],
                       announce=None)
    try:
        await server.start()
    except OSError as exc:
        await server.stop()
        await node.stop()
        await collector.stop()
        if store is not None:
            store.close()
        raise ServeError(f"cannot listen on {settings.server.host}:{settings.server.port}: "
                         f"{exc.strerror or exc}") from None

    history = asyncio.get_running_loop().create_task(attach_history(server, spec, settings, warn), name="history")
    stop = stop or asyncio.Event()
    exit_code = 0
    supervisor: Any = None

    def on_notice(notice: Any) -> None:
        nonlocal exit_code
        flowing = supervisor is not None and (supervisor.counters["submitted"] or supervisor.counters["connects"])
        if notice.kind in ("disconnected", "error") and not flowing:
            # "error": the venue answered but refused (e.g. HTTP 404 on a retired URL): the network is fine
            hint = f": no internet? {NO_INTERNET_HINT}" if kind in ("binance", "ccxt") and notice.kind == "disconnected" else ""
            warn(f"feed {spec} cannot start ({notice.detail}){hint}; stopping")
            exit_code = 1
            stop.set()
        elif notice.kind == "error":
            warn(f"feed {spec}: {notice.detail}")
        elif notice.kind == "ended":
            say(f"feed {spec} ended; the simulator keeps serving (Ctrl-C to stop)")

    if kind != "manual":
        supervisor = FeedSupervisor(node, feed_factory(settings, spec, instruments, clock, lambda: node.exchange),
                                    settings.feed.symbols,
                                    SupervisorConfig(stale_after=settings.feed.stale_after_s, guard=guard,
                                                     restart_on_end=kind in ("binance", "ccxt", "mqtt")),
                                    on_notice=on_notice, name=kind)
        await supervisor.start()
    manual_feed = None
    if kind == "manual":  # the instructor's feed: stale after stale_after_s without prices, as live feeds
        from exchange_sim.runtime.manual_feed import ManualFeed
        manual_feed = ManualFeed(node, list(settings.feed.symbols), settings.feed.stale_after_s)
        await manual_feed.start()

    if publisher is not None:
        await publisher.start()

    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    if on_ready is not None:
        on_ready(ServeInfo(url=server.url, ws_url=server.ws_url, admin_token=token,
                           token_generated=not settings.server.admin_token, feed=spec,
                           symbols=tuple(settings.feed.symbols), session=session,
                           mqtt=bus_config.url if bus_config is not None else "off",  # never the password
                           dashboard=f"{server.url}/#token={token}" if settings.dashboard.enabled else None,
                           notes=tuple(notes)))
    try:
        await stop.wait()
    finally:
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        say("stopping…")
        # inputs stop first, then the API; the node applies what is queued; MQTT sends it all last
        if supervisor is not None:
            await supervisor.stop()
        if manual_feed is not None:
            await manual_feed.stop()
        history.cancel()
        await server.stop()
        await node.stop()
        await collector.stop()
        if publisher is not None:
            await publisher.stop()
            publisher.detach(node)
        if store is not None:
            store.close()
        say("stopped cleanly")
    return exit_code


def _url_password(url: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password
    except ValueError:
        return None

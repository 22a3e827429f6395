"""The ``exchange-sim`` command line (typer + rich).

    exchange-sim run [--config config.toml] [--feed SPEC] [--host H] [--port P] [--admin-token T] [--db PATH]
    exchange-sim lesson cross-vs-isolated|portfolio|leverage [--png FILE] [--live URL]
    exchange-sim replay FILE [--symbol S] [--ladder/--no-ladder]
    exchange-sim record --feed SPEC --out FILE [--seconds N] [--limit N]
    exchange-sim replay-session DB
    exchange-sim accounts create|list|deposit|show ...   (against a running server's admin API)

Errors a user can fix (bad config, no internet, a server that is not running) are one red line
and exit code 1 or 2, never a traceback.
"""

from __future__ import annotations

import asyncio
import gc
import secrets
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from exchange_sim.config import ConfigError, Settings, load_config

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_show_locals=False,  # never print a token or secret held in a local
                  help="A paper-trading exchange for USDT-margined perpetual futures.")
accounts_app = typer.Typer(no_args_is_help=True, help="Accounts of a running simulator (admin API).")
app.add_typer(accounts_app, name="accounts")
app.add_typer(__import__("exchange_sim.cluster.cli", fromlist=["app"]).app, name="cluster")  # cluster mode: exchange_sim/cluster

# a pipe or file gets wide lines (lesson tables are wide); a terminal keeps its own width
console = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
DEFAULT_URL = "http://127.0.0.1:8765"
NO_INTERNET_HINT = "start offline with --feed synthetic or --feed replay:<file>"


class CliError(Exception):
    """A problem the user can fix; shown as one line."""


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]exchange-sim:[/bold red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _settings(config: Path | None, **overrides: Any) -> Settings:
    path = config
    if path is None and Path("config.toml").is_file():
        path = Path("config.toml")
    try:
        return load_config(path).override(**overrides)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None


# ----------------------------------------------------------------------------- building blocks


def build_instruments(settings: Settings) -> dict[str, Any]:
    """The profile's instruments plus the config's extra symbols."""
    from exchange_sim.core.instruments import Instrument
    from exchange_sim.profiles import load_profile

    instruments = dict(load_profile(settings.profile.name))
    for symbol, data in settings.profile.extra_symbols.items():
        instruments[symbol] = Instrument.from_dict(symbol, data)
    return dict(sorted(instruments.items()))


def exchange_config(settings: Settings) -> Any:
    """ExchangeConfig with the [margin] settings."""
    from exchange_sim.core.exchange import ExchangeConfig
    from exchange_sim.core.fixed import to_fixed

    margin = settings.margin
    return ExchangeConfig(margin_call_ratio=to_fixed(str(margin.margin_call_ratio)),
                          warning_ratio=to_fixed(str(margin.warning_ratio)),
                          margin_call_hysteresis=to_fixed(str(margin.hysteresis)))


def journal_config(settings: Settings) -> Any:
    """JournalConfig with the [journal] settings.

    Group commit is on: the node acknowledges and publishes a batch of inputs only after the
    journal has committed it (exchange_sim/runtime/node.py), so one commit serves every client
    whose input arrived meanwhile and nothing acknowledged is ever unstored. WAL checkpoints run
    in a background thread (journal/checkpoint.py), not inside the commit a liquidation waits on.
    """
    from exchange_sim.journal import JournalConfig

    j = settings.journal
    return JournalConfig(snapshot_every=j.snapshot_every, keep_snapshots=j.keep_snapshots,
                         synchronous=j.synchronous, compact_events=j.compact_events, group_commit=True,
                         background_checkpoint=True)


def new_exchange(settings: Settings) -> Any:
    from exchange_sim.core.exchange import Exchange

    return Exchange(build_instruments(settings), exchange_config(settings))


async def _reachable(url: str, timeout: float = 5.0) -> str | None:
    """None when a TCP connection to ``url``'s host opens, else why not."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme in ("wss", "https") else 80)
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


def _url_password(url: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password
    except ValueError:
        return None


def feed_spec_for_run(spec: str) -> str:
    """The spec ``run`` opens: a synthetic market runs until stopped unless ``steps`` is given."""
    if (spec == "synthetic" or spec.startswith(("synthetic:", "synthetic?"))) and "steps=" not in spec:
        return spec + ("&" if "?" in spec else "?") + "steps=0"
    return spec


def _open_feed_factory(settings: Settings, spec: str, instruments: dict[str, Any]) -> Any:
    """A zero-argument callable opening the feed (``feeds.open_feed``) for the supervisor."""
    from feeds import open_feed

    kwargs: dict[str, Any] = {}
    if spec.startswith("binance"):
        kwargs = {"ws_url": settings.binance.ws_url, "rest_url": settings.binance.rest_url,
                  "routes": {"public": settings.binance.public_path, "market": settings.binance.market_path}}
    symbols = {s: instruments[s] for s in settings.feed.symbols if s in instruments}
    return lambda: open_feed(spec, symbols, **kwargs)


# ----------------------------------------------------------------------------- run


@app.command()
def run(
    config: Path | None = typer.Option(None, "--config", help="config.toml to read (default ./config.toml)."),
    feed: str | None = typer.Option(None, "--feed", help="binance | ccxt:<id> | mqtt://host:port/topic | "
                                       "replay:<file> | synthetic[:scenario] | manual"),
    host: str | None = typer.Option(None, "--host", help="address to listen on (default 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="port (default 8765; 0 picks a free one)."),
    admin_token: str | None = typer.Option(None, "--admin-token", help="admin API bearer token."),
    db: Path | None = typer.Option(None, "--db", help="SQLite session file (default exchange-sim.db)."),
    no_journal: bool = typer.Option(False, "--no-journal", help="keep state in memory only."),
) -> None:
    """Start the simulator: feed -> core -> API, admin API and dashboard, until Ctrl-C."""
    settings = _settings(config, feed_spec=feed, host=host, port=port, admin_token=admin_token,
                         db=str(db) if db is not None else None)
    try:
        code = asyncio.run(_serve(settings, journal=not no_journal))
    except CliError as exc:
        raise fail(str(exc)) from None
    raise typer.Exit(code)


async def _serve(settings: Settings, *, journal: bool = True) -> int:
    from exchange_sim.api import ApiConfig, ApiServer
    from exchange_sim.dashboard import add_routes
    from exchange_sim.runtime.feeds import FeedSupervisor, SupervisorConfig
    from exchange_sim.runtime.node import Node
    from feeds import FeedSpecError, parse_spec

    spec = feed_spec_for_run(settings.feed.spec)
    try:
        kind = parse_spec(spec).kind
    except FeedSpecError as exc:
        raise CliError(f"--feed {spec}: {exc}") from None
    if kind == "binance":
        why = await _reachable(settings.binance.ws_url)
        if why is not None:
            raise CliError(f"cannot reach Binance ({why}): no internet? {NO_INTERNET_HINT}")

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
            raise CliError(f"[mqtt]: {why}") from None

    token = settings.server.admin_token or secrets.token_urlsafe(18)
    store = None
    if journal:
        from exchange_sim.journal import Journal, JournalError, recover
        try:
            store = Journal(settings.journal.db, journal_config(settings))
            exchange, next_seq = recover(store, lambda: new_exchange(settings))
        except JournalError as exc:
            if store is not None:
                store.close()
            raise CliError(f"session file {settings.journal.db}: {exc}") from None
    else:
        exchange, next_seq = new_exchange(settings), 1
    node = Node(exchange, store)
    if store is not None:
        node.add_listener(store.record)
    # the recovered state is long-lived: keep it out of the collector's young generations, and
    # collect less often, so a liquidation is not held up by a pass over millions of objects
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 50)
    await node.start()
    # MQTT sees every event from the start; room for a burst, so the last events still go out at stop
    publisher_queue = node.subscribe(maxsize=100_000) if bus_config is not None else None

    def dashboard_routes(web_app: Any) -> None:
        add_routes(web_app, node, admin_token=token, margin_call_ratio=settings.margin.margin_call_ratio,
                   warning_ratio=settings.margin.warning_ratio, chart_js=settings.dashboard.chart_js,
                   shock_moves_book=kind in ("manual", "synthetic"), lessons=kind == "manual")

    server = ApiServer(node, ApiConfig(host=settings.server.host, port=settings.server.port, admin_token=token),
                       extra_routes=[dashboard_routes] if settings.dashboard.enabled else [], announce=None)
    try:
        await server.start()
    except OSError as exc:
        await server.stop()
        await node.stop()
        if store is not None:
            store.close()
        raise CliError(f"cannot listen on {settings.server.host}:{settings.server.port}: "
                       f"{exc.strerror or exc}") from None
    base = server.url
    history = asyncio.get_running_loop().create_task(attach_history(server, spec, settings), name="history")

    stop = asyncio.Event()
    exit_code = 0
    connected = False

    def on_notice(notice: Any) -> None:
        nonlocal exit_code, connected
        if notice.kind == "connected":
            connected = True
        elif notice.kind in ("disconnected", "error") and not connected and kind == "binance":
            # "error": the venue answered but refused (e.g. HTTP 404 on a retired URL): the network is fine
            hint = f": no internet? {NO_INTERNET_HINT}" if notice.kind == "disconnected" else ""
            err.print(f"[bold red]exchange-sim:[/bold red] the Binance feed failed ({escape(str(notice.detail))})"
                      f"{hint}", highlight=False, soft_wrap=True)
            exit_code = 1
            stop.set()
        elif notice.kind == "error":
            err.print(f"[bold red]exchange-sim:[/bold red] feed {escape(spec)}: {escape(str(notice.detail))}",
                      highlight=False)
        elif notice.kind == "ended":
            console.print(f"feed {spec} ended; the simulator keeps serving (Ctrl-C to stop)", highlight=False)

    supervisor = None
    symbols = list(settings.feed.symbols)
    if kind != "manual":
        supervisor = FeedSupervisor(node, _open_feed_factory(settings, spec, node.exchange.instruments), symbols,
                                    SupervisorConfig(stale_after=settings.feed.stale_after_s,
                                                     restart_on_end=kind in ("binance", "ccxt", "mqtt")),
                                    on_notice=on_notice, name=kind)
        await supervisor.start()

    publisher = None
    if bus_config is not None and publisher_queue is not None:
        from exchange_sim.bus import MqttPublisher
        publisher = MqttPublisher(bus_config, publisher_queue, account_view=node.exchange.account_view)
        await publisher.start()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    table = Table.grid(padding=(0, 2))
    table.add_row("feed", f"{spec}  ({', '.join(symbols)})")
    table.add_row("Binance API", f"{base}/fapi/v1/...   websocket {server.ws_url}")
    table.add_row("dashboard", f"{base}/#token={token}" if settings.dashboard.enabled else "disabled")
    table.add_row("admin token", token + ("" if settings.server.admin_token else
                                          "  (generated; set EXSIM_ADMIN_TOKEN or \\[server] admin_token to fix it)"))
    table.add_row("session", f"{settings.journal.db} (next input {next_seq})" if store is not None else "in memory")
    table.add_row("mqtt", bus_config.url if bus_config is not None else "off")  # never the password
    console.print("[bold green]exchange-sim running[/bold green] — Ctrl-C to stop")
    console.print(table, highlight=False)
    console.print(f"listening on {base}", highlight=False)
    sys.stdout.flush()

    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        console.print("stopping…")
        # inputs stop first, then the API; the node applies what is queued; MQTT sends it all last
        if supervisor is not None:
            await supervisor.stop()
        history.cancel()
        await server.stop()
        await node.stop()
        if publisher is not None and publisher_queue is not None:
            await publisher.stop()
            node.unsubscribe(publisher_queue)
        if store is not None:
            store.close()
        console.print("stopped cleanly")
        sys.stdout.flush()
    return exit_code


async def attach_history(server: Any, spec: str, settings: Settings) -> None:
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
        err.print(f"[yellow]exchange-sim:[/yellow] no kline history: {escape(str(exc))}", highlight=False)


# ----------------------------------------------------------------------------- lessons


@app.command()
def lesson(
    name: str = typer.Argument(..., help="cross-vs-isolated | portfolio | leverage"),
    png: Path | None = typer.Option(None, "--png", help="chart file (default lesson-<name>.png)."),
    no_png: bool = typer.Option(False, "--no-png", help="do not write the chart."),
    live: str | None = typer.Option(None, "--live", help="play it on a running simulator at this URL."),
    admin_token: str | None = typer.Option(None, "--admin-token", envvar="EXSIM_ADMIN_TOKEN"),
    step_seconds: float = typer.Option(1.0, "--step-seconds", help="pause between path steps when live."),
) -> None:
    """Run a scripted margin lesson offline (table + PNG), or live on a running simulator."""
    from exchange_sim.lessons import (
        LESSONS,
        LessonError,
        build_lesson,
        lesson_scenario,
        plot_report,
        print_report,
    )

    if name not in LESSONS:
        raise fail(f"unknown lesson {name!r}; lessons: " + ", ".join(f"{k} ({v[0]})" for k, v in LESSONS.items()), 2)
    if live:
        from exchange_sim.lessons.live import AdminApiError, AdminClient, play_live
        client = AdminClient(live, admin_token)
        scenario = lesson_scenario(name)
        try:
            creds = play_live(scenario, client, step_seconds=step_seconds,
                              on_step=lambda i, p: console.print(f"step {i}/{len(scenario.path)}: "
                                                                 + ", ".join(f"{s} {v}" for s, v in p.items())))
        except AdminApiError as exc:
            raise fail(str(exc)) from None
        console.print(f"lesson {name} played on {live}: accounts "
                      + ", ".join(f"{label} #{c.account}" for label, c in creds.items()))
        return
    try:
        report = build_lesson(name)
    except LessonError as exc:
        raise fail(str(exc)) from None
    print_report(report, console)
    if not no_png:
        path = plot_report(report, png or Path(f"lesson-{name}.png"))
        console.print(f"chart written to {path}")


# ----------------------------------------------------------------------------- replay / record


def _ladder_commands(ts: int, symbol: str, mark: int, inst: Any, start_id: int) -> list[Any]:
    """Demo accounts for a replay: isolated longs and shorts at 10x..125x with 300 USDT margin each."""
    from exchange_sim.core import messages as m
    from exchange_sim.core.fixed import SCALE, to_fixed

    out: list[Any] = []
    aid = start_id
    for lev in (10, 25, 50, 100, 125):
        for side in (m.BUY, m.SELL):
            notional = 300 * lev * SCALE
            qty = notional * SCALE // mark
            qty -= qty % inst.step_size
            if qty <= 0:
                continue
            name = f"{'long' if side == m.BUY else 'short'}-{lev}x"
            out += [m.CreateAccount(ts=ts, name=name, deposit=to_fixed("1000"), api_key=f"ladder-{aid}",
                                    api_secret="ladder"),
                    m.SetMarginType(ts=ts, account=aid, symbol=symbol, isolated=True),
                    m.SetLeverage(ts=ts, account=aid, symbol=symbol, leverage=lev),
                    m.PlaceOrder(ts=ts, account=aid, symbol=symbol, side=side, order_type=m.MARKET, qty=qty)]
            aid += 1
    return out


def _fmt_ts(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts / 1000)) if ts else "—"


@app.command()
def replay(
    files: list[Path] = typer.Argument(..., help="recording(s): recorder .jsonl[.gz], raw capture, archive CSV"),
    symbol: list[str] = typer.Option([], "--symbol", help="only these symbols (repeatable)."),
    ladder: bool = typer.Option(True, "--ladder/--no-ladder",
                                help="open demo long/short positions at 10x..125x to watch them liquidate."),
    config: Path | None = typer.Option(None, "--config"),
) -> None:
    """Drive the core as fast as possible from a recording, with progress and a summary."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from exchange_sim.core import messages as m
    from feeds.base import FeedError, is_market_event
    from feeds.replay import Replay

    settings = _settings(config)
    for f in files:
        if not f.is_file():
            raise fail(f"no such recording: {f}", 2)
    try:
        source = Replay([str(f) for f in files], [s.upper() for s in symbol] or None)
        total = sum(1 for item in source.events() if is_market_event(item))
    except FeedError as exc:
        raise fail(str(exc), 2) from None
    exchange = new_exchange(settings)
    kinds: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    first_ts = last_ts = 0
    ladder_done = not ladder
    have_book: set[str] = set()
    started = time.perf_counter()
    columns = (TextColumn("[bold]replay[/bold]"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]:>9} ev/s"), TextColumn("sim {task.fields[sim]}"),
               TextColumn("liquidations [red]{task.fields[liqs]}[/red]"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("replay", total=total, rate="—", sim="—", liqs=0)
        done = 0
        try:
            for item in source.events():
                if not is_market_event(item):
                    continue
                first_ts = first_ts or item.ts
                last_ts = max(last_ts, item.ts)
                kinds[type(item).__name__] += 1
                events = exchange.apply(item)
                if isinstance(item, (m.BookSnapshot, m.BookDelta)):
                    have_book.add(item.symbol)
                if not ladder_done and item.symbol in have_book and exchange.market(item.symbol).mark:
                    mark = exchange.market(item.symbol).mark
                    for cmd in _ladder_commands(item.ts, item.symbol, mark, exchange.instruments[item.symbol],
                                                len(exchange.account_ids()) + 1):
                        events += exchange.apply(cmd)
                    ladder_done = True
                for e in events:
                    outcomes[type(e).__name__] += 1
                done += 1
                if done % 2000 == 0 or done == total:
                    elapsed = time.perf_counter() - started
                    progress.update(task, completed=done, rate=f"{done / elapsed:,.0f}" if elapsed else "—",
                                    sim=_fmt_ts(last_ts), liqs=outcomes["Liquidation"])
        except FeedError as exc:
            raise fail(f"bad recording: {exc}", 2) from None
        elapsed = time.perf_counter() - started
        progress.update(task, completed=done, rate=f"{done / elapsed:,.0f}" if elapsed else "—",
                        sim=_fmt_ts(last_ts), liqs=outcomes["Liquidation"])

    summary = Table(title="replay summary", show_header=False)
    summary.add_column(style="bold")
    summary.add_column(justify="right")
    summary.add_row("market events", f"{done:,}")
    for kind, n in sorted(kinds.items()):
        summary.add_row(f"  {kind}", f"{n:,}")
    summary.add_row("sim time", f"{_fmt_ts(first_ts)} → {_fmt_ts(last_ts)} UTC")
    summary.add_row("sim duration", f"{(last_ts - first_ts) / 1000:,.1f} s")
    summary.add_row("wall time", f"{elapsed:,.2f} s")
    summary.add_row("events/s", f"{done / elapsed:,.0f}" if elapsed else "—")
    summary.add_row("accounts", str(len(exchange.account_ids())))
    for kind in ("OrderUpdate", "MarginCall", "Liquidation", "Adl", "FundingPayment"):
        summary.add_row(kind, f"{outcomes[kind]:,}")
    summary.add_row("insurance fund", _money(exchange.insurance_fund))
    for sym in sorted(exchange.instruments):
        mk = exchange.market(sym)
        if mk.mark or mk.last_price:
            summary.add_row(f"{sym} mark / last", f"{_money(mk.mark)} / {_money(mk.last_price)}")
    console.print(summary)
    if ladder and exchange.account_ids():
        _print_accounts(exchange)


def _money(units: int) -> str:
    from exchange_sim.lessons.report import usd

    return usd(units)


def _print_accounts(exchange: Any) -> None:
    table = Table(title="accounts at the end")
    for col in ("id", "name", "wallet", "margin balance", "positions"):
        table.add_column(col, justify="right" if col not in ("name", "positions") else "left")
    for aid in exchange.account_ids():
        v = exchange.account_view(aid)
        pos = ", ".join(f"{p.symbol} {p.qty / 1e8:+g} liq {_money(p.liquidation_price)}" for p in v.positions if p.qty)
        table.add_row(str(aid), v.name, _money(v.wallet_balance), _money(v.margin_balance), pos or "—")
    console.print(table)


@app.command()
def record(
    out: Path = typer.Option(..., "--out", help="file to write (.jsonl or .jsonl.gz)."),
    feed: str | None = typer.Option(None, "--feed", help="feed spec (default: the config's)."),
    seconds: float | None = typer.Option(None, "--seconds", help="stop after this long."),
    limit: int | None = typer.Option(None, "--limit", help="stop after this many events."),
    config: Path | None = typer.Option(None, "--config"),
) -> None:
    """Record a feed's market events to a file that `replay` and `--feed replay:` read."""
    settings = _settings(config, feed_spec=feed)
    try:
        count = asyncio.run(_record(settings, out, seconds, limit))
    except CliError as exc:
        raise fail(str(exc)) from None
    console.print(f"recorded {count:,} events to {out}")


async def _record(settings: Settings, out: Path, seconds: float | None, limit: int | None) -> int:
    from feeds.base import FeedError, is_market_event
    from feeds.recorder import Recorder

    if settings.feed.spec == "manual":
        raise CliError("the manual feed has no market data to record")
    if settings.feed.spec.startswith("binance"):
        why = await _reachable(settings.binance.ws_url)
        if why is not None:
            raise CliError(f"cannot reach Binance ({why}): no internet? {NO_INTERNET_HINT}")
    factory = _open_feed_factory(settings, settings.feed.spec, build_instruments(settings))
    deadline = None if seconds is None else time.monotonic() + seconds
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    count = 0
    try:
        async with Recorder(str(out)) as rec:
            feed_obj = factory()
            async with feed_obj if hasattr(feed_obj, "__aenter__") else _nullctx(feed_obj) as feed_iter:
                iterator = feed_iter.__aiter__()
                while not stop.is_set():
                    if limit is not None and count >= limit:
                        break
                    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                    try:
                        item = await asyncio.wait_for(iterator.__anext__(), timeout)
                    except (TimeoutError, StopAsyncIteration):
                        break
                    if is_market_event(item) and rec.write(item):
                        count += 1
    except FeedError as exc:
        raise CliError(f"feed {settings.feed.spec}: {exc}") from None
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return count


class _nullctx:
    def __init__(self, obj: Any) -> None:
        self.obj = obj

    async def __aenter__(self) -> Any:
        return self.obj

    async def __aexit__(self, *exc: object) -> None:
        return None


@app.command("replay-session")
def replay_session_cmd(
    db: Path = typer.Argument(..., help="a session file written by `exchange-sim run`"),
    show: int = typer.Option(0, "--show", help="also print the first N events."),
) -> None:
    """Re-run a recorded session from its journal and check it gives the same events, byte for byte."""
    from exchange_sim.journal import JournalError, compare_session

    if not db.is_file():
        raise fail(f"no such session file: {db}", 2)
    shown: list[str] = []

    def on_event(text: str) -> None:
        if len(shown) < show:
            shown.append(text)

    try:
        report = compare_session(db, on_event=on_event)
    except JournalError as exc:
        raise fail(str(exc)) from None
    for line in shown:
        console.print(line, highlight=False, soft_wrap=True)
    table = Table(title=f"replay of {db}", show_header=False)
    table.add_row("replayed from snapshot", str(report.start_seq))
    table.add_row("inputs replayed through", str(report.last_seq))
    table.add_row("events replayed", f"{report.replayed_events:,}")
    table.add_row("events stored", f"{report.stored_events:,}")
    table.add_row("identical", "[green]yes[/green]" if report.identical
                  else f"[red]no: first difference at event {report.first_difference}[/red]")
    console.print(table)
    if not report.identical:
        raise typer.Exit(1)


# ----------------------------------------------------------------------------- accounts


def _client(url: str, token: str | None) -> Any:
    from exchange_sim.lessons.live import AdminClient

    return AdminClient(url, token)


def _admin_call(fn: Any, *args: Any) -> Any:
    from exchange_sim.lessons.live import AdminApiError

    try:
        return fn(*args)
    except AdminApiError as exc:
        raise fail(str(exc)) from None


URL_OPTION = typer.Option(DEFAULT_URL, "--url", envvar="EXSIM_URL", help="the running simulator.")
TOKEN_OPTION = typer.Option(None, "--admin-token", envvar="EXSIM_ADMIN_TOKEN", help="admin token.")


@accounts_app.command("create")
def accounts_create(
    name: str = typer.Argument(...),
    deposit: str = typer.Option("0", "--deposit"),
    parent: int | None = typer.Option(None, "--parent", help="make it a sub-account of this account."),
    url: str = URL_OPTION, admin_token: str | None = TOKEN_OPTION,
) -> None:
    """Create an account (prints its API key and secret once)."""
    creds = _admin_call(_client(url, admin_token).create_account, name, deposit, parent)
    table = Table(show_header=False)
    table.add_row("accountId", str(creds.account))
    table.add_row("apiKey", creds.api_key)
    table.add_row("apiSecret", creds.api_secret)
    console.print(table)


@accounts_app.command("list")
def accounts_list(url: str = URL_OPTION, admin_token: str | None = TOKEN_OPTION) -> None:
    """List the accounts."""
    data = _admin_call(_client(url, admin_token).accounts)
    rows = data.get("accounts", data) if isinstance(data, dict) else data
    table = Table()
    for col in ("id", "name", "parent", "wallet", "margin balance", "positions"):
        table.add_column(col)
    for a in rows or []:
        table.add_row(str(a.get("accountId", a.get("id", ""))), str(a.get("name", "")), str(a.get("parent") or ""),
                      str(a.get("walletBalance", a.get("wallet", ""))),
                      str(a.get("marginBalance", a.get("totalMarginBalance", ""))),
                      str(len(a.get("positions", []) or [])))
    console.print(table)


@accounts_app.command("deposit")
def accounts_deposit(account: int = typer.Argument(...), amount: str = typer.Argument(...),
                     url: str = URL_OPTION, admin_token: str | None = TOKEN_OPTION) -> None:
    """Deposit USDT into an account."""
    out = _admin_call(_client(url, admin_token).deposit, account, amount)
    console.print_json(data=out)


@accounts_app.command("show")
def accounts_show(account: int = typer.Argument(...), url: str = URL_OPTION,
                  admin_token: str | None = TOKEN_OPTION) -> None:
    """Show one account: wallets, positions with liquidation prices, orders, margin ratio."""
    out = _admin_call(_client(url, admin_token).account, account)
    console.print_json(data=out)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":
    main()

"""The ``exchange-sim`` command line (typer + rich): a thin shell around the runtime.

    exchange-sim run [--config config.toml] [--feed SPEC] [--host H] [--port P] [--admin-token T] [--db PATH] [--fresh]
    exchange-sim lesson cross-vs-isolated|portfolio|leverage [--png FILE | --out-dir DIR] [--live URL]
    exchange-sim replay FILE [--symbol S] [--ladder/--no-ladder]
    exchange-sim record --feed SPEC --out FILE [--seconds N] [--limit N]
    exchange-sim replay-session DB
    exchange-sim accounts create|list|show|deposit|withdraw|transfer|reset ...   (a running server's admin API)

Errors a user can fix (bad config, no internet, a server that is not running) are one red line
and exit code 1 or 2, never a traceback. The work is done elsewhere: ``serve`` (run),
``runtime.recording_replay`` (replay), ``lessons`` (lesson), ``client`` (accounts, --live).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from exchange_sim.config import ConfigError, Settings, load_config
from feeds.synthetic import SCENARIOS

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
LESSON_DIR = Path("lesson-charts")
RECORD_PROGRESS_EVERY = 1000  # events between progress lines when stderr is not a terminal
FEED_HELP = ("binance | ccxt:<exchange id> | mqtt://host:port/topic | replay:<file>[?times=original] | "
             f"synthetic[:{'|'.join(SCENARIOS)}] | manual")


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


# ----------------------------------------------------------------------------- run


@app.command()
def run(
    config: Path | None = typer.Option(None, "--config", help="config.toml to read (default ./config.toml)."),
    feed: str | None = typer.Option(None, "--feed", help=FEED_HELP + ". A recording is shifted to start now "
                                    "unless ?times=original."),
    host: str | None = typer.Option(None, "--host", help="address to listen on (default 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="port (default 8765; 0 picks a free one)."),
    admin_token: str | None = typer.Option(None, "--admin-token", help="admin API bearer token."),
    db: Path | None = typer.Option(None, "--db", help="SQLite session file (default exchange-sim.db)."),
    fresh: bool = typer.Option(False, "--fresh", help="start a new session: move the old session file aside."),
    no_journal: bool = typer.Option(False, "--no-journal", help="keep state in memory only."),
) -> None:
    """Start the simulator: feed -> core -> API, admin API and dashboard, until Ctrl-C."""
    from exchange_sim.serve import ServeError, serve

    settings = _settings(config, feed_spec=feed, host=host, port=port, admin_token=admin_token,
                         db=str(db) if db is not None else None)

    def say(text: str) -> None:
        console.print(text, highlight=False)
        sys.stdout.flush()

    def warn(text: str) -> None:
        err.print(f"[bold red]exchange-sim:[/bold red] {escape(text)}", highlight=False, soft_wrap=True)

    try:
        code = asyncio.run(serve(settings, journal=not no_journal, fresh=fresh, on_ready=_banner, say=say,
                                 warn=warn))
    except ServeError as exc:
        raise fail(str(exc)) from None
    raise typer.Exit(code)


def _banner(info: Any) -> None:
    table = Table.grid(padding=(0, 2))
    table.add_row("feed", f"{info.feed}  ({', '.join(info.symbols)})")
    table.add_row("Binance API", f"{info.url}/fapi/v1/...   websocket {info.ws_url}")
    table.add_row("dashboard", info.dashboard or "disabled")
    if info.dashboard:
        table.add_row("trading page", f"{info.url}/trade  (students sign in with their API key and secret)")
    table.add_row("admin token", info.admin_token + ("  (generated; set EXSIM_ADMIN_TOKEN or \\[server] admin_token "
                                                     "to fix it)" if info.token_generated else ""))
    table.add_row("session", escape(info.session))
    table.add_row("mqtt", info.mqtt)
    console.print("[bold green]exchange-sim running[/bold green] — Ctrl-C to stop")
    console.print(table, highlight=False)
    for note in info.notes:
        console.print(note, highlight=False, soft_wrap=True)
    console.print(f"listening on {info.url}", highlight=False)
    sys.stdout.flush()


# ----------------------------------------------------------------------------- lessons


@app.command()
def lesson(
    name: str = typer.Argument(..., help="cross-vs-isolated | portfolio | leverage"),
    png: Path | None = typer.Option(None, "--png", help="chart file (default <out-dir>/lesson-<name>.png)."),
    out_dir: Path = typer.Option(LESSON_DIR, "--out-dir", help="directory for the chart."),
    no_png: bool = typer.Option(False, "--no-png", help="do not write the chart."),
    live: str | None = typer.Option(None, "--live", help="play it on a running simulator at this URL "
                                    "(on its lesson instruments, e.g. LESSONBTCUSDT)."),
    admin_token: str | None = typer.Option(None, "--admin-token", envvar="EXSIM_ADMIN_TOKEN"),
    step_seconds: float = typer.Option(1.0, "--step-seconds", help="pause between path steps when live."),
    keep: bool = typer.Option(False, "--keep", help="live: leave the lesson's positions open at the end."),
) -> None:
    """Run a scripted margin lesson offline (table + PNG), or live on a running simulator."""
    from exchange_sim.lessons import LESSONS, LessonError, build_lesson, lesson_scenario, plot_report, print_report

    if name not in LESSONS:
        raise fail(f"unknown lesson {name!r}; lessons: " + ", ".join(f"{k} ({v[0]})" for k, v in LESSONS.items()), 2)
    if live:
        from exchange_sim.client import SimApiError, SimClient
        from exchange_sim.lessons.live import play_live

        scenario = lesson_scenario(name)
        try:
            played = play_live(scenario, SimClient(live, admin_token), step_seconds=step_seconds, keep=keep,
                               on_step=lambda i, p: console.print(f"step {i}/{len(scenario.path)}: "
                                                                  + ", ".join(f"{s} {v}" for s, v in p.items())))
        except (SimApiError, LessonError) as exc:
            raise fail(str(exc)) from None
        console.print(f"lesson {name} played on {live} ({', '.join(played.symbols)}): accounts "
                      + ", ".join(f"{label} #{c.account}" for label, c in played.accounts.items())
                      + ("" if keep else "; their positions were closed at the end (--keep leaves them)"))
        return
    try:
        report = build_lesson(name)
    except LessonError as exc:
        raise fail(str(exc)) from None
    print_report(report, console)
    if not no_png:
        target = png or out_dir / f"lesson-{name}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        path = plot_report(report, target)
        console.print(f"chart written to {path}")


# ----------------------------------------------------------------------------- replay / record


def _fmt_ts(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts / 1000)) if ts else "—"


def _money(units: int) -> str:
    from exchange_sim.lessons.report import usd

    return usd(units)


@app.command()
def replay(
    files: list[Path] = typer.Argument(..., help="recording(s): recorder .jsonl[.gz], raw capture, archive CSV"),
    symbol: list[str] = typer.Option([], "--symbol", help="only these symbols (repeatable); names the symbol "
                                     "of a file whose name does not."),
    ladder: bool = typer.Option(True, "--ladder/--no-ladder",
                                help="open demo long/short positions at 10x..125x to watch them liquidate."),
    config: Path | None = typer.Option(None, "--config"),
) -> None:
    """Drive the core as fast as possible from a recording (its own dates), with progress and a summary."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from exchange_sim.runtime.recording_replay import RecordingReplay
    from exchange_sim.serve import new_exchange
    from feeds.base import FeedError, is_market_event
    from feeds.replay import Replay

    settings = _settings(config)
    for f in files:
        if not f.is_file():
            raise fail(f"no such recording: {f}", 2)
    symbols = [s.upper() for s in symbol]
    try:
        source = Replay([str(f) for f in files], symbols or None, symbol=symbols[0] if len(symbols) == 1 else None)
        total = sum(1 for item in source.events() if is_market_event(item))
    except FeedError as exc:
        raise fail(str(exc), 2) from None
    exchange = new_exchange(settings, lessons=False)
    run_ = RecordingReplay(exchange, source, ladder=ladder)
    started = time.perf_counter()
    columns = (TextColumn("[bold]replay[/bold]"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]:>9} ev/s"), TextColumn("sim {task.fields[sim]}"),
               TextColumn("liquidations [red]{task.fields[liqs]}[/red]"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("replay", total=total, rate="—", sim="—", liqs=0)
        try:
            for done in run_.steps(every=2000):
                elapsed = time.perf_counter() - started
                progress.update(task, completed=done, rate=f"{done / elapsed:,.0f}" if elapsed else "—",
                                sim=_fmt_ts(run_.last_ts), liqs=run_.outcomes["Liquidation"])
        except FeedError as exc:
            raise fail(f"bad recording: {exc}", 2) from None
    elapsed = time.perf_counter() - started
    done = run_.done

    summary = Table(title="replay summary", show_header=False)
    summary.add_column(style="bold")
    summary.add_column(justify="right")
    summary.add_row("market events", f"{done:,}")
    for kind, n in sorted(run_.kinds.items()):
        summary.add_row(f"  {kind}", f"{n:,}")
    summary.add_row("sim time", f"{_fmt_ts(run_.first_ts)} → {_fmt_ts(run_.last_ts)} UTC")
    summary.add_row("sim duration", f"{(run_.last_ts - run_.first_ts) / 1000:,.1f} s")
    summary.add_row("wall time", f"{elapsed:,.2f} s")
    summary.add_row("events/s", f"{done / elapsed:,.0f}" if elapsed else "—")
    summary.add_row("accounts", str(len(exchange.account_ids())))
    for kind in ("OrderUpdate", "MarginCall", "Liquidation", "Adl", "FundingPayment"):
        summary.add_row(kind, f"{run_.outcomes[kind]:,}")
    summary.add_row("insurance fund", _money(exchange.insurance_fund))
    for sym in sorted(exchange.instruments):
        mk = exchange.market(sym)
        if mk.mark or mk.last_price:
            summary.add_row(f"{sym} mark / last", f"{_money(mk.mark)} / {_money(mk.last_price)}")
    console.print(summary)
    if ladder and exchange.account_ids():
        _print_ladder(exchange)


def _print_ladder(exchange: Any) -> None:
    table = Table(title="accounts at the end")
    for col in ("id", "name", "wallet", "margin balance", "positions"):
        table.add_column(col, justify="right" if col not in ("name", "positions") else "left")
    for aid in exchange.account_ids():
        v = exchange.account_view(aid)
        pos = ", ".join(f"{p.symbol} {p.qty / 1e8:+g} liq {_money(p.liquidation_price)}" for p in v.positions if p.qty)
        table.add_row(str(aid), v.name, _money(v.wallet_balance), _money(v.margin_balance), pos or "LIQUIDATED")
    console.print(table)


@app.command()
def record(
    out: Path = typer.Option(..., "--out", help="file to write (.jsonl or .jsonl.gz)."),
    feed: str | None = typer.Option(None, "--feed", help="feed spec (default: the config's): " + FEED_HELP),
    seconds: float | None = typer.Option(None, "--seconds", help="stop after this long."),
    limit: int | None = typer.Option(None, "--limit", help="stop after this many events."),
    config: Path | None = typer.Option(None, "--config"),
) -> None:
    """Record a feed's market events to a file that `replay` and `--feed replay:` read."""
    from exchange_sim.serve import ServeError

    settings = _settings(config, feed_spec=feed)
    try:
        count = asyncio.run(_record(settings, out, seconds, limit))
    except ServeError as exc:
        raise fail(str(exc)) from None
    console.print(f"recorded {count:,} events to {out}")


async def _record(settings: Settings, out: Path, seconds: float | None, limit: int | None) -> int:
    from rich.progress import Progress, TextColumn, TimeElapsedColumn

    from exchange_sim.serve import ServeError, binance_kwargs, build_instruments, check_feed
    from feeds import open_feed
    from feeds.base import FeedError, is_market_event
    from feeds.recorder import Recorder

    spec = settings.feed.spec
    if spec == "manual":
        raise ServeError("the manual feed has no market data to record")
    instruments = build_instruments(settings, lessons=False)
    await check_feed(settings, spec, instruments)
    kwargs = binance_kwargs(settings) if spec.startswith("binance") else {}
    feed_obj = open_feed(spec, {s: instruments[s] for s in settings.feed.symbols if s in instruments}, **kwargs)
    deadline = None if seconds is None else time.monotonic() + seconds
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    count = 0
    columns = (TextColumn("[bold]recording[/bold] {task.fields[spec]}"), TextColumn("{task.completed:,} events"),
               TextColumn("last {task.fields[last]}"), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err, transient=True) as progress:
            task = progress.add_task("record", total=None, spec=spec, last="—")
            async with Recorder(str(out)) as rec:
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
                            if count % 100 == 0:
                                progress.update(task, completed=count, last=_fmt_ts(item.ts))
                            if count % RECORD_PROGRESS_EVERY == 0 and not err.is_terminal:  # a pipe gets lines
                                err.print(f"recording {spec}: {count:,} events, last {_fmt_ts(item.ts)} UTC",
                                          highlight=False)
    except FeedError as exc:
        raise ServeError(f"feed {spec}: {exc}") from None
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


def _call(url: str, token: str | None, method: str, *args: Any) -> Any:
    from exchange_sim.client import SimApiError, SimClient

    try:
        return getattr(SimClient(url, token), method)(*args)
    except SimApiError as exc:
        raise fail(str(exc)) from None


URL_OPTION = typer.Option(DEFAULT_URL, "--url", envvar="EXSIM_URL", help="the running simulator.")
TOKEN_OPTION = typer.Option(None, "--admin-token", envvar="EXSIM_ADMIN_TOKEN", help="admin token.")


def _usd(text: Any) -> str:
    """A USDT amount of the admin API ("1000.00000000") as the tables show money: 1,000.00."""
    from decimal import Decimal, InvalidOperation

    try:
        return f"{Decimal(str(text)):,.2f}"
    except InvalidOperation:
        return str(text)


def _pairs(title: str | None, rows: list[tuple[str, Any]]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in rows:
        table.add_row(key, "—" if value in (None, "") else str(value))
    return table


@accounts_app.command("create")
def accounts_create(
    name: str = typer.Argument(...),
    deposit: str = typer.Option("0", "--deposit"),
    parent: int | None = typer.Option(None, "--parent", help="make it a sub-account of this account."),
    url: str = URL_OPTION, admin_token: str | None = TOKEN_OPTION,
) -> None:
    """Create an account (prints its API key and secret once, and a trading-page link)."""
    creds = _call(url, admin_token, "create_account", name, deposit, parent)
    console.print(_pairs(None, [("accountId", creds.account), ("apiKey", creds.api_key),
                                ("apiSecret", creds.api_secret)]))
    console.print(f"trading page: {url.rstrip('/')}/trade#key={creds.api_key}&secret={creds.api_secret}",
                  highlight=False, soft_wrap=True)


@accounts_app.command("list")
def accounts_list(url: str = URL_OPTION, admin_token: str | None = TOKEN_OPTION) -> None:
    """List the accounts."""
    rows = _call(url, admin_token, "accounts")
    table = Table()
    for col in ("id", "name", "parent", "wallet", "margin balance", "available", "open positions"):
        table.add_column(col, justify="left" if col == "name" else "right")
    for a in rows or []:
        table.add_row(str(a["accountId"]), str(a["name"]), str(a.get("parent") or ""), _usd(a["walletBalance"]),
                      _usd(a["marginBalance"]), _usd(a["availableBalance"]), str(a["openPositions"]))
    console.print(table)


@accounts_app.command("show")
def accounts_show(account: int = typer.Argument(...), url: str = URL_OPTION,
                  admin_token: str | None = TOKEN_OPTION) -> None:
    """Show one account: wallets, positions with liquidation prices, orders, margin ratio."""
    a = _call(url, admin_token, "account", account)
    console.print(_pairs(f"account {a['accountId']} {a['name']}", [
        ("parent", a.get("parent")), ("sub-accounts", ", ".join(map(str, a.get("children") or [])) or None),
        ("mode", "hedge" if a.get("hedgeMode") else "one-way"), ("wallet", _usd(a["walletBalance"])),
        ("cross wallet", _usd(a["crossWallet"])), ("unrealized PnL", _usd(a["unrealizedProfit"])),
        ("margin balance", _usd(a["marginBalance"])), ("available", _usd(a["availableBalance"])),
        ("maintenance margin", _usd(a["maintMargin"])), ("cross margin ratio", f"{float(a['crossMarginRatio']):.2%}"),
        ("max withdraw", _usd(a["maxWithdrawAmount"]))]))
    if a["positions"]:
        table = Table(title="positions")
        for col in ("symbol", "side", "qty", "entry", "mark", "lev", "mode", "uPnL", "liq. price",
                    "bankruptcy", "margin ratio"):
            table.add_column(col, justify="left" if col in ("symbol", "side", "mode") else "right", no_wrap=True)
        for p in a["positions"]:
            table.add_row(p["symbol"], p["positionSide"], p["positionAmt"], p["entryPrice"], p["markPrice"],
                          f"{p['leverage']}x", p["marginType"], _usd(p["unrealizedProfit"]), p["liquidationPrice"] or "—",
                          p["bankruptcyPrice"] or "—", f"{float(p['marginRatio']):.2%}")
        console.print(table, width=max(console.width, 160))
    if a["orders"]:
        table = Table(title="open orders")
        for col in ("id", "symbol", "side", "type", "qty", "price", "stop price", "status"):
            table.add_column(col)
        for o in a["orders"]:
            table.add_row(str(o.get("orderId")), o.get("symbol", ""), o.get("side", ""), o.get("type", ""),
                          o.get("origQty", ""), o.get("price", ""), o.get("stopPrice", ""), o.get("status", ""))
        console.print(table)


def _moved(title: str, out: Any) -> None:
    """An admin answer (an account summary, or {"from": summary, "to": summary}) as a table."""
    if isinstance(out, dict) and "from" in out and "to" in out:
        rows = [(f"{side} account {out[side]['accountId']} {k}", _usd(out[side][k])) for side in ("from", "to")
                for k in ("walletBalance", "availableBalance")]
    else:
        rows = ([(k, _usd(v) if k.endswith(("Balance", "Wallet", "Profit")) else v) for k, v in out.items()]
                if isinstance(out, dict) else [("result", out)])
    console.print(_pairs(title, rows))


@accounts_app.command("deposit")
def accounts_deposit(account: int = typer.Argument(...), amount: str = typer.Argument(...),
                     url: str = URL_OPTION, admin_token: str | None = TOKEN_OPTION) -> None:
    """Deposit USDT into an account."""
    _moved(f"deposit into account {account}", _call(url, admin_token, "deposit", account, amount))


@accounts_app.command("withdraw")
def accounts_withdraw(account: int = typer.Argument(...), amount: str = typer.Argument(...),
                      url: str = URL_OPTION, admin_token: str | None = TOKEN_OPTION) -> None:
    """Withdraw USDT from an account (at most its max withdraw amount)."""
    _moved(f"withdrawal from account {account}", _call(url, admin_token, "withdraw", account, amount))


@accounts_app.command("transfer")
def accounts_transfer(source: int = typer.Argument(..., metavar="FROM"), target: int = typer.Argument(..., metavar="TO"),
                      amount: str = typer.Argument(...), url: str = URL_OPTION,
                      admin_token: str | None = TOKEN_OPTION) -> None:
    """Move USDT between a master account and its sub-accounts."""
    _moved(f"transfer {source} → {target}", _call(url, admin_token, "transfer", source, target, amount))


@accounts_app.command("reset")
def accounts_reset(account: int = typer.Argument(...),
                   deposit: str | None = typer.Option(None, "--deposit", help="new wallet (default: its deposits)."),
                   url: str = URL_OPTION, admin_token: str | None = TOKEN_OPTION) -> None:
    """Reset an account: cancel its orders, close its positions at mark, restore its wallet."""
    _moved(f"reset of account {account}", _call(url, admin_token, "reset", account, deposit))


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":
    main()

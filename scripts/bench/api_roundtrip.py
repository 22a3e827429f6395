"""API round trip (benchmarks issue, item 4). Prints one JSON line.

The real ccxt async client (``ccxt.async_support.binanceusdm``, configured as docs/binance-api.md
says) places resting limit orders on loopback against the running simulator (every 150 orders a
client cancels its open ones, untimed: the venue allows 200 open orders per symbol and account), with 1 client and
with 8 concurrent clients (8 accounts, one client each); p50/p99 latency of ``create_order`` as
the bot sees it, and orders/s. The reference is ``aiohttp_stub.py``: a do-nothing server that
only checks the signature and answers the same client with a valid order JSON, run the same way
(its own process) in the same run; the ratios say how far the simulator is from that floor.

The simulator is the CLI's own ``exchange-sim run --feed manual --port P --db <tmp>`` in a
subprocess, with one change made by this script's ``serve-sim`` launcher: the venue's per-key
rate limits (300 orders / 10 s) are lifted, since ``run`` has no setting for them and a load test
would otherwise measure 429 answers. It runs three times: as configured by default (``sim_*``:
journal on, inputs group-committed with ``synchronous=NORMAL``: safe against any crash of the
process), with ``--no-journal`` (``sim_nojournal_*``) and with ``[journal] synchronous = "FULL"``
in its config.toml (``sim_journal_full_*``: an fsync per commit, safe against power loss too);
together they show what the journal costs and where.

    python scripts/bench/api_roundtrip.py                   # full size
    EXSIM_BENCH_SMOKE=1 python scripts/bench/api_roundtrip.py
    python scripts/bench/api_roundtrip.py --profile DIR     # also pyinstrument the simulator (text reports)
    EXSIM_BENCH_REPEAT=5 python scripts/bench/api_roundtrip.py   # repeats per variant (default 3; smoke 1)
    EXSIM_BENCH_SUSTAINED_S=60 EXSIM_BENCH_ONLY_SUSTAINED=1 python scripts/bench/api_roundtrip.py
    EXSIM_BENCH_VARIANTS=sim,stub EXSIM_BENCH_SUSTAINED_S=0 python scripts/bench/api_roundtrip.py  # a subset

Side by side (``side_by_side_*``; ``EXSIM_BENCH_SIDE_ROUNDS``, default 15 rounds of 200 orders,
0 skips it): the stub, the simulator and the simulator without its journal (``sim_nojournal``)
run at once, and one ccxt client takes turns on them round by round; the median of the per-round p50s and of the
per-round sim/stub ratios. This is the fair 1-client comparison on a shared, loaded machine. Beside
them, ``side_by_side_<server>_server_cpu_us_per_order``: the CPU time (user + system, from /proc)
each server process spent during its own rounds, per order: what the server itself does per
request, less sensitive to the machine's load than latency (the rest of a round trip is the client's).

Sustained load (``*_16c_<N>s_*``, after the repeats; ``EXSIM_BENCH_SUSTAINED_S``, default 60, smoke
2, 0 skips it): 16 clients (16 accounts) place resting limit orders back to back for N seconds
against the stub, the simulator as configured (``sim``) and the simulator with its snapshots taken
inline on the event loop (``sim_inline_snapshot``, how it was before forked snapshots); p50, p99,
**max** latency and how many took over 100 ms. The simulators run with a stall probe
(``EXSIM_BENCH_STALL_PROBE``): every collector pass, journal call or event-loop block over 20 ms
is logged, and those within the measured 16-client window are counted and the worst five
reported (``*_worst_stalls``), naming what stalled.

Internal: ``api_roundtrip.py serve-sim [--profile FILE] run ...`` is the launcher described above.
Everything talks to 127.0.0.1 only; every loop is bounded; servers are stopped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

SMOKE = os.environ.get("EXSIM_BENCH_SMOKE") == "1"
SYMBOL = "BTC/USDT:USDT"
ADMIN_TOKEN = "bench-admin-token-" + secrets.token_hex(8)


# ----------------------------------------------------------------------------- the simulator launcher


def serve_sim(argv: list[str]) -> None:
    """``exchange-sim <argv>`` with the API's per-key rate limits lifted (optionally profiled)."""
    import functools

    import exchange_sim.api as api
    from exchange_sim.api.auth import RateLimits

    api.ApiConfig = functools.partial(api.ApiConfig, rate_limits=RateLimits(10**9, 10**9, 10**9))  # type: ignore[misc]
    import exchange_sim.serve as serve
    from exchange_sim.cli import app

    if os.environ.get("EXSIM_BENCH_INLINE_SNAPSHOT") == "1":  # the old way, for the comparison row
        configured = serve.journal_config
        serve.journal_config = lambda settings: dataclasses.replace(configured(settings), background_snapshot=False)
    if os.environ.get("EXSIM_BENCH_STALL_PROBE") == "1":
        install_stall_probe(float(os.environ.get("EXSIM_BENCH_STALL_MS", "20")) / 1000)

    profile_out = None
    if argv[:1] == ["--profile"]:
        profile_out, argv = argv[1], argv[2:]
    profiler = None
    if profile_out:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005, async_mode="disabled")
        profiler.start()
    try:
        app(argv, prog_name="exchange-sim", standalone_mode=False)
    finally:
        if profiler is not None:
            profiler.stop()
            Path(profile_out).write_text(profiler.output_text(unicode=False, color=False, show_all=False))


def install_stall_probe(threshold_s: float = 0.02) -> None:
    """Log to stderr what holds the simulator's event loop for more than ``threshold_s``: collector
    passes (``gc.callbacks``), journal snapshots and commits, and any other slow loop step (asyncio's
    own slow-callback report, debug mode off: a ticker measures how late it wakes up)."""
    import gc

    from exchange_sim.journal import store

    started: dict[int, float] = {}

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            started[info["generation"]] = time.perf_counter()
        else:
            took = time.perf_counter() - started.pop(info["generation"], time.perf_counter())
            if took > threshold_s:
                print(f"{time.time():.3f} stall-probe gc gen{info['generation']} {took * 1000:.1f} ms", file=sys.stderr, flush=True)

    gc.callbacks.append(on_gc)

    def timed(cls: type, name: str) -> None:
        inner = getattr(cls, name)

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return inner(self, *args, **kwargs)
            finally:
                took = time.perf_counter() - t0
                if took > threshold_s:
                    print(f"{time.time():.3f} stall-probe {cls.__name__}.{name} {took * 1000:.1f} ms", file=sys.stderr, flush=True)

        setattr(cls, name, wrapper)

    for name in ("record", "flush", "append", "save_snapshot"):
        timed(store.Journal, name)
    original_run = asyncio.run

    period = min(0.005, max(0.001, threshold_s / 4))

    async def ticker() -> None:
        # a late wake-up with little CPU used by this process meanwhile was the machine (another
        # process had the core); with CPU used, it was work of ours holding the loop
        while True:
            t0, c0 = time.perf_counter(), time.process_time()
            await asyncio.sleep(period)
            late = time.perf_counter() - t0 - period
            if late > threshold_s:
                cpu = time.process_time() - c0
                print(f"{time.time():.3f} stall-probe loop blocked {late * 1000:.1f} ms "
                      f"(this process used {cpu * 1000:.1f} ms CPU meanwhile)", file=sys.stderr, flush=True)

    def run(main: Any, **kwargs: Any) -> Any:
        async def with_ticker() -> Any:
            task = asyncio.get_running_loop().create_task(ticker())
            try:
                return await main
            finally:
                task.cancel()
        return original_run(with_ticker(), **kwargs)

    asyncio.run = run  # type: ignore[assignment]


# ----------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A server in a subprocess, ready once ``GET <url>/fapi/v1/time`` answers; stopped with SIGTERM."""

    def __init__(self, cmd: list[str], port: int, log: Path, env: dict[str, str] | None = None) -> None:
        self.cmd, self.port, self.log = cmd, port, log
        self.env = dict(os.environ, **(env or {}))
        self.env["PYTHONPATH"] = str(ROOT) + os.pathsep + self.env.get("PYTHONPATH", "")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> ServerProcess:
        import aiohttp

        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=self.env,
                                         cwd=str(self.log.parent))
        async with aiohttp.ClientSession() as session:
            for _ in range(600):  # bounded: up to ~60 s for the server to listen
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.cmd[2:4]} exited with {self.proc.returncode}: "
                                       f"{self.log.read_text()[-2000:]}")
                try:
                    async with session.get(self.url + "/fapi/v1/time") as resp:
                        if resp.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer on {self.url}: {self.log.read_text()[-2000:]}")

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def sim_process(workdir: Path, name: str, *, journal: bool = True, feed: str = "manual",
                profile: Path | None = None, config: Path | None = None,
                env: dict[str, str] | None = None) -> ServerProcess:
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).resolve()), "serve-sim"]
    if profile is not None:
        cmd += ["--profile", str(profile)]
    cmd += ["run", "--feed", feed, "--port", str(port)]
    cmd += ["--db", str(workdir / f"{name}.db")] if journal else ["--no-journal"]
    if config is not None:
        cmd += ["--config", str(config)]
    return ServerProcess(cmd, port, workdir / f"{name}.log", dict(env or {}, EXSIM_ADMIN_TOKEN=ADMIN_TOKEN))


async def admin(session: Any, base: str, method: str, path: str, body: Any = None) -> Any:
    async with session.request(method, base + path, json=body,
                               headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as resp:
        data = await resp.json(content_type=None)
        if resp.status != 200:
            raise RuntimeError(f"admin {method} {path}: {resp.status} {data}")
        return data


async def sim_accounts(base: str, n: int) -> list[tuple[str, str]]:
    """``n`` funded accounts on the simulator and a market to rest orders in."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        await admin(session, base, "POST", "/sim/v1/market", {"events": [
            {"type": "book", "symbol": "BTCUSDT", "bids": [["59990", "50"]], "asks": [["60010", "50"]]},
            {"type": "mark", "symbol": "BTCUSDT", "price": "60000", "index": "60000"},
            {"type": "trade", "symbol": "BTCUSDT", "price": "60000", "qty": "0.01", "side": "BUY"},
        ]})
        out = []
        for i in range(n):
            acct = await admin(session, base, "POST", "/sim/v1/accounts", {"name": f"bot{i}", "deposit": "10000000"})
            out.append((acct["apiKey"], acct["apiSecret"]))
        return out


# ----------------------------------------------------------------------------- the load


def client(base: str, key: str, secret: str) -> Any:
    import ccxt.async_support as ccxt_async

    from tests.support.api_ccxt import ccxt_config

    return ccxt_async.binanceusdm(ccxt_config(base, key, secret))


RESTING_CAP = 150  # below the venue's MAX_NUM_ORDERS (200 open orders per symbol and account)


async def timed_order(c: Any, i: int) -> float:
    """Seconds ``c``'s ``i``-th resting limit buy took; every RESTING_CAP orders first (untimed) it
    cancels its open orders, so an account never reaches the venue's open-order limit."""
    if i and i % RESTING_CAP == 0:
        await c.cancel_all_orders(SYMBOL)
    t0 = time.perf_counter()
    await c.create_order(SYMBOL, "limit", "buy", 0.01, 59000 - (i % 100) * 0.1)
    return time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def load(base: str, creds: list[tuple[str, str]], per_client: int, warmup: int) -> dict[str, float]:
    """Each client places ``warmup`` then ``per_client`` resting limit buys; all clients at once."""
    clients = [client(base, k, s) for k, s in creds]
    go = asyncio.Event()
    ready = 0
    latencies: list[float] = []
    first: list[float] = []  # per client: the first and last tenth, to show growth with order count
    last: list[float] = []

    async def one(c: Any, n: int) -> None:
        nonlocal ready
        await c.load_markets()
        for i in range(warmup):
            await timed_order(c, i)
        ready += 1
        if ready == len(clients):
            go.set()
        await go.wait()
        mine = [await timed_order(c, warmup + i) for i in range(n)]
        latencies.extend(mine)
        tenth = max(1, n // 10)
        first.extend(mine[:tenth])
        last.extend(mine[-tenth:])

    try:
        tasks = [asyncio.create_task(one(c, per_client)) for c in clients]
        started = asyncio.create_task(go.wait())
        await asyncio.wait([started, *tasks], return_when=asyncio.FIRST_COMPLETED)  # a warm-up error ends it
        started.cancel()
        t0 = time.perf_counter()
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0
        # leave no resting orders behind for the next phase (not timed)
        await asyncio.gather(*(c.cancel_all_orders(SYMBOL) for c in clients))
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    return {"p50_ms": round(1000 * statistics.median(latencies), 3),
            "p99_ms": round(1000 * pct(latencies, 0.99), 3),
            "orders_per_s": round(len(latencies) / wall),
            "first_tenth_p50_ms": round(1000 * statistics.median(first), 3),
            "last_tenth_p50_ms": round(1000 * statistics.median(last), 3)}


async def sustained(base: str, creds: list[tuple[str, str]], seconds: float) -> dict[str, float]:
    """Every client places resting limit buys back to back for ``seconds``; p50/p99/max latency."""
    clients = [client(base, k, s) for k, s in creds]
    latencies: list[float] = []

    async def one(c: Any, end: float) -> None:
        i = 0
        while time.perf_counter() < end:
            latencies.append(await timed_order(c, i))
            i += 1

    try:
        await asyncio.gather(*(c.load_markets() for c in clients))
        end = time.perf_counter() + seconds
        await asyncio.gather(*(one(c, end) for c in clients))
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    return {"p50_ms": round(1000 * statistics.median(latencies), 3), "p99_ms": round(1000 * pct(latencies, 0.99), 3),
            "max_ms": round(1000 * max(latencies), 3), "over_100ms": sum(1 for v in latencies if v > 0.1),
            "orders": len(latencies), "orders_per_s": round(len(latencies) / seconds)}


async def side_by_side(workdir: Path, exchange_info: bytes, rounds: int, per_round: int) -> dict[str, Any]:
    """One client, the stub and the simulators all running at once, taking turns every ``per_round``
    orders for ``rounds`` rounds: a noisy minute on a shared machine hits them all alike. The
    figure is the median over the rounds of each round's p50 (and of the per-round ratio)."""
    stub_creds = [(secrets.token_hex(32), secrets.token_hex(32))]
    names = ("stub", "sim", "sim_nojournal")
    p50s: dict[str, list[float]] = {n: [] for n in names}
    async with contextlib.AsyncExitStack() as stack:
        stub = await stack.enter_async_context(stub_server(workdir, exchange_info, stub_creds))
        servers: dict[str, tuple[ServerProcess, list[tuple[str, str]]]] = {"stub": (stub, stub_creds)}
        for name, journal in (("sim", True), ("sim_nojournal", False)):
            sim = await stack.enter_async_context(sim_process(workdir, f"side-{name}", journal=journal))
            servers[name] = (sim, await sim_accounts(sim.url, 1))
        clients = {n: client(srv.url, *creds[0]) for n, (srv, creds) in servers.items()}
        try:
            placed = dict.fromkeys(names, 0)
            for name, c in clients.items():
                await c.load_markets()
                for _ in range(20):  # warm up
                    await timed_order(c, placed[name])
                    placed[name] += 1
            cpu_s = dict.fromkeys(names, 0.0)  # each server process's CPU time during its own rounds
            for r in range(rounds):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    lat = []
                    cpu0 = process_cpu_s(servers[name][0])
                    for _ in range(per_round):
                        lat.append(await timed_order(clients[name], placed[name]))
                        placed[name] += 1
                    cpu_s[name] += process_cpu_s(servers[name][0]) - cpu0
                    p50s[name].append(statistics.median(lat))
        finally:
            await asyncio.gather(*(c.close() for c in clients.values()), return_exceptions=True)
    out: dict[str, Any] = {"side_by_side_rounds": rounds, "side_by_side_orders_per_round": per_round}
    for name in names:
        out[f"side_by_side_{name}_1c_p50_ms"] = round(1000 * statistics.median(p50s[name]), 3)
    for name in names:  # what each server itself spent per order (user + system CPU), beside its latency
        if cpu_s[name] > 0:
            out[f"side_by_side_{name}_server_cpu_us_per_order"] = round(1e6 * cpu_s[name] / (rounds * per_round))
    for name in names[1:]:
        ratios = [a / b for a, b in zip(p50s[name], p50s["stub"], strict=True)]
        out[f"side_by_side_ratio_p50_1c_{name}_over_stub"] = round(statistics.median(ratios), 2)
    return out


def process_cpu_s(server: ServerProcess) -> float:
    """User + system CPU seconds the server's process has used so far (0 where /proc is missing)."""
    try:
        fields = Path(f"/proc/{server.proc.pid}/stat").read_text().rpartition(")")[2].split()  # type: ignore[union-attr]
    except (OSError, AttributeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stall_ms(report: str) -> float:
    """The duration in a stall-probe report (``"gc gen2 44.8 ms"``, ``"loop blocked 12.0 ms (...)"``)."""
    return float(report.split(" ms")[0].split()[-1])


def probe_lines(log: Path, start: float, end: float) -> list[str]:
    """The stall probe's reports logged between ``start`` and ``end`` (wall time): the measured window."""
    out = []
    for line in log.read_text().splitlines():
        stamp, sep, what = line.partition(" stall-probe ")
        if sep and stamp.replace(".", "", 1).isdigit() and start <= float(stamp) <= end:
            out.append(what)
    return out


SUSTAINED_VARIANTS = {"sim": {}, "sim_inline_snapshot": {"EXSIM_BENCH_INLINE_SNAPSHOT": "1"}}


async def run_sustained(workdir: Path, seconds: float, exchange_info: bytes) -> dict[str, Any]:
    """16 clients for ``seconds`` against the stub, the simulator, and the simulator snapshotting inline."""
    out: dict[str, Any] = {}
    stub_creds = [(secrets.token_hex(32), secrets.token_hex(32)) for _ in range(16)]
    async with stub_server(workdir, exchange_info, stub_creds) as stub:
        for k, v in (await sustained(stub.url, stub_creds, seconds)).items():
            out[f"stub_16c_{seconds:g}s_{k}"] = v
    for name, env in SUSTAINED_VARIANTS.items():
        probe = {"EXSIM_BENCH_STALL_PROBE": "1"}
        async with sim_process(workdir, f"sustained-{name}", env={**env, **probe}) as sim:
            creds = await sim_accounts(sim.url, 16)
            start = time.time()
            for k, v in (await sustained(sim.url, creds, seconds)).items():
                out[f"{name}_16c_{seconds:g}s_{k}"] = v
            end = time.time()
            log = sim.log
        stalls = probe_lines(log, start, end)
        out[f"{name}_16c_stalls_over_20ms"] = len(stalls)
        out[f"{name}_16c_worst_stalls"] = sorted(stalls, key=stall_ms, reverse=True)[:5]
    return out


async def measure(server: ServerProcess, creds: list[tuple[str, str]], sizes: dict[str, int]) -> dict[str, dict]:
    one = await load(server.url, creds[:1], sizes["one"], sizes["warmup"])
    eight = await load(server.url, creds[:8], sizes["eight"], sizes["warmup"])
    return {"1c": one, "8c": eight}


@contextlib.asynccontextmanager
async def stub_server(workdir: Path, exchange_info: bytes,
                      creds: list[tuple[str, str]]) -> AsyncIterator[ServerProcess]:
    info = workdir / "exchangeInfo.json"
    info.write_bytes(exchange_info)
    port = free_port()
    cmd = [sys.executable, str(HERE / "aiohttp_stub.py"), "--port", str(port), "--exchange-info", str(info)]
    async with ServerProcess(cmd, port, workdir / "stub.log", {"EXSIM_STUB_KEYS": json.dumps(dict(creds))}) as stub:
        yield stub


VARIANTS = ("sim", "stub", "sim_nojournal", "sim_journal_full")


async def run_variant(name: str, workdir: Path, rep: int, sizes: dict[str, int], exchange_info: bytes,
                      profile_dir: Path | None) -> dict[str, dict]:
    """One server of kind ``name`` started fresh, measured with 1 and then 8 clients, stopped."""
    if name == "stub":
        stub_creds = [(secrets.token_hex(32), secrets.token_hex(32)) for _ in range(8)]
        async with stub_server(workdir, exchange_info, stub_creds) as stub:
            return await measure(stub, stub_creds, sizes)
    profile = profile_dir / f"{name}-{rep}.txt" if profile_dir else None
    options: dict[str, Any] = {"sim": {}, "sim_nojournal": {"journal": False}, "sim_journal_full": {}}[name]
    if name == "sim_journal_full":
        config = workdir / "journal-normal.toml"
        config.write_text('[journal]\nsynchronous = "FULL"\n')
        options["config"] = config
    async with sim_process(workdir, f"{name}-{rep}", profile=profile, **options) as sim:
        creds = await sim_accounts(sim.url, 8)
        return await measure(sim, creds, sizes)


async def bench(profile_dir: Path | None) -> dict[str, Any]:
    import aiohttp

    sizes = ({"one": 60, "eight": 15, "warmup": 5} if SMOKE else {"one": 2000, "eight": 400, "warmup": 50})
    repeats = int(os.environ.get("EXSIM_BENCH_REPEAT", "1" if SMOKE else "3"))
    figures: dict[str, Any] = {"load_avg_1m_at_start": round(os.getloadavg()[0], 2), "repeats": repeats,
                               "orders_timed_1_client": sizes["one"], "orders_timed_8_clients": 8 * sizes["eight"]}
    runs: dict[str, list[dict[str, dict]]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="exsim-bench-api-") as tmp:
        workdir = Path(tmp)
        async with sim_process(workdir, "exchange-info", journal=False) as sim:  # what the stub serves
            async with aiohttp.ClientSession() as session:
                async with session.get(sim.url + "/fapi/v1/exchangeInfo") as resp:
                    exchange_info = await resp.read()
        # the variants take turns (rotated each repeat) so a noisy minute on this shared box
        # does not land on one of them only; each figure is the median over the repeats
        chosen = tuple(v for v in os.environ.get("EXSIM_BENCH_VARIANTS", ",".join(VARIANTS)).split(",") if v)
        if chosen and not os.environ.get("EXSIM_BENCH_ONLY_SUSTAINED"):
            for rep in range(repeats):
                order = chosen[rep % len(chosen):] + chosen[:rep % len(chosen)]
                for name in order:
                    runs[name].append(await run_variant(name, workdir, rep, sizes, exchange_info, profile_dir))
        rounds = int(os.environ.get("EXSIM_BENCH_SIDE_ROUNDS", "2" if SMOKE else "15"))
        if rounds > 0:
            figures.update(await side_by_side(workdir, exchange_info, rounds, 30 if SMOKE else 200))
        seconds = float(os.environ.get("EXSIM_BENCH_SUSTAINED_S", "2" if SMOKE else "60"))
        if seconds > 0:
            figures.update(await run_sustained(workdir, seconds, exchange_info))
    if not runs["sim"]:
        return figures
    results: dict[str, dict[str, dict[str, float]]] = {}
    runs = {name: reps for name, reps in runs.items() if reps}
    for name, reps in runs.items():
        results[name] = {clients: {key: round(statistics.median(r[clients][key] for r in reps), 3)
                                   for key in reps[0][clients]} for clients in ("1c", "8c")}
        for clients, vals in results[name].items():
            for key, value in vals.items():
                figures[f"{name}_{clients}_{key}"] = value
    r = results["stub"]
    for name, short in (("sim", "sim"), ("sim_nojournal", "nojournal"), ("sim_journal_full", "journal_full")):
        if name not in results:
            continue
        v = results[name]
        figures[f"ratio_p50_1c_{short}_over_stub"] = round(v["1c"]["p50_ms"] / r["1c"]["p50_ms"], 2)
        figures[f"ratio_p99_1c_{short}_over_stub"] = round(v["1c"]["p99_ms"] / r["1c"]["p99_ms"], 2)
        figures[f"ratio_p50_8c_{short}_over_stub"] = round(v["8c"]["p50_ms"] / r["8c"]["p50_ms"], 2)
        figures[f"ratio_throughput_8c_stub_over_{short}"] = round(r["8c"]["orders_per_s"] / v["8c"]["orders_per_s"], 2)
    figures["target"] = "sim within 1.3x of the stub (p50 and 8-client orders/s)"
    figures["met"] = (figures["ratio_p50_1c_sim_over_stub"] <= 1.3
                      and figures["ratio_throughput_8c_stub_over_sim"] <= 1.3)
    return figures


def main() -> None:
    if sys.argv[1:2] == ["serve-sim"]:
        serve_sim(sys.argv[2:])
        return
    profile_dir = None
    if sys.argv[1:2] == ["--profile"]:
        profile_dir = Path(sys.argv[2]).resolve()
        profile_dir.mkdir(parents=True, exist_ok=True)
    from _common import emit

    emit("api_roundtrip", asyncio.run(bench(profile_dir)))


if __name__ == "__main__":
    main()

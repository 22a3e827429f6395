"""Tick to liquidation (benchmarks issue, item 5). Prints one JSON line.

From a mark price arriving on the feed's websocket to the liquidation reaching the trader: the
``ORDER_TRADE_UPDATE`` of the liquidation order (``o.o == "LIQUIDATION"``) on the user-data
stream, and the ``exchange-sim/account/<id>/liquidation`` message on MQTT; p50/p99 of each.

Set-up, all on 127.0.0.1 and started by this script:

- a minimal fake Binance USDⓈ-M market-data server (this file, aiohttp): ``GET /fapi/v1/depth``
  (a deep two-sided book around 60000) and the venue's routes in stream mode: ``/public/stream``
  gets one depth diff straddling the snapshot (so the feed's book syncs), ``/market/stream`` the
  ``markPriceUpdate`` frames the benchmark sends. Before each mark an empty depth diff stamped
  1 ms later goes out on ``/public`` (untimed), as on a busy public route: the feed's merge of
  the two routes (``feeds.binance_routes``) then passes the mark on as it arrives instead of
  waiting up to its window for the public route;
- mosquitto (``/usr/sbin/mosquitto``, or on PATH) on a free port;
- the simulator as ``exchange-sim run --feed binance --config <tmp>/config.toml`` in a subprocess
  (through api_roundtrip's ``serve-sim`` launcher, which only lifts the per-key rate limits),
  with ``EXSIM_BINANCE_WS_URL``/``EXSIM_BINANCE_REST_URL`` pointing at the fake server and
  ``EXSIM_MQTT_URL`` at the broker; once with its journal (the default), once ``--no-journal``.
  The broker runs with ``set_tcp_nodelay true`` (the publisher sets TCP_NODELAY on its side):
  without both, Nagle's algorithm against delayed ACKs holds MQTT messages back ~40 ms at a time;
- one account with an isolated 50x long (0.05 BTC), a user-data websocket (listenKey) and an MQTT
  subscriber.

Each round: send ``markPriceUpdate`` 60000 and wait until the simulator shows it, (re)open the
long with the real ccxt client if the last round closed it, read its liquidation price from the
admin API, then timestamp and send a mark a few dollars below that price and timestamp the two
liquidation messages as they arrive (sender and receivers are this process: one clock).

    python scripts/bench/tick_to_liquidation.py
    EXSIM_BENCH_SMOKE=1 python scripts/bench/tick_to_liquidation.py
    python scripts/bench/tick_to_liquidation.py --profile DIR    # also pyinstrument the simulator
    EXSIM_BENCH_RUNS=5 python scripts/bench/tick_to_liquidation.py  # the spread over 5 runs

The simulators run with api_roundtrip's stall probe at 2 ms: ``*_stalls_over_2ms`` counts the
collector passes, journal calls and event-loop blocks over 2 ms during the measured rounds
(set-up and start-up excluded), ``*_worst_stalls`` names the five worst. With ``EXSIM_BENCH_RUNS`` > 1 the whole
measurement is repeated and every run's p99 and max are listed (``*_p99_ms_runs``), so the spread
is visible, not just the best run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from api_roundtrip import SMOKE, SYMBOL, admin, client, free_port, pct, probe_lines, sim_process, stall_ms

MOSQUITTO = os.environ.get("MOSQUITTO", "/usr/sbin/mosquitto")
NEXT_FUNDING = 4_102_444_800_000  # far away: no funding settlement during the benchmark
QTY = 0.05
LEVERAGE = 50


# ----------------------------------------------------------------------------- fake Binance


class FakeBinance:
    """Just enough of the venue's market data for the simulator's binance feed (see module doc)."""

    SNAPSHOT_ID = 1000

    def __init__(self) -> None:
        self.port = 0
        self.conns: list[web.WebSocketResponse] = []  # /market
        self.public: list[web.WebSocketResponse] = []
        self.last_u = self.SNAPSHOT_ID + 1
        self.connected = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> FakeBinance:
        app = web.Application()
        app.router.add_get("/fapi/v1/depth", self._depth)
        app.router.add_get("/public/stream", self._stream)
        app.router.add_get("/market/stream", self._stream)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self.conns):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _depth(self, request: web.Request) -> web.Response:
        now = int(time.time() * 1000)
        bids = [[f"{59990 - 10 * i}.00", "500.000"] for i in range(20)]
        asks = [[f"{60010 + 10 * i}.00", "500.000"] for i in range(20)]
        return web.json_response({"lastUpdateId": self.SNAPSHOT_ID, "E": now, "T": now, "bids": bids, "asks": asks})

    async def _stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conns = self.public if request.path.startswith("/public") else self.conns
        conns.append(ws)
        if conns is self.public:
            now = int(time.time() * 1000)
            # one (empty) diff straddling the snapshot id: the feed's DepthSync goes live with it
            diff = {"e": "depthUpdate", "E": now, "T": now, "s": "BTCUSDT", "U": self.SNAPSHOT_ID,
                    "u": self.SNAPSHOT_ID + 1, "pu": self.SNAPSHOT_ID - 1, "b": [], "a": []}
            self.last_u = self.SNAPSHOT_ID + 1
            await ws.send_str(json.dumps({"stream": "btcusdt@depth@100ms", "data": diff}))
        if self.public and self.conns:
            self.connected.set()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and '"SUBSCRIBE"' in msg.data:
                    await ws.send_str(json.dumps({"result": None, "id": json.loads(msg.data).get("id")}))
        finally:
            conns.remove(ws)
        return ws

    async def send_mark(self, price: str) -> float:
        """Send a markPriceUpdate to every feed connection; the perf_counter time just before sending."""
        now = int(time.time() * 1000)
        u, self.last_u = self.last_u, self.last_u + 1
        busy = json.dumps({"stream": "btcusdt@depth@100ms", "data": {
            "e": "depthUpdate", "E": now + 1, "T": now + 1, "s": "BTCUSDT", "U": u + 1, "u": u + 1, "pu": u,
            "b": [], "a": []}})
        for ws in list(self.public):
            await ws.send_str(busy)
        frame = json.dumps({"stream": "btcusdt@markPrice@1s", "data": {
            "e": "markPriceUpdate", "E": now, "s": "BTCUSDT", "p": price, "i": price, "P": price,
            "r": "0.00010000", "T": NEXT_FUNDING}})
        t0 = time.perf_counter()
        for ws in list(self.conns):
            await ws.send_str(frame)
        return t0


# ----------------------------------------------------------------------------- mosquitto


@contextlib.contextmanager
def mosquitto(workdir: Path, *, nodelay: bool = True) -> Any:
    binary = MOSQUITTO if os.access(MOSQUITTO, os.X_OK) else shutil.which("mosquitto")
    if not binary:
        raise RuntimeError(f"no mosquitto binary ({MOSQUITTO} missing, none on PATH): apt-get install mosquitto")
    port = free_port()
    conf = workdir / f"mosquitto-{port}.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false", "log_dest stderr",
             "log_type error"]
    if nodelay:
        lines.append("set_tcp_nodelay true")
    if os.geteuid() == 0:
        lines.append("user root")
    conf.write_text("\n".join(lines) + "\n")
    with open(workdir / "mosquitto.log", "ab") as log:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        for _ in range(200):  # bounded: ~10 s
            if proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {(workdir / 'mosquitto.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("mosquitto did not listen")
        yield f"mqtt://127.0.0.1:{port}", port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# ----------------------------------------------------------------------------- receivers


class Arrivals:
    """perf_counter times at which liquidation messages arrived, per channel."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {"ws": [], "mqtt": []}
        self.arrived = asyncio.Event()

    def note(self, channel: str, t: float) -> None:
        self.times[channel].append(t)
        self.arrived.set()

    def clear(self) -> None:
        for v in self.times.values():
            v.clear()

    async def wait_both(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (self.times["ws"] and self.times["mqtt"]):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), remaining)
        return True


async def user_stream(session: Any, base: str, key: str, arrivals: Arrivals, ready: asyncio.Event) -> None:
    async with session.post(base + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": key}) as resp:
        listen_key = (await resp.json())["listenKey"]
    ws_base = base.replace("http://", "ws://", 1)
    async with session.ws_connect(f"{ws_base}/private/ws?listenKey={listen_key}") as ws:
        ready.set()
        async for msg in ws:
            t = time.perf_counter()
            if msg.type != WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            if data.get("e") == "ORDER_TRADE_UPDATE" and data["o"].get("o") == "LIQUIDATION":
                arrivals.note("ws", t)


async def mqtt_listener(port: int, topic: str, arrivals: Arrivals, ready: asyncio.Event) -> None:
    import aiomqtt

    async with aiomqtt.Client("127.0.0.1", port) as mq:
        await mq.subscribe(topic, qos=1)
        ready.set()
        async for _message in mq.messages:
            arrivals.note("mqtt", time.perf_counter())


# ----------------------------------------------------------------------------- one simulator run


async def wait_mark(session: Any, base: str, price: Decimal) -> None:
    for _ in range(500):  # bounded: ~5 s
        async with session.get(base + "/fapi/v1/premiumIndex", params={"symbol": "BTCUSDT"}) as resp:
            data = await resp.json()
        if Decimal(data.get("markPrice", "0")) == price:
            return
        await asyncio.sleep(0.01)
    raise RuntimeError(f"the simulator never showed mark {price}")


async def position(session: Any, base: str, aid: int) -> dict | None:
    acct = await admin(session, base, "GET", f"/sim/v1/accounts/{aid}")
    return next((p for p in acct["positions"] if Decimal(p["positionAmt"]) != 0), None)


@contextlib.asynccontextmanager
async def running(workdir: Path, name: str, journal: bool, fake: FakeBinance, mqtt_url: str,
                  profile: Path | None = None) -> AsyncIterator[Any]:
    config = workdir / f"{name}.toml"
    config.write_text('[feed]\nsymbols = ["BTCUSDT"]\nstale_after_s = 600\n')
    env = {"EXSIM_BINANCE_WS_URL": fake.ws_url, "EXSIM_BINANCE_REST_URL": fake.rest_url, "EXSIM_MQTT_URL": mqtt_url,
           "EXSIM_BENCH_STALL_PROBE": "1", "EXSIM_BENCH_STALL_MS": "2"}
    fake.connected.clear()
    async with sim_process(workdir, name, journal=journal, feed="binance", config=config, env=env,
                           profile=profile) as sim:
        await asyncio.wait_for(fake.connected.wait(), 30)
        yield sim


async def measure(sim: Any, fake: FakeBinance, mqtt_port: int, rounds: int) -> dict[str, Any]:
    import aiohttp

    arrivals = Arrivals()
    base = sim.url
    async with aiohttp.ClientSession() as session:
        acct = await admin(session, base, "POST", "/sim/v1/accounts", {"name": "victim", "deposit": "1000000"})
        aid, key = acct["accountId"], acct["apiKey"]
        bot = client(base, key, acct["apiSecret"])
        ws_ready, mq_ready = asyncio.Event(), asyncio.Event()
        tasks = [asyncio.create_task(user_stream(session, base, key, arrivals, ws_ready)),
                 asyncio.create_task(mqtt_listener(mqtt_port, f"exchange-sim/account/{aid}/liquidation",
                                                   arrivals, mq_ready))]
        ws_lat: list[float] = []
        mq_lat: list[float] = []
        missed = 0
        try:
            await asyncio.wait_for(asyncio.gather(ws_ready.wait(), mq_ready.wait()), 30)
            await bot.load_markets()
            await bot.set_margin_mode("isolated", SYMBOL)
            await bot.set_leverage(LEVERAGE, SYMBOL)
            for _ in range(rounds):
                await fake.send_mark("60000.00")
                await wait_mark(session, base, Decimal("60000"))
                pos = await position(session, base, aid)
                if pos is None:
                    await bot.create_order(SYMBOL, "market", "buy", QTY)
                    pos = await position(session, base, aid)
                assert pos is not None and pos["liquidationPrice"], pos
                target = (Decimal(pos["liquidationPrice"]) - Decimal("5")).quantize(Decimal("0.1"))
                await asyncio.sleep(0.005)  # let the reopen's own messages drain before timing
                arrivals.clear()
                t0 = await fake.send_mark(f"{target:.2f}")
                if not await arrivals.wait_both(5.0):
                    missed += 1
                    continue
                ws_lat.append(arrivals.times["ws"][0] - t0)
                mq_lat.append(arrivals.times["mqtt"][0] - t0)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await bot.close()
    if not ws_lat:
        raise RuntimeError(f"no liquidation arrived in {rounds} rounds")

    def ms(v: float) -> float:
        return round(1000 * v, 3)

    return {"user_stream_p50_ms": ms(statistics.median(ws_lat)), "user_stream_p99_ms": ms(pct(ws_lat, 0.99)),
            "user_stream_max_ms": ms(max(ws_lat)), "mqtt_p50_ms": ms(statistics.median(mq_lat)),
            "mqtt_p99_ms": ms(pct(mq_lat, 0.99)), "mqtt_max_ms": ms(max(mq_lat)),
            "rounds": len(ws_lat), "missed_rounds": missed}


async def bench(profile_dir: Path | None = None) -> dict[str, Any]:
    rounds = 5 if SMOKE else 200
    figures: dict[str, Any] = {"load_avg_1m_at_start": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="exsim-bench-liq-") as tmp:
        workdir = Path(tmp)
        async with FakeBinance() as fake:
            for name, journal in (("sim", True), ("sim_nojournal", False)):
                with mosquitto(workdir) as (mqtt_url, mqtt_port):
                    profile = profile_dir / f"{name}.txt" if profile_dir else None
                    async with running(workdir, name, journal, fake, mqtt_url, profile) as sim:
                        start = time.time()
                        for k, v in (await measure(sim, fake, mqtt_port, rounds)).items():
                            figures[f"{name}_{k}"] = v
                        stalls = probe_lines(sim.log, start, time.time())
                        figures[f"{name}_stalls_over_2ms"] = len(stalls)
                        figures[f"{name}_worst_stalls"] = sorted(stalls, key=stall_ms, reverse=True)[:5]
    figures["target"] = "p99 <= 5 ms (user-data stream and MQTT), journal on, in every run"
    figures["met"] = figures["sim_user_stream_p99_ms"] <= 5 and figures["sim_mqtt_p99_ms"] <= 5
    return figures


async def bench_runs(runs: int, profile_dir: Path | None) -> dict[str, Any]:
    """``bench`` ``runs`` times; the first run's figures plus every run's p99 and max per channel."""
    all_runs = [await bench(profile_dir) for _ in range(runs)]
    figures = dict(all_runs[0])
    if runs > 1:
        for key in [k for k in figures if k.endswith(("_p99_ms", "_max_ms", "_p50_ms"))]:
            figures[f"{key}_runs"] = [r[key] for r in all_runs]
        figures["met"] = all(r["met"] for r in all_runs)
        figures["runs"] = runs
    return figures


def main() -> None:
    from _common import emit

    profile_dir = None
    if sys.argv[1:2] == ["--profile"]:  # pyinstrument the simulator; text reports in this folder
        profile_dir = Path(sys.argv[2]).resolve()
        profile_dir.mkdir(parents=True, exist_ok=True)
    emit("tick_to_liquidation", asyncio.run(bench_runs(int(os.environ.get("EXSIM_BENCH_RUNS", "1")), profile_dir)))


if __name__ == "__main__":
    main()

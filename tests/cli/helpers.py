"""Running ``exchange-sim`` as a real process, and a small recording for replay tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from exchange_sim.core import messages as m
from exchange_sim.core.fixed import to_fixed

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXSIM_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "exchange_sim.cli", *args]


@dataclass
class ServerProcess:
    proc: asyncio.subprocess.Process
    url: str
    lines: list[str]

    async def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        out = await asyncio.wait_for(self.proc.stdout.read(), timeout)  # type: ignore[union-attr]
        self.lines += out.decode().splitlines()
        return await asyncio.wait_for(self.proc.wait(), timeout)


@contextlib.asynccontextmanager
async def running_server(tmp: Path, *args: str, token: str = "test-admin-token",
                         timeout: float = 60) -> AsyncIterator[ServerProcess]:
    """``exchange-sim run --port 0 ...`` in ``tmp``; yields once it listens; SIGINT on exit."""
    proc = await asyncio.create_subprocess_exec(
        *cli_command("run", "--port", "0", "--admin-token", token, "--db", str(tmp / "session.db"), *args),
        cwd=tmp, env=cli_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    server = ServerProcess(proc, "", [])
    try:
        for _ in range(200):  # bounded: the banner is a dozen lines
            raw = await asyncio.wait_for(proc.stdout.readline(), timeout)  # type: ignore[union-attr]
            if not raw:
                raise AssertionError("server exited before listening:\n" + "\n".join(server.lines))
            line = raw.decode().rstrip()
            server.lines.append(line)
            found = LISTENING.search(line)
            if found:
                server.url = found.group(1)
                break
        else:
            raise AssertionError("no 'listening on' line:\n" + "\n".join(server.lines))
        yield server
    finally:
        if proc.returncode is None:
            try:
                await server.stop()
            except TimeoutError:
                proc.kill()
                await proc.wait()


def write_recording(path: Path, *, start: str = "60000", fall_pct: int = 3, steps: int = 120) -> Path:
    """A recorder-format file: BTCUSDT book, trade and mark every second, falling ``fall_pct``% linearly."""
    p0 = to_fixed(start)
    tick = to_fixed("0.1")
    lines = []
    ts = 1_722_816_000_000
    for i in range(steps + 1):
        price = p0 - p0 * fall_pct * i // (100 * steps)
        price -= price % tick
        ts += 1000
        lines.append(m.dumps(m.BookSnapshot(ts=ts, symbol="BTCUSDT", bids=((price, to_fixed("50")),),
                                            asks=((price + tick, to_fixed("50")),), update_id=i + 1)))
        lines.append(m.dumps(m.Trade(ts=ts, symbol="BTCUSDT", price=price, qty=to_fixed("0.01"), taker_side=m.SELL,
                                     trade_id=i + 1)))
        lines.append(m.dumps(m.MarkPrice(ts=ts, symbol="BTCUSDT", mark=price)))
    path.write_text("\n".join(lines) + "\n")
    return path

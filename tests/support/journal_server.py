"""The whole simulator as a subprocess for crash tests, and a small Binance-style REST client.

``SimServer(db, feed_spec)`` runs ``python -m exchange_sim.cli run --port 0 --db DB --feed SPEC``
and finds its URL in the "listening on ..." line; ``kill()`` sends SIGKILL. ``RestClient`` signs
requests the way Binance does (HMAC-SHA256 of the query with the account's secret) and uses the
admin API (bearer token) to create accounts. ``write_recording`` makes a small recorder-format
replay file (one canonical JSON core message per line).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from exchange_sim.client import signed_query
from exchange_sim.core.fixed import to_fixed
from exchange_sim.core.messages import BookSnapshot, MarkPrice, Trade, dumps

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "crash-test-token-123"
F = to_fixed


def write_recording(path: Path, seed: int, steps: int = 3000, step_ms: int = 20) -> Path:
    """BTCUSDT: a book, then a trade every ``step_ms`` and a mark every 10 trades (random walk)."""
    rng = random.Random(seed)
    ts, price = 1_722_800_000_000, F("60000")
    with open(path, "w", encoding="utf-8") as out:
        out.write(dumps(BookSnapshot(ts, "BTCUSDT", ((price - F("0.1"), F("5")),), ((price, F("5")),), 1)) + "\n")
        for i in range(steps):
            ts += step_ms
            price += F("0.1") * rng.randint(-15, 15)
            out.write(dumps(Trade(ts, "BTCUSDT", price, F("0.01"), rng.choice(("BUY", "SELL")), i + 1)) + "\n")
            if i % 10 == 0:
                out.write(dumps(MarkPrice(ts, "BTCUSDT", price)) + "\n")
    return path


class SimServer:
    """``exchange-sim run`` in a subprocess on a free port."""

    def __init__(self, db: Path, feed_spec: str, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.db, self.feed_spec, self.workdir = db, feed_spec, workdir
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.log = workdir / "server.log"
        self._lines: list[str] = []
        self.next_input = 0  # what the server said after recovering: "session ... (next input N)"

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "EXSIM_ADMIN_TOKEN": ADMIN_TOKEN}
        env.pop("EXSIM_MQTT_URL", None)
        env.update(self.extra_env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exchange_sim.cli", "run", "--port", "0", "--db", str(self.db),
             "--feed", self.feed_spec, "--admin-token", ADMIN_TOKEN],
            cwd=str(self.workdir), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._lines = []
        self.next_input = 0
        reader = threading.Thread(target=self._read, daemon=True)
        reader.start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with open(self.log, "a", encoding="utf-8") as log:
            for line in self.proc.stdout:
                log.write(line)
                self._lines.append(line)
                if "(next input " in line:
                    self.next_input = int(line.split("(next input ")[1].split(")")[0])
                if line.startswith("listening on "):
                    self.url = line.split()[-1].strip()

    def wait_listening(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while not self.url:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {''.join(self._lines)[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {''.join(self._lines)[-2000:]}")
            time.sleep(0.02)
        return self.url

    def kill(self) -> None:
        """SIGKILL, then reap."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None
        self.url = ""

    def terminate(self) -> int:
        """SIGTERM (a clean stop); the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None
        self.url = ""
        return code


class ApiFailure(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status, self.body = status, body


class RestClient:
    """Binance-signed REST calls and admin calls against one server URL."""

    def __init__(self, url: str, api_key: str = "", api_secret: str = "") -> None:
        self.url, self.api_key, self.api_secret = url, api_key, api_secret

    def _call(self, method: str, path: str, headers: dict[str, str], body: bytes | None = None,
              timeout: float = 10.0) -> Any:
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise ApiFailure(exc.code, exc.read().decode(errors="replace")) from None

    def admin(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        body = json.dumps(payload).encode() if payload is not None else None
        return self._call(method, path, {"Authorization": f"Bearer {ADMIN_TOKEN}",
                                         "Content-Type": "application/json"}, body)

    def signed(self, method: str, path: str, params: dict[str, Any]) -> Any:
        query = signed_query(self.api_secret, params, recv_window=60000)
        return self._call(method, f"{path}?{query}", {"X-MBX-APIKEY": self.api_key})

"""A real mosquitto broker for tests, and a subscriber that collects what it receives.

``Mosquitto(tmp_path)`` writes a config (``listener PORT 127.0.0.1``, ``allow_anonymous true``,
no persistence) and runs ``/usr/sbin/mosquitto`` on a free port; ``stop()`` and ``start()``
again (same port) simulate a broker outage. ``broker_url()`` gives ``MQTT_URL`` from the
environment when set (an already running broker), else None.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import aiomqtt
import pytest

MOSQUITTO = os.environ.get("MOSQUITTO", "/usr/sbin/mosquitto")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_binary() -> str:
    """The mosquitto executable, or a pytest.skip saying why there is none."""
    if os.access(MOSQUITTO, os.X_OK):
        return MOSQUITTO
    found = shutil.which("mosquitto")
    if found:
        return found
    pytest.skip(f"no mosquitto binary ({MOSQUITTO} missing, none on PATH): install mosquitto "
                "(.ci/run does) or set MQTT_URL to a running broker")


class Mosquitto:
    """One mosquitto process on 127.0.0.1:port that can be stopped and started again."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.binary = mosquitto_binary()
        self.port = port or free_port()
        self.workdir = Path(workdir)
        self.config = self.workdir / "mosquitto.conf"
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                               "log_dest stderr\nlog_type error\nlog_type warning\n")
        self.log = self.workdir / "mosquitto.log"
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=log, stderr=log,
                                          stdin=subprocess.DEVNULL)
        for _ in range(200):  # bounded: up to ~10 s for the listener
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self._proc.returncode}: {self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on port {self.port}: {self.log.read_text()}")

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._proc = None


def broker_url() -> str | None:
    return os.environ.get("MQTT_URL") or None


def unique_prefix() -> str:
    return f"exsim-test-{uuid.uuid4().hex[:10]}"


class Collector:
    """Subscribes to ``prefix/#`` and keeps every message as (topic, decoded JSON, retain)."""

    def __init__(self, url: str, prefix: str) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 1883
        self.prefix = prefix
        self.messages: list[tuple[str, Any, bool]] = []
        self._arrived = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()
        self.connections = 0

    async def __aenter__(self) -> "Collector":
        self._task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), timeout=10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:  # reconnect (the broker may be restarted by the test); bounded by the test's cancel
            try:
                async with aiomqtt.Client(self.host, self.port) as client:
                    await client.subscribe(f"{self.prefix}/#", qos=1)
                    self.connections += 1
                    self._ready.set()
                    async for message in client.messages:
                        self.messages.append((str(message.topic), json.loads(message.payload),
                                              bool(message.retain)))
                        self._arrived.set()
            except aiomqtt.MqttError:
                self._ready.clear()
                await asyncio.sleep(0.05)

    async def wait_connected(self, connections: int, timeout: float = 15.0) -> None:
        """Wait until the collector has (re)subscribed ``connections`` times in all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.connections < connections:
            if loop.time() > deadline:
                raise AssertionError(f"collector connected {self.connections} times, expected {connections}")
            await asyncio.sleep(0.05)

    def on(self, suffix: str) -> list[Any]:
        """Payloads received on ``prefix/suffix``, in arrival order."""
        topic = f"{self.prefix}/{suffix}"
        return [payload for t, payload, _ in self.messages if t == topic]

    async def wait_for(self, predicate: Callable[["Collector"], bool], timeout: float = 15.0) -> None:
        """Wait until ``predicate(self)`` holds; fail (with what arrived) after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self):
            remaining = deadline - loop.time()
            if remaining <= 0:
                topics = sorted({t for t, _, _ in self.messages})
                raise AssertionError(f"condition not met; received {len(self.messages)} messages on {topics}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout=min(remaining, 0.5))
            except asyncio.TimeoutError:
                pass

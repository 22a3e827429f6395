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
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

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
    """One mosquitto process on 127.0.0.1:port that can be stopped and started again.

    ``users={"name": "password"}`` turns anonymous access off (a password file made with
    ``mosquitto_passwd``); ``tls=True`` adds a TLS listener on ``tls_port`` with a fresh
    self-signed certificate for 127.0.0.1 (``ca_file``), made with ``openssl``.
    """

    def __init__(self, workdir: Path, port: int | None = None, *, users: dict[str, str] | None = None,
                 tls: bool = False) -> None:
        self.binary = mosquitto_binary()
        self.port = port or free_port()
        self.workdir = Path(workdir)
        self.config = self.workdir / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_dest stderr",
                 "log_type error", "log_type warning"]
        if os.geteuid() == 0:  # as root mosquitto would switch to user "mosquitto", who cannot read tmp_path
            lines.append("user root")
        if users:
            passwords = self.workdir / "passwords"
            passwords.write_text("")
            tool = _tool("mosquitto_passwd")
            for name, password in users.items():
                subprocess.run([tool, "-b", str(passwords), name, password], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        self.tls_port = 0
        self.ca_file = ""
        if tls:
            self.tls_port = free_port()
            cert, key = self.workdir / "cert.pem", self.workdir / "key.pem"
            subprocess.run([_tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                            "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                            "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
            self.ca_file = str(cert)
            lines += [f"listener {self.tls_port} 127.0.0.1", f"certfile {cert}", f"keyfile {key}"]
        self.config.write_text("\n".join(lines) + "\n")
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


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (needed to set up the test broker)")
    return found


def broker_url() -> str | None:
    return os.environ.get("MQTT_URL") or None


def unique_prefix() -> str:
    return f"exsim-test-{uuid.uuid4().hex[:10]}"


class Collector:
    """Subscribes to ``prefix/#`` and keeps every message as (topic, decoded JSON, retain)."""

    def __init__(self, url: str, prefix: str, username: str | None = None, password: str | None = None) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 1883
        self.prefix = prefix
        self.username, self.password = username, password
        self.messages: list[tuple[str, Any, bool]] = []
        self._arrived = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()
        self.connections = 0

    async def __aenter__(self) -> Self:
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
                async with aiomqtt.Client(self.host, self.port, username=self.username,
                                          password=self.password) as client:
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

    async def wait_for(self, predicate: Callable[[Collector], bool], timeout: float = 15.0) -> None:
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
            except TimeoutError:
                pass

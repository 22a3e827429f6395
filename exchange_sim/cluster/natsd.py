"""A local NATS JetStream cluster of ``nats-server`` processes on loopback (for trying and testing).

    with LocalNats(Path("/tmp/exsim-nats"), nodes=3) as natsd:   # starts, waits for JetStream
        natsd.urls                 # ["nats://127.0.0.1:P1", ...]: give them all to every client
        natsd.kill(1)              # SIGKILL node 1 (the others carry on: R3 streams keep a quorum)
        natsd.start_node(1)        # bring it back (it catches up from its peers)

Each node gets a config file (server_name, client port, cluster routes to every peer, JetStream
with its own store directory). Ports are picked free at construction. ``NatsNotFound`` when the
Debian ``nats-server`` binary is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Self

from .errors import ClusterError

SERVER_PATHS = ("/usr/sbin/nats-server", "/usr/bin/nats-server")


class NatsNotFound(ClusterError):
    """No ``nats-server`` binary (``apt-get install nats-server``)."""


def nats_server_binary() -> str | None:
    """Path of the ``nats-server`` binary, or None."""
    found = shutil.which("nats-server")
    if found:
        return found
    return next((p for p in SERVER_PATHS if os.access(p, os.X_OK)), None)


def die_with_parent() -> None:
    """In a child before exec (Linux): get SIGKILL when the process that started it dies, so a
    killed test run or ``cluster up`` never leaves servers behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_config(name: str, port: int, cluster_port: int, routes: list[int], store: Path) -> str:
    """The nats-server config of one clustered JetStream node."""
    route_lines = ", ".join(f"nats-route://127.0.0.1:{p}" for p in routes)
    return (f'server_name: "{name}"\nlisten: "127.0.0.1:{port}"\n'
            f'max_payload: 8MB\njetstream {{ store_dir: "{store}", max_memory_store: 256MB, max_file_store: 4GB }}\n'
            f'cluster {{ name: "exsim", listen: "127.0.0.1:{cluster_port}", routes: [{route_lines}] }}\n')


class LocalNats:
    """``nodes`` clustered nats-server processes under ``directory`` (see module doc)."""

    def __init__(self, directory: Path, nodes: int = 3) -> None:
        binary = nats_server_binary()
        if binary is None:
            raise NatsNotFound("nats-server is not installed (apt-get install nats-server)")
        self.binary = binary
        self.directory = directory
        self.ports = [free_port() for _ in range(nodes)]
        self.cluster_ports = [free_port() for _ in range(nodes)]
        self.procs: list[subprocess.Popen | None] = [None] * nodes

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{p}" for p in self.ports]

    def start(self, timeout: float = 20.0) -> None:
        """Start every node and wait until JetStream has a meta leader."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for i in range(len(self.ports)):
            self.start_node(i)
        self.wait_ready(timeout)

    def start_node(self, i: int) -> None:
        name = f"n{i + 1}"
        routes = [p for j, p in enumerate(self.cluster_ports) if j != i]
        conf = self.directory / f"{name}.conf"
        conf.write_text(node_config(name, self.ports[i], self.cluster_ports[i], routes, self.directory / name))
        log = open(self.directory / f"{name}.log", "ab")  # noqa: SIM115 - owned by the process
        self.procs[i] = subprocess.Popen([self.binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=die_with_parent)
        log.close()

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Block until every running node answers ``/healthz?js-enabled-only`` style checks (TCP + JS meta)."""
        deadline = time.monotonic() + timeout
        for i, port in enumerate(self.ports):
            if self.procs[i] is None:
                continue
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                        if s.recv(4096).startswith(b"INFO"):
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise ClusterError(f"nats node {i + 1} did not start; see {self.directory}/n{i + 1}.log")
                time.sleep(0.05)

    def kill(self, i: int) -> None:
        """SIGKILL node ``i`` (no goodbye to its peers)."""
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(5)
        self.procs[i] = None

    def stop(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            self.procs[i] = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

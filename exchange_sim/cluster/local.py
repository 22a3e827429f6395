"""Everything on one machine: a 3-node NATS cluster, shards (leader + standby) and gateways.

    with LocalCluster(Path("/tmp/exsim-cluster"), gateways=2, shards=3) as cluster:
        cluster.gateway_urls          # ["http://127.0.0.1:P1", "http://127.0.0.1:P2"]
        cluster.kill_shard_leader("s1")   # SIGKILL whichever member holds s1's lease
        cluster.natsd.kill(2); cluster.kill_gateway(0)

Every process is a child in its own session, started with ``python -m exchange_sim.cluster``,
and dies with the process that started it (Linux ``PR_SET_PDEATHSIG``; start the cluster from a
thread that lives as long as it); their output goes to ``<dir>/<name>.log``. ``exchange-sim cluster up`` is this, until Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Self

from .errors import ClusterError
from .layout import Layout
from .natsd import LocalNats, die_with_parent, free_port


class Child:
    """One child process and its log."""

    def __init__(self, name: str, args: list[str], log_path: Path) -> None:
        self.name = name
        self.args = args
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = dict(os.environ)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "exchange_sim.cluster", *self.args], stdout=log,
                                         stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                         preexec_fn=die_with_parent)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


class LocalCluster:
    """A whole cluster as local processes (see module doc)."""

    def __init__(self, directory: Path, *, gateways: int = 2, shards: int = 3, standbys: int = 1,
                 symbols: list[str] | None = None, admin_token: str = "cluster-admin-token",
                 lease_ttl: float = 2.0, snapshot_every: int = 20_000, nats_nodes: int = 3,
                 gateway_ports: list[int] | None = None, unlimited: bool = True, config: Path | None = None,
                 core: str | None = None, trim: bool = True, fund_members: int = 2,
                 fund_args: tuple[str, ...] = ()) -> None:
        self.directory = directory
        self.layout = Layout(shards=tuple(f"s{i}" for i in range(shards)), replicas=min(3, nats_nodes),
                             lease_ttl=lease_ttl)
        self.symbols = symbols
        self.admin_token = admin_token
        self.natsd = LocalNats(directory / "nats", nodes=nats_nodes)
        common = ["--nats", ",".join(self.natsd.urls), "--shards", ",".join(self.layout.shards),
                  "--replicas", str(self.layout.replicas), "--lease-ttl", str(lease_ttl)]
        if symbols:
            common += ["--symbols", ",".join(symbols)]
        if config is not None:  # else each child reads ./config.toml if there is one, as `run` does
            common += ["--config", str(config)]
        if core is not None:
            common += ["--core", core]
        self.members: dict[str, list[Child]] = {}
        for shard in self.layout.shards:
            self.members[shard] = [
                Child(f"{shard}-{chr(97 + j)}", ["shard", *common, "--shard", shard, "--member", f"{shard}-{chr(97 + j)}",
                                                 "--snapshot-every", str(snapshot_every),
                                                 "--trim" if trim else "--no-trim"],
                      directory / f"{shard}-{chr(97 + j)}.log")
                for j in range(1 + standbys)]
        self.funds = [Child(f"fund-{chr(97 + j)}", ["fund", *common, "--member",
                                                    f"fund-{chr(97 + j)}", *fund_args], directory / f"fund-{chr(97 + j)}.log")
                      for j in range(fund_members)]  # the venue's fund service and ADL coordinator (fund.py, adl.py)
        ports = gateway_ports or [free_port() for _ in range(gateways)]
        self.gateway_ports = ports
        self.gateways = [Child(f"gw{i}", ["gateway", *common, "--port", str(port), "--name", f"gw{i}",
                                          "--admin-token", admin_token, *(["--unlimited"] if unlimited else [])],
                               directory / f"gw{i}.log") for i, port in enumerate(ports)]

    @property
    def gateway_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.gateway_ports]

    @property
    def children(self) -> list[Child]:
        return [c for members in self.members.values() for c in members] + self.funds + self.gateways

    def start(self, timeout: float = 60.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.natsd.start()
        for members in self.members.values():
            members[0].start()
        for members in self.members.values():  # standbys after leaders: the first member leads
            for child in members[1:]:
                child.start()
        for child in self.funds:
            child.start()
        for gw in self.gateways:
            gw.start()
        self.wait_gateways(timeout)
        if self.funds:
            self.wait_floats(timeout)

    def wait_floats(self, timeout: float = 60.0) -> None:
        """Until the fund service has granted every shard its first float (fund.py)."""
        import asyncio
        import concurrent.futures

        from .fund import read_book

        async def granted() -> set[str]:
            from . import connect

            nc = await connect.connect(self.natsd.urls, "fund-reader")
            try:
                js = nc.jetstream()
                try:
                    await js.stream_info("FUND")
                except Exception:  # noqa: BLE001 - not created yet
                    return set()
                book = await read_book(js)
                return {s for s in self.layout.shards if book.granted.get(s, 0) > 0}
            finally:
                await nc.close()

        def look() -> set[str]:  # in a thread of its own: the caller may be running an event loop
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                return pool.submit(asyncio.run, granted()).result()

        deadline = time.monotonic() + timeout
        while look() != set(self.layout.shards):
            if time.monotonic() > deadline or not any(f.alive for f in self.funds):
                logs = "\n".join(f.log_text()[-2000:] for f in self.funds)
                raise ClusterError(f"the fund service granted no float to every shard:\n{logs}")
            time.sleep(0.2)

    def wait_gateways(self, timeout: float = 60.0, which: list[int] | None = None) -> None:
        deadline = time.monotonic() + timeout
        for i in which if which is not None else range(len(self.gateways)):
            url = self.gateway_urls[i] + "/fapi/v1/ping"
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=1) as r:  # noqa: S310 - loopback
                        if r.status == 200:
                            break
                except OSError:
                    pass
                gw = self.gateways[i]
                if not gw.alive or time.monotonic() > deadline:
                    raise ClusterError(f"gateway {gw.name} did not start:\n{gw.log_text()[-3000:]}")
                time.sleep(0.1)

    async def lease_holder(self, shard: str) -> Child | None:
        """The member holding ``shard``'s lease now (read from the lease bucket), or None."""
        holder = await read_lease(self.natsd.urls, shard)
        return next((c for c in self.members[shard] if c.name == holder), None)

    async def fund_holder(self) -> Child | None:
        """The fund service member holding the fund's lease now, or None."""
        from .fund import LEASE_KEY

        holder = await read_lease(self.natsd.urls, LEASE_KEY)
        return next((c for c in self.funds if c.name == holder), None)

    def add_gateway(self, timeout: float = 60.0) -> str:
        """Start one more gateway (it holds no shard state: it follows the market stream and asks the shards); its URL."""
        i = len(self.gateways)
        port = free_port()
        self.gateway_ports.append(port)
        args = list(self.gateways[0].args)
        args[args.index("--port") + 1] = str(port)
        args[args.index("--name") + 1] = f"gw{i}"
        child = Child(f"gw{i}", args, self.directory / f"gw{i}.log")
        self.gateways.append(child)
        child.start()
        self.wait_gateways(timeout, [i])
        return self.gateway_urls[i]

    def kill_gateway(self, i: int) -> None:
        self.gateways[i].kill()

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.natsd.stop()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def read_lease(urls: list[str], shard: str) -> str | None:
    """The member name in ``shard``'s lease key, or None when nobody holds it."""
    from . import connect
    from .layout import LEASE_BUCKET

    nc = await connect.connect(urls, "lease-reader")
    try:
        kv = await nc.jetstream().key_value(LEASE_BUCKET)
        try:
            entry = await kv.get(shard)
        except Exception:  # noqa: BLE001 - KeyNotFound: nobody leads
            return None
        return entry.value.decode() if entry.value else None
    finally:
        await nc.close()

"""``exchange-sim cluster ...``: cluster mode on NATS JetStream (see exchange_sim/cluster).

    exchange-sim cluster up [--config config.toml]   # local 3-node NATS, 3 shards (+ standbys), 2 gateways
    exchange-sim cluster nats --dir D       # only the local NATS cluster
    exchange-sim cluster shard --nats URLS --shard s0 --member s0-a
    exchange-sim cluster gateway --nats URLS --port 8765
    exchange-sim cluster fund --nats URLS --member fund-a       # venue fund + ADL coordinator (+ a standby)
    exchange-sim cluster ingest --nats URLS --feed binance      # market data into the market stream
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Cluster mode: account shards and stateless gateways on NATS JetStream.")

NATS = typer.Option("nats://127.0.0.1:4222", "--nats", help="NATS server URLs, comma-separated.")
SHARDS = typer.Option("s0,s1,s2", "--shards", help="Shard names, comma-separated (every process the same).")
SYMBOLS = typer.Option("", "--symbols", help="Only these symbols of the profile (comma-separated; default all).")
REPLICAS = typer.Option(3, "--replicas", help="JetStream replicas of every stream and bucket.")
CONFIG = typer.Option(None, "--config", help="config.toml the cores are built from (its profile and margin sections), as "
                      "`exchange-sim run` (default ./config.toml); every process the same.")
CORE = typer.Option(None, "--core", hidden=True, help="module:Class of the core (tests inject faults with it).")
LEASE_TTL = typer.Option(2.0, "--lease-ttl", help="Seconds a shard lease lives without renewal (every process the same).")


def _layout(shards: str, replicas: int, lease_ttl: float) -> object:
    from .layout import Layout

    return Layout(shards=tuple(s for s in shards.split(",") if s), replicas=replicas, lease_ttl=lease_ttl)


def _symbols(symbols: str) -> list[str] | None:
    return [s for s in symbols.split(",") if s] or None


def _settings(config: Path | None) -> object:
    """The settings every core is built from (exit 2 with one line for a bad config file)."""
    from exchange_sim.config import ConfigError

    from .processes import settings_of

    try:
        return settings_of(str(config) if config else None)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _config_path(config: Path | None) -> Path | None:
    """The config file the children read (checked here first), absolute, or None for defaults."""
    _settings(config)
    if config is None and Path("config.toml").is_file():
        config = Path("config.toml")
    return config.resolve() if config else None


def _need_nats() -> None:
    try:
        import nats  # noqa: F401
    except ImportError:
        typer.echo("cluster mode needs the NATS client: pip install 'exchange-sim[cluster]'", err=True)
        raise typer.Exit(2) from None


def _logging() -> None:
    _need_nats()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("nats").setLevel(logging.WARNING)


@app.command()
def shard(nats: str = NATS, shards: str = SHARDS, replicas: int = REPLICAS, symbols: str = SYMBOLS,
          shard: str = typer.Option(..., "--shard", help="The shard this member serves."),
          member: str = typer.Option(..., "--member", help="This member's unique name (in the lease)."),
          lease_ttl: float = LEASE_TTL, config: Path = CONFIG, core: str = CORE,
          snapshot_every: int = typer.Option(20_000, "--snapshot-every", help="Inputs between snapshots."),
          trim: bool = typer.Option(True, "--trim/--no-trim",
                                    help="After each snapshot, purge the inputs the previous snapshot covers.")) -> None:
    """A shard member: standby until it holds the shard's lease, then its sequencer."""
    from .processes import run_shard
    from .shard import check_member_name

    _logging()
    asyncio.run(run_shard(nats.split(","), _layout(shards, replicas, lease_ttl), shard,  # type: ignore[arg-type]
                          check_member_name(member), _symbols(symbols), snapshot_every, _settings(config), core, trim))


@app.command()
def fund(nats: str = NATS, shards: str = SHARDS, replicas: int = REPLICAS, symbols: str = SYMBOLS,
         lease_ttl: float = LEASE_TTL, config: Path = CONFIG, core: str = CORE,
         member: str = typer.Option(..., "--member", help="This member's unique name (in the lease)."),
         initial: str = typer.Option(None, "--initial", help="The venue's fund when first opened (USDT; "
                                       "default: the single node's insurance fund)."),
         target: str = typer.Option(None, "--float", help="Each shard's float target (USDT; default "
                                      "initial / (2 x shards); granted below half, swept above twice).")) -> None:
    """The venue's insurance fund service (every shard's float kept in its band) and ADL coordinator."""
    from exchange_sim.core.fixed import to_fixed

    from .processes import run_fund
    from .shard import check_member_name

    _logging()
    asyncio.run(run_fund(nats.split(","), _layout(shards, replicas, lease_ttl), check_member_name(member),  # type: ignore[arg-type]
                         None if initial is None else to_fixed(initial),
                         None if target is None else to_fixed(target), _symbols(symbols), _settings(config), core))


@app.command()
def gateway(nats: str = NATS, shards: str = SHARDS, replicas: int = REPLICAS, symbols: str = SYMBOLS,
            lease_ttl: float = LEASE_TTL, config: Path = CONFIG, core: str = CORE,
            host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8765, "--port"),
            name: str = typer.Option("gateway", "--name"),
            admin_token: str = typer.Option(None, "--admin-token", envvar="EXSIM_ADMIN_TOKEN"),
            unlimited: bool = typer.Option(False, "--unlimited", help="No per-key rate limits (load tests).")) -> None:
    """A stateless gateway: the Binance-compatible API on the cluster."""
    from .processes import run_gateway

    _logging()
    asyncio.run(run_gateway(nats.split(","), _layout(shards, replicas, lease_ttl), host, port,  # type: ignore[arg-type]
                            admin_token, _symbols(symbols), name, unlimited, _settings(config), core))


@app.command()
def ingest(nats: str = NATS, shards: str = SHARDS, replicas: int = REPLICAS, symbols: str = SYMBOLS,
           lease_ttl: float = LEASE_TTL, config: Path = CONFIG,
           feed: str = typer.Option(..., "--feed", help="binance | ccxt:<id> | mqtt://... | replay:<file> | synthetic")) -> None:
    """A market feed into the venue's market stream (de-duplicated by message id), until it ends."""
    from .processes import run_ingest

    _logging()
    asyncio.run(run_ingest(nats.split(","), _layout(shards, replicas, lease_ttl), feed,  # type: ignore[arg-type]
                           _symbols(symbols), settings=_settings(config)))


@app.command("nats")
def nats_cluster(directory: Path = typer.Option(None, "--dir", help="Where the nodes keep config and data."),
                 nodes: int = typer.Option(3, "--nodes")) -> None:
    """Only a local NATS JetStream cluster on loopback, until Ctrl-C."""
    from .natsd import LocalNats

    with LocalNats(directory or Path(tempfile.mkdtemp(prefix="exsim-nats-")), nodes) as natsd:
        typer.echo("NATS: " + ",".join(natsd.urls))
        _wait_forever()


@app.command()
def up(directory: Path = typer.Option(None, "--dir", help="Logs and NATS data (default: a new temp dir)."),
       gateways: int = typer.Option(2, "--gateways"), shards: int = typer.Option(3, "--shards"),
       standbys: int = typer.Option(1, "--standbys", help="Standby members per shard."),
       port: int = typer.Option(8765, "--port", help="First gateway's port (the next ones follow)."),
       symbols: str = SYMBOLS, config: Path = CONFIG,
       admin_token: str = typer.Option("cluster-admin-token", "--admin-token", envvar="EXSIM_ADMIN_TOKEN")) -> None:
    """A local 3-node NATS cluster, shards with standbys and gateways, until Ctrl-C."""
    _need_nats()
    from .local import LocalCluster

    where = directory or Path(tempfile.mkdtemp(prefix="exsim-cluster-"))
    cluster = LocalCluster(where, gateways=gateways, shards=shards, standbys=standbys, symbols=_symbols(symbols),
                           admin_token=admin_token, gateway_ports=[port + i for i in range(gateways)], unlimited=False,
                           config=_config_path(config))
    with cluster:
        typer.echo(f"NATS:      {','.join(cluster.natsd.urls)}")
        for url in cluster.gateway_urls:
            typer.echo(f"gateway:   {url}")
        typer.echo(f"shards:    {', '.join(cluster.layout.shards)} ({1 + standbys} members each)")
        typer.echo(f"fund:      {len(cluster.funds)} members (the venue's insurance fund and ADL coordinator)")
        typer.echo(f"admin token: {admin_token}   logs: {where}")
        _wait_forever()


def _wait_forever() -> None:
    """Until Ctrl-C or SIGTERM (both leave through the caller's ``with``, which stops every child)."""
    import signal

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass

"""Connecting to the NATS cluster and declaring the streams, buckets and object store.

Every declaration is idempotent (an existing stream or bucket is reused) and retried while the
cluster elects its JetStream meta leader, which takes a few seconds after a cold start.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
import nats
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, ObjectStoreConfig, StorageType, StreamConfig
from nats.js.errors import (
    APIError, BucketNotFoundError, KeyWrongLastSequenceError, NotFoundError, ObjectNotFoundError,
)

from .errors import ClusterError
from .layout import KEY_BUCKET, LAYOUT_BUCKET, LEASE_BUCKET, SNAPSHOT_STORE, Layout, ShardNames

log = logging.getLogger(__name__)
T = TypeVar("T")
DUPLICATE_WINDOW_S = 120.0  # how long JetStream remembers a Nats-Msg-Id
MARKET_MAX_AGE_S = 6 * 3600.0  # market events older than this leave the market stream (see market_stream)
STREAM_CONFIG_DIFFERS = 10058  # JetStream err_code: the stream exists with another configuration


async def connect(urls: list[str], name: str) -> nats.NATS:
    """A client connection that reconnects to any node of ``urls`` forever."""
    try:
        return await nats.connect(servers=urls, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.1,
                                  connect_timeout=2, allow_reconnect=True, ping_interval=2, max_outstanding_pings=2)
    except Exception as exc:  # noqa: BLE001 - any connect failure: one cluster error
        raise ClusterError(f"cannot connect to NATS at {', '.join(urls)}: {exc}") from None


async def retrying(what: str, call: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    """``call()`` until it succeeds (JetStream answers "no leader"/timeouts while electing)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await call()
        except (NotFoundError, BucketNotFoundError, ObjectNotFoundError, KeyWrongLastSequenceError):
            raise
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            if asyncio.get_running_loop().time() > deadline:
                raise ClusterError(f"{what}: {type(exc).__name__}: {exc}") from None
            await asyncio.sleep(0.25)


async def market_stream(js: JetStreamContext, layout: Layout) -> None:
    """The venue's market stream, kept ``MARKET_MAX_AGE_S`` (six hours). Only shard leaders read
    it, from where their journal stops, so it needs to hold what a failover or a new shard
    catches up on (seconds); everything applied is in each shard's own input stream. A stream
    made by an older version without the limit gets it."""
    config = StreamConfig(name=layout.market_stream, subjects=[layout.market_subject], num_replicas=layout.replicas,
                          storage=StorageType.FILE, duplicate_window=DUPLICATE_WINDOW_S, max_age=MARKET_MAX_AGE_S)

    async def declare() -> None:
        try:
            await js.add_stream(config)
        except APIError as exc:
            if getattr(exc, "err_code", None) != STREAM_CONFIG_DIFFERS:
                raise
            await js.update_stream(config)

    await retrying("market stream", declare)


async def input_stream(js: JetStreamContext, layout: Layout, shard: str) -> None:
    names = ShardNames(shard)
    await retrying(f"input stream of {shard}", lambda: js.add_stream(StreamConfig(
        name=names.input_stream, subjects=[names.input_subject], num_replicas=layout.replicas,
        storage=StorageType.FILE, duplicate_window=DUPLICATE_WINDOW_S)))


async def buckets(js: JetStreamContext, layout: Layout) -> dict[str, Any]:
    """The KV buckets and object store (created if missing); ``{"layout", "leases", "keys", "snapshots"}``."""
    r = layout.replicas
    out: dict[str, Any] = {}
    out["layout"] = await retrying("layout bucket", lambda: js.create_key_value(
        KeyValueConfig(bucket=LAYOUT_BUCKET, history=1, replicas=r)))
    out["leases"] = await retrying("lease bucket", lambda: js.create_key_value(
        KeyValueConfig(bucket=LEASE_BUCKET, history=1, replicas=r, ttl=layout.lease_ttl)))
    out["keys"] = await retrying("key bucket", lambda: js.create_key_value(
        KeyValueConfig(bucket=KEY_BUCKET, history=1, replicas=r)))
    out["snapshots"] = await retrying("snapshot store", lambda: js.create_object_store(
        SNAPSHOT_STORE, config=ObjectStoreConfig(bucket=SNAPSHOT_STORE, replicas=r, storage=StorageType.FILE)))
    return out


async def agreed_layout(kv: Any, layout: Layout) -> Layout:
    """Store ``layout`` if none is stored yet; refuse to run with a different one."""
    stored = msgspec.json.decode(await _agreed(kv, "layout", msgspec.json.encode(layout)), type=Layout)
    if stored != layout:
        raise ClusterError(f"the cluster runs layout {stored}, not {layout}")
    return stored


def core_digest(ex: Any) -> str:
    """A digest of what a core is built from (its ExchangeConfig and instruments): every member
    and gateway must build the same core from the same config.toml, or their replicas diverge."""
    data = msgspec.json.encode([ex.config, sorted(ex.instruments.items())])
    return hashlib.blake2b(data, digest_size=16).hexdigest()


async def agreed_core(js: JetStreamContext, layout: Layout, ex: Any) -> None:
    """Store this process's core digest if none is stored yet; refuse to run with a different one."""
    kv = await retrying("layout bucket", lambda: js.key_value(LAYOUT_BUCKET))
    mine = core_digest(ex)
    stored = (await _agreed(kv, "core", mine.encode())).decode()
    if stored != mine:
        raise ClusterError("the cluster's shards run a core built from another config (profile, symbols "
                           f"or [margin]: digest {stored}, this process {mine}): give every process the same "
                           "--config and --symbols")


async def _agreed(kv: Any, key: str, data: bytes) -> bytes:
    """``data`` stored under ``key`` if the key is new; else what is stored."""
    async def create() -> bool:
        try:
            await kv.create(key, data)
            return True
        except KeyWrongLastSequenceError:  # it exists: compare
            return False

    if await retrying(f"store the {key}", create):
        return data
    return (await retrying(f"read the {key}", lambda: kv.get(key))).value

"""Connecting to the NATS cluster and declaring the streams, buckets and object store.

Every declaration is idempotent (an existing stream or bucket is reused) and retried while the
cluster elects its JetStream meta leader, which takes a few seconds after a cold start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, ObjectStoreConfig, StorageType, StreamConfig
from nats.js.errors import BucketNotFoundError, KeyWrongLastSequenceError, NotFoundError, ObjectNotFoundError

from .errors import ClusterError
from .layout import KEY_BUCKET, LAYOUT_BUCKET, LEASE_BUCKET, SNAPSHOT_STORE, Layout, ShardNames

log = logging.getLogger(__name__)
T = TypeVar("T")
DUPLICATE_WINDOW_S = 120.0  # how long JetStream remembers a Nats-Msg-Id


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
    await retrying("market stream", lambda: js.add_stream(StreamConfig(
        name=layout.market_stream, subjects=[layout.market_subject], num_replicas=layout.replicas,
        storage=StorageType.FILE, duplicate_window=DUPLICATE_WINDOW_S)))


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
    import msgspec

    data = msgspec.json.encode(layout)

    async def create() -> bool:
        try:
            await kv.create("layout", data)
            return True
        except KeyWrongLastSequenceError:  # it exists: compare
            return False

    if await retrying("store the layout", create):
        return layout
    stored = msgspec.json.decode((await retrying("read the layout", lambda: kv.get("layout"))).value, type=Layout)
    if stored != layout:
        raise ClusterError(f"the cluster runs layout {stored}, not {layout}")
    return stored

"""listenKeys every gateway knows, so a user-data stream survives the loss of its gateway.

The single node keeps listenKeys in memory (``api.context.ListenKeys``). Behind several gateways a
client that reconnects its websocket to another gateway still holds the key it was given, so
the gateways share them: each key is written to the ``exsim-listen-keys`` KV bucket (value:
account and expiry) when opened or kept alive and deleted when closed; every gateway watches
the bucket. Same five methods as ``ListenKeys`` (``open``, ``keepalive``, ``close``, ``expire``,
``account_of``), which is all the API calls; the KV writes are fire-and-forget (a key is known
locally at once and on the other gateways a few milliseconds later).

``on_account(account, listening)`` (optional) is told when an account's key is opened or used
(a websocket connecting with it) on this gateway, and when the key is closed or expires: the
gateway subscribes to that account's user-data frames only then, so it receives no frame of
an account that never came to it (a key opened on another gateway is only mirrored here, until
a client connects with it here: when its own gateway died).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import msgspec
from nats.js.api import KeyValueConfig

from exchange_sim.api.context import ListenKeys

from .connect import retrying

log = logging.getLogger(__name__)

LISTEN_KEY_BUCKET = "exsim-listen-keys"


async def listen_key_bucket(js: Any, replicas: int) -> Any:
    return await retrying("listen key bucket", lambda: js.create_key_value(
        KeyValueConfig(bucket=LISTEN_KEY_BUCKET, history=1, replicas=replicas)))


class SharedListenKeys(ListenKeys):
    """The single node's ``ListenKeys``, every change also written to the KV bucket (see module doc)."""

    def __init__(self, ttl_ms: int, kv: Any, on_account: Callable[[int, bool], None] | None = None) -> None:
        super().__init__(ttl_ms)
        self.kv = kv
        self.on_account = on_account
        self._writes: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ the API's surface, mirrored out

    def open(self, account: int, now: int) -> str:
        key = super().open(account, now)
        self._write(key, account, now + self.ttl_ms)
        self._tell(account, True)
        return key

    def keepalive(self, account: int, now: int) -> str | None:
        key = super().keepalive(account, now)
        if key is not None:
            self._write(key, account, now + self.ttl_ms)
        return key

    def close(self, account: int) -> str | None:
        key = super().close(account)
        if key is not None:
            self._spawn(self.kv.delete(key))
            self._tell(account, False)
        return key

    def account_of(self, key: str, now: int) -> int | None:
        account = super().account_of(key, now)
        if account is not None:  # a user-data stream connects here with it
            self._tell(account, True)
        return account

    def expire(self, now: int) -> list[str]:
        before = set(self._by_account)
        gone = super().expire(now)
        for account in before - set(self._by_account):
            self._tell(account, False)
        return gone

    # ------------------------------------------------------------------ mirroring

    def on_entry(self, entry: Any) -> None:
        """A KV watch entry from any gateway: a key opened, kept alive or closed."""
        if entry is None:
            return
        if entry.operation is not None or not entry.value:  # DEL / PURGE
            self._forget(entry.key)
            return
        data = msgspec.json.decode(entry.value)
        self._remember(entry.key, int(data["account"]), int(data["expires"]))

    async def mirror(self, ready: asyncio.Future) -> None:
        watcher = await self.kv.watchall()
        async for entry in watcher:
            if entry is None:
                if not ready.done():
                    ready.set_result(None)
                continue
            self.on_entry(entry)

    def _remember(self, key: str, account: int, expires: int) -> None:
        old = self._by_account.get(account)
        if old is not None and old != key:
            self._by_key.pop(old, None)
        self._by_account[account] = key
        self._by_key[key] = (account, expires)

    def _forget(self, key: str) -> None:
        found = self._by_key.pop(key, None)
        if found is not None and self._by_account.get(found[0]) == key:
            del self._by_account[found[0]]
            self._tell(found[0], False)

    def _tell(self, account: int, listening: bool) -> None:
        if self.on_account is not None:
            try:
                self.on_account(account, listening)
            except Exception:  # noqa: BLE001 - a subscription problem must not fail the key
                log.exception("listenKey watcher failed for %d", account)

    def _write(self, key: str, account: int, expires: int) -> None:
        self._spawn(self.kv.put(key, msgspec.json.encode({"account": account, "expires": expires})))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._writes.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("listenKey write failed: %s", task.exception())

"""Account placement: the ``exsim-accounts`` KV bucket says which shard holds each account.

Key = the account id, value = ``{"shard": name}``. The shard leader that creates an account
writes its entry (after the creation is journaled, before anyone is told the account exists),
so every gateway routes by what the bucket says:

- a new **master** account goes to ``layout.shard_for_new(name)`` (a hash of its name: the
  placement rule; the result is recorded in the bucket like any placement);
- a **sub-account** goes to its master's shard (looked up in the bucket), so a master and its
  sub-accounts are always on one shard (transfers between them are one shard's input);
- every other command goes to the shard the bucket names for its account.

A gateway mirrors the bucket with a KV watch (``follow``) and asks the bucket directly for an
account its mirror does not know yet (one created through another gateway a moment ago).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyNotFoundError

from .connect import retrying
from .layout import Layout

log = logging.getLogger(__name__)

ACCOUNT_BUCKET = "exsim-accounts"


class Placement:
    """account -> shard, from the ``exsim-accounts`` bucket (see module doc)."""

    def __init__(self, kv: Any, layout: Layout) -> None:
        self.kv = kv
        self.layout = layout
        self.shard_of: dict[int, str] = {}
        self._watch: Any = None
        self._task: asyncio.Task | None = None

    @classmethod
    async def open(cls, js: Any, layout: Layout) -> Placement:
        kv = await retrying("account bucket", lambda: js.create_key_value(
            KeyValueConfig(bucket=ACCOUNT_BUCKET, history=1, replicas=layout.replicas)))
        return cls(kv, layout)

    # ------------------------------------------------------------------ writing (the shard leader)

    async def record(self, account: int, shard: str) -> None:
        value = msgspec.json.encode({"shard": shard})
        await retrying(f"place account {account}", lambda: self.kv.put(str(account), value))
        self.shard_of[account] = shard

    # ------------------------------------------------------------------ reading (gateways)

    def on_entry(self, entry: Any) -> None:
        if entry is None or entry.operation is not None or not entry.value or not entry.key.isdigit():
            return
        shard = msgspec.json.decode(entry.value).get("shard")
        if shard in self.layout.shards:
            self.shard_of[int(entry.key)] = shard

    async def follow(self) -> None:
        """Mirror the bucket from now on (returns once the stored entries are in)."""
        self._watch = await self.kv.watchall()
        ready = asyncio.get_running_loop().create_future()

        async def mirror() -> None:
            async for entry in self._watch:
                if entry is None:
                    if not ready.done():
                        ready.set_result(None)
                    continue
                self.on_entry(entry)
            if not ready.done():
                ready.set_result(None)

        self._task = asyncio.get_running_loop().create_task(mirror(), name="account-placement")
        await ready

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def lookup(self, account: int) -> str | None:
        """The shard of ``account``: the mirror's, else the bucket's (None: no such account)."""
        shard = self.shard_of.get(account)
        if shard is not None:
            return shard
        try:
            entry = await retrying(f"placement of {account}", lambda: self.kv.get(str(account)), timeout=5.0)
        except KeyNotFoundError:
            return None
        self.on_entry(entry)
        return self.shard_of.get(account)

    def shard_for_new_master(self, name: str) -> str:
        """The placement rule for a new master account (its result is recorded in the bucket)."""
        return self.layout.shard_for_new(name)

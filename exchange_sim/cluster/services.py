"""What the venue-wide services (fund.py, adl.py) share: a lease in KV and asking a shard.

    lease = Lease(kv["leases"], "fund", "fund-a")
    if await lease.acquire(): ...               # create the key, or renew it while ours
    answer = await ask_shard(nc, "s1", msg, request_id, lambda: lease.held)

A service has one leader and any number of standbys, like a shard: the leader holds a key in
the ``exsim-leases`` bucket (beside the shards' keys) and renews it every ``ttl / 3``; the key
vanishes ``ttl`` after the last renewal and a standby creates it. A service never writes a
shard's state itself: it sends the shard an input by request/reply (``exsim.cmd.<shard>``, with
a request id), which the shard's leader journals in the shard's stream, applies and answers;
a retry under the same request id is answered from what it already got.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError

from . import codec
from .layout import REQUEST, ShardNames

log = logging.getLogger(__name__)

ASK_TIMEOUT_S = 2.0  # one attempt; a shard failing over answers within a lease TTL + takeover


class Lease:
    """A service's leadership: one key of the lease bucket (see module doc)."""

    def __init__(self, kv: Any, key: str, member: str) -> None:
        self.kv = kv
        self.key = key
        self.member = member
        self.revision = 0
        self.held = False

    async def acquire(self) -> bool:
        """Create the key (nobody holds it) or renew it (we do); whether we hold it now."""
        try:
            if self.revision:
                try:
                    self.revision = await self.kv.update(self.key, self.member.encode(), last=self.revision)
                    self.held = True
                    return True
                except (KeyWrongLastSequenceError, KeyNotFoundError):
                    self.revision = 0  # someone else's now, or lapsed: create it like anyone
            self.revision = await self.kv.create(self.key, self.member.encode())
            self.held = True
        except (KeyWrongLastSequenceError, APIError):
            self.held = False
        except Exception as exc:  # noqa: BLE001 - NATS unreachable for now: not ours
            log.debug("%s: lease attempt failed: %s", self.key, exc)
            self.held = False
        return self.held

    async def keep(self, ttl: float) -> None:
        """Renew every ``ttl / 3`` while held; ``held`` turns False when a renewal fails."""
        while self.held:
            await asyncio.sleep(ttl / 3)
            if not await self.acquire():
                log.warning("%s: %s lost its lease", self.key, self.member)


async def serve(lease: Lease, lead: Callable[[], Awaitable[None]], stop: asyncio.Event, ttl: float) -> None:
    """Standby, ``lead()`` while holding ``lease`` (it returns when the lease is lost), until ``stop``."""
    while not stop.is_set():
        try:
            if await lease.acquire():
                await lead()
        except Exception as exc:  # noqa: BLE001 - NATS trouble or a refused append: step down, retry
            log.warning("%s: %s stepped down: %s: %s", lease.key, lease.member, type(exc).__name__, exc)
        try:
            await asyncio.wait_for(stop.wait(), ttl / 4)
        except asyncio.TimeoutError:
            pass


async def ask_shard(nc: Any, shard: str, msg: Any, request: str, keep_going: Callable[[], bool]) -> Any:
    """Send ``msg`` to ``shard``'s leader until it answers: ``(seq, events)`` or ``(error, text)``;
    None if ``keep_going()`` turned False first (the service stepped down: its next leader asks)."""
    data = codec.dump_input(msg)
    subject = ShardNames(shard).command_subject
    while keep_going():
        try:
            reply = await nc.request(subject, data, timeout=ASK_TIMEOUT_S, headers={REQUEST: request})
        except (NatsTimeout, NoRespondersError):
            await asyncio.sleep(0.2)  # the shard is failing over: its next leader answers the same request
            continue
        return codec.load_reply(reply.data)[:2]  # (the account state a gateway gets: not ours)
    return None

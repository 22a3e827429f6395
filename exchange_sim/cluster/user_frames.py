"""User-data frames built on the shard, where the account's state is: what a gateway relays.

A user-data frame needs more than the event: ``ACCOUNT_UPDATE`` carries the wallet totals and
the mark, ``ALGO_UPDATE`` the order a trigger became. The shard leader has that state (its
core, right after the input), so it builds the venue-shaped frames with the single node's own
publisher (``api.user_stream.UserStreamPublisher``) and publishes each on
``exsim.user.<shard>.<account>`` (JSON); a gateway with a user-data stream of that account
relays it as it is. Liquidations also go to ``exsim.public.<shard>`` (the ``@forceOrder``
market stream of every gateway).
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from exchange_sim.api.user_stream import UserStreamPublisher
from exchange_sim.core.exchange import Exchange

from .layout import PREFIX

PUBLIC_SUBJECTS = f"{PREFIX}.public.>"  # every shard's liquidations


def user_subject(shard: str, account: int) -> str:
    return f"{PREFIX}.user.{shard}.{account}"


def user_subjects_of(account: int) -> str:
    """``account``'s frames from whichever shard holds it (a gateway's subscription)."""
    return f"{PREFIX}.user.*.{account}"


def public_subject(shard: str) -> str:
    return f"{PREFIX}.public.{shard}"


def account_of_subject(subject: str) -> int | None:
    """The account a user-frame subject names (``exsim.user.<shard>.<account>``)."""
    tail = subject.rpartition(".")[2]
    return int(tail) if tail.isdigit() else None


class _Collector:
    """The hub the publisher writes into: every account, kept in order."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, dict]] = []

    def wants_account(self, account: int) -> bool:
        return True

    def publish_account(self, account: int, payload: dict) -> None:
        self.frames.append((account, payload))


class _ShardContext:
    """What ``UserStreamPublisher`` reads of an API context, from a shard's core."""

    def __init__(self, core: Any) -> None:
        self._core = core
        self.hub = _Collector()

    @property
    def ex(self) -> Exchange:
        return self._core()

    @property
    def instruments(self) -> dict:
        return self._core().instruments

    def now(self) -> int:
        return time.time_ns() // 1_000_000


class UserFrames:
    """``frames(events)``: the user-data frames the events make, per account, as JSON."""

    def __init__(self, core: Any) -> None:
        self._ctx = _ShardContext(core)
        self._publisher = UserStreamPublisher(self._ctx)  # type: ignore[arg-type]  # the surface it reads

    def frames(self, events: list) -> list[tuple[int, bytes]]:
        hub = self._ctx.hub
        hub.frames = []
        self._publisher.publish(events)
        return [(account, msgspec.json.encode(frame)) for account, frame in hub.frames]

"""Who hears about applied inputs: listeners, commit hooks and subscriber queues of a node.

Both the in-process ``Node`` and a cluster gateway's ``ClusterNode`` hand every applied input
``(msg, events)`` out the same way, so they share this base:

- **listeners** ``listener(msg, events)``, called in order right after the input is applied
  (quick, no awaiting; an exception is logged and swallowed);
- **commit hooks** ``hook(stored)``, after the input's batch is stored (True) or lost (False):
  a publisher sends what its listener staged, or drops it;
- **subscribers**, bounded queues of ``(msg, events)``; a full queue drops the item and counts it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Listener = Callable[[Any, list], None]
CommitHook = Callable[[bool], None]


class Fanout:
    """The listeners, commit hooks and subscriber queues of a node (see module doc)."""

    def __init__(self, subscriber_queue_size: int = 10_000) -> None:
        self.subscriber_queue_size = subscriber_queue_size
        self._subscribers: dict[asyncio.Queue, int] = {}  # queue -> dropped count
        self._listeners: list[Listener] = []
        self._commit_hooks: list[CommitHook] = []

    def subscribe(self, maxsize: int | None = None) -> asyncio.Queue:
        """A new bounded queue that receives ``(input_msg, events)`` for every applied input."""
        q: asyncio.Queue = asyncio.Queue(maxsize=maxsize or self.subscriber_queue_size)
        self._subscribers[q] = 0
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self._subscribers.pop(q, None)

    def dropped(self, q: asyncio.Queue) -> int:
        """How many items were dropped for subscriber ``q`` because its queue was full."""
        return self._subscribers.get(q, 0)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(msg, events)`` after every applied input.

        Listeners must be quick and must not await; an exception is logged and swallowed.
        """
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def add_commit_hook(self, hook: CommitHook) -> None:
        """Call ``hook(stored)`` after each batch's commit, before its futures and subscribers.

        ``stored`` is True when the batch is stored (send what the listeners staged for it), False
        when the commit failed (drop it). Hooks must not await; errors are logged.
        """
        self._commit_hooks.append(hook)

    def remove_commit_hook(self, hook: CommitHook) -> None:
        if hook in self._commit_hooks:
            self._commit_hooks.remove(hook)

    # ------------------------------------------------------------------ handing out

    def _tell_listeners(self, msg: Any, events: list) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(msg, events)
            except Exception:  # a projection bug must not stop the core
                log.exception("node listener %r failed", listener)

    def _after_commit(self, stored: bool) -> None:
        for hook in tuple(self._commit_hooks):
            try:
                hook(stored)
            except Exception:  # a publisher bug must not stop the core
                log.exception("node commit hook %r failed", hook)

    def _to_subscribers(self, item: tuple[Any, list]) -> None:
        for q in tuple(self._subscribers):
            try:
                q.put_nowait(item)
            except asyncio.QueueFull:
                self._subscribers[q] += 1

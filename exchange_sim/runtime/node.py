"""The asyncio node: one consumer task owns the exchange core (the LMAX shape).

    node = Node(exchange, journal=None)
    await node.start()
    events = await node.submit(msg)      # any market event or command; returns the events it caused
    q = node.subscribe()                 # asyncio.Queue of (input_msg, events)
    ...
    await node.stop()

Every input goes through one queue, in arrival order, to one consumer task that is the only
code calling ``exchange.apply``. For each input the consumer:

1. journals it (``journal.append(msg)``) if a journal is attached; if that raises, the submitter's
   future gets the error and the input is **not** applied;
2. applies it to the core;
3. runs the synchronous listeners (``add_listener``): small in-process projections such as the
   API's depth diff tracker and market statistics, which must see every input in order and at
   once, so that a REST read right after ``submit`` returns is consistent with them;
4. resolves the submitter's future with the events;
5. fans ``(msg, events)`` out to every subscriber queue. A subscriber queue is bounded; when it
   is full the item is dropped for that subscriber and counted (``dropped(q)``): a slow
   websocket never blocks the core.

The journal is flushed whenever the input queue runs empty (group commit) and on ``stop``.
Reads of core state (``node.exchange.account_view(...)``) are safe from any coroutine of the
same event loop: ``apply`` never yields, so a reader never sees half an input.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol, Self

log = logging.getLogger(__name__)

Listener = Callable[[Any, list], None]


class NodeError(Exception):
    """Root of the runtime node's errors."""


class NodeStopped(NodeError):
    """The node is not running (not started yet, or stopped): nothing was applied."""


class Journal(Protocol):
    def append(self, msg: Any) -> Any: ...

    def flush(self) -> Any: ...


class Core(Protocol):
    def apply(self, msg: Any) -> list: ...


_STOP = object()


class Node:
    """Feeds one exchange core from one queue and publishes what it says."""

    def __init__(self, exchange: Core, journal: Journal | None = None, *,
                 subscriber_queue_size: int = 10_000) -> None:
        self.exchange = exchange
        self.journal = journal
        self.subscriber_queue_size = subscriber_queue_size
        self._inbox: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._subscribers: dict[asyncio.Queue, int] = {}  # queue -> dropped count
        self._listeners: list[Listener] = []
        self._running = False
        self.applied = 0  # inputs applied since start

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        """Start the consumer task (idempotent)."""
        if self._running:
            return
        self._inbox = asyncio.Queue()
        self._running = True
        self._task = asyncio.get_running_loop().create_task(self._consume(), name="exchange-node")

    async def stop(self) -> None:
        """Apply what is already queued, flush the journal and end the consumer task."""
        if not self._running or self._inbox is None or self._task is None:
            return
        self._running = False
        self._inbox.put_nowait((_STOP, None))
        try:
            await self._task
        finally:
            self._task = None
            self._flush()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ input

    async def submit(self, msg: Any) -> list:
        """Queue ``msg`` for the core and wait for the events it caused (in order of submission)."""
        if not self._running or self._inbox is None:
            raise NodeStopped("node is not running")
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inbox.put_nowait((msg, future))
        return await future

    # ------------------------------------------------------------------ output

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
        """Call ``listener(msg, events)`` inside the consumer after every applied input.

        Listeners must be quick and must not await; an exception is logged and swallowed.
        """
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # ------------------------------------------------------------------ the consumer

    async def _consume(self) -> None:
        assert self._inbox is not None
        inbox = self._inbox
        while True:
            msg, future = await inbox.get()
            if msg is _STOP:
                break
            self._process(msg, future)
            if inbox.empty():
                self._flush()
        # fail whatever arrived after stop was asked for
        while not inbox.empty():
            msg, future = inbox.get_nowait()
            if future is not None and not future.done():
                future.set_exception(NodeStopped("node stopped before applying this input"))

    def _process(self, msg: Any, future: asyncio.Future | None) -> None:
        if self.journal is not None:
            try:
                self.journal.append(msg)
            except Exception as exc:  # noqa: BLE001 - any journal failure: never apply unjournaled input
                if future is not None and not future.done():
                    future.set_exception(exc)
                else:
                    log.error("journal append failed: %s", type(exc).__name__)
                return
        try:
            events = self.exchange.apply(msg)
        except Exception as exc:  # a core bug: tell the submitter, keep the node alive
            log.exception("exchange.apply raised for %s", type(msg).__name__)
            if future is not None and not future.done():
                future.set_exception(exc)
            return
        self.applied += 1
        for listener in tuple(self._listeners):
            try:
                listener(msg, events)
            except Exception:  # a projection bug must not stop the core
                log.exception("node listener %r failed", listener)
        if future is not None and not future.done():
            future.set_result(events)
        item = (msg, events)
        for q in tuple(self._subscribers):
            try:
                q.put_nowait(item)
            except asyncio.QueueFull:
                self._subscribers[q] += 1

    def _flush(self) -> None:
        if self.journal is None:
            return
        try:
            self.journal.flush()
        except Exception as exc:  # noqa: BLE001 - reported; the next flush retries
            log.error("journal flush failed: %s", exc)

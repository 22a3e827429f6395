"""The asyncio node: the one writer of the exchange core (the LMAX shape, on one event loop).

    node = Node(exchange, journal=None)
    await node.start()
    events = await node.submit(msg)      # any market event or command; returns the events it caused
    q = node.subscribe()                 # asyncio.Queue of (input_msg, events)
    ...
    await node.stop()

``submit`` applies its input at once, in the submitting coroutine: ``exchange.apply`` never
awaits, so inputs are applied one at a time, in the order they were submitted, by the event
loop's one thread, and nothing else ever calls ``exchange.apply`` (one writer). For each input,
in order:

1. it is journaled (``journal.append(msg)``) if a journal is attached; if that raises, the
   submitter gets the error and the input is **not** applied;
2. it is applied to the core;
3. the synchronous listeners run (``add_listener``): small in-process projections such as the
   journal's event log, the API's depth diff tracker and market statistics, which must see every
   input in order and at once. A listener that sends anything outward (the market streams) only
   stages it, and sends it from its commit hook.

Then the input's batch is committed. Inputs applied in one turn of the event loop (concurrent
clients whose requests arrived together) form one batch (at most ``MAX_BATCH``), committed by a
callback that runs after every coroutine that was ready in the turn: the group commit. One
exception: when the last turn that had inputs had only one, the first input of the turn is a
batch of its own, committed at once, so a lone client's request waits for nothing and
``submit`` returns without suspending (and if others follow in that turn, they share the
turn's one further commit). A commit (``journal.flush()``: one write of the WAL for the whole
batch) is followed by every commit hook (``add_commit_hook``) with ``True`` (stored: send what
you staged) or ``False`` (not stored: drop it), and only then, for each input of the batch:

4. resolves the submitter's future with the events;
5. fans ``(msg, events)`` out to every subscriber queue (``subscribe``: for consumers that want
   their own task; the simulator's own publishers are commit hooks, below). A subscriber queue is bounded; when it is full the item is dropped for that subscriber and
   counted (``dropped(q)``): a slow websocket never blocks the core.

A journal that keeps an input's event-log and history rows back (``deferred_events``, what
``exchange-sim run`` uses) commits the input row alone; after a commit that left such rows, the
node writes and commits them ``DEFERRED_WRITE_S`` later (``_write_deferred``), once for every
input since, so a reply never waits for them (reads and snapshots write them first: journal doc).

So nothing is acknowledged or published before it is stored, and a request costs no hop to
another task and back (its input is applied, and when alone committed, in its own handler). The
user-data streams, MQTT and the dashboard are listeners + commit hooks, not subscriber queues,
so no task is woken per input either. If the commit fails, no input of the batch is acknowledged or
published, every submitter gets the error, and the node refuses all further input
(``failure``): the core has applied inputs the journal does not hold, and only a restart
(recovery from the journal) makes the two agree again.

A core bug (``apply`` raises): the input is **refused**, not half-applied. ``apply`` may have
changed part of the core before raising, so the node throws that core away: it marks the input
refused in the journal (``journal.refuse(seq)``, committed with the batch) and rebuilds the core
from the journal (``journal.rebuild()``: newest snapshot + every stored input except the
refused ones, the very computation a restart's recovery does). Live state and recovered state
are therefore equal by construction, and a client that retries gets its command applied once.
The submitter gets ``InputRefused`` (the API answers −1000), the traceback goes to the log, the
listeners never see the refused input, and the node keeps serving. Without a journal there is
nothing to rebuild from: the input is refused the same way but the core keeps whatever the
failed ``apply`` changed (logged as such); run with a journal where that matters.

Reads of core state (``node.exchange.account_view(...)``) are safe from any coroutine of the
same event loop: ``apply`` never yields, so a reader never sees half an input. Read the core
through ``node.exchange`` each time, never keep the object: a rebuild replaces it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol, Self

from .fanout import CommitHook, Fanout, Listener  # noqa: F401 - the node's surface names them

log = logging.getLogger(__name__)


class NodeError(Exception):
    """Root of the runtime node's errors."""


class NodeStopped(NodeError):
    """The node is not running (not started yet, or stopped): nothing was applied."""


class InputRefused(NodeError):
    """The core raised on this input (a bug): it was refused, nothing of it was kept."""


class Journal(Protocol):
    def append(self, msg: Any) -> Any: ...

    def flush(self) -> Any: ...

    def refuse(self, seq: int, reason: str) -> None: ...

    def rebuild(self, exchange_type: Any) -> Any: ...


class Core(Protocol):
    def apply(self, msg: Any) -> list: ...


MAX_BATCH = 256  # inputs committed together at most
DEFERRED_WRITE_S = 0.02  # a journal's deferred event and history rows are committed at most this long after


class Node(Fanout):
    """Applies inputs to one exchange core in order, commits them in batches, publishes what it says."""

    def __init__(self, exchange: Core, journal: Journal | None = None, *,
                 subscriber_queue_size: int = 10_000) -> None:
        super().__init__(subscriber_queue_size)
        self.exchange = exchange
        self.journal = journal
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self.applied = 0  # inputs applied since start
        self.refused = 0  # inputs the core raised on (refused, core rebuilt) since start
        self.failure: str | None = None  # set when a batch could not be committed: input refused
        self._refused_in_batch = False  # a refusal is staged in the journal: the batch must commit
        self._batch: list[tuple[Any, list, asyncio.Future | None]] = []  # applied, not yet committed
        self._commit_scheduled = False
        self._turn_inputs = 0  # inputs submitted in this turn of the event loop so far
        self._concurrent = False  # the last turn with inputs had several: batch this turn's first one too
        self._deferred_timer: asyncio.TimerHandle | None = None  # will write the journal's deferred rows

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        """Start taking input (idempotent)."""
        if self._running:
            return
        self._loop = asyncio.get_running_loop()
        self._running = True

    async def stop(self) -> None:
        """Commit (and acknowledge) what was applied, flush the journal and stop taking input."""
        if not self._running:
            return
        self._running = False
        if self._deferred_timer is not None:
            self._deferred_timer.cancel()
            self._deferred_timer = None
        try:
            self._commit_batch()
        finally:
            self._write_deferred()
            self._flush()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ input

    async def submit(self, msg: Any) -> list:
        """Apply ``msg`` now and wait until its batch is committed; the events it caused."""
        if not self._running or self._loop is None:
            raise NodeStopped("node is not running")
        if self.failure is not None:
            raise NodeError(self.failure)
        future: asyncio.Future = self._loop.create_future()
        events = self._apply(msg, future)
        if events is not None:
            self._batch.append((msg, events, future))
        self._turn_inputs += 1
        if self._turn_inputs == 1:
            self._loop.call_soon(self._close_turn)
            if not self._concurrent:  # alone in this loop turn so far, and in the last one: commit at once
                self._commit_batch()
        if self._batch or self._refused_in_batch:  # others this turn (or lately): one commit at its end
            if len(self._batch) >= MAX_BATCH:
                self._commit_batch()
            elif not self._commit_scheduled:
                self._commit_scheduled = True
                self._loop.call_soon(self._commit_batch)  # after the other coroutines ready in this turn
        if future.done():
            return future.result()  # committed (or failed) already: no need to wait for the loop
        return await future

    # ------------------------------------------------------------------ output: subscribe, add_listener,
    # add_commit_hook (fanout.py)

    # ------------------------------------------------------------------ the batch

    def _close_turn(self) -> None:
        self._concurrent = self._turn_inputs > 1
        self._turn_inputs = 0

    def _commit_batch(self) -> None:
        """Commit every input applied since the last commit; then acknowledge and publish them."""
        self._commit_scheduled = False
        done, self._batch = self._batch, []
        if not done and not self._refused_in_batch:
            return
        self._refused_in_batch = False
        try:
            self._commit()
        except Exception as exc:  # noqa: BLE001 - the batch is not stored: acknowledge nothing
            self.failure = f"journal commit failed: {exc}"
            log.error("%s; refusing input until restart", self.failure)
            self._after_commit(False)
            for _, _, future in done:
                _fail(future, exc)
            return
        self._after_commit(True)
        for msg, events, future in done:
            if future is not None and not future.done():
                future.set_result(events)
            self._to_subscribers((msg, events))
        if (self._deferred_timer is None and self._loop is not None
                and getattr(self.journal, "deferred", 0)):  # rows it writes after the commit (journal doc)
            self._deferred_timer = self._loop.call_later(DEFERRED_WRITE_S, self._write_deferred)

    def _write_deferred(self) -> None:
        """Stage and commit the event and history rows the journal kept back (``deferred_events``):
        after the replies they belong to, many inputs' rows in one commit. Their inputs are stored
        already, so a failure here loses nothing (recovery rewrites them) but stops the node taking
        input, as any journal failure does."""
        self._deferred_timer = None
        write = getattr(self.journal, "write_deferred", None)
        if write is None or self.failure is not None:
            return
        try:
            write()
            self._commit()  # also what a read staged meanwhile (it writes the kept rows, uncommitted)
        except Exception as exc:  # noqa: BLE001 - the journal is failed: refuse input until restart
            self.failure = f"journal commit failed: {exc}"
            log.error("%s; refusing input until restart", self.failure)

    def _apply(self, msg: Any, future: asyncio.Future | None) -> list | None:
        """Journal (staged) and apply one input and run the listeners; None if it was not applied."""
        seq = None
        if self.journal is not None:
            try:
                seq = self.journal.append(msg)
            except Exception as exc:  # noqa: BLE001 - any journal failure: never apply unjournaled input
                if future is not None and not future.done():
                    future.set_exception(exc)
                else:
                    log.error("journal append failed: %s", exc)
                return None
        try:
            events = self.exchange.apply(msg)
        except Exception as exc:  # noqa: BLE001 - a core bug: refuse the input, keep the node alive
            self._refuse(msg, seq, exc, future)
            return None
        self.applied += 1
        self._tell_listeners(msg, events)
        return events

    def _refuse(self, msg: Any, seq: int | None, exc: Exception, future: asyncio.Future | None) -> None:
        """``apply`` raised on ``msg``: record it refused and rebuild the core without it (module doc)."""
        name = type(msg).__name__
        log.error("exchange.apply raised %s on input %s (%s): refused", type(exc).__name__, seq, name,
                  exc_info=exc)
        self.refused += 1
        if self.journal is None:
            log.error("no journal: the core keeps whatever the failed %s changed", name)
        else:
            self._refused_in_batch = True
            try:
                self.journal.refuse(seq, f"{type(exc).__name__} in exchange.apply")  # type: ignore[arg-type]
                self.exchange = self.journal.rebuild(type(self.exchange))
            except Exception as fault:  # noqa: BLE001 - cannot make live and journal agree: stop taking input
                self.failure = f"could not rebuild the core after refusing input {seq}: {fault}"
                log.error("%s; refusing input until restart", self.failure)
        _fail(future, InputRefused(f"{name} refused: the simulator hit an internal error applying it; "
                                   "nothing of it was kept"))

    def _commit(self) -> None:
        if self.journal is not None:
            self.journal.flush()

    def _flush(self) -> None:
        """Commit what is staged, reporting (not raising) a failure: used on stop."""
        try:
            self._commit()
        except Exception as exc:  # noqa: BLE001 - reported; the next flush retries
            log.error("journal flush failed: %s", exc)


def _fail(future: asyncio.Future | None, exc: BaseException) -> None:
    if future is not None and not future.done():
        future.set_exception(exc)

"""Publish every core event to an MQTT broker, without ever holding up the exchange.

    config = BusConfig.from_settings(settings.mqtt)          # None: no broker configured
    publisher = MqttPublisher(config, account_view=lambda aid: node.exchange.account_view(aid))
    # (a lambda, not the bound method: the node replaces its core when it rebuilds it after a core bug)
    publisher.attach(node)                                   # sees every input from here on
    await publisher.start()
    ...
    await publisher.stop()
    publisher.detach(node)

What goes in: ``attach`` makes the publisher a node listener (``stage``: it notes each applied
input and its events) and a commit hook (``on_commit``): once the batch is stored the noted
inputs are turned into numbered messages (``topics.TopicMapper``) and put in a bounded buffer,
and a batch whose commit failed is forgotten (publish after commit). That is done in the
node's commit, with no task between the commit and the buffer. When the buffer is full the
oldest message is dropped and counted (``status.dropped``); the subscriber sees the gap in that
topic's ``seq``. The core is never waited for. (A publisher given a ``source`` queue, e.g.
``node.subscribe()``, is fed by a *feeder* task from it instead, one hop later.)

Then the *connection loop* (one visible loop, below in ``_run``): connect, announce "up", publish
the buffer in order (QoS 1 for account events, 0 for market data) until the connection breaks,
up to ``BATCH`` messages in flight: a message is sent without waiting for the broker to
acknowledge the ones before it (waiting cost a liquidation's messages a broker round trip);
announce "down", wait (backoff doubling from ``backoff_min`` to ``backoff_max``), and connect
again. Every message in flight and not acknowledged when a publish fails goes back to the front
of the buffer, in order, so after a reconnect it is sent again (a repeated ``seq`` is a redelivery).

"Down" and "up" are logged (logger ``exchange_sim.bus``) and passed to ``on_status``; the
retained ``{prefix}/status`` topic says ``{"online": true}`` while connected and the broker
publishes the will ``{"online": false}`` if the simulator vanishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

import aiomqtt

from .settings import BusConfig
from .topics import Outgoing, TopicMapper

log = logging.getLogger("exchange_sim.bus")

BATCH = 100  # messages in flight at most (published in order, not yet acknowledged by the broker)


@dataclass(frozen=True, slots=True)
class PublisherStatus:
    connected: bool
    buffered: int  # waiting in the buffer (plus in flight)
    published: int  # acknowledged by the broker (QoS 1) or written (QoS 0)
    dropped: int  # dropped because the buffer was full
    outages: int  # times the broker went down (or could not be reached)
    last_error: str


class MqttPublisher:
    """Drains a node subscription queue to an MQTT broker with a bounded buffer and reconnects."""

    def __init__(self, config: BusConfig, source: asyncio.Queue | None = None, *,
                 account_view: Callable[[int], Any] | None = None, epoch: int | None = None,
                 on_status: Callable[[bool, str], None] | None = None) -> None:
        self.config = config
        self.source = source
        self.on_status = on_status
        self.mapper = TopicMapper(config.topic_prefix, int(time.time() * 1000) if epoch is None else epoch,
                                  publish_market=config.publish_market, account_view=account_view)
        self._staged: list[tuple[Any, list[Any]]] = []  # applied inputs whose batch is not committed yet
        self._buffer: deque[Outgoing] = deque()
        self._in_flight: deque[tuple[Outgoing, asyncio.Task]] = deque()  # published, not yet acknowledged
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._connected = False
        self._published = 0
        self._dropped = 0
        self._dropped_at_refresh = 0
        self._outages = 0
        self._down_since: float | None = None
        self._last_error = ""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the feeder (if there is a source queue) and the connection loop."""
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        if self.source is not None:
            self._tasks.append(loop.create_task(self._feed(self.source), name="mqtt-feeder"))
        self._tasks.append(loop.create_task(self._run(), name="mqtt-connection"))

    async def stop(self, timeout: float = 5.0) -> None:
        """Publish what is buffered (if the broker is up, within ``timeout``), say offline, disconnect."""
        if not self._tasks:
            return
        if self.source is not None:
            while not self.source.empty():
                self._offer_logged(*self.source.get_nowait())
        self._stopping.set()
        self._wakeup.set()
        feeder = [t for t in self._tasks if t.get_name() == "mqtt-feeder"]
        for task in feeder:
            task.cancel()
        connection = [t for t in self._tasks if t not in feeder]
        _done, pending = await asyncio.wait(connection, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def status(self) -> PublisherStatus:
        return PublisherStatus(self._connected, len(self._buffer) + len(self._in_flight), self._published,
                               self._dropped, self._outages, self._last_error)

    # ------------------------------------------------------------------ the buffer

    def attach(self, node: Any) -> None:
        """Take every input ``node`` applies from now on, published once its batch is stored."""
        node.add_listener(self.stage)
        node.add_commit_hook(self.on_commit)

    def detach(self, node: Any) -> None:
        node.remove_listener(self.stage)
        node.remove_commit_hook(self.on_commit)

    def stage(self, input_msg: Any, events: list[Any]) -> None:
        """A node listener: note what an applied input produced, until its batch's commit."""
        self._staged.append((input_msg, events))

    def on_commit(self, stored: bool) -> None:
        """A node commit hook: buffer what the stored batch produced; forget a failed batch's."""
        staged, self._staged = self._staged, []
        if stored:
            for input_msg, events in staged:
                self._offer_logged(input_msg, events)

    def offer(self, input_msg: Any, events: list[Any]) -> None:
        """Queue what one applied input produced; never waits (drops the oldest when full)."""
        for out in self.mapper.messages_for(input_msg, events):
            self._push(out)
        self._wakeup.set()

    def _push(self, out: Outgoing) -> None:
        if len(self._buffer) >= self.config.buffer_size:
            self._buffer.popleft()
            self._dropped += 1
        self._buffer.append(out)

    async def _feed(self, source: asyncio.Queue) -> None:
        while True:
            self._offer_logged(*await source.get())

    def _offer_logged(self, input_msg: Any, events: list[Any]) -> None:
        try:
            self.offer(input_msg, events)
        except Exception:  # a message the mapper cannot encode is a bug: log it, keep publishing
            log.exception("MQTT: cannot publish %s", type(input_msg).__name__)

    # ------------------------------------------------------------------ the connection loop

    async def _run(self) -> None:
        delay = self.config.backoff_min
        while not self._stopping.is_set():
            try:
                async with self._client() as client:
                    self._up()
                    delay = self.config.backoff_min
                    await self._serve(client)
            except (aiomqtt.MqttError, OSError) as exc:
                if self._stopping.is_set():
                    break
                self._down(exc, delay)
            except Exception as exc:  # a bug in this module: say so loudly, keep the loop alive
                log.exception("MQTT publisher failed")
                self._down(exc, delay)
            if self._stopping.is_set():
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            delay = min(delay * 2, self.config.backoff_max)
        self._connected = False

    def _client(self) -> aiomqtt.Client:
        c = self.config
        will = self.mapper.status_message(False)
        options: dict[str, Any] = {}
        if c.tls:
            options["tls_context"] = c.tls_context()
            options["tls_insecure"] = c.tls_insecure
        client = aiomqtt.Client(
            c.host, c.port, username=c.username, password=c.password, identifier=c.client_id,
            will=aiomqtt.Will(will.topic, will.payload, will.qos, will.retain), keepalive=c.keepalive,
            timeout=c.publish_timeout, max_inflight_messages=BATCH, **options)
        client.pending_calls_threshold = 2 * BATCH  # a batch in flight is normal here, not a warning
        return client

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Publish until the connection breaks (raises MqttError) or stop was asked and all is sent."""
        _no_delay(client)
        online = self.mapper.status_message(True)
        await client.publish(online.topic, online.payload, online.qos, online.retain)
        if self._dropped > self._dropped_at_refresh:  # summaries may have been dropped: refresh them all
            self._dropped_at_refresh = self._dropped
            for out in self.mapper.all_summaries():
                self._push(out)
        watcher = asyncio.get_running_loop().create_task(self._watch(client))
        drainer = asyncio.get_running_loop().create_task(self._drain(client))
        try:
            done, _ = await asyncio.wait({watcher, drainer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (watcher, drainer):
                task.cancel()
            results = await asyncio.gather(watcher, drainer, return_exceptions=True)
        if drainer in done and drainer.exception() is None:
            offline = self.mapper.status_message(False)
            await client.publish(offline.topic, offline.payload, offline.qos, offline.retain)
            return
        for result in results:
            if isinstance(result, (aiomqtt.MqttError, OSError)):
                raise result
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result

    @staticmethod
    async def _watch(client: aiomqtt.Client) -> None:
        """Return (by raising MqttError) as soon as the connection drops, even while idle."""
        async for _message in client.messages:
            pass

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Publish the buffer in order, without waiting for one message's acknowledgement before
        sending the next (paho keeps the order; at most ``BATCH`` in flight): a liquidation's
        messages never wait for the broker to acknowledge the ones before them. Returns when
        stopping and everything is acknowledged; raises (MqttError) when a publish fails, after
        putting every message not acknowledged back at the front of the buffer, in order."""
        timeout = self.config.publish_timeout
        loop = asyncio.get_running_loop()
        sent = self._in_flight  # (message, its publish), oldest first
        try:
            while True:
                while sent and sent[0][1].done():
                    sent[0][1].result()  # a failed publish raises here
                    sent.popleft()
                    self._published += 1
                room = BATCH - len(sent)
                if self._buffer and room > 0:
                    for _ in range(min(room, len(self._buffer))):
                        out = self._buffer.popleft()
                        sent.append((out, loop.create_task(
                            client.publish(out.topic, out.payload, out.qos, out.retain, timeout=timeout))))
                    continue
                if not sent:
                    if self._stopping.is_set():
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                waiters: set[asyncio.Future] = {sent[0][1]}  # the oldest acknowledgement, or more to send
                wake = None
                if room > 0 and not self._stopping.is_set():
                    self._wakeup.clear()
                    wake = loop.create_task(self._wakeup.wait())
                    waiters.add(wake)
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if wake is not None:
                        wake.cancel()
        finally:
            unsent = []
            for out, task in sent:
                if task.done() and not task.cancelled() and task.exception() is None:
                    self._published += 1
                else:
                    task.cancel()
                    unsent.append(out)
            sent.clear()
            self._requeue(unsent)

    def _requeue(self, unsent: list[Outgoing]) -> None:
        """Put what did not go out back at the front of the buffer (keeping the bound)."""
        room = self.config.buffer_size - len(self._buffer)
        if len(unsent) > room:
            self._dropped += len(unsent) - max(room, 0)
            unsent = unsent[len(unsent) - max(room, 0):] if room > 0 else []
        self._buffer.extendleft(reversed(unsent))

    # ------------------------------------------------------------------ announcements

    def _up(self) -> None:
        self._connected = True
        if self._down_since is not None:
            text = (f"MQTT broker {self.config.url} up again after {time.monotonic() - self._down_since:.1f}s; "
                    f"{len(self._buffer)} buffered messages to send, {self._dropped} dropped so far")
        else:
            text = f"MQTT broker {self.config.url} up"
        self._down_since = None
        log.warning(text)
        if self.on_status is not None:
            self.on_status(True, text)

    def _down(self, exc: BaseException, retry_in: float) -> None:
        self._last_error = str(exc) or type(exc).__name__
        was_up = self._connected or self._down_since is None
        self._connected = False
        if was_up:
            self._outages += 1
            self._down_since = time.monotonic()
            text = (f"MQTT broker {self.config.url} down ({self._last_error}); the simulator carries on, "
                    f"buffering up to {self.config.buffer_size} messages; retrying in {retry_in:.1f}s")
            log.warning(text)
            if self.on_status is not None:
                self.on_status(False, text)
        else:
            log.info("MQTT broker %s still down (%s); retrying in %.1fs", self.config.url, self._last_error,
                     retry_in)


def _no_delay(client: aiomqtt.Client) -> None:
    """Turn off Nagle's algorithm on the broker connection.

    paho-mqtt never sets TCP_NODELAY, so a QoS 1 message written right after a small one waits for
    the broker's delayed ACK (about 40 ms) before it leaves: measured, a liquidation reached an MQTT
    subscriber 73 ms after its tick with it, 4 ms without (scripts/bench/tick_to_liquidation.py).
    """
    sock = client._client.socket()  # aiomqtt exposes no option for it; paho's socket is the one
    if sock is not None and getattr(sock, "family", None) in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

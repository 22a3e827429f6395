"""Test stand-ins for the feed supervisor: a scripted feed and a node that records what it gets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, Self

HANG = object()  # a ScriptedFeed item: block until cancelled (a frozen stream)


class ScriptedFeed:
    """Yields its items in order; an exception item is raised, ``HANG`` blocks, a callable is awaited."""

    opened = 0

    def __init__(self, items: Iterable[Any]) -> None:
        self.items = list(items)
        self.entered = False
        self.closed = False

    async def __aenter__(self) -> Self:
        self.entered = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.closed = True

    def __aiter__(self):
        return self._run()

    async def _run(self):
        for item in self.items:
            if item is HANG:
                await asyncio.Event().wait()
            elif isinstance(item, BaseException):
                raise item
            elif callable(item):
                await item()
            else:
                yield item


class Scripts:
    """A feed factory handing out one scripted feed per (re)open; the last script repeats."""

    def __init__(self, *scripts: list[Any]) -> None:
        self.scripts = list(scripts)
        self.opened: list[ScriptedFeed] = []

    def __call__(self) -> ScriptedFeed:
        script = self.scripts[min(len(self.opened), len(self.scripts) - 1)]
        feed = ScriptedFeed(script)
        self.opened.append(feed)
        return feed


class RecordingNode:
    """Has the node's ``submit``: records every message (and returns no events)."""

    def __init__(self, on_submit: Callable[[Any], Any] | None = None) -> None:
        self.submitted: list[Any] = []
        self.on_submit = on_submit
        self.changed = asyncio.Event()

    async def submit(self, msg: Any) -> list:
        self.submitted.append(msg)
        self.changed.set()
        if self.on_submit is not None:
            self.on_submit(msg)
        return []


async def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``predicate`` every 10 ms; AssertionError after ``timeout`` seconds (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)

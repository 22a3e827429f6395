"""Record any feed to the replay format: one canonical JSON core message per line.

    async with Recorder("btc.jsonl.gz") as rec:
        async for event in rec.tee(feed):       # events pass through while being written
            ...
    await record(feed, "btc.jsonl", limit=10_000)  # or just drain a feed into a file

Lines are ``exchange_sim.core.messages.dumps`` of each market event (``FeedSignal`` items are
not market data and are skipped), so ``feeds.replay.Replay`` reads the file back as the same
events. A path ending in ``.gz`` is gzip-compressed. The file is flushed every ``flush_every``
lines and closed on exit, so a recording interrupted by Ctrl-C is still readable up to the last
flush (a gzip file then lacks its trailer; ``open_text`` reads what is there).
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import AsyncIterator
from typing import IO, Any, Self

from exchange_sim.core.messages import dumps

from .base import FeedError, is_market_event


class Recorder:
    """Writes market events to ``path`` (gzip when the name ends in ``.gz`` or ``compress=True``)."""

    def __init__(self, path: str, compress: bool | None = None, flush_every: int = 1000) -> None:
        self.path = path
        self.compress = path.endswith(".gz") if compress is None else compress
        self.flush_every = max(1, flush_every)
        self.count = 0
        self._fh: IO[str] | None = None

    def open(self) -> Recorder:
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, exist_ok=True)
            if self.compress:
                # a long-lived handle, closed by close() / __aexit__
                self._fh = io.TextIOWrapper(gzip.open(self.path, "wb"), encoding="utf-8", newline="\n")  # noqa: SIM115
            else:
                self._fh = open(self.path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
        except OSError as exc:
            raise FeedError(f"cannot record to {self.path}: {exc}") from None
        return self

    def write(self, event: Any) -> bool:
        """Write one item; False (nothing written) for anything that is not a market event."""
        if not is_market_event(event):
            return False
        if self._fh is None:
            self.open()
        assert self._fh is not None
        self._fh.write(dumps(event))
        self._fh.write("\n")
        self.count += 1
        if self.count % self.flush_every == 0:
            self._fh.flush()
        return True

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    async def __aenter__(self) -> Self:
        return self.open()

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def tee(self, feed: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """Every item of ``feed``, unchanged, after writing the market events."""
        async for item in feed:
            self.write(item)
            yield item


async def record(feed: Any, path: str, limit: int | None = None, compress: bool | None = None) -> int:
    """Drain ``feed`` (entering it first when it is an async context manager) into ``path``.

    Stops after ``limit`` market events (None = until the feed ends); returns how many were written.
    """
    rec = Recorder(path, compress)
    rec.open()
    try:
        if hasattr(feed, "__aenter__"):
            async with feed as entered:
                await _drain(entered if entered is not None else feed, rec, limit)
        else:
            await _drain(feed, rec, limit)
    finally:
        rec.close()
    return rec.count


async def _drain(feed: Any, rec: Recorder, limit: int | None) -> None:
    it = feed.__aiter__()
    try:
        async for item in it:
            rec.write(item)
            if limit is not None and rec.count >= limit:
                break
    finally:
        close = getattr(it, "aclose", None)
        if close is not None:
            await close()

"""Market ingest: normalised market events published once to the venue's replicated stream.

    ingest = MarketIngest(js, layout)
    seq = await ingest.publish(MarkPrice(...))      # the market stream sequence it was stored at
    await pump(ingest, feed)                        # every event of an async iterator (a feed)

Each event's ``Nats-Msg-Id`` is a digest of its canonical JSON, so JetStream drops a repeat
within its duplicate window (two minutes): a feed restarted mid-recording, or two feed processes
publishing the same venue for redundancy, never double a tick. ``publish`` returns the sequence
of the first copy for a repeat.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from nats.js import JetStreamContext

from exchange_sim.core import messages as m

from .layout import MSG_ID, Layout, market_msg_id

MARKET_TYPES = tuple(m.MARKET_EVENTS)


class MarketIngest:
    """Publishes market events to ``layout.market_stream`` (see module doc)."""

    def __init__(self, js: JetStreamContext, layout: Layout) -> None:
        self.js = js
        self.layout = layout
        self.published = 0
        self.duplicates = 0

    async def publish(self, event: Any) -> int:
        """Store one market event; its market sequence (the original's, for a duplicate)."""
        if not isinstance(event, MARKET_TYPES):
            raise TypeError(f"not a market event: {type(event).__name__}")
        payload = m.dumps(event).encode()
        ack = await self.js.publish(self.layout.market_subject, payload, stream=self.layout.market_stream,
                                    headers={MSG_ID: market_msg_id(payload)}, timeout=5.0)
        if ack.duplicate:
            self.duplicates += 1
        else:
            self.published += 1
        return ack.seq

    async def publish_many(self, events: list) -> list[int]:
        """Store a burst of events, pipelined (one round trip for the lot); their sequences in order."""
        import asyncio

        return list(await asyncio.gather(*(self.publish(e) for e in events)))


async def pump(ingest: MarketIngest, feed: AsyncIterator[Any]) -> int:
    """Publish every market event ``feed`` yields; how many were published."""
    n = 0
    async for event in feed:
        if isinstance(event, MARKET_TYPES):
            await ingest.publish(event)
            n += 1
    return n

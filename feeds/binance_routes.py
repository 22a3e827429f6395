"""Binance USDⓈ-M websocket routes and the merge of their messages into one order (pure, no I/O).

Since 2026-04-23 the venue serves market data on routed endpoints under one root
(``wss://fstream.binance.com``), each in ws mode (``<route>/ws/<a>/<b>``) and stream mode
(``<route>/stream?streams=<a>/<b>``, messages wrapped as ``{"stream", "data"}``):

- ``/public``: high-frequency data: diff and partial depth, ``bookTicker``, ``!bookTicker``,
  ``rpiDepth`` and (where ccxt and the venue put it) ``trade``;
- ``/market``: regular market data: ``aggTrade``, ``markPrice``, ``kline``, ``continuousKline``,
  ``ticker``, ``miniTicker``, ``forceOrder``, ``compositeIndex``, ``contractInfo``, ``assetIndex``;
- ``/private``: user data, ``/private/ws?listenKey=K&events=E1/E2`` (stream mode: several
  ``listenKey=…&events=…`` pairs).

Public and market streams are never mixed on one connection; the legacy root paths ``/ws`` and
``/stream`` answer 404. ``route_of`` says which route serves a stream.

Merge (``RouteMerger``): each route's messages stay in their arrival order (a FIFO per route);
across routes the next message out is the one with the smallest (event time ``E``, route rank)
with the routes in ``ROUTES`` order (public before market on equal times). A message is released
as soon as no other connected route can still deliver an earlier one (its latest event time has
passed the message's), or once it has waited ``window`` seconds: the order is exact whenever
the routes' messages arrive within the window of each other, and no route that is quiet or down
holds the others back for longer than that.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

PUBLIC, MARKET, PRIVATE = "public", "market", "private"
ROUTES = (PUBLIC, MARKET)  # the merge's tie-break order for equal event times
LEGACY_PATHS = ("/ws", "/stream")

_PUBLIC_CHANNELS = frozenset({"depth", "depth5", "depth10", "depth20", "bookticker", "rpidepth", "trade"})


def channel_of(stream: str) -> str:
    """``btcusdt@depth@100ms`` → ``depth``; ``!bookTicker`` → ``bookticker`` (lower case)."""
    head, _, rest = stream.partition("@")
    if head.startswith("!"):
        return head[1:].lower()
    return rest.partition("@")[0].lower()


def route_of(stream: str) -> str:
    """The route that serves ``stream``: ``public`` or ``market``."""
    return PUBLIC if channel_of(stream) in _PUBLIC_CHANNELS else MARKET


def event_time(msg: Any) -> int:
    """A wire message's event time ``E`` (its payload's, for a combined-stream wrapper), else 0."""
    data = msg.get("data", msg) if isinstance(msg, dict) else None
    if not isinstance(data, dict):
        return 0
    try:
        return int(data.get("E") or data.get("T") or 0)
    except (TypeError, ValueError):
        return 0


@dataclass
class _Lane:
    rank: int
    items: deque[tuple[int, float, Any]] = field(default_factory=deque)  # (event time, arrival, item)
    latest: int | None = None  # the latest event time seen since (re)connecting; None = nothing yet
    live: bool = True


class RouteMerger:
    """Per-route FIFOs in, one stream out in (event time, route rank) order (see module doc).

    ``push`` a route's message with its event time and arrival time (seconds, any monotonic
    clock); ``pop_ready(now)`` returns what may go out now; ``deadline()`` is when the oldest held
    message must go out at the latest. ``down``/``up`` tell the merger a route dropped or came
    back: a route that is down is not waited for.
    """

    def __init__(self, routes: Sequence[str] = ROUTES, window: float = 0.01) -> None:
        self.window = window
        self._lanes = {r: _Lane(rank=i) for i, r in enumerate(routes)}

    @property
    def routes(self) -> tuple[str, ...]:
        return tuple(self._lanes)

    def push(self, route: str, ts: int, item: Any, now: float) -> None:
        lane = self._lanes[route]
        lane.items.append((ts, now, item))
        lane.latest = ts if lane.latest is None else max(lane.latest, ts)

    def down(self, route: str) -> None:
        lane = self._lanes[route]
        lane.live = False
        lane.latest = None

    def up(self, route: str) -> None:
        self._lanes[route].live = True

    def held(self) -> int:
        """Messages waiting in the merger."""
        return sum(len(lane.items) for lane in self._lanes.values())

    def deadline(self) -> float | None:
        """The arrival time + window of the oldest held message (None when nothing is held)."""
        arrivals = [lane.items[0][1] for lane in self._lanes.values() if lane.items]
        return min(arrivals) + self.window if arrivals else None

    def pop_ready(self, now: float) -> list[tuple[str, Any]]:
        """(route, item) pairs that may go out now, in merge order."""
        out: list[tuple[str, Any]] = []
        while True:
            heads = [(lane.items[0][0], lane.rank, route) for route, lane in self._lanes.items() if lane.items]
            if not heads:
                return out
            ts, rank, route = min(heads)
            lane = self._lanes[route]
            if not (now - lane.items[0][1] >= self.window or self._nobody_earlier(ts, rank, route)):
                return out
            out.append((route, lane.items.popleft()[2]))

    def drain(self) -> list[tuple[str, Any]]:
        """Everything held, in merge order (when the feed closes)."""
        return self.pop_ready(float("inf"))

    def _nobody_earlier(self, ts: int, rank: int, route: str) -> bool:
        for other, lane in self._lanes.items():
            if other == route or lane.items or not lane.live:
                continue  # a lane with items has its head at or after (ts, rank): min() chose this one
            if lane.latest is None or lane.latest < ts or (lane.latest == ts and lane.rank < rank):
                return False
        return True


def routed_url(root: str, path: str, streams: Iterable[str]) -> str:
    """``<root><path>/stream?streams=a/b``: a stream-mode (combined) connection on one route."""
    return f"{root}{path}/stream?streams={'/'.join(streams)}"

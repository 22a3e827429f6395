"""Binance USDⓈ-M wire messages → core market events, and the order-book sync rules.

Pure (no I/O): used by the live websocket feed (``feeds.binance``) and by the replay of raw
websocket captures (``feeds.replay``), so both build the book the same way.

Order-book sync (binance-api.md, "How to manage a local order book correctly"):

1. Buffer the ``depthUpdate`` diffs; fetch the REST snapshot (``lastUpdateId`` = L).
2. Drop buffered diffs with ``u < L``.
3. The first diff applied must straddle the snapshot: ``U <= L <= u`` (or ``pu == L``).
   If the oldest remaining diff starts after L (``U > L`` and ``pu != L``) the snapshot is too old:
   fetch another one.
4. Every later diff must have ``pu`` equal to the previous diff's ``u``; otherwise the book has a
   gap: drop it and resync from a fresh snapshot.

Emitted events: ``BookSnapshot`` on every (re)sync, then ``BookDelta`` per applied diff.
Funding: a ``markPriceUpdate`` carries the funding rate in force (``r``) and the next settlement
time (``T``). When ``T`` moves forward and the event time has reached the old ``T``, the venue
settled at the old ``T`` with the rate that was in force: ``FundingTracker`` emits
``Funding(ts=old T, rate)`` before the mark price that revealed it.
"""

from __future__ import annotations

from typing import Any

from exchange_sim.core.messages import BUY, SELL, BookDelta, BookSnapshot, Funding, MarkPrice, Trade

from .base import FeedFormatError, fixed, fixed_rounded

Levels = tuple[tuple[int, int], ...]


def levels(rows: Any, what: str = "level") -> Levels:
    """``[["61800.2", "2.9"], ...]`` → ``((price, qty), ...)`` in fixed units."""
    try:
        return tuple((fixed(p, what), fixed(q, what)) for p, q, *_ in rows)
    except (TypeError, ValueError):
        raise FeedFormatError(f"bad {what} list: {rows!r:.200}") from None


def depth_delta(d: dict[str, Any]) -> BookDelta:
    """A ``depthUpdate`` message as a BookDelta stamped with the event time ``E``."""
    try:
        return BookDelta(
            ts=int(d["E"]), symbol=str(d["s"]).upper(), bids=levels(d["b"], "bid"),
            asks=levels(d["a"], "ask"), first_update_id=int(d["U"]), final_update_id=int(d["u"]),
            prev_final_update_id=int(d.get("pu", 0)),
        )
    except (KeyError, TypeError, ValueError):
        raise FeedFormatError(f"bad depthUpdate: {d!r:.200}") from None


def depth_snapshot(d: dict[str, Any], symbol: str, ts: int | None = None) -> BookSnapshot:
    """A REST ``/fapi/v1/depth`` answer as a BookSnapshot (ts: its ``E``/``T`` unless given)."""
    try:
        stamp = ts if ts is not None else int(d.get("E") or d.get("T") or 0)
        return BookSnapshot(ts=stamp, symbol=symbol.upper(), bids=levels(d["bids"], "bid"),
                            asks=levels(d["asks"], "ask"), update_id=int(d["lastUpdateId"]))
    except (KeyError, TypeError, ValueError):
        raise FeedFormatError(f"bad depth snapshot: {str(d)[:200]}") from None


def trade(d: dict[str, Any]) -> Trade | None:
    """A ``trade`` or ``aggTrade`` message as a Trade (None for non-MARKET prints: ADL, insurance)."""
    try:
        if d.get("X", "MARKET") != "MARKET":
            return None
        trade_id = int(d["t"] if d.get("e") == "trade" or "t" in d else d["a"])
        return Trade(ts=int(d.get("T") or d["E"]), symbol=str(d["s"]).upper(), price=fixed(d["p"], "price"),
                     qty=fixed(d["q"], "qty"), taker_side=SELL if d["m"] else BUY, trade_id=trade_id)
    except (KeyError, TypeError, ValueError):
        raise FeedFormatError(f"bad trade: {d!r:.200}") from None


def mark_price(d: dict[str, Any]) -> MarkPrice:
    """A ``markPriceUpdate`` as a MarkPrice with index, funding rate and next funding time."""
    try:
        rate = d.get("r")
        nxt = d.get("T")
        index = d.get("i")
        return MarkPrice(
            ts=int(d["E"]), symbol=str(d["s"]).upper(), mark=fixed_rounded(d["p"], "mark price"),
            index=fixed_rounded(index, "index price") if index not in (None, "") else None,
            funding_rate=fixed_rounded(rate, "funding rate") if rate not in (None, "") else None,
            next_funding_ts=int(nxt) if nxt not in (None, "", 0) else None,
        )
    except (KeyError, TypeError, ValueError):
        raise FeedFormatError(f"bad markPriceUpdate: {d!r:.200}") from None


def book_ticker(d: dict[str, Any]) -> BookSnapshot:
    """A ``bookTicker`` as a one-level BookSnapshot (only for sources that have no depth)."""
    try:
        return BookSnapshot(ts=int(d.get("E") or d.get("T")), symbol=str(d["s"]).upper(),
                            bids=((fixed(d["b"]), fixed(d["B"])),), asks=((fixed(d["a"]), fixed(d["A"])),),
                            update_id=int(d.get("u", 0)))
    except (KeyError, TypeError, ValueError):
        raise FeedFormatError(f"bad bookTicker: {d!r:.200}") from None


def unwrap(msg: dict[str, Any]) -> dict[str, Any]:
    """The payload of a combined-stream message (``{"stream":..., "data":...}``) or the message."""
    data = msg.get("data")
    return data if isinstance(data, dict) and "stream" in msg else msg


class DepthSync:
    """The U/u/pu rules for one symbol: diffs and snapshots in, book events out.

    ``push_diff`` and ``push_snapshot`` return the events to emit now. After a gap (or a
    snapshot that is too old) ``needs_snapshot`` is True: the caller fetches a fresh snapshot
    and pushes it; diffs keep being buffered meanwhile (at most ``max_buffer``).
    """

    def __init__(self, symbol: str, max_buffer: int = 10_000) -> None:
        self.symbol = symbol
        self.max_buffer = max_buffer
        self.synced = False
        self.needs_snapshot = True
        self.last_final = 0
        self.gaps = 0
        self.resyncs = 0
        self.last_gap = ""
        self._buffer: list[BookDelta] = []
        self._snapshot: BookSnapshot | None = None

    def push_diff(self, delta: BookDelta) -> list[Any]:
        """A diff from the stream: applied, buffered, or (gap) the start of a resync."""
        if self.synced:
            if delta.final_update_id < self.last_final:
                return []  # an old diff (duplicate after a reconnect): already in the book
            if delta.prev_final_update_id != self.last_final:
                self._lose(f"pu {delta.prev_final_update_id} != previous u {self.last_final}")
                self._buffer.append(delta)
                return []
            self.last_final = delta.final_update_id
            return [delta]
        self._buffer.append(delta)
        if len(self._buffer) > self.max_buffer:
            del self._buffer[: len(self._buffer) - self.max_buffer]
        return self._try_sync()

    def push_snapshot(self, snapshot: BookSnapshot) -> list[Any]:
        """A REST snapshot: syncs with the buffered diffs when one straddles it."""
        self._snapshot = snapshot
        self.needs_snapshot = False
        return self._try_sync()

    def restart(self, why: str) -> None:
        """Forget the chain (its connection dropped): the next diffs wait for a fresh snapshot."""
        self.synced = False
        self.needs_snapshot = True
        self.last_gap = why
        self._buffer.clear()
        self._snapshot = None

    def _lose(self, why: str) -> None:
        self.synced = False
        self.needs_snapshot = True
        self.gaps += 1
        self.last_gap = why
        self._buffer.clear()
        self._snapshot = None

    def _try_sync(self) -> list[Any]:
        snap = self._snapshot
        if snap is None:
            return []
        lid = snap.update_id
        self._buffer = [d for d in self._buffer if d.final_update_id >= lid]
        if not self._buffer:
            return []  # wait for a diff that reaches the snapshot
        first = self._buffer[0]
        if not (first.first_update_id <= lid <= first.final_update_id or first.prev_final_update_id == lid):
            # the snapshot is older than every diff we hold: fetch a newer one
            self._snapshot = None
            self.needs_snapshot = True
            self.last_gap = f"snapshot {lid} older than first diff U {first.first_update_id}"
            return []
        out: list[Any] = [snap, first]
        last = first.final_update_id
        rest = self._buffer[1:]
        self._buffer = []
        self._snapshot = None
        self.resyncs += 1
        for d in rest:
            if d.prev_final_update_id != last:
                self.synced = True
                self.last_final = last
                self._lose(f"pu {d.prev_final_update_id} != previous u {last}")
                self._buffer.append(d)
                return out
            out.append(d)
            last = d.final_update_id
        self.synced = True
        self.last_final = last
        return out


class FundingTracker:
    """Turns the ``T`` (next funding time) of mark price updates into ``Funding`` settlements."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}
        self._rate: dict[str, int] = {}

    def on_mark(self, mark: MarkPrice) -> list[Any]:
        """Funding(s) settled since the previous mark of this symbol, then the mark itself."""
        out: list[Any] = []
        prev_next = self._next.get(mark.symbol)
        prev_rate = self._rate.get(mark.symbol)
        nxt = mark.next_funding_ts
        if (prev_next is not None and prev_rate is not None and nxt is not None
                and nxt > prev_next and mark.ts >= prev_next):
            out.append(Funding(ts=prev_next, symbol=mark.symbol, rate=prev_rate))
        if nxt is not None:
            self._next[mark.symbol] = nxt
        if mark.funding_rate is not None:
            self._rate[mark.symbol] = mark.funding_rate
        out.append(mark)
        return out


class WireDecoder:
    """One stream of Binance messages → core events, per-symbol book sync and funding included.

    ``feed(msg)`` takes one decoded JSON message (combined-stream wrapper or not; a REST depth
    snapshot must be given with ``snapshot``) and returns the events to emit.
    ``want`` limits which message kinds are used (``depth``, ``trade``, ``aggTrade``, ``mark``,
    ``bookTicker``).
    """

    def __init__(self, symbols: tuple[str, ...] | None = None,
                 want: frozenset[str] = frozenset({"depth", "trade", "mark"})) -> None:
        self.symbols = symbols
        self.want = want
        self.syncs: dict[str, DepthSync] = {}
        self.funding = FundingTracker()

    def sync(self, symbol: str) -> DepthSync:
        s = self.syncs.get(symbol)
        if s is None:
            s = self.syncs[symbol] = DepthSync(symbol)
        return s

    def snapshot(self, snap: BookSnapshot) -> list[Any]:
        return self.sync(snap.symbol).push_snapshot(snap)

    def feed(self, msg: dict[str, Any]) -> list[Any]:
        d = unwrap(msg)
        kind = d.get("e")
        symbol = str(d.get("s", "")).upper()
        if self.symbols is not None and symbol and symbol not in self.symbols:
            return []
        if kind == "depthUpdate" and "depth" in self.want:
            return self.sync(symbol).push_diff(depth_delta(d))
        if kind in ("trade", "aggTrade") and kind in self.want:
            t = trade(d)
            return [t] if t is not None else []
        if kind == "markPriceUpdate" and "mark" in self.want:
            return self.funding.on_mark(mark_price(d))
        if kind == "bookTicker" and "bookTicker" in self.want:
            return [book_ticker(d)]
        return []

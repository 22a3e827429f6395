"""Market-data frames for the websocket streams, built from every input the node applies.

A node listener (called in core order, inside the consumer): it feeds the market statistics and
the depth tracker, then publishes to whoever listens — ``<sym>@trade``, ``@aggTrade``,
``@ticker``/``@miniTicker`` (and ``!…@arr``), ``@kline_<i>``, ``@depth[@speed]`` diffs,
``@depth5/10/20`` partial books, ``@bookTicker`` (when the best level changes), ``@markPrice[@1s]``
(and ``!markPrice@arr``), ``@forceOrder``. Frames are only built for streams somebody watches.

Publish only what is stored: frames are built in core order but only *staged*; the node's
commit hook (``on_commit``) sends them once the batch they belong to is in the journal, and
drops them if the commit failed (so a liquidation the journal lost is never announced).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from exchange_sim.core import messages as m
from exchange_sim.core.fixed import fmt_trim
from exchange_sim.core.instruments import Instrument

from . import wire
from .depth import DepthDiff, DepthTracker
from .kline_store import KlineHistory
from .market_stats import INTERVALS, MarketStats, PublicTrade, bucket_end
from .streams import StreamHub


class MarketPublisher:
    """Turns applied inputs into market stream frames (a node listener; see module doc)."""

    def __init__(self, hub: StreamHub, instruments: dict[str, Instrument], depth: DepthTracker,
                 stats: MarketStats, market_view: Callable[[str], Any], clock: Callable[[], int],
                 history: KlineHistory | None = None) -> None:
        self.hub = hub
        self.instruments = instruments
        self.depth = depth
        self.stats = stats
        self.history = history or KlineHistory()  # the bar open when the history ends continues it
        self.market_view = market_view
        self.clock = clock
        self._best: dict[str, tuple[int, int, int, int]] = {}
        self._staged: list[tuple[str, Any]] = []  # (stream, payload) of the batch being committed

    def on_commit(self, stored: bool) -> None:
        """The node's commit hook: send the staged frames if their batch is stored, else drop them."""
        staged, self._staged = self._staged, []
        if stored:
            publish = self.hub.publish
            for stream, payload in staged:
                publish(stream, payload)

    def _publish(self, stream: str, payload: Any) -> None:
        self._staged.append((stream, payload))

    def __call__(self, msg: object, events: list) -> None:
        now = self.clock()
        ts = getattr(msg, "ts", now) or now
        trade = self.stats.on_input(msg, events)
        diffs = self.depth.on_input(msg, events, ts)
        if trade is not None:
            self._trade(msg.symbol, trade, now)  # type: ignore[attr-defined]
        for diff in diffs:
            self._depth(diff, now)
            self._book_ticker(diff.symbol, now)
        if isinstance(msg, m.MarkPrice):
            self._mark(msg, now)
        for event in events:
            if isinstance(event, m.Liquidation):
                self._force_order(event, now)

    # ------------------------------------------------------------------ frames

    def _trade(self, symbol: str, t: PublicTrade, now: int) -> None:
        inst = self.instruments.get(symbol)
        if inst is None:
            return
        low = symbol.lower()
        p, q = wire.price(inst, t.price), wire.qty(inst, t.qty)
        if self.hub.wants(f"{low}@trade"):
            self._publish(f"{low}@trade", {"e": "trade", "E": now, "T": t.ts, "s": symbol, "t": t.trade_id,
                                              "p": p, "q": q, "X": "MARKET", "m": t.buyer_maker})
        if self.hub.wants(f"{low}@aggTrade"):
            self._publish(f"{low}@aggTrade", {"e": "aggTrade", "E": now, "a": t.trade_id, "s": symbol, "p": p,
                                                 "q": q, "f": t.trade_id, "l": t.trade_id, "T": t.ts,
                                                 "m": t.buyer_maker})
        wants_ticker = self.hub.wants(f"{low}@ticker") or self.hub.wants("!ticker@arr")
        wants_mini = self.hub.wants(f"{low}@miniTicker") or self.hub.wants("!miniTicker@arr")
        if wants_ticker or wants_mini:
            st = self.stats.stats_24h(symbol, max(now, t.ts) if t.ts > now - 60_000 else t.ts)
            if st is not None:
                mini = {"e": "24hrMiniTicker", "E": now, "s": symbol, "c": wire.price(inst, st.last),
                        "o": wire.price(inst, st.open), "h": wire.price(inst, st.high), "l": wire.price(inst, st.low),
                        "v": wire.qty(inst, st.volume), "q": wire.money(st.quote_volume)}
                if wants_mini:
                    self._publish(f"{low}@miniTicker", mini)
                    self._publish("!miniTicker@arr", [mini])
                if wants_ticker:
                    full = {"e": "24hrTicker", "E": now, "s": symbol, "p": wire.price(inst, st.change),
                            "P": fmt_trim(st.change_percent), "w": wire.price(inst, st.weighted_avg),
                            "c": wire.price(inst, st.last), "Q": wire.qty(inst, st.last_qty),
                            "o": wire.price(inst, st.open), "h": wire.price(inst, st.high),
                            "l": wire.price(inst, st.low), "v": wire.qty(inst, st.volume),
                            "q": wire.money(st.quote_volume), "O": st.open_ts, "C": st.close_ts,
                            "F": st.first_id, "L": st.last_id, "n": st.count}
                    self._publish(f"{low}@ticker", full)
                    self._publish("!ticker@arr", [full])
        for interval in INTERVALS:
            stream = f"{low}@kline_{interval}"
            if self.hub.wants(stream):
                live = self.stats.klines(symbol, interval, None, None, 1)
                candles = self.history.merge(symbol, "trade", interval, live, live[-1].open_ts if live else None,
                                             None, 1)
                if candles:
                    c = candles[-1]
                    self._publish(stream, {"e": "kline", "E": now, "s": symbol, "k": {
                        "t": c.open_ts, "T": bucket_end(c.open_ts, interval), "s": symbol, "i": interval,
                        "f": t.trade_id,
                        "L": t.trade_id, "o": wire.price(inst, c.open), "c": wire.price(inst, c.close),
                        "h": wire.price(inst, c.high), "l": wire.price(inst, c.low), "v": wire.qty(inst, c.volume),
                        "n": c.trades, "x": False, "q": wire.money(c.quote_volume),
                        "V": wire.qty(inst, c.taker_buy_volume), "Q": wire.money(c.taker_buy_quote), "B": "0"}})

    def _depth(self, d: DepthDiff, now: int) -> None:
        inst = self.instruments[d.symbol]
        low = d.symbol.lower()
        payload = None
        for speed in ("", "@100ms", "@250ms", "@500ms", "@0ms"):
            stream = f"{low}@depth{speed}"
            if self.hub.wants(stream):
                if payload is None:
                    payload = {"e": "depthUpdate", "E": now, "T": d.ts, "s": d.symbol, "U": d.first_update_id,
                               "u": d.final_update_id, "pu": d.prev_final_update_id,
                               "b": wire.levels(inst, d.bids), "a": wire.levels(inst, d.asks)}
                self._publish(stream, payload)
        for n in (5, 10, 20):
            for speed in ("", "@100ms", "@250ms", "@500ms"):
                stream = f"{low}@depth{n}{speed}"
                if self.hub.wants(stream):
                    bids, asks, uid, _ = self.depth.snapshot(d.symbol, n)
                    self._publish(stream, {"e": "depthUpdate", "E": now, "T": d.ts, "s": d.symbol, "U": uid,
                                              "u": uid, "pu": uid - 1, "b": wire.levels(inst, bids),
                                              "a": wire.levels(inst, asks)})

    def _book_ticker(self, symbol: str, now: int) -> None:
        low = symbol.lower()
        if not (self.hub.wants(f"{low}@bookTicker") or self.hub.wants("!bookTicker")):
            return
        inst = self.instruments[symbol]
        bids, asks, uid, ts = self.depth.snapshot(symbol, 1)
        best = (bids[0] if bids else (0, 0)) + (asks[0] if asks else (0, 0))
        if self._best.get(symbol) == best:
            return
        self._best[symbol] = best
        payload = {"e": "bookTicker", "u": uid, "E": now, "T": ts, "s": symbol,
                   "b": wire.price(inst, best[0]), "B": wire.qty(inst, best[1]),
                   "a": wire.price(inst, best[2]), "A": wire.qty(inst, best[3])}
        self._publish(f"{low}@bookTicker", payload)
        self._publish("!bookTicker", payload)

    def _mark(self, msg: m.MarkPrice, now: int) -> None:
        inst = self.instruments.get(msg.symbol)
        if inst is None:
            return
        low = msg.symbol.lower()
        streams = [f"{low}@markPrice", f"{low}@markPrice@1s", f"{low}@markPrice@3s"]
        arr = ["!markPrice@arr", "!markPrice@arr@1s", "!markPrice@arr@3s"]
        if not any(self.hub.wants(s) for s in streams + arr):
            return
        view = self.market_view(msg.symbol)
        payload = {"e": "markPriceUpdate", "E": now, "s": msg.symbol, "p": wire.price(inst, msg.mark),
                   "i": wire.price(inst, view.index if view is not None and view.index else msg.index or msg.mark),
                   "P": wire.price(inst, msg.mark),
                   "r": wire.rate(view.funding_rate if view is not None else msg.funding_rate or 0),
                   "T": view.next_funding_ts if view is not None else msg.next_funding_ts or 0}
        for s in streams:
            self._publish(s, payload)
        for s in arr:
            self._publish(s, [payload])

    def _force_order(self, liq: m.Liquidation, now: int) -> None:
        inst = self.instruments.get(liq.symbol)
        if inst is None:
            return
        low = liq.symbol.lower()
        if not (self.hub.wants(f"{low}@forceOrder") or self.hub.wants("!forceOrder@arr")):
            return
        payload = {"e": "forceOrder", "E": now, "o": {
            "s": liq.symbol, "S": liq.side, "o": "LIMIT", "f": "IOC", "q": wire.qty(inst, liq.qty),
            "p": wire.price(inst, liq.bankruptcy_price), "ap": wire.price(inst, liq.price), "X": "FILLED",
            "l": wire.qty(inst, liq.qty), "z": wire.qty(inst, liq.qty), "T": liq.ts}}
        self._publish(f"{low}@forceOrder", payload)
        self._publish("!forceOrder@arr", payload)

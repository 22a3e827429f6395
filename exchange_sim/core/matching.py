"""One symbol's market: the public book, our resting orders, trigger orders, and the fill rules.

Fill rules (the specification this module implements)
-----------------------------------------------------
1. Taker fills. A market order, or the marketable part of a limit order, walks the current
   public book level by level from the best price, taking the effective size of each level
   (displayed − what our earlier fills took there) until filled or, for a limit, until the next
   level is worse than the limit. Each level is a separate fill at that level's price (the
   order's average is the VWAP), charged the taker fee. What a fill takes stays taken until the
   feed sends that level again; a snapshot restores the whole book.
2. No book. When the feed carries no depth (trades, tickers or marks only), a taker order fills
   in full at the reference price (last trade, else mark) moved against the taker by
   ``half_spread`` and rounded to the tick away from the taker's favour; a limit that the
   resulting price would violate does not fill.
3. Resting orders. A limit order that rests joins the queue behind the size displayed at its
   price when it arrives (``queue_ahead``). A later displayed size below ``queue_ahead`` lowers
   it (cancellations are assumed ahead of us). A public trade at our price by a taker on the
   other side first consumes ``queue_ahead``; what is left of its size fills our orders at that
   price in time priority. A public trade through our price (below a resting buy, above a
   resting sell) fills the order completely at its limit price. When the public book moves
   through a resting order (best ask ≤ our bid), the order fills at its own price against the
   effective size offered at or better than it. All resting fills are maker fills at the
   order's price. Partial fills are real: the rest keeps its place.
4. Book snapshots never fill resting orders (a resync's jump is not a trade); they only lower
   ``queue_ahead`` to the displayed size.
5. Trigger orders wait in sorted indexes by stop price, separately for mark and last
   (contract) price; a price update pops only the orders it crosses. Stops trigger when the
   price reaches the stop in their direction (buy stop ≥, sell stop ≤, take-profit the other
   way). Trailing stops track the best price since activation and trigger on a retrace of
   ``callback_rate`` percent.
"""

from __future__ import annotations

from sortedcontainers import SortedDict, SortedList

from .book import Book
from .fixed import SCALE
from .instruments import Instrument
from .messages import MARK_PRICE, TRAILING_STOP_MARKET
from .orders import Order, trigger_direction

INF = 1 << 62


def _queue_fills(levels, price: int, qty: int, through, fills: list) -> None:
    """Fill resting orders, best level first, for a trade of ``qty`` at ``price`` (rule 3).

    ``through(level)`` says whether the trade printed through that level (all of it fills);
    at ``price`` itself, ``qty`` (0 when the taker was on our side) first eats the queue ahead.
    """
    left = qty
    for level, queue in levels:
        if not through(level) and level != price:
            break
        for order in list(queue):
            if through(level):
                fills.append((order, order.remaining, level))
            elif left > 0:
                ahead = order.queue_ahead
                order.queue_ahead = max(0, ahead - left)
                overflow = left - ahead
                if overflow > 0:
                    take = min(order.remaining, overflow)
                    fills.append((order, take, level))
                    left -= take


class SymbolMarket:
    """Market state of one symbol: prices, book, our resting and trigger orders."""

    __slots__ = (
        "symbol", "inst", "book", "last_price", "mark", "index", "funding_rate", "next_funding_ts",
        "stale", "ts", "resting_bids", "resting_asks", "best_bid_order", "best_ask_order",
        "triggers_up", "triggers_down", "trig_up_min", "trig_down_max", "trailing", "has_book",
        "stale_reason", "mark_fed",
    )

    def __init__(self, inst: Instrument) -> None:
        self.symbol = inst.symbol
        self.inst = inst
        self.book = Book()
        self.has_book = False
        self.last_price = 0
        self.mark = 0
        self.index = 0
        self.funding_rate = 0
        self.next_funding_ts = 0
        self.stale = False
        self.stale_reason = ""
        self.mark_fed = False  # the symbol has its own mark stream (else the last price marks)
        self.ts = 0
        self.resting_bids: SortedDict = SortedDict()  # -price -> [orders in time priority]
        self.resting_asks: SortedDict = SortedDict()  # price -> [orders]
        self.best_bid_order = -1  # highest resting buy price (-1: none)
        self.best_ask_order = INF  # lowest resting sell price
        # trigger indexes per working type: up (fires when price >= stop), down (price <= stop)
        self.triggers_up: dict[str, SortedList] = {MARK_PRICE: SortedList(), "CONTRACT_PRICE": SortedList()}
        self.triggers_down: dict[str, SortedList] = {MARK_PRICE: SortedList(), "CONTRACT_PRICE": SortedList()}
        self.trig_up_min = {MARK_PRICE: INF, "CONTRACT_PRICE": INF}
        self.trig_down_max = {MARK_PRICE: -1, "CONTRACT_PRICE": -1}
        self.trailing: dict[int, Order] = {}

    # ------------------------------------------------------------------ market data in

    def on_trade(self, price: int, ts: int) -> None:
        """A public trade: the last price."""
        self.last_price = price
        self.ts = ts

    def on_mark_stream(self, index: int | None, funding_rate: int | None, next_funding_ts: int | None) -> None:
        """What a mark-price stream carries besides the mark (None: not sent)."""
        self.mark_fed = True
        if index is not None:
            self.index = index
        if funding_rate is not None:
            self.funding_rate = funding_rate
        if next_funding_ts is not None:
            self.next_funding_ts = next_funding_ts

    def set_mark(self, mark: int, ts: int) -> None:
        self.mark = mark
        self.ts = ts

    def set_index(self, index: int) -> None:
        self.index = index

    def set_funding_rate(self, rate: int) -> None:
        self.funding_rate = rate

    def set_stale(self, stale: bool, reason: str) -> bool:
        """Mark the feed stale or fresh; False when it already was."""
        if self.stale == stale:
            return False
        self.stale = stale
        self.stale_reason = reason if stale else ""
        return True

    def apply_snapshot(self, bids: tuple, asks: tuple, update_id: int, ts: int) -> None:
        """A full book: it never fills resting orders (rule 4), it only lowers their queues."""
        self.book.apply_snapshot(bids, asks, update_id, ts)
        self.has_book = not self.book.empty  # an empty snapshot: the feed carries no depth
        for queue in list(self.resting_bids.values()) + list(self.resting_asks.values()):
            for order in queue:
                shown = self.book.displayed_at(order.is_buy, order.price)
                if order.queue_ahead > shown:
                    order.queue_ahead = shown

    def apply_delta(self, bids: tuple, asks: tuple, final_update_id: int, ts: int) -> list[tuple[Order, int, int]]:
        """A depth update; returns the fills of resting orders the book now moves through."""
        self.book.apply_delta(bids, asks, final_update_id, ts)
        self.has_book = True
        if self.best_bid_order >= 0 or self.best_ask_order < INF:
            self.lower_queues(bids, asks)
            if self.crossed_by_book():
                return self.cross_fills()
        return []

    # ------------------------------------------------------------------ reference prices

    def reference_price(self) -> int:
        """Last trade price, else mark (0 if the symbol has no price yet)."""
        return self.last_price or self.mark

    def best_prices(self) -> tuple[int, int]:
        """(best bid, best ask) with size left, falling back to the reference price."""
        if self.has_book:
            bid, ask = self.book.best_bid()[0], self.book.best_ask()[0]
            if bid or ask:
                return bid, ask
        ref = self.reference_price()
        return ref, ref

    # ------------------------------------------------------------------ taker fills

    def taker_fills(self, buy: bool, qty: int, limit: int, half_spread: int) -> list[tuple[int, int]]:
        """Fills (price, qty) for a taker order under rules 1 and 2 (0 limit = market)."""
        if qty <= 0:
            return []
        if self.has_book:
            return self.book.walk(buy, qty, limit)
        price = self.no_book_price(buy, half_spread)
        if price <= 0 or (limit and ((buy and price > limit) or (not buy and price < limit))):
            return []
        return [(price, qty)]

    def no_book_price(self, buy: bool, half_spread: int) -> int:
        ref = self.reference_price()
        if not ref:
            return 0
        tick = self.inst.tick_size
        if buy:
            raw = -(-ref * (SCALE + half_spread) // SCALE)
            return -(-raw // tick) * tick
        raw = ref * (SCALE - half_spread) // SCALE
        return raw // tick * tick

    def taker_available(self, buy: bool, limit: int, half_spread: int) -> int:
        if self.has_book:
            return self.book.available(buy, limit)
        price = self.no_book_price(buy, half_spread)
        if price <= 0 or (limit and ((buy and price > limit) or (not buy and price < limit))):
            return 0
        return INF

    def would_take(self, buy: bool, price: int, half_spread: int) -> bool:
        """Would a limit at ``price`` execute immediately (post-only check)?"""
        if self.has_book:
            best = self.book.best_ask()[0] if buy else self.book.best_bid()[0]
            return bool(best) and (price >= best if buy else price <= best)
        ref = self.no_book_price(buy, half_spread)
        return bool(ref) and (price >= ref if buy else price <= ref)

    # ------------------------------------------------------------------ resting orders

    def rest(self, order: Order) -> None:
        """Queue a limit order behind the displayed size at its price."""
        if order.is_buy:
            order.queue_ahead = self.book.displayed_at(True, order.price)
            self.resting_bids.setdefault(-order.price, []).append(order)
            if order.price > self.best_bid_order:
                self.best_bid_order = order.price
        else:
            order.queue_ahead = self.book.displayed_at(False, order.price)
            self.resting_asks.setdefault(order.price, []).append(order)
            if order.price < self.best_ask_order:
                self.best_ask_order = order.price

    def unrest(self, order: Order) -> None:
        side = self.resting_bids if order.is_buy else self.resting_asks
        key = -order.price if order.is_buy else order.price
        queue = side.get(key)
        if queue is None:
            return
        try:
            queue.remove(order)
        except ValueError:
            return
        if not queue:
            del side[key]
        self._refresh_best()

    def _refresh_best(self) -> None:
        self.best_bid_order = -self.resting_bids.peekitem(0)[0] if self.resting_bids else -1
        self.best_ask_order = self.resting_asks.peekitem(0)[0] if self.resting_asks else INF

    def trade_fills(self, price: int, qty: int, taker_side: str) -> list[tuple[Order, int, int]]:
        """Resting orders a public trade fills (rule 3): [(order, qty, price)]."""
        fills: list[tuple[Order, int, int]] = []
        if self.best_bid_order >= price:
            bids = ((-key, queue) for key, queue in list(self.resting_bids.items()))
            _queue_fills(bids, price, qty if taker_side == "SELL" else 0, lambda level: level > price, fills)
        if self.best_ask_order <= price:
            asks = iter(list(self.resting_asks.items()))
            _queue_fills(asks, price, qty if taker_side == "BUY" else 0, lambda level: level < price, fills)
        return fills

    def lower_queues(self, bids: tuple, asks: tuple) -> None:
        """A level's new displayed size caps the queue ahead of our orders there."""
        if self.resting_bids:
            for p, q in bids:
                queue = self.resting_bids.get(-p)
                if queue:
                    for order in queue:
                        if order.queue_ahead > q:
                            order.queue_ahead = q
        if self.resting_asks:
            for p, q in asks:
                queue = self.resting_asks.get(p)
                if queue:
                    for order in queue:
                        if order.queue_ahead > q:
                            order.queue_ahead = q

    def cross_fills(self) -> list[tuple[Order, int, int]]:
        """Resting orders the public book has moved through (rule 3, last sentence)."""
        fills: list[tuple[Order, int, int]] = []
        book = self.book
        if self.best_bid_order >= 0 and book.asks:
            for key, queue in list(self.resting_bids.items()):
                level = -key
                for order in list(queue):
                    got = book.walk(True, order.remaining, level)
                    qty = sum(q for _, q in got)
                    if qty:
                        fills.append((order, qty, level))
                    if not got:
                        break
                if book.best_ask()[0] == 0 or book.best_ask()[0] > level:
                    break
        if self.best_ask_order < INF and book.bids:
            for level, queue in list(self.resting_asks.items()):
                for order in list(queue):
                    got = book.walk(False, order.remaining, level)
                    qty = sum(q for _, q in got)
                    if qty:
                        fills.append((order, qty, level))
                    if not got:
                        break
                if book.best_bid()[0] == 0 or book.best_bid()[0] < level:
                    break
        return fills

    def crossed_by_book(self) -> bool:
        if self.best_bid_order >= 0:
            ask = self.book.best_ask()[0]
            if ask and ask <= self.best_bid_order:
                return True
        if self.best_ask_order < INF:
            bid = self.book.best_bid()[0]
            if bid and bid >= self.best_ask_order:
                return True
        return False

    # ------------------------------------------------------------------ trigger orders

    def add_trigger(self, order: Order) -> None:
        if order.type == TRAILING_STOP_MARKET:
            self.trailing[order.id] = order
            return
        wt = order.working_type
        if trigger_direction(order.type, order.side) > 0:
            self.triggers_up[wt].add((order.stop_price, order.id))
            if order.stop_price < self.trig_up_min[wt]:
                self.trig_up_min[wt] = order.stop_price
        else:
            self.triggers_down[wt].add((-order.stop_price, order.id))
            if order.stop_price > self.trig_down_max[wt]:
                self.trig_down_max[wt] = order.stop_price

    def remove_trigger(self, order: Order) -> None:
        if order.type == TRAILING_STOP_MARKET:
            self.trailing.pop(order.id, None)
            return
        wt = order.working_type
        if trigger_direction(order.type, order.side) > 0:
            self.triggers_up[wt].discard((order.stop_price, order.id))
        else:
            self.triggers_down[wt].discard((-order.stop_price, order.id))
        self._refresh_triggers(wt)

    def _refresh_triggers(self, wt: str) -> None:
        up, down = self.triggers_up[wt], self.triggers_down[wt]
        self.trig_up_min[wt] = up[0][0] if up else INF
        self.trig_down_max[wt] = -down[0][0] if down else -1

    def crossed_triggers(self, wt: str, price: int) -> list[int]:
        """Order ids of stop/take-profit orders ``price`` reaches, popped from the index."""
        ids: list[int] = []
        up = self.triggers_up[wt]
        while up and up[0][0] <= price:
            ids.append(up.pop(0)[1])
        down = self.triggers_down[wt]
        while down and -down[0][0] >= price:
            ids.append(down.pop(0)[1])
        self._refresh_triggers(wt)
        ids.sort()
        return ids

    def trailing_triggered(self, wt: str, price: int) -> list[int]:
        """Trailing stops of working type ``wt`` that ``price`` activates and then triggers."""
        fired: list[int] = []
        for oid, order in self.trailing.items():
            if order.working_type != wt:
                continue
            sell = not order.is_buy
            if not order.activated:
                act = order.activation_price
                if act and ((sell and price < act) or (not sell and price > act)):
                    continue
                order.activated = True
                order.trail_extreme = price
            if sell:
                if price > order.trail_extreme:
                    order.trail_extreme = price
                stop = order.trail_extreme * (100 * SCALE - order.callback_rate) // (100 * SCALE)
                if price <= stop:
                    fired.append(oid)
            else:
                if price < order.trail_extreme:
                    order.trail_extreme = price
                stop = -(-order.trail_extreme * (100 * SCALE + order.callback_rate) // (100 * SCALE))
                if price >= stop:
                    fired.append(oid)
        for oid in fired:
            del self.trailing[oid]
        return fired

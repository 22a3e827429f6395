"""The public order book of one symbol, as the feed shows it, plus the liquidity our fills took.

Levels live in two ``SortedDict``s (bids keyed by −price so both iterate best first); updates
are O(log n) per level. A simulated taker fill records what it took at each level in
``taken``; the effective size of a level is displayed − taken, until the feed sends that level
again (a snapshot clears everything), so two orders in a row never both fill the same size.
"""

from __future__ import annotations

from sortedcontainers import SortedDict

Level = tuple[int, int]


class Book:
    __slots__ = ("bids", "asks", "taken_bids", "taken_asks", "update_id", "ts")

    def __init__(self) -> None:
        self.bids: SortedDict = SortedDict()  # -price -> qty
        self.asks: SortedDict = SortedDict()  # price -> qty
        self.taken_bids: dict[int, int] = {}
        self.taken_asks: dict[int, int] = {}
        self.update_id = 0
        self.ts = 0

    def apply_snapshot(self, bids: tuple[Level, ...], asks: tuple[Level, ...], update_id: int, ts: int) -> None:
        """Replace the whole book."""
        self.bids = SortedDict({-p: q for p, q in bids if q > 0})
        self.asks = SortedDict({p: q for p, q in asks if q > 0})
        self.taken_bids.clear()
        self.taken_asks.clear()
        self.update_id = update_id
        self.ts = ts

    def apply_delta(self, bids: tuple[Level, ...], asks: tuple[Level, ...], update_id: int, ts: int) -> None:
        """Set or delete (qty 0) the given levels; a refreshed level forgets what we took from it."""
        book_bids, book_asks = self.bids, self.asks
        taken_bids, taken_asks = self.taken_bids, self.taken_asks
        for p, q in bids:
            if q > 0:
                book_bids[-p] = q
            else:
                book_bids.pop(-p, None)
            if taken_bids:
                taken_bids.pop(p, None)
        for p, q in asks:
            if q > 0:
                book_asks[p] = q
            else:
                book_asks.pop(p, None)
            if taken_asks:
                taken_asks.pop(p, None)
        if update_id:
            self.update_id = update_id
        self.ts = ts

    @property
    def empty(self) -> bool:
        return not self.bids and not self.asks

    def best_bid(self) -> Level:
        """(price, effective qty) of the best bid with size left, or (0, 0)."""
        taken = self.taken_bids
        for key, qty in self.bids.items():
            left = qty - taken.get(-key, 0)
            if left > 0:
                return -key, left
        return 0, 0

    def best_ask(self) -> Level:
        """(price, effective qty) of the best ask with size left, or (0, 0)."""
        taken = self.taken_asks
        for price, qty in self.asks.items():
            left = qty - taken.get(price, 0)
            if left > 0:
                return price, left
        return 0, 0

    def displayed_at(self, is_bid: bool, price: int) -> int:
        """Displayed size at one price level (0 if none)."""
        return self.bids.get(-price, 0) if is_bid else self.asks.get(price, 0)

    def levels(self, depth: int) -> tuple[list[Level], list[Level]]:
        """Top ``depth`` displayed levels of each side, best first (what the feed shows)."""
        bids = [(-k, q) for k, q in self.bids.items()[:depth]] if depth else []
        asks = list(self.asks.items()[:depth]) if depth else []
        return bids, asks

    def walk(self, buy: bool, qty: int, limit: int) -> list[Level]:
        """Take up to ``qty`` from the opposite side at prices no worse than ``limit`` (0 = any).

        Returns the fills (price, qty) best first and records the liquidity taken.
        """
        fills: list[Level] = []
        if buy:
            side, taken = self.asks, self.taken_asks
            items = ((p, q) for p, q in side.items())
        else:
            side, taken = self.bids, self.taken_bids
            items = ((-k, q) for k, q in side.items())
        remaining = qty
        for price, shown in items:
            if limit and ((buy and price > limit) or (not buy and price < limit)):
                break
            left = shown - taken.get(price, 0)
            if left <= 0:
                continue
            take = left if left < remaining else remaining
            fills.append((price, take))
            taken[price] = taken.get(price, 0) + take
            remaining -= take
            if not remaining:
                break
        return fills

    def available(self, buy: bool, limit: int) -> int:
        """Effective size on the opposite side at prices no worse than ``limit`` (0 = any)."""
        total = 0
        if buy:
            for price, shown in self.asks.items():
                if limit and price > limit:
                    break
                total += max(0, shown - self.taken_asks.get(price, 0))
        else:
            for key, shown in self.bids.items():
                price = -key
                if limit and price < limit:
                    break
                total += max(0, shown - self.taken_bids.get(price, 0))
        return total

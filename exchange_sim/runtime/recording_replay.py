"""A recording driven through the core as fast as possible, with a ladder of demo accounts.

    run = RecordingReplay(exchange, Replay(["day.csv"]), ladder=True)
    for done in run.steps(every=2000):          # progress: events applied so far
        ...
    run.kinds, run.outcomes, run.first_ts, run.last_ts

What ``exchange-sim replay`` shows. Times are the recording's own (nothing is shifted). The
ladder: as soon as a symbol has a price from any source (a book, a trade, a mark: kline files
have no book), ten isolated accounts open a long and a short at 10x, 25x, 50x, 100x and 125x
with 300 USDT of margin each, so a crash in the recording liquidates the high-leverage ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from exchange_sim.core import messages as m
from exchange_sim.core.fixed import SCALE, to_fixed
from feeds.base import is_market_event

LADDER_LEVERAGES = (10, 25, 50, 100, 125)
LADDER_MARGIN = 300  # USDT per position
LADDER_DEPOSIT = "1000"


def ladder_commands(ts: int, symbol: str, price: int, inst: Any, start_id: int) -> list[Any]:
    """Demo accounts: isolated longs and shorts at 10x..125x with 300 USDT margin each, at ``price``."""
    out: list[Any] = []
    aid = start_id
    for lev in LADDER_LEVERAGES:
        for side in (m.BUY, m.SELL):
            qty = LADDER_MARGIN * lev * SCALE * SCALE // price
            qty -= qty % inst.step_size
            if qty <= 0:
                continue
            name = f"{'long' if side == m.BUY else 'short'}-{lev}x"
            out += [m.CreateAccount(ts=ts, name=name, deposit=to_fixed(LADDER_DEPOSIT), api_key=f"ladder-{aid}",
                                    api_secret="ladder"),
                    m.SetMarginType(ts=ts, account=aid, symbol=symbol, isolated=True),
                    m.SetLeverage(ts=ts, account=aid, symbol=symbol, leverage=lev),
                    m.PlaceOrder(ts=ts, account=aid, symbol=symbol, side=side, order_type=m.MARKET, qty=qty)]
            aid += 1
    return out


class RecordingReplay:
    """Applies a recording's market events to ``exchange`` and counts what came out."""

    def __init__(self, exchange: Any, source: Any, *, ladder: bool = True) -> None:
        self.exchange = exchange
        self.source = source
        self.ladder_pending = ladder
        self.kinds: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.first_ts = 0
        self.last_ts = 0
        self.done = 0

    def steps(self, every: int = 2000) -> Iterator[int]:
        """Apply every market event; yields the count every ``every`` events and at the end."""
        for item in self.source.events():
            if not is_market_event(item):
                continue
            self.first_ts = self.first_ts or item.ts
            self.last_ts = max(self.last_ts, item.ts)
            self.kinds[type(item).__name__] += 1
            events = self.exchange.apply(item)
            if self.ladder_pending and not isinstance(item, m.FeedStatus):
                events += self._open_ladder(item)
            for e in events:
                self.outcomes[type(e).__name__] += 1
            self.done += 1
            if self.done % every == 0:
                yield self.done
        yield self.done

    def _open_ladder(self, item: Any) -> list[Any]:
        market = self.exchange.market(item.symbol)
        price = market.last_price or market.mark or market.best_ask
        if not price:
            return []
        self.ladder_pending = False
        events: list[Any] = []
        for cmd in ladder_commands(item.ts, item.symbol, price, self.exchange.instruments[item.symbol],
                                   len(self.exchange.account_ids()) + 1):
            events += self.exchange.apply(cmd)
        return events

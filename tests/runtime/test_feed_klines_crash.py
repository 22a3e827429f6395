"""The 2024-08-05 crash from 1m klines: a 20x long opened at the start is liquidated in the
minute its liquidation price is first crossed (the feed supervisor driving the real core)."""

import asyncio
import csv

from exchange_sim.core.exchange import Exchange, ExchangeConfig
from exchange_sim.core.fixed import to_fixed
from exchange_sim.core.messages import (
    CreateAccount,
    Liquidation,
    MarkPrice,
    PlaceOrder,
    SetLeverage,
    SetMarginType,
)
from exchange_sim.profiles import load_profile
from exchange_sim.runtime.feeds import FeedSupervisor, SupervisorConfig
from exchange_sim.runtime.node import Node
from feeds import open_feed
from tests.support.feeds_scripted import wait_until
from tests.support.shared_data import CRASH_KLINES

F = to_fixed
S = "BTCUSDT"
KLINES = str(CRASH_KLINES)


def klines_lows() -> list[tuple[int, int]]:
    """(open_time, low) of every bar, straight from the CSV."""
    with open(KLINES) as fh:
        return [(int(r["open_time"]), F(r["low"])) for r in csv.DictReader(fh)]


class HeldAfterFirstBarOpen:
    """The replay feed, holding after the first bar's open until the test opened its position."""

    def __init__(self, feed, go: asyncio.Event) -> None:
        self.feed, self.go = feed, go

    def __aiter__(self):
        return self._run()

    async def _run(self):
        async for ev in self.feed:
            yield ev
            if isinstance(ev, MarkPrice) and not self.go.is_set():
                await self.go.wait()


async def test_20x_long_is_liquidated_in_the_minute_the_klines_cross_its_liquidation_price():
    bars = klines_lows()
    ex = Exchange(load_profile(), ExchangeConfig())
    node = Node(ex)
    events: list = []
    node.add_listener(lambda msg, evs: events.extend(evs))
    go = asyncio.Event()
    feed = open_feed(f"replay:{KLINES}?book=5", load_profile())  # a thin book at each path point
    sup = FeedSupervisor(node, lambda: HeldAfterFirstBarOpen(feed, go), [S], SupervisorConfig(stale_after=60))
    async with node:
        await sup.start()
        await wait_until(lambda: ex.market(S).mark > 0, 10, "the first mark")
        ts = ex.market(S).ts
        aid = (await node.submit(CreateAccount(ts, "bull", None, F("2000"))))[0].account
        await node.submit(SetMarginType(ts, aid, S, True))
        await node.submit(SetLeverage(ts, aid, S, 20))
        placed = await node.submit(PlaceOrder(ts, aid, S, "BUY", "MARKET", qty=F("0.500")))
        assert placed and type(placed[0]).__name__ != "CommandRejected", placed
        (pos,) = ex.positions(aid, S)
        assert pos.leverage == 20 and pos.isolated and pos.liquidation_price > 0
        go.set()
        await wait_until(sup.done.is_set, 30, "the replay to end")
        await sup.stop()
    liquidations = [e for e in events if isinstance(e, Liquidation) and e.account == aid]
    assert liquidations, "the long was never liquidated"
    first_minute = next(i for i, (_, low) in enumerate(bars) if low <= pos.liquidation_price)
    start = bars[0][0]
    assert (liquidations[0].ts - start) // 60_000 == first_minute
    assert liquidations[0].mark <= pos.liquidation_price
    # and not a minute earlier: every earlier bar's low stayed above the liquidation price
    assert all(low > pos.liquidation_price for _, low in bars[:first_minute])
    assert ex.positions(aid, S) == []

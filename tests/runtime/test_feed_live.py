"""The supervisor driving the real node and core from the local Binance server.

The server replays the raw capture; the tests kill it mid-stream, drop a diff, freeze it and
send outlier prices, with a 20x long open: each is visible as a FeedNotice/counter, the book
matches the recording again afterwards, and nothing is liquidated by bad or stale data.
"""

import asyncio

from exchange_sim.core.exchange import Exchange, ExchangeConfig
from exchange_sim.core.fixed import to_fixed
from exchange_sim.core.messages import (
    BookDelta,
    BookSnapshot,
    CommandRejected,
    CreateAccount,
    FeedStatus,
    Funding,
    FundingPayment,
    Liquidation,
    MarketStatus,
    PlaceOrder,
    SetLeverage,
)
from exchange_sim.profiles import load_profile
from exchange_sim.runtime.feeds import FeedSupervisor, SupervisorConfig
from exchange_sim.runtime.node import Node
from feeds.binance import BinanceFeed
from feeds.binance_routes import MARKET, PUBLIC
from tests.support.fake_binance import CAPTURE, FakeBinance
from tests.support.feeds_book import expected_books
from tests.support.feeds_scripted import wait_until

F = to_fixed
S = "BTCUSDT"


class Harness:
    """Exchange + Node + FeedSupervisor on a FakeBinance, with every core event collected."""

    def __init__(self, fb: FakeBinance, **cfg) -> None:
        self.fb = fb
        self.ex = Exchange(load_profile(), ExchangeConfig())
        self.node = Node(self.ex)
        self.events: list = []
        self.inputs: list = []
        config = SupervisorConfig(**{"backoff_initial": 0.02, "backoff_max": 0.1, "stale_after": 5.0, **cfg})
        feed = {"route_backoff": 0.02, "route_backoff_max": 0.1}  # a route comes back within 0.1 s
        self.sup = FeedSupervisor(self.node, lambda: BinanceFeed([S], fb.ws_url, fb.rest_url, **feed), [S], config)

    async def __aenter__(self):
        await self.node.start()
        self.node.add_listener(lambda msg, evs: (self.inputs.append(msg), self.events.extend(evs)))
        self.node.add_listener(self._checkpoint)
        await self.sup.start()
        return self

    async def __aexit__(self, *exc):
        await self.sup.stop()
        await self.node.stop()

    checkpoints = 0
    mismatches: list = []

    def _checkpoint(self, msg, events) -> None:
        """Every 50th diff the core applied: its book equals the recording's book at that diff."""
        if isinstance(msg, BookDelta) and msg.final_update_id % 50 == 0:
            self.checkpoints += 1
            if not self.book_matches_recording():
                self.mismatches = [*self.mismatches, msg.final_update_id]

    def kinds(self):
        return [n.kind for n in self.sup.recent]

    def now(self) -> int:
        return self.ex.market(S).ts + 1

    async def open_long(self, leverage=20, qty="0.050"):
        """A 20x long at the market, once the book is in."""
        await wait_until(lambda: self.ex.market(S).best_ask > 0 and self.ex.market(S).mark > 0, 20, "a book")
        aid = (await self.node.submit(CreateAccount(self.now(), "trader", None, F("1000"))))[0].account
        await self.node.submit(SetLeverage(self.now(), aid, S, leverage))
        events = await self.node.submit(PlaceOrder(self.now(), aid, S, "BUY", "MARKET", qty=F(qty)))
        assert not any(isinstance(e, CommandRejected) for e in events), events
        (pos,) = self.ex.positions(aid, S)
        assert pos.qty == F(qty) and pos.leverage == leverage and pos.liquidation_price > 0
        return aid, pos

    def book_matches_recording(self) -> bool:
        bids, asks, uid = self.ex.book_levels(S, 20)
        expected = expected_books(CAPTURE, 1).get(uid)
        return expected is not None and (tuple(bids), tuple(asks)) == expected

    def caught_up(self) -> bool:
        return self.fb.finished.is_set() and self.ex.market(S).book_update_id == self.fb.last_sent_u


async def test_server_killed_mid_stream_reconnects_and_resyncs_without_liquidating():
    killed = asyncio.Event()

    async def hook(n):
        if n == 600 and not killed.is_set():
            killed.set()
            await fb.kill_connections()
        if n == 1000:  # a funding settlement: the next funding time moves past an instant just reached
            e, price = fb._last_e, f"{fb._last_price:.2f}"
            await fb.inject("markPrice", dict(fb.mark_payload(price), E=e, T=e + 5))
            await fb.inject("markPrice", dict(fb.mark_payload(price), E=e + 6, T=e + 5 + 8 * 3600_000))

    async with FakeBinance(max_diffs=1400, before_diff=hook) as fb, Harness(fb) as h:
        aid, pos = await h.open_long()
        await wait_until(h.caught_up, 30, "the node to catch up with the server")
        assert h.book_matches_recording()
    kinds = h.kinds()
    for kind in ("held", "stale", "released", "resync", "fresh"):
        assert kind in kinds, kinds
    # each route reconnected by itself; the supervisor never had to reopen the feed
    assert h.sup.counters["reconnects"] == 0 and h.sup.counters["disconnects"] == 0
    assert fb.opened[PUBLIC] == 2 and fb.opened[MARKET] == 2 and fb.snapshots_served >= 2
    statuses = [e for e in h.events if isinstance(e, MarketStatus)]
    assert [s.stale for s in statuses][:2] == [True, False]
    snaps = [m for m in h.inputs if isinstance(m, BookSnapshot)]
    assert len(snaps) >= 2  # the reconnect's fresh snapshot went to the core
    assert not any(isinstance(e, Liquidation) for e in h.events)
    assert h.ex.positions(aid, S)[0].qty == pos.qty
    fundings = [m for m in h.inputs if isinstance(m, Funding)]
    assert len(fundings) == 1 and fundings[0].rate == F("0.0001")
    (paid,) = [e for e in h.events if isinstance(e, FundingPayment) and e.account == aid]
    assert paid.ts == fundings[0].ts and paid.amount < 0  # a long pays a positive rate


async def test_gap_outliers_and_a_frozen_stream_with_a_20x_long_open():
    frozen = asyncio.Event()

    async def hook(n):
        if n == 300:
            fb.drop_diffs(1)
        if n == 500:
            # bad ticks far below the long's liquidation price
            await fb.inject("trade", fb.trade_payload("30000.00"))
            await fb.inject("markPrice", fb.mark_payload("30000.00"))
            await fb.inject("depth", {"e": "depthUpdate", "E": fb._last_e, "T": fb._last_e, "s": S,
                                      "U": 0, "u": 0, "pu": 0, "b": [], "a": []})  # stale duplicate: ignored
        if n == 700 and not frozen.is_set():
            frozen.set()
            fb.pause()

    async with FakeBinance(max_diffs=1100, before_diff=hook) as fb, Harness(fb, stale_after=1.0) as h:
        aid, pos = await h.open_long()
        await wait_until(frozen.is_set, 30, "the stream to freeze")
        await wait_until(lambda: h.ex.market(S).stale, 10, "the symbol to go stale")
        rejected = await h.node.submit(PlaceOrder(h.now(), aid, S, "SELL", "MARKET", qty=F("0.010")))
        assert isinstance(rejected[0], CommandRejected) and "stale" in rejected[0].msg
        fb.resume()
        await wait_until(lambda: not h.ex.market(S).stale, 10, "fresh data")
        await wait_until(h.caught_up, 30, "the node to catch up with the server")
        assert h.book_matches_recording()
    kinds = h.kinds()
    assert kinds.count("gap") == 1 and kinds.count("resync") == 1, kinds
    assert h.sup.counters["gaps"] == 1 and h.sup.counters["resyncs"] == 1
    assert h.sup.counters["dropped"] >= 2 and h.sup.guard.dropped_ticks >= 2
    assert h.sup.counters["stale"] >= 1 and h.sup.counters["fresh"] >= 1
    assert not any(getattr(m, "price", None) == F("30000") or getattr(m, "mark", None) == F("30000")
                   for m in h.inputs)
    stale_inputs = [m for m in h.inputs if isinstance(m, FeedStatus)]
    assert [m.stale for m in stale_inputs][:2] == [True, False]
    assert "no market data" in stale_inputs[0].reason
    assert not any(isinstance(e, Liquidation) for e in h.events)
    assert h.ex.positions(aid, S)[0].qty == pos.qty


async def test_a_dropped_market_connection_holds_the_long_and_resumes_without_a_false_liquidation():
    outage = asyncio.Event()

    async def hook(n):
        if n == 500:
            fb.refuse(MARKET)
            await fb.kill_connections(MARKET)
        if n == 650:
            outage.set()
            fb.pause()  # hold the stream here until the test has tried to trade
        if n == 800:
            fb.accept(MARKET)

    async with FakeBinance(max_diffs=1300, before_diff=hook) as fb, Harness(fb) as h:
        aid, pos = await h.open_long()
        await wait_until(outage.is_set, 30, "the /market outage")
        await wait_until(lambda: h.ex.market(S).stale, 10, "the symbol held")  # the feed's backlog first
        rejected = await h.node.submit(PlaceOrder(h.now(), aid, S, "SELL", "MARKET", qty=F("0.010")))
        assert isinstance(rejected[0], CommandRejected) and "stale" in rejected[0].msg
        mark_during = h.ex.market(S).mark
        fb.resume()
        await wait_until(h.caught_up, 30, "the node to catch up with the server")
        await wait_until(lambda: not h.ex.market(S).stale, 10, "the /market route back")
        assert h.book_matches_recording()
    assert h.checkpoints >= 10 and h.mismatches == []  # before, during and after the outage
    kinds = h.kinds()
    assert kinds.count("held") == 1 and kinds.count("released") == 1 and "gap" not in kinds, kinds
    assert h.sup.counters["disconnects"] == 0 and h.sup.counters["reconnects"] == 0
    assert fb.opened[PUBLIC] == 1 and fb.opened[MARKET] == 2 and fb.snapshots_served == 1
    statuses = [e for e in h.events if isinstance(e, MarketStatus)]
    assert [s.stale for s in statuses] == [True, False] and "/market connection down" in statuses[0].reason
    assert h.ex.market(S).mark != mark_during  # marks flow again after the outage
    assert not any(isinstance(e, Liquidation) for e in h.events)
    assert h.ex.positions(aid, S)[0].qty == pos.qty

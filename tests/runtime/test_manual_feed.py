"""The instructor's manual feed is guarded like a live feed: bad ticks refused, deliberate shocks
possible, symbols marked stale without prices (``runtime/manual_feed.py``)."""

from __future__ import annotations

import asyncio

import aiohttp

from exchange_sim.api import ApiConfig, ApiServer, RateLimits
from exchange_sim.core import messages as m
from exchange_sim.core.exchange import Exchange, ExchangeConfig
from exchange_sim.core.fixed import to_fixed
from exchange_sim.dashboard import add_routes
from exchange_sim.profiles import load_profile
from exchange_sim.runtime import Node
from exchange_sim.runtime.manual_feed import ManualFeed, off_band
from tests.support.api_server import business_state, running_sim, seed_book

F = to_fixed
BAND = F("0.1")  # 10 %, the default bad-tick band
BTC = "BTCUSDT"


class View:
    def __init__(self, mark: str = "0", last: str = "0", bid: str = "0", ask: str = "0") -> None:
        self.mark, self.last_price, self.best_bid, self.best_ask = F(mark), F(last), F(bid), F(ask)


def check(msgs, view=View(mark="60000")):
    return off_band(msgs, lambda s: view, BAND)


def test_a_mark_outside_the_band_is_refused_with_the_distance():
    why = check([m.MarkPrice(1, BTC, F("90000"))])
    assert why is not None and "50.0%" in why and "60000" in why and '"force": true' in why
    assert check([m.MarkPrice(1, BTC, F("1000000000000"))]) is not None  # the 10^12 typo
    assert check([m.MarkPrice(1, BTC, F("54000"))]) is None  # exactly on the band's edge
    assert check([m.MarkPrice(1, BTC, F("53999.9"))]) is not None
    assert check([m.Trade(1, BTC, F("66001"), F("1"), m.BUY)]) is not None
    assert check([m.IndexPrice(1, BTC, F("30000"))]) is not None


def test_the_reference_moves_with_each_accepted_event_of_the_request():
    steps = [m.MarkPrice(1, BTC, F(p)) for p in ("57000", "55250", "52000", "48000")]
    assert check(steps) is None  # every step within 10 % of the one before
    assert check([m.MarkPrice(1, BTC, F("57000")), m.MarkPrice(2, BTC, F("50000"))]) is not None


def test_books_are_checked_at_their_top_and_a_new_market_takes_anything():
    assert check([m.BookSnapshot(1, BTC, ((F("54010"), F("1")),), ((F("54020"), F("1")),))]) is None
    assert "book ask" in check([m.BookSnapshot(1, BTC, ((F("50000"), F("1")),), ((F("50010"), F("1")),))])
    assert "book bid" in check([m.BookDelta(1, BTC, ((F("70000"), F("1")),), ())])
    assert check([m.BookDelta(1, BTC, ((F("70000"), F("0")),), ())]) is None  # removing a level is fine
    empty = View()
    assert check([m.MarkPrice(1, BTC, F("90000"))], empty) is None
    assert check([m.BookSnapshot(1, BTC, ((F("100"), F("1")),), ((F("101"), F("1")),)),
                  m.MarkPrice(2, BTC, F("200"))], empty) is not None  # the book became the reference
    assert check([m.MarkPrice(1, BTC, F("90000"))], View(last="89000")) is None  # last trade, no mark yet


async def test_a_typo_mark_is_refused_by_the_api_and_force_moves_the_market():
    async with running_sim() as sim:
        await seed_book(sim, BTC, "60000")
        bob = await sim.create_account("bob", deposit="1000")
        await sim.node.submit(m.SetLeverage(ts=1, account=bob["accountId"], symbol=BTC, leverage=20))
        await sim.node.submit(m.PlaceOrder(ts=2, account=bob["accountId"], symbol=BTC, side="BUY",
                                           order_type="MARKET", qty=F("0.2")))
        before = business_state(sim.exchange)
        for typo in ("30000", "600000"):  # 50 % away, and a digit too many
            status, body = await sim.admin("POST", "/sim/v1/market",
                                           {"events": [{"type": "mark", "symbol": BTC, "price": typo}]})
            assert status == 400 and body["code"] == -1130 and "bad-tick band" in body["msg"]
        # 10^12 is past the instrument's price filter: refused as a bad parameter before the band
        status, body = await sim.admin("POST", "/sim/v1/market",
                                       {"events": [{"type": "mark", "symbol": BTC, "price": "1000000000000"}]})
        assert status == 400 and body["code"] == -1130
        status, body = await sim.admin("POST", "/sim/v1/market", {"events": [
            {"type": "mark", "symbol": BTC, "price": "59000"},  # fine on its own ...
            {"type": "trade", "symbol": BTC, "price": "20000", "qty": "1", "side": "SELL"}]})  # ... not this
        assert status == 400 and "Trade 20000" in body["msg"]
        assert business_state(sim.exchange) == before  # nothing of a refused request was applied
        status, body = await sim.admin("POST", "/sim/v1/market", {"force": "yes", "events": []})
        assert status == 400 and body["code"] == -1130
        status, body = await sim.admin("POST", "/sim/v1/market", {"force": True, "events": [
            {"type": "book", "symbol": BTC, "bids": [["29990", "50"]], "asks": [["30010", "50"]]},
            {"type": "mark", "symbol": BTC, "price": "30000"}]})
        assert status == 200
        assert sim.exchange.market(BTC).mark == F("30000")
        assert any(e["type"] == "Liquidation" for e in body["events"])  # the deliberate crash liquidates
        # the band follows the market: a plain mark near the new price is accepted again
        await sim.market([{"type": "mark", "symbol": BTC, "price": "30500"}])


async def test_the_dashboard_shock_still_moves_the_market_past_the_band():
    """The staged shock is a deliberate move: 40 % in two steps goes through the band."""
    token = "teacher-token"
    holder: dict = {}

    def install(app):  # the dashboard's routes on the API's app, as ``exchange-sim run`` does
        add_routes(app, holder["node"], admin_token=token, shock_moves_book=True)

    node = Node(Exchange(load_profile(), ExchangeConfig()))
    holder["node"] = node
    await node.start()
    server = ApiServer(node, ApiConfig(port=0, admin_token=token, rate_limits=RateLimits(10**5, 10**5, 10**5)),
                       extra_routes=[install], announce=None)
    await server.start()
    auth = {"Authorization": f"Bearer {token}"}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(server.url + "/sim/v1/market", headers=auth, json={"events": [
                    {"type": "book", "symbol": BTC, "bids": [["59990", "50"]], "asks": [["60010", "50"]]},
                    {"type": "mark", "symbol": BTC, "price": "60000"}]}) as r:
                assert r.status == 200
            async with http.post(server.url + "/dashboard/api/shock", headers=auth,
                                 json={"symbol": BTC, "percent": -40, "seconds": 0, "steps": 2}) as r:
                assert r.status == 200
                target = F(str((await r.json())["to"]))
            for _ in range(500):  # bounded wait for the background shock task
                if node.exchange.market(BTC).mark == target:
                    break
                await asyncio.sleep(0.01)
            assert node.exchange.market(BTC).mark == target == F("36000")  # 40 % in two 20 % steps
            async with http.post(server.url + "/sim/v1/market", headers=auth, json={"events": [
                    {"type": "mark", "symbol": BTC, "price": "36100"}]}) as r:
                assert r.status == 200  # plain marks near the shocked price pass
    finally:
        await server.stop()
        await node.stop()


async def test_a_symbol_without_prices_goes_stale_and_comes_back_with_the_next_price():
    async with running_sim() as sim:
        await seed_book(sim, BTC, "60000")
        alice = await sim.create_account("alice", deposit="1000")
        feed = ManualFeed(sim.node, [BTC], stale_after=0.2)
        await feed.start()
        try:
            for _ in range(300):  # bounded: the watchdog looks every 50 ms
                if sim.exchange.market(BTC).stale:
                    break
                await asyncio.sleep(0.01)
            assert sim.exchange.market(BTC).stale
            refused = await sim.node.submit(m.PlaceOrder(ts=3, account=alice["accountId"], symbol=BTC, side="BUY",
                                                         order_type="MARKET", qty=F("0.01")))
            assert isinstance(refused[0], m.CommandRejected) and "stale" in refused[0].msg
            await sim.market([{"type": "mark", "symbol": BTC, "price": "60010"}])
            for _ in range(100):
                if not sim.exchange.market(BTC).stale:
                    break
                await asyncio.sleep(0.01)
            assert not sim.exchange.market(BTC).stale
            filled = await sim.node.submit(m.PlaceOrder(ts=4, account=alice["accountId"], symbol=BTC, side="BUY",
                                                        order_type="MARKET", qty=F("0.01")))
            assert not isinstance(filled[0], m.CommandRejected)
        finally:
            await feed.stop()


async def test_exchange_sim_run_with_the_manual_feed_marks_a_silent_symbol_stale(tmp_path):
    """The CLI wires the watchdog: ``[feed] stale_after_s`` without prices → stale, next price → fresh."""
    from tests.cli.helpers import running_server

    (tmp_path / "config.toml").write_text('[feed]\nsymbols = ["BTCUSDT"]\nstale_after_s = 0.5\n')
    auth = {"Authorization": "Bearer test-admin-token"}
    async with running_server(tmp_path, "--feed", "manual") as server, aiohttp.ClientSession() as http:
        async def statuses() -> list[dict]:
            async with http.get(server.url + "/sim/v1/events", params={"type": "MarketStatus"}, headers=auth) as r:
                assert r.status == 200
                return (await r.json())["events"]

        async def wait_statuses(n: int) -> list[dict]:
            for _ in range(200):  # bounded: 10 s
                found = await statuses()
                if len(found) >= n:
                    return found
                await asyncio.sleep(0.05)
            return await statuses()

        async with http.post(server.url + "/sim/v1/market", headers=auth, json={"events": [
                {"type": "mark", "symbol": BTC, "price": "60000"}]}) as r:
            assert r.status == 200
        found = await wait_statuses(1)
        assert [(e["symbol"], e["stale"]) for e in found] == [(BTC, True)]
        assert "no market data" in found[0]["reason"] and "manual feed" in found[0]["reason"]
        async with http.post(server.url + "/sim/v1/market", headers=auth, json={"events": [
                {"type": "mark", "symbol": BTC, "price": "60010"}]}) as r:
            assert r.status == 200
        found = await wait_statuses(2)
        assert [(e["symbol"], e["stale"]) for e in found[:2]] == [(BTC, True), (BTC, False)]

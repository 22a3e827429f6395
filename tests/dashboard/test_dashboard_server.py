"""The dashboard's routes, document and websocket against a real node (no browser)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import aiohttp
import pytest

from exchange_sim.core.fixed import SCALE, to_fixed
from exchange_sim.dashboard import ChartLibraryMissing, find_chart_js, margin_call_price
from tests.support.browser_classroom import classroom

TOKEN = "teacher-token-123"


async def get_json(session: aiohttp.ClientSession, url: str) -> dict:
    async with session.get(url) as res:
        assert res.status == 200
        return await res.json()


async def test_state_document_lists_the_class_ranked_by_equity():
    async with classroom() as room, aiohttp.ClientSession() as s:
        doc = await get_json(s, room.base_url + "/dashboard/state")
        names = [a["name"] for a in doc["accounts"]]
        equities = [a["margin_balance"] for a in doc["accounts"]]
        assert equities == sorted(equities, reverse=True)
        assert set(names) == {"teacher", "alice", "bob", "carol"}
        cls = doc["classes"][0]
        assert cls["id"] == room.ids["teacher"]
        assert sorted(cls["members"]) == sorted(room.ids[n] for n in ("alice", "bob", "carol"))
        alice = next(a for a in doc["accounts"] if a["name"] == "alice")
        (pos,) = alice["positions"]
        assert pos["mode"] == "isolated" and pos["leverage"] == 125 and pos["side"] == "LONG"
        assert pos["liquidation_price"] < pos["margin_call_price"] < pos["entry"]
        assert doc["margin_call_ratio"] == 0.8
        assert doc["symbols"]["BTCUSDT"]["mark"] == 49950.0
        assert doc["symbols"]["BTCUSDT"]["history"], "price history for the chart"


def test_margin_call_price_is_where_the_ratio_reaches_the_level():
    from exchange_sim.profiles import load_profile

    inst = load_profile()["BTCUSDT"]
    qty, entry, wallet = Decimal("0.25"), Decimal(50000), Decimal(100)  # isolated long, example E
    lp = (qty * entry - wallet) / (qty * (1 - Decimal("0.004")))
    price = margin_call_price(to_fixed("0.25"), to_fixed("50000"), int(lp * SCALE), inst.tiers, 0.8)
    p = Decimal(str(price))
    ratio = (qty * p * Decimal("0.004")) / (wallet + qty * (p - entry))
    assert abs(ratio - Decimal("0.8")) < Decimal("0.0001")
    # short side and "no liquidation price"
    short_lp = (qty * entry + wallet) / (qty * (1 + Decimal("0.004")))
    sp = Decimal(str(margin_call_price(-to_fixed("0.25"), to_fixed("50000"), int(short_lp * SCALE), inst.tiers, 0.8)))
    ratio = (qty * sp * Decimal("0.004")) / (wallet - qty * (sp - entry))
    assert abs(ratio - Decimal("0.8")) < Decimal("0.0001")
    assert margin_call_price(to_fixed("1"), to_fixed("50000"), 0, inst.tiers, 0.8) is None


async def test_websocket_pushes_the_document_and_every_change():
    async with classroom() as room, aiohttp.ClientSession() as s:
        async with s.ws_connect(room.base_url.replace("http", "ws") + "/dashboard/ws") as ws:
            first = json.loads((await ws.receive(timeout=5)).data)
            assert first["type"] == "state" and first["state"]["symbols"]["BTCUSDT"]["mark"] == 49950.0
            events = await room.move("BTCUSDT", "49700")  # through alice's isolated LP (49,799.20)
            assert any(type(e).__name__ == "Liquidation" for e in events)
            for _ in range(50):  # bounded: pushes come at most every 50 ms here
                doc = json.loads((await ws.receive(timeout=5)).data)["state"]
                alice = next(a for a in doc["accounts"] if a["name"] == "alice")
                if alice["liquidated"]:
                    break
            assert doc["symbols"]["BTCUSDT"]["mark"] == 49700.0
            assert first["state"]["full_history"] and not doc["full_history"]  # live pushes carry the tail only
            assert len(doc["symbols"]["BTCUSDT"]["history"]) <= 5
            assert alice["liquidated"]["symbol"] == "BTCUSDT" and alice["positions"] == []
            assert alice["gauge_ratio"] >= 1.0  # the gauge stays red after the liquidation
            kinds = [(t["account"], t["kind"]) for t in doc["timeline"]]
            assert (room.ids["alice"], "LIQUIDATION") in kinds


async def test_instructor_actions_need_the_admin_token():
    async with classroom() as room, aiohttp.ClientSession() as s:
        body = {"symbol": "BTCUSDT", "percent": -3, "seconds": 0, "steps": 3}
        async with s.post(room.base_url + "/dashboard/api/shock", json=body) as res:
            assert res.status == 401
        async with s.post(room.base_url + "/dashboard/api/reset", json={"accounts": [2]},
                          headers={"Authorization": "Bearer wrong-token"}) as res:
            assert res.status == 401
    async with classroom(admin_token=None) as room, aiohttp.ClientSession() as s:
        async with s.post(room.base_url + "/dashboard/api/shock", json={},
                          headers={"Authorization": "Bearer anything"}) as res:
            assert res.status == 403


async def test_shock_moves_the_mark_and_reset_restores_accounts():
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with classroom() as room, aiohttp.ClientSession() as s:
        async with s.post(room.base_url + "/dashboard/api/shock", headers=auth,
                          json={"symbol": "BTCUSDT", "percent": -5, "seconds": 0, "steps": 4}) as res:
            assert res.status == 200
            out = await res.json()
        assert out["to"] == pytest.approx(49950 * 0.95, abs=0.1)
        for _ in range(200):  # bounded wait for the background shock task
            if room.node.exchange.market("BTCUSDT").mark == to_fixed(str(out["to"])):
                break
            await asyncio.sleep(0.01)
        assert room.node.exchange.market("BTCUSDT").mark == to_fixed(str(out["to"]))
        doc = await get_json(s, room.base_url + "/dashboard/state")
        bob = next(a for a in doc["accounts"] if a["name"] == "bob")
        assert bob["liquidated"] is None and bob["positions"]  # cross 1,000 at 125x survives −5% (LP −7.5%)
        alice = next(a for a in doc["accounts"] if a["name"] == "alice")
        # isolated 125x dies on the first step (−1.25%): the book the shock moved is below its bankruptcy
        # price (entry − 100/0.25), so the position is taken over at the bankruptcy price
        assert alice["liquidated"]["price"] == pytest.approx(50000.1 - 400, abs=0.01)
        async with s.post(room.base_url + "/dashboard/api/shock", headers=auth,
                          json={"symbol": "XRPUSDT", "percent": 1}) as res:
            assert res.status == 400
        async with s.post(room.base_url + "/dashboard/api/reset", headers=auth,
                          json={"accounts": [room.ids["bob"], room.ids["alice"]]}) as res:
            assert res.status == 200
            assert all(r["ok"] for r in (await res.json())["results"])
        doc = await get_json(s, room.base_url + "/dashboard/state")
        for name in ("bob", "alice"):
            acct = next(a for a in doc["accounts"] if a["name"] == name)
            assert acct["positions"] == [] and acct["liquidated"] is None
        async with s.post(room.base_url + "/dashboard/api/reset", headers=auth, json={"accounts": "all"}) as res:
            assert res.status == 400


async def test_page_and_static_files_are_served():
    async with classroom() as room, aiohttp.ClientSession() as s:
        async with s.get(room.base_url + "/") as res:
            assert res.status == 200 and "classroom dashboard" in await res.text()
        async with s.get(room.base_url + "/dashboard/static/app.js") as res:
            assert res.status == 200 and res.content_type == "application/javascript"
        for bad in ("../server.py", "..%2Fserver.py", "state.py", ".hidden.js"):
            async with s.get(room.base_url + "/dashboard/static/" + bad) as res:
                assert res.status == 404


async def test_chart_library_is_served_from_the_installed_npm_package():
    try:
        path = find_chart_js()
    except ChartLibraryMissing as exc:
        pytest.skip(f"lightweight-charts is not installed: {exc}")
    assert "node_modules" in str(path) or "EXSIM_CHART_JS" in str(path)
    async with classroom() as room, aiohttp.ClientSession() as s:
        async with s.get(room.base_url + "/dashboard/vendor/lightweight-charts.js") as res:
            assert res.status == 200
            text = await res.text()
    assert "LightweightCharts" in text and len(text) > 50_000


def test_missing_chart_library_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EXSIM_CHART_JS", raising=False)
    from exchange_sim.dashboard import assets

    monkeypatch.setattr(assets, "__file__", str(tmp_path / "assets.py"))
    with pytest.raises(ChartLibraryMissing, match="npm install --prefix exchange_sim/dashboard"):
        assets.find_chart_js()


async def test_play_a_lesson_from_the_dashboard():
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with classroom() as room, aiohttp.ClientSession() as s:
        async with s.post(room.base_url + "/dashboard/api/lesson", headers=auth,
                          json={"name": "cross-vs-isolated", "step_seconds": 0}) as res:
            assert res.status == 200, await res.text()
            assert (await res.json())["steps"] == 16
        for _ in range(300):  # bounded wait for the background lesson task
            doc = await get_json(s, room.base_url + "/dashboard/state")
            names = {a["name"]: a for a in doc["accounts"]}
            if "cross" in names and names["cross"]["liquidated"]:
                break
            await asyncio.sleep(0.02)
        # the live simulator runs the venue profile: the isolated account forfeits its 100 margin
        # (plus 6.25 taker fee), the cross account loses everything
        assert names["isolated"]["liquidated"] and names["isolated"]["wallet"] == pytest.approx(893.75)
        assert names["cross"]["liquidated"] and names["cross"]["wallet"] == 0
        assert not any(c["name"].startswith("lesson") for c in doc["classes"])  # no empty parent account
        async with s.post(room.base_url + "/dashboard/api/lesson", headers=auth, json={"name": "nope"}) as res:
            assert res.status == 400
    async with classroom(lessons=False) as room, aiohttp.ClientSession() as s:
        async with s.post(room.base_url + "/dashboard/api/lesson", headers=auth,
                          json={"name": "leverage"}) as res:
            assert res.status == 409 and "--feed manual" in (await res.json())["error"]


async def test_a_gap_through_the_liquidation_price_is_logged_as_the_liquidation_alone():
    from exchange_sim.core import messages as m

    async with classroom() as room, aiohttp.ClientSession() as s:
        events = await room.move("BTCUSDT", "49500")  # a gap straight through alice's 125x liquidation price
        alice = room.ids["alice"]
        assert not [e for e in events if isinstance(e, m.MarginCall) and e.account == alice]  # no call past 100%
        assert any(isinstance(e, m.Liquidation) and e.account == alice for e in events)
        for _ in range(100):  # bounded: the hub follows the node
            doc = await get_json(s, room.base_url + "/dashboard/state")
            mine = [t for t in doc["timeline"] if t["account"] == alice]
            if any(t["kind"] == "LIQUIDATION" for t in mine):
                break
            await asyncio.sleep(0.02)
        assert [t["kind"] for t in mine] == ["LIQUIDATION"], mine  # the liquidation is the event


async def test_a_lesson_on_a_live_feed_plays_on_the_lesson_instruments_and_leaves_btcusdt_alone():
    from aiohttp import web

    from exchange_sim.config import load_config
    from exchange_sim.core import messages as m
    from exchange_sim.dashboard import make_app
    from exchange_sim.runtime.node import Node
    from exchange_sim.serve import new_exchange

    node = Node(new_exchange(load_config(None, env={})))
    await node.start()
    await node.submit(m.MarkPrice(ts=1, symbol="BTCUSDT", mark=to_fixed("60000")))
    runner = web.AppRunner(make_app(node, admin_token=TOKEN, lessons=True, feed="synthetic"), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    liquidated: list[str] = []
    node.add_listener(lambda _msg, events: liquidated.extend(e.symbol for e in events if isinstance(e, m.Liquidation)))
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(base + "/dashboard/api/lesson", headers={"Authorization": f"Bearer {TOKEN}"},
                              json={"name": "cross-vs-isolated", "step_seconds": 0}) as res:
                assert res.status == 200, await res.text()
            for _ in range(300):  # bounded wait for the background lesson task
                if len(liquidated) >= 2:
                    break
                await asyncio.sleep(0.02)
        assert liquidated == ["LESSONBTCUSDT", "LESSONBTCUSDT"]
        assert node.exchange.market("BTCUSDT").mark == to_fixed("60000")  # the live symbol never moved
    finally:
        await runner.cleanup()
        await node.stop()

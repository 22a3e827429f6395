"""The dashboard in a real headless Chromium: loads, shows positions, turns the gauge red on a liquidation.

The screenshot is kept as ``test-artifacts/dashboard.png``.
"""

from __future__ import annotations

import json

import pytest

from exchange_sim.dashboard import ChartLibraryMissing, find_chart_js
from tests.support.browser import artifacts_dir, chromium_or_skip, launch_chromium
from tests.support.browser_classroom import classroom

TIMEOUT_MS = 15_000


def account(aid: int) -> str:
    return f'.account[data-account="{aid}"]'


async def test_dashboard_shows_positions_and_the_gauge_turns_red_on_liquidation():
    chromium_or_skip()
    from playwright.async_api import async_playwright

    async with classroom() as room, async_playwright() as p:
        browser = await launch_chromium(p)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(room.base_url + "/#token=teacher-token-123")
            alice, bob = room.ids["alice"], room.ids["bob"]
            await page.wait_for_selector(f'{account(alice)} .positions tr[data-symbol="BTCUSDT"]', timeout=TIMEOUT_MS)
            await page.wait_for_selector('body[data-connected="1"]', timeout=TIMEOUT_MS)
            row = await page.inner_text(f'{account(alice)} .positions tbody tr')
            assert "LONG" in row and "isolated" in row and "125x" in row and "49,799" in row  # liq. price shown
            assert await page.get_attribute(f"{account(alice)} .gauge", "data-level") == "green"
            names = await page.eval_on_selector_all(".account .name", "els => els.map(e => e.textContent)")
            assert names[-1] == "teacher"  # ranked by equity: the empty teacher account last

            await room.move("BTCUSDT", "49700")  # through alice's isolated LP; bob (cross) survives
            await page.wait_for_selector(f'{account(alice)} .gauge[data-level="red"]', timeout=TIMEOUT_MS)
            assert "LIQUIDATED" in await page.inner_text(f"{account(alice)} .gauge .label")
            assert await page.get_attribute(f"{account(bob)} .gauge", "data-level") == "green"
            await page.wait_for_selector("#timeline tbody tr.kind-LIQUIDATION", timeout=TIMEOUT_MS)

            shot = artifacts_dir() / "dashboard.png"
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            assert errors == []
        finally:
            await browser.close()


async def test_price_chart_draws_liquidation_and_margin_call_lines():
    chromium_or_skip()
    try:
        find_chart_js()
    except ChartLibraryMissing as exc:
        pytest.skip(f"chart lines need TradingView lightweight-charts: {exc}")
    from playwright.async_api import async_playwright

    async with classroom() as room, async_playwright() as p:
        browser = await launch_chromium(p)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            await page.goto(room.base_url + "/")
            market = '.market[data-symbol="BTCUSDT"]'
            await page.wait_for_selector(f"{market} canvas", timeout=TIMEOUT_MS)
            await page.wait_for_function(
                "sel => (document.querySelector(sel)?.dataset.lines || '[]').includes('liq')", arg=market,
                timeout=TIMEOUT_MS)
            lines = dict(json.loads(await page.get_attribute(market, "data-lines")))
            # three positions, each with entry, margin call, liquidation and bankruptcy lines
            assert lines["alice L125x liq"] == pytest.approx(49799.28, abs=0.1)  # entry 50,000.10
            assert lines["bob L125x liq"] < lines["bob L125x margin call"] < lines["bob L125x entry"]
            assert lines["carol S10x liq"] > lines["carol S10x entry"]
            assert {k.split(" ", 2)[2] for k in lines} == {"entry", "margin call", "liq", "bankrupt"}
            assert int(await page.get_attribute(market, "data-points")) > 0
            await page.screenshot(path=str(artifacts_dir() / "dashboard-chart.png"))
        finally:
            await browser.close()

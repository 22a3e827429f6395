"""Students trade from the browser: the trading page in headless Chromium against `exchange-sim run`.

Two students in two tabs (one signs in with a join link, one types key and secret): a 50x isolated
long and a 10x cross long, both placed from the page through the signed Binance-compatible API.
The teacher stages a -5% shock from the dashboard: the isolated one is liquidated with its loss
capped at its margin, the cross one survives; the leaderboard says so. Everything is checked in
what the pages show. Screenshots go to test-artifacts/ (and to $EXSIM_SCREENS_DIR when set).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import time
from pathlib import Path

from exchange_sim.client import SimClient, signature
from tests.cli.helpers import running_server
from tests.support.browser import artifacts_dir, chromium_or_skip, launch_chromium

TOKEN = "test-admin-token"
TIMEOUT_MS = 20_000
SCREENS = os.environ.get("EXSIM_SCREENS_DIR")  # also copy the screenshots there (for people reviewing them)


def money(text: str) -> float:
    return float(text.replace(",", ""))


async def field(page, name: str) -> str:
    return (await page.inner_text(f'#position [data-field="{name}"] b')).strip()


async def wallet(page) -> float:
    text = await page.inner_text("#wallet")
    return money(re.search(r"wallet ([\d,.]+)", text).group(1))


async def shot(page, name: str) -> None:
    path = artifacts_dir() / name
    await page.screenshot(path=str(path), full_page=True)
    if SCREENS:
        Path(SCREENS).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(SCREENS) / name)


async def open_long(page, *, mode: str, leverage: int, qty: str) -> None:
    await page.click(f'button.mode[data-mode="{mode}"]')
    await page.wait_for_selector(f'body[data-margin-type="{"isolated" if mode == "ISOLATED" else "cross"}"]',
                                 timeout=TIMEOUT_MS)
    await page.fill("#leverage", str(leverage))
    await page.click("#leverage-button")
    await page.wait_for_selector(f'body[data-leverage="{leverage}"]', timeout=TIMEOUT_MS)
    await page.select_option("#order-type", "MARKET")
    await page.fill("#qty", qty)
    await page.click("#buy")
    await page.wait_for_selector('#position[data-open="1"]', timeout=TIMEOUT_MS)


async def test_two_students_trade_from_the_browser_and_a_shock_liquidates_only_the_isolated_50x(tmp_path):
    chromium_or_skip()
    from playwright.async_api import async_playwright

    async with running_server(tmp_path, "--feed", "synthetic") as server, async_playwright() as p:
        admin = SimClient(server.url, TOKEN)
        teacher = await asyncio.to_thread(admin.create_account, "teacher", "0")
        iso = await asyncio.to_thread(admin.create_account, "isabel", "1000", teacher.account)
        cross = await asyncio.to_thread(admin.create_account, "carlos", "1000", teacher.account)
        browser = await launch_chromium(p)
        errors: list[str] = []
        try:
            context = await browser.new_context(viewport={"width": 1400, "height": 1000})
            tab1, tab2, board = [await context.new_page() for _ in range(3)]
            for page in (tab1, tab2, board):
                page.on("pageerror", lambda e: errors.append(str(e)))

            # isabel: the join link the teacher hands out; a 50x isolated long
            await tab1.goto(f"{server.url}/trade#key={iso.api_key}&secret={iso.api_secret}")
            await tab1.wait_for_selector('body[data-ready="1"]', timeout=TIMEOUT_MS)
            assert "secret" not in tab1.url  # the link's secret does not stay in the address bar
            # off a secure origin the page signs with its own HMAC-SHA256: it must sign as the venue does
            cases = [(iso.api_secret, "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01&timestamp=1"),
                     ("k" * 100, ""), ("é-secret", "x" * 1000), ("s", "a" * 55), ("s", "a" * 56), ("s", "a" * 64)]
            got = await tab1.evaluate("cases => cases.map(([k, t]) => window.exsimSign.hmacSha256Hex(k, t))", cases)
            assert got == [signature(k, t) for k, t in cases]
            # the venue's refusal, in plain words: 10 BTC at 20x is far beyond 1,000 USDT
            await tab1.fill("#qty", "10")
            await tab1.click("#buy")
            await tab1.wait_for_selector("#order-msg.err", timeout=TIMEOUT_MS)
            refusal = await tab1.inner_text("#order-msg")
            assert "Not enough margin" in refusal and "-2019" in refusal, refusal
            await open_long(tab1, mode="ISOLATED", leverage=50, qty="0.01")
            assert await field(tab1, "mode") == "isolated 50x"
            margin = money(await field(tab1, "isolated margin"))
            entry = money(await field(tab1, "entry"))
            liq = money(await field(tab1, "liquidation price"))
            bankrupt = money(await field(tab1, "bankruptcy price"))
            assert 0.975 * entry < bankrupt < liq < entry, (entry, liq, bankrupt)  # 50x: about 2% away
            await tab1.wait_for_function("JSON.parse(document.querySelector('#chart').dataset.lines || '[]')"
                                         ".some(l => l[0] === 'liquidation')", timeout=TIMEOUT_MS)
            lines = dict(tuple(x) for x in
                         json.loads(await tab1.get_attribute("#chart", "data-lines")))
            assert abs(lines["liquidation"] - liq) < 0.2 and abs(lines["bankruptcy"] - bankrupt) < 0.2, lines
            # the chart's candles are today's (one clock)
            last_candle = int(await tab1.get_attribute("#chart", "data-last-candle"))
            assert abs(last_candle - time.time() * 1000) < 5 * 60_000
            # a limit order, a stop-loss and a take-profit; cancel two of them from the table
            await tab1.select_option("#order-type", "LIMIT")
            await tab1.fill("#qty", "0.01")
            await tab1.fill("#price", f"{round(entry * 0.97, 1)}")
            await tab1.click("#buy")
            await tab1.wait_for_selector('#orders tr[data-kind="LIMIT"]', timeout=TIMEOUT_MS)
            await tab1.select_option("#order-type", "TAKE_PROFIT_MARKET")
            await tab1.fill("#trigger", f"{round(entry * 1.05, 1)}")
            await tab1.click("#sell")
            await tab1.wait_for_selector('#orders tr[data-kind="TAKE_PROFIT_MARKET"]', timeout=TIMEOUT_MS)
            await tab1.select_option("#order-type", "STOP_MARKET")
            await tab1.fill("#trigger", f"{round(entry * 1.01, 1)}")  # above the mark: it would fire at once
            await tab1.click("#sell")
            await tab1.wait_for_selector("#order-msg.err", timeout=TIMEOUT_MS)
            assert "trigger price is already reached" in await tab1.inner_text("#order-msg")
            await tab1.fill("#trigger", f"{round(entry * 0.95, 1)}")  # below the liquidation price: never fires first
            await tab1.click("#sell")
            await tab1.wait_for_selector('#orders tr[data-kind="STOP_MARKET"]', timeout=TIMEOUT_MS)
            assert "stop-loss" in await tab1.inner_text("#orders tbody")
            await tab1.click('#orders tr[data-kind="LIMIT"] button.cancel')
            await tab1.wait_for_selector('#orders tr[data-kind="LIMIT"]', state="detached", timeout=TIMEOUT_MS)
            await tab1.click('#orders tr[data-kind="TAKE_PROFIT_MARKET"] button.cancel')
            await tab1.wait_for_selector('#orders tr[data-kind="TAKE_PROFIT_MARKET"]', state="detached",
                                         timeout=TIMEOUT_MS)
            await tab1.wait_for_selector("#fills tbody tr", timeout=TIMEOUT_MS)
            wallet_before = await wallet(tab1)

            # carlos types his key and secret; a 10x cross long. His tab is like a classroom's
            # http://<teacher's address>:8765, where the browser hides WebCrypto: the page's own signer works
            await tab2.add_init_script("Object.defineProperty(window.crypto, 'subtle', {value: undefined})")
            await tab2.goto(f"{server.url}/trade")
            assert await tab2.evaluate("window.crypto.subtle === undefined")
            await tab2.fill("#api-key", cross.api_key)
            await tab2.fill("#api-secret", cross.api_secret + "x")
            await tab2.click("#signin-button")
            await tab2.wait_for_selector("#signin-msg.err", timeout=TIMEOUT_MS)
            assert "secret does not match" in await tab2.inner_text("#signin-msg")
            await tab2.fill("#api-secret", cross.api_secret)
            await tab2.click("#signin-button")
            await tab2.wait_for_selector('body[data-ready="1"]', timeout=TIMEOUT_MS)
            await open_long(tab2, mode="CROSSED", leverage=10, qty="0.01")
            assert await field(tab2, "mode") == "cross 10x"
            await shot(tab1, "trade-isolated-before-shock.png")
            await shot(tab2, "trade-cross-before-shock.png")

            # the teacher stages a -5% shock from the dashboard
            await board.goto(f"{server.url}/#token={TOKEN}")
            await board.wait_for_selector(f'#leaderboard tr[data-account="{iso.account}"]', timeout=TIMEOUT_MS)
            assert await board.inner_text(f'.account[data-account="{iso.account}"] .account-id') == f"#{iso.account}"
            await board.select_option("#shock-symbol", "BTCUSDT")
            await board.fill("#shock-percent", "-5")
            await board.fill("#shock-seconds", "1")
            await board.click("#shock-button")

            await tab1.wait_for_selector('#events li[data-kind="LIQUIDATION"]', timeout=TIMEOUT_MS)
            await tab1.wait_for_selector('#position[data-open="0"]', timeout=TIMEOUT_MS)
            await tab1.wait_for_selector('#orders tr[data-kind="STOP_MARKET"]', state="detached", timeout=TIMEOUT_MS)
            await asyncio.sleep(1.5)  # the page polls once a second: let the wallet settle
            loss = wallet_before - await wallet(tab1)
            assert 0.5 * margin < loss <= margin + 0.01, (loss, margin)  # capped at the isolated margin
            assert "position closed by the liquidation engine" in await tab1.inner_text("#events")
            calls = await tab1.eval_on_selector_all('#events li[data-kind="MARGIN_CALL"]', "els => els.map(e => e.textContent)")
            for call in calls:  # calls are for 80%-100%: none comes with the liquidation
                ratio = float(re.search(r"ratio (-?[\d.]+)%", call).group(1))
                assert 0 < ratio < 100, call

            await tab2.wait_for_timeout(1500)
            assert await tab2.get_attribute("#position", "data-open") == "1"  # the cross long survives
            assert not await tab2.query_selector('#events li[data-kind="LIQUIDATION"]')
            ratio = float((await tab2.inner_text('#position [data-field="margin ratio"]')).split()[-1].rstrip("%"))
            assert ratio < 80

            await board.wait_for_function(
                f"document.querySelector('#leaderboard tr[data-account=\"{iso.account}\"] td:nth-child(5)')"
                ".textContent === '1'", timeout=TIMEOUT_MS)
            # the card's position table: "liq. price" and "ratio" are separate, padded columns
            heads = await board.eval_on_selector_all(
                f'.account[data-account="{cross.account}"] .positions th',
                "ths => ths.map(th => [th.textContent, parseFloat(getComputedStyle(th).paddingRight)])")
            names = [h for h, _ in heads]
            assert names[-2:] == ["liq. price", "ratio"] and all(pad >= 8 for _, pad in heads), heads
            iso_row = await board.inner_text(f'#leaderboard tr[data-account="{iso.account}"]')
            cross_row = await board.inner_text(f'#leaderboard tr[data-account="{cross.account}"]')
            assert "isolated" in iso_row and "cross" in cross_row and "\t0\t" in cross_row + "\t", cross_row
            equities = await board.eval_on_selector_all("#leaderboard tbody tr td:nth-child(4)",
                                                        "els => els.map(e => e.textContent)")
            assert [money(e) for e in equities] == sorted((money(e) for e in equities), reverse=True)
            await shot(tab1, "trade-isolated-after-shock.png")
            await shot(tab2, "trade-cross-after-shock.png")
            await shot(board, "dashboard-leaderboard-after-shock.png")
            assert errors == []
        finally:
            await browser.close()

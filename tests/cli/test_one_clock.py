"""One clock, and lessons and shocks that leave a live market alone: `exchange-sim run` as a real process.

A synthetic market stamps with the wall clock like orders do; a staged shock and a live lesson
keep every timestamp (ticker, klines, websocket trades) near now; the synthetic walk continues
from where the shock left it; the lesson plays on its own instrument, leaves the students'
BTCUSDT position and price alone, and leaves no empty parent account behind.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

import aiohttp
import ccxt.pro as ccxtpro

from exchange_sim.client import SimClient
from tests.cli.helpers import cli_command, cli_env, running_server, write_recording
from tests.support.api_ccxt import ccxt_config

TOKEN = "test-admin-token"
BTC = "BTC/USDT:USDT"
NEAR_MS = 15_000  # "now": within 15 s of the test's own wall clock


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def wait_for_price(base: str, symbol: str = "BTCUSDT") -> float:
    async with aiohttp.ClientSession() as s:
        for _ in range(150):  # bounded: the synthetic feed steps once a second
            async with s.get(f"{base}/fapi/v1/ticker/price?symbol={symbol}") as r:
                if r.status == 200:
                    body = await r.json()
                    if float(body.get("price") or 0) > 0:
                        return float(body["price"])
            await asyncio.sleep(0.1)
    raise AssertionError(f"{symbol} never got a price")


async def assert_all_near_now(ex, where: str) -> float:
    ticker = await ex.fetch_ticker(BTC)
    assert abs(ticker["timestamp"] - now_ms()) < NEAR_MS, (where, ticker["timestamp"])
    candles = await ex.fetch_ohlcv(BTC, "1m", limit=4)
    assert candles, where
    for open_ts, *_ in candles:
        assert now_ms() - 5 * 60_000 < open_ts <= now_ms(), (where, candles)
    assert candles[-1][4] == ticker["last"], (where, candles[-1], ticker["last"])  # chart and ticker agree
    trades = await asyncio.wait_for(ex.watch_trades(BTC), 10)
    assert all(abs(t["timestamp"] - now_ms()) < NEAR_MS for t in trades), (where, trades)
    return ticker["last"]


async def test_synthetic_market_shock_and_live_lesson_share_the_wall_clock(tmp_path):
    async with running_server(tmp_path, "--feed", "synthetic") as server:
        banner = "\n".join(server.lines)
        assert "steps=0" not in banner and "synthetic  (BTCUSDT, ETHUSDT)" in banner
        start = await wait_for_price(server.url)
        assert 55_000 < start < 65_000
        admin = SimClient(server.url, TOKEN)
        student = await asyncio.to_thread(admin.create_account, "student", "1000")
        await asyncio.to_thread(admin.signed, student, "POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 20})
        await asyncio.to_thread(admin.signed, student, "POST", "/fapi/v1/order",
                                {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"})
        ex = ccxtpro.binanceusdm(ccxt_config(server.url, student.api_key, student.api_secret))
        try:
            before = await assert_all_near_now(ex, "synthetic")
            async with aiohttp.ClientSession() as s:
                async with s.post(server.url + "/dashboard/api/shock", headers={"Authorization": f"Bearer {TOKEN}"},
                                  json={"symbol": "BTCUSDT", "percent": -3, "seconds": 1}) as r:
                    assert r.status == 200, await r.text()
                    shock = await r.json()
            await asyncio.sleep(3.5)  # the shock is over and the walk has stepped again
            after = await assert_all_near_now(ex, "after the shock")
            assert abs(after - shock["to"]) / shock["to"] < 0.01, (before, shock, after)  # no jump back
            # the user stream is on the same clock: an order placed now is stamped now
            watching = asyncio.create_task(ex.watch_orders(BTC))
            await asyncio.sleep(0.5)
            await ex.create_order(BTC, "market", "buy", 0.002)
            orders = await asyncio.wait_for(watching, 10)
            assert orders and all(abs(o["timestamp"] - now_ms()) < NEAR_MS for o in orders), orders
            # a live lesson on this synthetic market, as a real process
            done = await asyncio.to_thread(
                subprocess.run, cli_command("lesson", "cross-vs-isolated", "--live", server.url, "--admin-token",
                                            TOKEN, "--step-seconds", "0"),
                cwd=tmp_path, env=cli_env(), capture_output=True, text=True, check=False, timeout=120)
            assert done.returncode == 0, done.stdout + done.stderr
            assert "LESSONBTCUSDT" in done.stdout
            last = await assert_all_near_now(ex, "after the lesson")
            assert abs(last - after) / after < 0.01, (after, last)  # BTCUSDT never saw the lesson's 46,000
            liquidations = await asyncio.to_thread(admin.events, type="Liquidation")
            liquidated = {e.get("symbol") for e in liquidations.get("events", liquidations)} \
                if isinstance(liquidations, dict) else {e.get("symbol") for e in liquidations}
            assert liquidated == {"LESSONBTCUSDT"}, liquidations
            accounts = await asyncio.to_thread(admin.accounts)
            me = next(a for a in accounts if a["accountId"] == student.account)
            assert me["openPositions"] == 1  # the student's BTCUSDT long survived the lesson
            lesson_accounts = [a for a in accounts if a["accountId"] != student.account]
            # the lesson's two accounts, flat at the end, and no (empty) parent account
            assert sorted(a["name"] for a in lesson_accounts) == ["cross", "isolated"], accounts
            assert all(a["openPositions"] == 0 and a["parent"] is None for a in lesson_accounts), accounts
        finally:
            await ex.close()
        assert await server.stop() == 0


async def candles_and_server_time(base: str) -> tuple[list, int]:
    await wait_for_price(base)
    async with aiohttp.ClientSession() as s:
        async with s.get(base + "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=2") as r:
            candles = await r.json()
        async with s.get(base + "/fapi/v1/time") as r:
            return candles, (await r.json())["serverTime"]


async def test_a_served_recording_starts_now_unless_it_keeps_its_times(tmp_path):
    rec = write_recording(tmp_path / "fall.jsonl", steps=600)  # stamped 2024-08-05, one step a second
    async with running_server(tmp_path, "--feed", f"replay:{rec}?speed=1") as server:
        candles, server_time = await candles_and_server_time(server.url)
        assert abs(candles[-1][0] - now_ms()) < 2 * 60_000, candles
        assert abs(server_time - now_ms()) < NEAR_MS
    async with running_server(tmp_path, "--feed", f"replay:{rec}?speed=1&times=original",
                              "--fresh") as server:
        candles, server_time = await candles_and_server_time(server.url)
        assert candles[-1][0] // 86_400_000 == 1_722_816_000_000 // 86_400_000, candles  # 2024-08-05
        assert abs(server_time - candles[-1][0]) < 2 * 60_000  # the API's clock follows the replay
        assert any("moved to" in line for line in server.lines)  # --fresh put the old session aside

"""The README's client configurations, run as written, with real ccxt / ccxt.pro clients; what
ccxt's unified calls do with conditional orders and attached protective orders.

The configuration is taken from README.md itself (the ``Connecting bots`` code block), so the
README shows exactly what these tests use.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import pytest

from feeds.history import history_source, install
from tests.support.api_server import business_state

BTC = "BTC/USDT:USDT"
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_config(base: str, key: str, secret: str) -> dict:
    """The ``config`` dict of the README's ccxt code block, for this server and account."""
    text = README.read_text()
    section = text[text.index("## Connecting bots"):]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None, "README: no python block under 'Connecting bots'"
    code = block.group(1).replace('B = "http://127.0.0.1:8765"', f'B = "{base}"')
    code = code.replace("ex = ccxt.binanceusdm(config)", "")
    scope = {"KEY": key, "SECRET": secret}
    exec(code, scope)  # noqa: S102 - our own README
    return scope["config"]


def freqtrade_style(cfg: dict) -> dict:
    """The README's additions for ccxt.binance (as freqtrade configures it)."""
    options = dict(cfg["options"], defaultType="swap", fetchMarkets={"types": ["linear"]}, fetchMargins=False)
    return dict(cfg, options=options)


async def test_ccxt_binance_as_freqtrade_configures_it(market, sim):
    alice = await sim.create_account("alice", deposit="10000")
    ex = ccxt_async.binance(freqtrade_style(readme_config(sim.url, alice["apiKey"], alice["apiSecret"])))
    try:
        markets = await ex.load_markets()
        assert BTC in markets and all(m["linear"] for m in markets.values())
        assert (await ex.fetch_balance())["USDT"]["free"] == 10000
        await ex.set_leverage(5, BTC)
        order = await ex.create_order(BTC, "market", "buy", 0.01)
        assert order["status"] == "closed" and order["filled"] == 0.01
        (position,) = [p for p in await ex.fetch_positions([BTC]) if p["contracts"]]
        assert position["side"] == "long" and position["contracts"] == 0.01
        assert (await ex.fetch_status())["status"] == "ok"  # sapi on the simulator, not api.binance.com
    finally:
        await ex.close()


async def test_ccxt_pro_with_the_readme_config(market, sim):
    alice = await sim.create_account("alice", deposit="10000")
    ex = ccxt_pro.binanceusdm(readme_config(sim.url, alice["apiKey"], alice["apiSecret"]))
    try:
        await ex.load_markets()
        watching = asyncio.ensure_future(ex.watch_trades(BTC))
        await asyncio.sleep(0.3)
        await sim.market([{"type": "trade", "symbol": "BTCUSDT", "price": "60001", "qty": "0.5", "side": "BUY"}])
        trades = await asyncio.wait_for(watching, 10)
        assert trades[-1]["price"] == 60001 and trades[-1]["amount"] == 0.5
        assert (await ex.fetch_balance())["USDT"]["total"] == 10000
    finally:
        await ex.close()


async def test_a_bot_starting_on_the_synthetic_feed_has_its_startup_candles(sim):
    await install(sim.server.ctx.klines, history_source("synthetic", sim.exchange.instruments))
    await sim.market([{"type": "trade", "symbol": "BTCUSDT", "price": "60000", "qty": "0.01", "side": "BUY"}])
    ex = ccxt.binanceusdm(readme_config(sim.url, "", ""))
    candles = await asyncio.to_thread(ex.fetch_ohlcv, BTC, "1h", None, 200)
    assert len(candles) == 200 and candles[-1][4] == 60000


async def test_attached_stop_loss_and_take_profit_are_refused_as_on_the_venue(market, sim):
    """ccxt.binanceusdm cannot attach TP/SL to an entry (``has`` says so): it forwards the dicts
    as unknown parameters, which the venue refuses (−1104) without creating anything. The venue
    way is separate reduce-only algo orders."""
    alice = await sim.create_account("alice", deposit="100000")
    ex = ccxt_async.binanceusdm(readme_config(sim.url, alice["apiKey"], alice["apiSecret"]))
    try:
        await ex.load_markets()
        assert ex.has["createOrderWithTakeProfitAndStopLoss"] is False
        before = business_state(sim.exchange)
        with pytest.raises(ccxt.BadRequest, match="-1104.*Not all sent parameters were read"):
            await ex.create_order(BTC, "market", "buy", 0.01, None,
                                  {"stopLoss": {"triggerPrice": 55000}, "takeProfit": {"triggerPrice": 65000}})
        assert business_state(sim.exchange) == before
        await ex.create_order(BTC, "market", "buy", 0.01)
        stop = await ex.create_order(BTC, "market", "sell", 0.01, None, {"stopLossPrice": 55000, "reduceOnly": True})
        take = await ex.create_order(BTC, "market", "sell", 0.01, None, {"takeProfitPrice": 65000, "reduceOnly": True})
        assert stop["info"]["orderType"] == "STOP_MARKET" and take["info"]["orderType"] == "TAKE_PROFIT_MARKET"
        # conditional orders are algo orders: listed and cancelled only with {"trigger": True}
        assert await ex.fetch_open_orders(BTC) == []
        algo = await ex.fetch_open_orders(BTC, params={"trigger": True})
        assert {o["id"] for o in algo} == {stop["id"], take["id"]}
        answer = await ex.cancel_all_orders(BTC)  # regular orders only
        assert [a["info"] for a in answer] == [{"code": 200, "msg": "The operation of cancel all open order is done."}]
        assert len(await ex.fetch_open_orders(BTC, params={"trigger": True})) == 2
        answer = await ex.cancel_all_orders(BTC, {"trigger": True})
        assert answer[0]["info"] == {"code": 200, "msg": "The operation of cancel all open order is done."}
        assert await ex.fetch_open_orders(BTC, params={"trigger": True}) == []
    finally:
        await ex.close()

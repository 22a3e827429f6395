"""The scripted classroom lesson: the same BTC long, cross vs isolated, under a falling mark.

Two sub-accounts of one teacher account each get 1,000 USDT and open 0.02 BTC at 60,000 with
12x leverage (100 USDT initial margin). The instructor pushes the mark down through the admin
API. The isolated account gets a MARGIN_CALL and is liquidated near 55,200 but keeps the 899.40
USDT that was never put into the position; the cross account survives that move and is only
called and liquidated near 10,070, losing (almost) the whole 1,000.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.support.api_ccxt import ccxt_config

BTC = "BTC/USDT:USDT"
BOUND = 10


async def private_stream(session, sim, account):
    async with session.post(sim.url + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": account["apiKey"]}) as resp:
        key = (await resp.json())["listenKey"]
    ws = await session.ws_connect(f"{sim.url.replace('http', 'ws')}/private/ws?listenKey={key}")
    for _ in range(1000):
        if sim.server.ctx.hub.wants_account(account["accountId"]):
            return ws
        await asyncio.sleep(0.005)
    raise AssertionError("private stream never registered")


async def frames_until(ws, event_name, bound=BOUND):
    """Every user-data frame received up to and including the first ``event_name`` one."""
    seen = []
    while True:
        msg = await ws.receive(bound)
        frame = json.loads(msg.data)
        seen.append(frame)
        if frame.get("e") == event_name:
            return seen


def is_liquidation_fill(frame):
    return frame.get("e") == "ORDER_TRADE_UPDATE" and frame["o"]["o"] == "LIQUIDATION" and frame["o"]["x"] == "TRADE"


async def test_cross_and_isolated_under_a_falling_mark(sim, clients):
    teacher = await sim.create_account("teacher", deposit="0")
    cross = await sim.create_account("cross-student", deposit="1000", parent=teacher["accountId"])
    isolated = await sim.create_account("isolated-student", deposit="1000", parent=teacher["accountId"])
    assert sorted(sim.exchange.children(teacher["accountId"])) == [cross["accountId"], isolated["accountId"]]
    await sim.market([{"type": "book", "symbol": "BTCUSDT", "bids": [["59990", "5"]], "asks": [["60000", "5"]]},
                      {"type": "mark", "symbol": "BTCUSDT", "price": "60000", "index": "60000"}])
    for account, mode in ((cross, "cross"), (isolated, "isolated")):
        client = clients.async_(account)
        await client.load_markets()
        if mode == "isolated":  # cross is the default; asking again is -4046 MarginModeAlreadySet
            await client.set_margin_mode(mode, BTC)
        await client.set_leverage(12, BTC)
        await client.create_order(BTC, "market", "buy", 0.02)
        (position,) = await client.fetch_positions([BTC])
        assert position["initialMargin"] == 100 and position["marginMode"] == mode
    iso_client = clients.async_(isolated)
    (iso_position,) = await iso_client.fetch_positions([BTC])
    assert iso_position["liquidationPrice"] == 55220.88
    (cross_position,) = await clients.async_(cross).fetch_positions([BTC])
    assert cross_position["liquidationPrice"] == 10070.28

    pro = clients.pro(isolated)
    await pro.load_markets()
    my_liquidations = asyncio.ensure_future(pro.watch_my_liquidations(BTC))

    async with aiohttp.ClientSession() as session:
        iso_ws = await private_stream(session, sim, isolated)
        cross_ws = await private_stream(session, sim, cross)
        public_ws = await session.ws_connect(f"{sim.url.replace('http', 'ws')}/ws/btcusdt@forceOrder")
        for _ in range(1000):
            if sim.server.ctx.hub.wants("btcusdt@forceOrder"):
                break
            await asyncio.sleep(0.005)

        # the book falls away and the mark follows: the isolated position is called, then liquidated
        await sim.market([{"type": "book", "symbol": "BTCUSDT", "bids": [["54000", "5"]], "asks": [["54010", "5"]]},
                          {"type": "mark", "symbol": "BTCUSDT", "price": "57000"},
                          {"type": "mark", "symbol": "BTCUSDT", "price": "55250"}])
        frames = await frames_until(iso_ws, "MARGIN_CALL")
        call = frames[-1]
        assert call["p"][0]["s"] == "BTCUSDT" and call["p"][0]["mt"] == "ISOLATED" and call["p"][0]["mp"] == "55250.00"
        assert "cw" not in call
        await sim.market([{"type": "mark", "symbol": "BTCUSDT", "price": "55000"}])
        frames = await frames_until(iso_ws, "ACCOUNT_UPDATE")
        while not any(is_liquidation_fill(f) for f in frames):
            frames += await frames_until(iso_ws, "ORDER_TRADE_UPDATE")
        liquidation = next(f for f in frames if is_liquidation_fill(f))
        assert liquidation["o"]["c"].startswith("autoclose-") and liquidation["o"]["S"] == "SELL"
        assert liquidation["o"]["z"] == "0.020"
        force_order = json.loads((await public_ws.receive(BOUND)).data)  # the public liquidation stream
        assert force_order["e"] == "forceOrder" and force_order["o"]["q"] == "0.020" and force_order["o"]["S"] == "SELL"
        await public_ws.close()
        got = await asyncio.wait_for(my_liquidations, BOUND)
        assert got[-1]["symbol"] == BTC and got[-1]["contracts"] == 0.02

        assert await iso_client.fetch_positions([BTC]) == []
        (forced,) = await iso_client.fetch_my_liquidations(BTC)
        assert forced["contracts"] == 0.02 and forced["side"] == "sell"
        ranks = await clients.async_(cross).fetch_positions_adl_rank([BTC])
        assert ranks[0]["symbol"] == BTC and 0 <= ranks[0]["rank"] <= 5
        balance = await iso_client.fetch_balance()
        assert balance["USDT"]["total"] == pytest.approx(899.4)  # 1,000 − 100 margin − 0.60 fee: untouched
        (cross_position,) = await clients.async_(cross).fetch_positions([BTC])
        assert cross_position["contracts"] == 0.02  # cross survives the same move

        # the move continues (a deliberate crash, past the bad-tick band): now the cross account is
        # called and loses (almost) everything
        await sim.market([{"type": "book", "symbol": "BTCUSDT", "bids": [["9000", "5"]], "asks": [["9010", "5"]]},
                          {"type": "mark", "symbol": "BTCUSDT", "price": "10075"}], force=True)
        frames = await frames_until(cross_ws, "MARGIN_CALL")
        assert frames[-1]["cw"] == "999.40000000" and frames[-1]["p"][0]["mt"] == "CROSSED"
        await sim.market([{"type": "mark", "symbol": "BTCUSDT", "price": "10000"}])
        frames = await frames_until(cross_ws, "ORDER_TRADE_UPDATE")
        while not any(is_liquidation_fill(f) for f in frames):
            frames += await frames_until(cross_ws, "ORDER_TRADE_UPDATE")
        await iso_ws.close()
        await cross_ws.close()

    cross_balance = await clients.async_(cross).fetch_balance()
    assert cross_balance["USDT"]["total"] < 1
    assert sim.exchange.account_view(isolated["accountId"]).wallet_balance == 89940000000

    # the instructor's event log tells the same story, in order, per account
    for account in (isolated, cross):
        status, log = await sim.admin("GET", f"/sim/v1/events?account={account['accountId']}&type=MarginCall,Liquidation")
        assert status == 200
        kinds = [(e["type"], e.get("level")) for e in log["events"]]
        assert ("MarginCall", "MARGIN_CALL") in kinds and kinds[-1][0] == "Liquidation"
        assert kinds.index(("MarginCall", "MARGIN_CALL")) < len(kinds) - 1
        assert all(e["account"] == account["accountId"] for e in log["events"])
    status, fund = await sim.admin("GET", "/sim/v1/insurance-fund")
    assert status == 200 and fund["recentChanges"]


async def test_lesson_config_is_the_documented_one(sim):
    """The ccxt config used by every API test is exactly binance-api.md's (plus local-only extras)."""
    cfg = ccxt_config(sim.url, "k", "s")
    assert cfg["options"] == {"fetchCurrencies": False, "fetchOpenOrders": {"warnWithoutSymbol": False}}
    assert cfg["urls"]["api"]["fapiPrivateV3"] == sim.url + "/fapi/v3"
    assert cfg["urls"]["api"]["ws"] == {"linear": sim.url.replace("http", "ws") + "/ws"}
    assert cfg["enableRateLimit"] is False

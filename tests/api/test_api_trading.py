"""Trading and account calls through the real ccxt clients, and the exceptions a real venue causes."""

from __future__ import annotations

import asyncio

import ccxt
import pytest

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"


async def flat_book(sim, symbol="BTCUSDT", bid="59990", ask="60000", mark="60000", qty="20"):
    await sim.market([{"type": "book", "symbol": symbol, "bids": [[bid, qty]], "asks": [[ask, qty]]},
                      {"type": "mark", "symbol": symbol, "price": mark, "index": mark}])


async def test_balance_sync_and_async(market, clients, sim):
    alice = await sim.create_account("alice", deposit="12345.5")
    sync_balance = await asyncio.to_thread(clients.sync(alice).fetch_balance)
    async_balance = await clients.async_(alice).fetch_balance()
    for balance in (sync_balance, async_balance):
        assert balance["USDT"] == {"free": 12345.5, "used": 0.0, "total": 12345.5}


async def test_settings_position_mode_margin_mode_leverage(market, clients, sim):
    alice = await sim.create_account("alice", deposit="10000")
    client = clients.async_(alice)
    await client.load_markets()
    assert (await client.set_position_mode(True))["code"] == 200
    assert (await client.fetch_position_mode())["hedged"] is True
    with pytest.raises(ccxt.OperationRejected):  # -4059 no need to change position side
        await client.set_position_mode(True)
    await client.set_position_mode(False)
    assert (await client.set_margin_mode("isolated", BTC))["code"] == 200
    with pytest.raises(ccxt.MarginModeAlreadySet):
        await client.set_margin_mode("isolated", BTC)
    assert (await client.set_leverage(50, BTC))["leverage"] == 50
    with pytest.raises(ccxt.BadRequest):  # -4028
        await client.fapiPrivatePostLeverage({"symbol": "BTCUSDT", "leverage": 126})
    assert market.exchange.leverage(alice["accountId"], "BTCUSDT") == 50
    assert market.exchange.is_isolated(alice["accountId"], "BTCUSDT")


async def test_isolated_liquidation_prices_match_the_margin_rules_vectors(sim, clients):
    """margin-rules.md vector A: isolated, EP 60,000, isolated wallet = IM."""
    cases = [("buy", 10, 1, 54221.11), ("buy", 50, 1, 59045.23), ("buy", 10, 0.5, 54216.87),
             ("sell", 10, 1, 65721.39), ("sell", 50, 1, 60945.27)]
    for side, leverage, qty, expected in cases:
        account = await sim.create_account(f"{side}{leverage}", deposit="100000")
        await flat_book(sim, bid="60000", ask="60000")
        client = clients.async_(account)
        await client.load_markets()
        await client.set_margin_mode("isolated", BTC)
        await client.set_leverage(leverage, BTC)
        await client.create_order(BTC, "market", side, qty)
        (position,) = await client.fetch_positions([BTC])
        assert position["entryPrice"] == 60000
        assert position["marginMode"] == "isolated"
        assert position["liquidationPrice"] == expected, (side, leverage, qty)
        assert position["collateral"] == 60000 * qty / leverage


async def test_cross_liquidation_prices_match_the_margin_rules_vector(sim, clients):
    """margin-rules.md vector B: cross WB 10,000, BTC long 1 @ 60,000, ETH short 10 @ 3,000."""
    account = await sim.create_account("cross", deposit="10045")  # 30 + 15 taker fees leave WB = 10,000
    await flat_book(sim, bid="60000", ask="60000")
    await flat_book(sim, "ETHUSDT", bid="3000", ask="3000", mark="3000", qty="100")
    client = clients.async_(account)
    await client.create_order(BTC, "market", "buy", 1)
    await client.create_order(ETH, "market", "sell", 10)
    await sim.market([{"type": "mark", "symbol": "BTCUSDT", "price": "58000"},
                      {"type": "mark", "symbol": "ETHUSDT", "price": "3150"}])
    balance = await client.fetch_balance()
    assert balance["USDT"]["total"] == 6500  # margin balance: 10,000 − 2,000 − 1,500
    positions = {p["symbol"]: p for p in await client.fetch_positions()}
    assert positions[BTC]["liquidationPrice"] == 51835.18
    assert positions[ETH]["liquidationPrice"] == 3760.96
    assert positions[BTC]["marginMode"] == "cross" and positions[ETH]["side"] == "short"
    await sim.market([{"type": "mark", "symbol": "ETHUSDT", "price": "3400"}])
    positions = {p["symbol"]: p for p in await client.fetch_positions()}
    assert positions[BTC]["liquidationPrice"] == 54357.79


async def test_add_and_reduce_isolated_margin(market, clients, sim):
    alice = await sim.create_account("alice", deposit="100000")
    await flat_book(sim, bid="60000", ask="60000")
    client = clients.async_(alice)
    await client.load_markets()
    with pytest.raises(ccxt.OperationRejected):  # -4054 no position
        await client.add_margin(BTC, 100)
    await client.set_margin_mode("isolated", BTC)
    await client.set_leverage(10, BTC)
    await client.create_order(BTC, "market", "buy", 1)
    added = await client.add_margin(BTC, 100)
    assert added["type"] == "add" and added["amount"] == 100 and added["status"] == "ok"
    (position,) = await client.fetch_positions()
    assert position["collateral"] == 6100 and position["liquidationPrice"] < 54221.11
    reduced = await client.reduce_margin(BTC, 100)
    assert reduced["type"] == "reduce"
    with pytest.raises(ccxt.InsufficientFunds):  # -4051 would leave too little
        await client.reduce_margin(BTC, 5999)
    with pytest.raises(ccxt.InsufficientFunds):  # -4050 cross wallet cannot cover
        await client.add_margin(BTC, 1_000_000)


async def test_order_types_and_their_lifecycle(market, clients, sim):
    alice = await sim.create_account("alice", deposit="100000")
    client = clients.async_(alice)
    await client.load_markets()
    # market
    bought = await client.create_order(BTC, "market", "buy", 0.1)
    assert bought["status"] == "closed" and bought["filled"] == 0.1 and bought["average"] == 60010
    # limit resting, then cancel
    resting = await client.create_order(BTC, "limit", "buy", 0.01, 59000)
    assert resting["status"] == "open" and resting["price"] == 59000
    fetched = await client.fetch_order(resting["id"], BTC)
    assert fetched["id"] == resting["id"] and fetched["status"] == "open"
    assert [o["id"] for o in await client.fetch_open_orders(BTC)] == [resting["id"]]
    canceled = await client.cancel_order(resting["id"], BTC)
    assert canceled["status"] == "canceled"
    # post-only that would rest, and one that would take
    post = await client.create_order(BTC, "limit", "sell", 0.01, 61000, {"postOnly": True})
    assert post["postOnly"] is True and post["timeInForce"] == "PO"
    with pytest.raises(ccxt.OrderNotFillable):  # -5022
        await client.create_order(BTC, "limit", "buy", 0.01, 60010, {"postOnly": True})
    # reduce-only close
    closing = await client.create_order(BTC, "market", "sell", 0.05, None, {"reduceOnly": True})
    assert closing["reduceOnly"] is True and closing["status"] == "closed"
    with pytest.raises(ccxt.InvalidOrder):  # -2022 reduce-only would open
        await client.create_order(BTC, "limit", "buy", 0.01, 59000, {"reduceOnly": True})
    # conditional orders go through the algo endpoints
    stop = await client.create_order(BTC, "market", "sell", 0.05, None, {"stopPrice": 55000, "reduceOnly": True})
    assert stop["type"] == "market" and stop["triggerPrice"] == 55000 and stop["status"] == "open"
    take = await client.create_order(BTC, "market", "sell", 0.05, None, {"takeProfitPrice": 65000})
    assert take["takeProfitPrice"] == 65000
    stop_limit = await client.create_order(BTC, "limit", "sell", 0.05, 54900, {"stopPrice": 55000})
    assert stop_limit["price"] == 54900 and stop_limit["triggerPrice"] == 55000
    trailing = await client.create_order(BTC, "market", "sell", 0.05, None,
                                         {"trailingPercent": 1, "trailingTriggerPrice": 60500})
    assert trailing["info"]["orderType"] == "TRAILING_STOP_MARKET" and trailing["info"]["callbackRate"] == "1.0"
    algo_open = await client.fetch_open_orders(BTC, params={"trigger": True})
    assert {o["id"] for o in algo_open} == {stop["id"], take["id"], stop_limit["id"], trailing["id"]}
    assert [o["id"] for o in await client.fetch_open_orders(BTC)] == [post["id"]]
    one = await client.fetch_order(stop["id"], BTC, {"trigger": True})
    assert one["triggerPrice"] == 55000
    assert (await client.cancel_order(take["id"], BTC, {"trigger": True}))["info"]["msg"] == "success"
    with pytest.raises(ccxt.OrderImmediatelyFillable):  # -2021: a sell stop above the price
        await client.create_order(BTC, "market", "sell", 0.05, None, {"stopPrice": 70000, "reduceOnly": True})
    # the stop fires when the price falls through it
    await sim.market([{"type": "book", "symbol": "BTCUSDT", "bids": [["54800", "20"]], "asks": [["54810", "20"]]},
                      {"type": "trade", "symbol": "BTCUSDT", "price": "54800", "qty": "1", "side": "SELL"},
                      {"type": "mark", "symbol": "BTCUSDT", "price": "54800"}])
    fired = await client.fetch_order(stop["id"], BTC, {"trigger": True})
    assert fired["status"] == "closed" and fired["info"]["algoStatus"] == "TRIGGERED"
    # cancel everything that is left, both kinds
    await client.cancel_all_orders(BTC)
    await client.cancel_all_orders(BTC, {"trigger": True})
    assert await client.fetch_open_orders(BTC) == []
    assert await client.fetch_open_orders(BTC, params={"trigger": True}) == []
    closed = await client.fetch_closed_orders(BTC)
    assert {o["status"] for o in closed} <= {"closed", "canceled", "expired"} and len(closed) >= 3
    trades = await client.fetch_my_trades(BTC)
    assert trades[0]["order"] == bought["id"] and trades[0]["takerOrMaker"] == "taker"
    assert trades[0]["fee"]["currency"] == "USDT" and trades[0]["fee"]["cost"] == pytest.approx(3.0005)


async def test_hedged_orders(market, clients, sim):
    alice = await sim.create_account("alice", deposit="100000")
    client = clients.async_(alice)
    await client.load_markets()
    await client.set_position_mode(True)
    await client.create_order(BTC, "market", "buy", 0.1, None, {"hedged": True})
    await client.create_order(BTC, "market", "sell", 0.2, None, {"hedged": True})
    positions = {p["side"]: p for p in await client.fetch_positions([BTC])}
    assert positions["long"]["contracts"] == 0.1 and positions["short"]["contracts"] == 0.2
    assert positions["long"]["hedged"] and positions["short"]["hedged"]
    # a hedged close: ccxt flips to the leg's side and drops reduceOnly
    await client.create_order(BTC, "market", "sell", 0.1, None, {"hedged": True, "reduceOnly": True})
    sides = {p["side"] for p in await client.fetch_positions([BTC])}
    assert sides == {"short"}
    with pytest.raises(ccxt.OperationRejected):  # -4061 one-way order in hedge mode
        await client.create_order(BTC, "market", "buy", 0.1)
    with pytest.raises(ccxt.OperationRejected):  # -4068 mode change with a position
        await client.set_position_mode(False)


async def test_order_errors_raise_the_venue_exceptions(market, clients, sim):
    alice = await sim.create_account("alice", deposit="1000")
    client = clients.async_(alice)
    await client.load_markets()
    with pytest.raises(ccxt.InsufficientFunds):  # -2019
        await client.create_order(BTC, "market", "buy", 1)
    with pytest.raises(ccxt.InvalidOrder):  # -4164 notional too small
        await client.create_order(BTC, "limit", "buy", 0.001, 59000)
    with pytest.raises(ccxt.OrderNotFound):  # -2011
        await client.cancel_order("424242", BTC)
    with pytest.raises(ccxt.OrderNotFound):  # -2013
        await client.fetch_order("424242", BTC)
    with pytest.raises(ccxt.OrderNotFillable):  # -5021 FOK that cannot fill
        await client.create_order(BTC, "limit", "buy", 0.01, 59000, {"timeInForce": "FOK"})
    with pytest.raises(ccxt.BadRequest):  # -1116 invalid order type on the wire
        await client.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "BOGUS", "quantity": "1"})
    with pytest.raises(ccxt.BadRequest):  # -1102 missing quantity
        await client.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET"})
    with pytest.raises(ccxt.BadRequest):  # -1111 too many decimals
        await client.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.0001"})
    with pytest.raises(ccxt.BadRequest):  # -4014 off-tick price
        await client.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.01",
                                           "price": "59000.05", "timeInForce": "GTC"})
    with pytest.raises(ccxt.BadSymbol):
        await client.fapiPrivatePostOrder({"symbol": "XYZUSDT", "side": "BUY", "type": "MARKET", "quantity": "1"})
    await sim.market([{"type": "status", "symbol": "BTCUSDT", "stale": True, "reason": "feed down"}])
    with pytest.raises(ccxt.InvalidOrder):  # -2010 market data stale
        await client.create_order(BTC, "market", "buy", 0.002)
    assert sim.exchange.account_view(alice["accountId"]).wallet_balance == 1000 * 10**8
    assert sim.exchange.all_orders(alice["accountId"]) == []


async def test_income_and_positions_v2(market, clients, sim):
    alice = await sim.create_account("alice", deposit="100000")
    client = clients.async_(alice)
    await client.create_order(BTC, "market", "buy", 0.1)
    await sim.market([{"type": "funding", "symbol": "BTCUSDT", "rate": "0.0001"}])
    income = await client.fapiPrivateGetIncome({"symbol": "BTCUSDT"})
    kinds = {row["incomeType"] for row in income}
    assert {"COMMISSION", "FUNDING_FEE"} <= kinds
    v2 = await client.fapiPrivateV2GetPositionRisk({"symbol": "BTCUSDT"})
    assert v2[0]["marginType"] == "cross" and v2[0]["leverage"] == "20" and v2[0]["positionAmt"] == "0.100"
    positions = await client.fetch_positions(params={"useV2": True})
    assert positions[0]["leverage"] == 20 and positions[0]["contracts"] == 0.1
    by_account = await client.fetch_positions(params={"method": "account"})
    assert by_account[0]["contracts"] == 0.1 and by_account[0]["entryPrice"] == 60010
    assert by_account[0]["marginMode"] == "cross"


async def test_sync_client_trades_too(market, clients, sim):
    alice = await sim.create_account("alice", deposit="100000")
    client = clients.sync(alice)
    order = await asyncio.to_thread(client.create_order, BTC, "limit", "buy", 0.01, 59000)
    assert order["status"] == "open"
    fetched = await asyncio.to_thread(client.fetch_order, order["id"], BTC)
    assert fetched["id"] == order["id"]
    canceled = await asyncio.to_thread(client.cancel_order, order["id"], BTC)
    assert canceled["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        await asyncio.to_thread(client.cancel_order, order["id"], BTC)
    filled = await asyncio.to_thread(client.create_order, BTC, "market", "sell", 0.01)
    assert filled["status"] == "closed" and filled["average"] == 59990
    (position,) = await asyncio.to_thread(client.fetch_positions, [BTC])
    assert position["side"] == "short" and position["contracts"] == 0.01


async def test_a_stopped_node_answers_try_again_and_changes_nothing(market, clients, sim):
    alice = await sim.create_account("alice", deposit="100000")
    client = clients.async_(alice)
    await client.load_markets()
    await sim.node.stop()
    with pytest.raises(ccxt.OperationFailed, match="-1001"):  # the venue's "internal error, try again"
        await client.create_order(BTC, "limit", "buy", 0.01, 59000)
    assert sim.exchange.open_orders(alice["accountId"]) == []
    await sim.node.start()


async def test_batches_and_symbol_config(market, clients, sim):
    alice = await sim.create_account("alice", deposit="100000")
    client = clients.async_(alice)
    await client.load_markets()
    made = await client.create_orders([
        {"symbol": BTC, "type": "limit", "side": "buy", "amount": 0.01, "price": 59000},
        {"symbol": BTC, "type": "limit", "side": "buy", "amount": 0.01, "price": 59100},
        {"symbol": BTC, "type": "limit", "side": "buy", "amount": 1000, "price": 59100},  # too big: -2019 alone
    ])
    assert sorted(o["status"] for o in made) == ["open", "open", "rejected"]  # ccxt sorts by time
    ids = [o["id"] for o in made if o["status"] == "open"]
    canceled = await client.cancel_orders(ids + ["999999"], BTC)  # ccxt drops the -2011 item (no symbol)
    assert [o["status"] for o in canceled] == ["canceled", "canceled"]
    with pytest.raises(ccxt.OrderNotFound):  # a one-item batch answering [{"code": -2011, ...}]
        await client.cancel_orders(["999999"], BTC)
    assert await client.fetch_open_orders(BTC) == []
    await client.set_margin_mode("isolated", BTC)
    await client.set_leverage(7, BTC)
    leverages = await client.fetch_leverages([BTC])
    assert leverages[BTC]["longLeverage"] == 7 and leverages[BTC]["marginMode"] == "isolated"
    modes = await client.fetch_margin_modes([BTC])
    assert modes[BTC]["marginMode"] == "isolated"


async def test_close_position_stop_and_trailing_stop_fire(market, clients, sim):
    alice = await sim.create_account("alice", deposit="100000")
    client = clients.async_(alice)
    await client.load_markets()
    await client.create_order(BTC, "market", "buy", 0.2)
    close_all = await client.create_order(BTC, "market", "sell", None, None,
                                          {"stopPrice": 58000, "closePosition": True, "workingType": "MARK_PRICE"})
    assert close_all["info"]["closePosition"] is True and close_all["info"]["workingType"] == "MARK_PRICE"
    trailing = await client.create_order(BTC, "market", "sell", 0.1, None, {"trailingPercent": 1, "reduceOnly": True})
    # the price rises (the trailing stop follows), then falls 1% from the top: the trailing stop fires first
    await sim.market([{"type": "book", "symbol": "BTCUSDT", "bids": [["61990", "20"]], "asks": [["62000", "20"]]},
                      {"type": "trade", "symbol": "BTCUSDT", "price": "62000", "qty": "1", "side": "BUY"},
                      {"type": "book", "symbol": "BTCUSDT", "bids": [["61300", "20"]], "asks": [["61310", "20"]]},
                      {"type": "trade", "symbol": "BTCUSDT", "price": "61300", "qty": "1", "side": "SELL"}])
    fired = await client.fetch_order(trailing["id"], BTC, {"trigger": True})
    assert fired["status"] == "closed"
    (position,) = await client.fetch_positions([BTC])
    assert position["contracts"] == 0.1
    # the mark falls through the close-position stop: the rest of the position is closed
    await sim.market([{"type": "book", "symbol": "BTCUSDT", "bids": [["57900", "20"]], "asks": [["57910", "20"]]},
                      {"type": "mark", "symbol": "BTCUSDT", "price": "57950"}])
    assert await client.fetch_positions([BTC]) == []
    assert (await client.fetch_order(close_all["id"], BTC, {"trigger": True}))["status"] == "closed"


async def test_edit_order_moves_a_resting_limit(market, clients, sim):
    alice = await sim.create_account("alice", deposit="100000")
    await flat_book(sim)
    client = clients.async_(alice)
    await client.load_markets()
    order = await client.create_order(BTC, "limit", "buy", 0.5, 59000)
    edited = await client.edit_order(order["id"], BTC, "limit", "buy", 0.7, 59500)
    assert edited["id"] == order["id"] and edited["price"] == 59500 and edited["amount"] == 0.7
    (open_order,) = await client.fetch_open_orders(BTC)
    assert open_order["price"] == 59500
    with pytest.raises(ccxt.InsufficientFunds):
        await client.edit_order(order["id"], BTC, "limit", "buy", 500, 59500)
    with pytest.raises(ccxt.OrderNotFound):
        await client.edit_order("424242", BTC, "limit", "buy", 0.7, 59500)
    (still,) = await client.fetch_open_orders(BTC)
    assert still["price"] == 59500 and still["amount"] == 0.7

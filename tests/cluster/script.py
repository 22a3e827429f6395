"""One command script, run against a single node and against the cluster, and how to compare.

``run_script(venue)`` drives a venue with real ccxt clients (REST) and raw user-data websockets:
accounts (one a sub-account, funded by a transfer), a book and marks, market and limit orders,
a cancel, a resting order filled by a later market trade, an isolated 12x position called and
liquidated when the book falls away (the numbers of test_api_lesson), a reduce-only close.
Odd steps go through gateway 0, even ones through gateway 1 (a single node has one URL).

``normalised(body, names)`` makes two event logs comparable: account ids become names, order
ids, trade ids and client order ids become their order of first appearance per account (the
cluster numbers orders per shard, ccxt picks random client ids), timestamps go.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import ccxt.async_support as ccxt_async

from tests.support.api_ccxt import ccxt_config

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
ACCOUNT_FIELDS = ("account", "parent", "counterparty", "from_account", "to_account")
NUMBERED_FIELDS = ("order_id", "trade_id", "client_order_id")


@dataclass
class Venue:
    urls: list[str]
    admin_token: str
    session: aiohttp.ClientSession
    accounts: dict[str, dict] = field(default_factory=dict)
    clients: list = field(default_factory=list)
    step: int = 0

    def url(self) -> str:
        self.step += 1
        return self.urls[self.step % len(self.urls)]

    async def admin(self, method: str, path: str, body: Any = None, url: str | None = None) -> Any:
        async with self.session.request(method, (url or self.url()) + path, json=body,
                                        headers={"Authorization": f"Bearer {self.admin_token}"}) as r:
            data = await r.json()
            assert r.status == 200, (path, data)
            return data

    async def market(self, events: list) -> Any:
        return await self.admin("POST", "/sim/v1/market", {"events": events})

    async def client(self, name: str) -> Any:
        account = self.accounts[name]
        c = ccxt_async.binanceusdm(ccxt_config(self.url(), account["apiKey"], account["apiSecret"]))
        self.clients.append(c)
        await c.load_markets()
        return c

    async def close(self) -> None:
        for c in self.clients:
            await c.close()


async def private_stream(session: aiohttp.ClientSession, url: str, account: dict) -> Any:
    async with session.post(url + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": account["apiKey"]}) as resp:
        key = (await resp.json())["listenKey"]
    ws = await session.ws_connect(f"{url.replace('http', 'ws')}/private/ws?listenKey={key}")
    await asyncio.sleep(0.3)  # the server registers the stream right after the handshake
    return ws


async def drain(ws: Any, quiet: float = 1.0) -> list[dict]:
    frames = []
    while True:
        try:
            msg = await ws.receive(quiet)
        except asyncio.TimeoutError:
            return frames
        if msg.type != aiohttp.WSMsgType.TEXT:
            return frames
        frames.append(json.loads(msg.data))


async def run_script(v: Venue, names: list[str]) -> dict:
    """Run the script; what the clients saw (balances, positions, trades, user-stream frames)."""
    alice, bob, carol, dave = names  # carol is liquidated, dave has the sub-account
    for name, deposit in ((alice, "10000"), (bob, "10000"), (carol, "1000"), (dave, "5000")):
        v.accounts[name] = await v.admin("POST", "/sim/v1/accounts", {"name": name, "deposit": deposit})
    sub = f"{dave}-sub"
    v.accounts[sub] = await v.admin("POST", "/sim/v1/accounts",
                                    {"name": sub, "parent": v.accounts[dave]["accountId"]})
    await v.admin("POST", "/sim/v1/transfers", {"from": v.accounts[dave]["accountId"],
                                               "to": v.accounts[sub]["accountId"], "amount": "1000"})
    await v.market([{"type": "book", "symbol": "BTCUSDT", "bids": [["59990", "20"]], "asks": [["60000", "20"]]},
                    {"type": "mark", "symbol": "BTCUSDT", "price": "60000", "index": "60000"},
                    {"type": "book", "symbol": "ETHUSDT", "bids": [["2999", "500"]], "asks": [["3000", "500"]]},
                    {"type": "mark", "symbol": "ETHUSDT", "price": "3000", "index": "3000"}])
    stream_url = v.urls[-1]  # alice's and carol's user streams on the last gateway, their orders anywhere
    alice_ws = await private_stream(v.session, stream_url, v.accounts[alice])
    carol_ws = await private_stream(v.session, stream_url, v.accounts[carol])

    a = await v.client(alice)
    await a.set_leverage(10, BTC)
    await a.create_order(BTC, "market", "buy", 0.5)
    b = await v.client(bob)
    resting = await b.create_order(BTC, "limit", "sell", 0.1, 61000)
    assert len(await b.fetch_open_orders(BTC)) == 1
    await (await v.client(bob)).cancel_order(resting["id"], BTC)
    await (await v.client(bob)).create_order(ETH, "limit", "buy", 1, 2990)
    c = await v.client(carol)
    await c.set_margin_mode("isolated", BTC)
    await c.set_leverage(12, BTC)
    await c.create_order(BTC, "market", "buy", 0.02)
    s = await v.client(sub)
    await s.create_order(BTC, "market", "sell", 0.01)
    await (await v.client(dave)).create_order(ETH, "market", "sell", 2)

    # the public liquidation stream and mark price stream, on the first gateway
    public_ws = await v.session.ws_connect(f"{v.urls[0].replace('http', 'ws')}/ws/btcusdt@forceOrder/btcusdt@markPrice")
    await asyncio.sleep(0.3)
    # a market trade through bob's resting ETH bid fills it
    await v.market([{"type": "trade", "symbol": "ETHUSDT", "price": "2990", "qty": "5", "side": "SELL"}])
    # the book falls away and the mark follows: carol is called, then liquidated
    await v.market([{"type": "book", "symbol": "BTCUSDT", "bids": [["54000", "5"]], "asks": [["54010", "5"]]},
                    {"type": "mark", "symbol": "BTCUSDT", "price": "57000"},
                    {"type": "mark", "symbol": "BTCUSDT", "price": "55250"}])
    await v.market([{"type": "mark", "symbol": "BTCUSDT", "price": "55000"}])
    await (await v.client(alice)).create_order(BTC, "market", "sell", 0.5, params={"reduceOnly": True})

    seen: dict[str, Any] = {}
    for name in (alice, bob, carol, dave, sub):
        cl = await v.client(name)
        balance = await cl.fetch_balance()
        positions = await cl.fetch_positions([BTC, ETH])
        trades = await cl.fetch_my_trades(BTC) + await cl.fetch_my_trades(ETH)
        seen[name] = {
            "balance": balance["USDT"],
            "positions": sorted((p["symbol"], p["contracts"], p["entryPrice"], p["liquidationPrice"], p["marginMode"])
                                for p in positions if p["contracts"]),
            "trades": sorted((t["symbol"], t["side"], t["price"], t["amount"], t["fee"]["cost"]) for t in trades),
        }
    seen["public-stream"] = [frame_shape(f) for f in await drain(public_ws)]
    await public_ws.close()
    seen["alice-stream"] = [frame_shape(f) for f in await drain(alice_ws)]
    seen["carol-stream"] = [frame_shape(f) for f in await drain(carol_ws)]
    await alice_ws.close()
    await carol_ws.close()
    return seen


def frame_shape(frame: dict) -> tuple:
    """What a user-data frame says, without times and ids."""
    kind = frame.get("e")
    if kind == "ORDER_TRADE_UPDATE":
        o = frame["o"]
        return (kind, o["s"], o["S"], o["o"], o["X"], o["x"], o["q"], o["z"], o["ap"], o["L"])
    if kind == "ACCOUNT_UPDATE":
        a = frame["a"]
        return (kind, a["m"], tuple((b["a"], b["wb"], b["cw"]) for b in a["B"]),
                tuple((p["s"], p["pa"], p["ep"]) for p in a["P"]))
    if kind == "forceOrder":
        o = frame["o"]
        return (kind, o["s"], o["S"], o["q"], o["ap"], o["X"])
    if kind == "markPriceUpdate":
        return (kind, frame["s"], frame["p"])
    if kind == "MARGIN_CALL":
        return (kind, tuple((p["s"], p["mp"]) for p in frame["p"]))
    return (kind,)


def normalised(events: list[dict], names: dict[int, str]) -> list[dict]:
    """One account's event log with ids renumbered and accounts named (see module doc)."""
    numbering: dict[tuple[str, Any], int] = {}
    out = []
    for body in events:
        row = {k: v for k, v in body.items() if k not in ("ts", "seq")}
        for f in ACCOUNT_FIELDS:
            if isinstance(row.get(f), int):
                row[f] = names[row[f]]
        for f in NUMBERED_FIELDS:
            value = row.get(f)
            if value in (None, 0, ""):
                continue
            kind = "order" if f != "trade_id" else "trade"
            row[f] = numbering.setdefault((kind, value), len(numbering) + 1)
        out.append(row)
    return out

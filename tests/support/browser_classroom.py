"""A real node with a small class for dashboard tests: teacher account, three students with BTC longs.

    async with classroom(admin_token="...") as room:   # room.node, room.base_url, room.ids
        ...
        await room.move("BTCUSDT", "49700")            # book + mark + trade at a new price
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from exchange_sim.core import messages as m
from exchange_sim.core.exchange import Exchange, ExchangeConfig
from exchange_sim.core.fixed import to_fixed
from exchange_sim.dashboard import make_app
from exchange_sim.profiles import load_profile
from exchange_sim.runtime.node import Node

TS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DEEP = to_fixed("1000")


@dataclass
class Classroom:
    node: Node
    base_url: str
    ids: dict[str, int]
    ts: int = TS

    async def move(self, symbol: str, price: str) -> list[Any]:
        """Move a symbol's book, last price and mark to ``price``; returns the core's events."""
        self.ts += 1000
        p = to_fixed(price)
        tick = self.node.exchange.instruments[symbol].tick_size
        events = await self.node.submit(m.BookSnapshot(ts=self.ts, symbol=symbol, bids=((p, DEEP),),
                                                       asks=((p + tick, DEEP),), update_id=self.ts))
        events += await self.node.submit(m.Trade(ts=self.ts, symbol=symbol, price=p, qty=to_fixed("0.01"),
                                                 taker_side=m.SELL))
        events += await self.node.submit(m.MarkPrice(ts=self.ts, symbol=symbol, mark=p))
        return events

    async def command(self, msg: Any) -> list[Any]:
        events = await self.node.submit(msg)
        rejected = [e for e in events if isinstance(e, m.CommandRejected)]
        assert not rejected, rejected
        return events


async def _open(room: Classroom, name: str, parent: int, *, isolated: bool, leverage: int, qty: str,
                side: str = m.BUY, deposit: str = "1000") -> int:
    events = await room.command(m.CreateAccount(ts=room.ts, name=name, parent=parent, deposit=to_fixed(deposit),
                                                api_key=f"key-{name}", api_secret=f"secret-{name}"))
    aid = next(e.account for e in events if isinstance(e, m.AccountCreated))
    if isolated:
        await room.command(m.SetMarginType(ts=room.ts, account=aid, symbol="BTCUSDT", isolated=True))
    await room.command(m.SetLeverage(ts=room.ts, account=aid, symbol="BTCUSDT", leverage=leverage))
    await room.command(m.PlaceOrder(ts=room.ts, account=aid, symbol="BTCUSDT", side=side, order_type=m.MARKET,
                                    qty=to_fixed(qty)))
    return aid


@contextlib.asynccontextmanager
async def classroom(*, admin_token: str | None = "teacher-token-123", push_interval: float = 0.05,
                    lessons: bool = True) -> AsyncIterator[Classroom]:
    node = Node(Exchange(load_profile(), ExchangeConfig()))
    await node.start()
    app = make_app(node, admin_token=admin_token, push_interval=push_interval, shock_moves_book=True,
                   lessons=lessons)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    room = Classroom(node, f"http://127.0.0.1:{port}", {})
    try:
        for _ in range(3):
            await room.move("BTCUSDT", "50000")
            await room.move("ETHUSDT", "3000")
        events = await room.command(m.CreateAccount(ts=room.ts, name="teacher", deposit=0, api_key="key-teacher",
                                                    api_secret="secret-teacher"))
        teacher = next(e.account for e in events if isinstance(e, m.AccountCreated))
        room.ids["teacher"] = teacher
        room.ids["alice"] = await _open(room, "alice", teacher, isolated=True, leverage=125, qty="0.25")
        room.ids["bob"] = await _open(room, "bob", teacher, isolated=False, leverage=125, qty="0.25")
        room.ids["carol"] = await _open(room, "carol", teacher, isolated=False, leverage=10, qty="0.1",
                                        side=m.SELL)
        await room.move("BTCUSDT", "49950")
        yield room
    finally:
        await runner.cleanup()
        await node.stop()

"""Play a lesson on a running simulator, so a class watches it on the dashboard.

    played = play_live(lesson_scenario("cross-vs-isolated"), SimClient(url, token), step_seconds=1.0)

A live lesson never moves the live market: it plays on the simulator's lesson instruments
(``LESSONBTCUSDT``, ``LESSONETHUSDT``: clones of the real symbols that no feed touches), and a
simulator without them is refused unless its feed is ``manual`` (then nothing else moves the
real symbols). It uses only the stable contracts: the admin API (``POST /sim/v1/accounts``,
``POST /sim/v1/market``) to create the lesson's accounts and move the lesson's market, and the
Binance-compatible REST API with each account's own key (``exchange_sim.client``) to set margin
type and leverage and to open the positions. At the end it closes the lesson's positions
(``reset``; ``keep=True`` leaves them for the class to look at); it creates no parent account.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from exchange_sim.client import Credentials, SimApiError, SimClient

from .scenario import LessonError, Scenario, on_lesson_symbols

DEEP_QTY = "1000000"
AdminApiError = SimApiError  # the name the dashboard's lesson player raises


@dataclass(frozen=True, slots=True)
class Played:
    """What a live lesson left: its accounts by label and the symbols it played on."""

    accounts: dict[str, Credentials]
    symbols: tuple[str, ...]


def _book(symbol: str, bid: str, ask: str) -> dict[str, Any]:
    return {"type": "book", "symbol": symbol, "bids": [[bid, DEEP_QTY]], "asks": [[ask, DEEP_QTY]]}


def _plus_tick(price: str, tick: str) -> str:
    from decimal import Decimal

    return str(Decimal(price) + Decimal(tick))


def live_scenario(scenario: Scenario, client: SimClient) -> tuple[Scenario, dict[str, str]]:
    """The scenario on the server's lesson instruments (or its real symbols on a manual feed), and ticks."""
    info = client.public("/fapi/v1/exchangeInfo")
    ticks = {s["symbol"]: next(f["tickSize"] for f in s["filters"] if f["filterType"] == "PRICE_FILTER")
             for s in info["symbols"]}
    cloned = on_lesson_symbols(scenario)
    if all(s in ticks for s in cloned.start_prices):
        return cloned, ticks
    try:
        feed = (client.dashboard_state() or {}).get("feed")
    except SimApiError:  # no dashboard: the feed is unknown, so it may be live
        feed = None
    if feed == "manual":
        return scenario, ticks
    raise LessonError(f"{client.base_url} has no lesson instruments ({', '.join(cloned.start_prices)}) and its feed "
                      f"is {feed or 'unknown'}: the lesson would move the live market; restart it with --fresh "
                      "(a new session has them) or with --feed manual")


def play_live(scenario: Scenario, client: SimClient, *, step_seconds: float = 1.0, keep: bool = False,
              on_step: Callable[[int, dict[str, str]], None] | None = None,
              sleep: Callable[[float], None] = time.sleep) -> Played:
    """Create the lesson's accounts on the server, open their positions, play the path, clean up."""
    scenario, ticks = live_scenario(scenario, client)
    sells = {pp.symbol for a in scenario.accounts for pp in a.positions if pp.side == "SELL"}
    start = []
    for symbol, price in sorted(scenario.start_prices.items()):
        tick = ticks[symbol]
        if symbol in sells:
            start.append(_book(symbol, price, _plus_tick(price, tick)))
        else:
            start.append(_book(symbol, _plus_tick(price, "-" + tick), price))
        start.append({"type": "mark", "symbol": symbol, "price": price})
    client.market(start, force=True)  # the lesson sets its own market, wherever the session was

    creds: dict[str, Credentials] = {}
    for plan in scenario.accounts:
        c = client.create_account(plan.label, plan.deposit)
        creds[plan.label] = c
        for pos in plan.positions:
            if pos.isolated:
                client.signed(c, "POST", "/fapi/v1/marginType", {"symbol": pos.symbol, "marginType": "ISOLATED"})
            client.signed(c, "POST", "/fapi/v1/leverage", {"symbol": pos.symbol, "leverage": pos.leverage})
            client.signed(c, "POST", "/fapi/v1/order", {"symbol": pos.symbol, "side": pos.side, "type": "MARKET",
                                                         "quantity": pos.qty})
    for step, prices in enumerate(scenario.path, start=1):
        sleep(step_seconds)
        events = []
        for symbol, price in sorted(prices.items()):
            events.append(_book(symbol, price, _plus_tick(price, ticks[symbol])))
            events.append({"type": "mark", "symbol": symbol, "price": price})
            events.append({"type": "trade", "symbol": symbol, "price": price, "qty": "0.001", "side": "SELL"})
        client.market(events, force=True)  # a scripted move, however steep, is deliberate
        if on_step is not None:
            on_step(step, prices)
    if not keep:
        for c in creds.values():
            client.reset(c.account)
    return Played(creds, tuple(sorted(scenario.start_prices)))


async def play_on_node(scenario: Scenario, node: Any, *, step_seconds: float = 1.0,
                       now_ms: Callable[[], int] | None = None,
                       pause: Callable[[float], Awaitable[Any]] | None = None) -> dict[str, int]:
    """Play ``scenario`` straight into a running node (the dashboard's "play lesson" button).

    Creates one account per lesson account (keys generated here, outside the core), opens the
    positions against a one-level book at the start prices, then moves book, last price and mark
    along the path, ``step_seconds`` apart. It replaces the books of the scenario's symbols: give
    it the lesson instruments (``on_lesson_symbols``) unless the feed is manual. Returns {label: id}.
    """
    import asyncio
    import secrets

    from exchange_sim.core import messages as m
    from exchange_sim.core.fixed import to_fixed

    from .scenario import DEEP, step_book

    clock = now_ms or (lambda: int(time.time() * 1000))
    wait = pause or asyncio.sleep
    instruments = node.exchange.instruments

    async def command(msg: Any) -> list[Any]:
        events = await node.submit(msg)
        rejected = [e for e in events if isinstance(e, m.CommandRejected)]
        if rejected:
            raise AdminApiError(f"lesson {scenario.name}: {type(msg).__name__} rejected: "
                                f"{rejected[0].code} {rejected[0].msg}")
        return events

    async def new_account(name: str, deposit: str, parent: int | None) -> int:
        events = await command(m.CreateAccount(ts=clock(), name=name, parent=parent, deposit=to_fixed(deposit),
                                               api_key=secrets.token_hex(32), api_secret=secrets.token_hex(32)))
        return next(e.account for e in events if isinstance(e, m.AccountCreated))

    sells = {pp.symbol for a in scenario.accounts for pp in a.positions if pp.side == m.SELL}
    for symbol, text in sorted(scenario.start_prices.items()):
        p, tick = to_fixed(text), instruments[symbol].tick_size
        bids, asks = (((p, DEEP),), ((p + tick, DEEP),)) if symbol in sells else (((p - tick, DEEP),), ((p, DEEP),))
        await node.submit(m.BookSnapshot(ts=clock(), symbol=symbol, bids=bids, asks=asks,
                                         update_id=node.exchange.market(symbol).book_update_id + 1))
        await node.submit(m.MarkPrice(ts=clock(), symbol=symbol, mark=p))
    ids: dict[str, int] = {}
    for plan in scenario.accounts:
        aid = ids[plan.label] = await new_account(plan.label, plan.deposit, None)
        for pos in plan.positions:
            if pos.isolated:
                await command(m.SetMarginType(ts=clock(), account=aid, symbol=pos.symbol, isolated=True))
            await command(m.SetLeverage(ts=clock(), account=aid, symbol=pos.symbol, leverage=pos.leverage))
            await command(m.PlaceOrder(ts=clock(), account=aid, symbol=pos.symbol, side=pos.side,
                                       order_type=m.MARKET, qty=to_fixed(pos.qty)))
    for prices in scenario.path:
        await wait(step_seconds)
        for symbol, text in sorted(prices.items()):
            price, ts = to_fixed(text), clock()
            bids, asks = step_book(price, instruments[symbol])
            await node.submit(m.BookSnapshot(ts=ts, symbol=symbol, bids=bids, asks=asks,
                                             update_id=node.exchange.market(symbol).book_update_id + 1))
            await node.submit(m.Trade(ts=ts, symbol=symbol, price=price, qty=to_fixed("0.001"), taker_side=m.SELL))
            await node.submit(m.MarkPrice(ts=ts, symbol=symbol, mark=price))
    return ids

"""A seeded trading session for journal tests: accounts, books, trades, marks, orders, a crash.

``session_inputs(seed, n)`` gives the same list of core inputs for the same arguments: three
accounts (two of them leveraged enough to be liquidated when the price drops 12% mid-session),
book snapshots and deltas, public trades, mark prices, funding, limit/market/stop orders and
cancels. ``observable_state(ex)`` is everything a client can read, for equality checks.
"""

from __future__ import annotations

import random
from typing import Any

from exchange_sim.core.exchange import Exchange, ExchangeConfig
from exchange_sim.core.fixed import to_fixed
from exchange_sim.core.messages import (
    BookDelta,
    BookSnapshot,
    CancelAllOrders,
    CancelOrder,
    CreateAccount,
    Deposit,
    Funding,
    MarkPrice,
    PlaceOrder,
    SetLeverage,
    SetMarginType,
    MAIN_UMFUTURE,
    UMFUTURE_MAIN,
    Trade,
    UniversalTransfer,
)
from exchange_sim.profiles import load_profile

F = to_fixed
START_TS = 1_722_800_000_000
TICK = {"BTCUSDT": F("0.1"), "ETHUSDT": F("0.01")}
STEP = F("0.001")


def genesis() -> Exchange:
    """The exchange every test session starts from."""
    return Exchange(load_profile(), ExchangeConfig())


def _align(value: int, step: int) -> int:
    return value - value % step


def _book(ts: int, symbol: str, mid: int, rng: random.Random, update_id: int) -> BookSnapshot:
    tick = TICK[symbol]
    bids = tuple((_align(mid, tick) - (i + 1) * tick * 5, F(str(rng.randint(1, 9)))) for i in range(5))
    asks = tuple((_align(mid, tick) + (i + 1) * tick * 5, F(str(rng.randint(1, 9)))) for i in range(5))
    return BookSnapshot(ts, symbol, bids, asks, update_id)


def _price_path(rng: random.Random, start: int, n: int, tick: int) -> list[int]:
    """A random walk with a 12% slide between 40% and 55% of the session and a partial recovery."""
    prices, p = [], start
    for i in range(n):
        frac = i / max(n, 1)
        drift = -0.0085 if 0.40 <= frac < 0.55 else (0.003 if 0.55 <= frac < 0.7 else 0.0)
        p = int(p * (1 + drift + rng.uniform(-0.0015, 0.0015)))
        prices.append(_align(p, tick))
    return prices


def session_inputs(seed: int, n: int = 300) -> list[Any]:
    """``n`` market events and commands (plus the opening ones), reproducible from ``seed``."""
    rng = random.Random(seed)
    ts = START_TS
    out: list[Any] = []

    def tick_ts() -> int:
        nonlocal ts
        ts += rng.randint(1, 400)
        return ts

    paths = {"BTCUSDT": _price_path(rng, F("60000"), n, TICK["BTCUSDT"]),
             "ETHUSDT": _price_path(rng, F("3000"), n, TICK["ETHUSDT"])}
    update_id = 1000
    for symbol in paths:
        out.append(_book(tick_ts(), symbol, paths[symbol][0], rng, update_id))
        out.append(MarkPrice(tick_ts(), symbol, paths[symbol][0]))
    for i, (deposit, leverage, isolated) in enumerate((("2000", 50, False), ("1500", 40, True), ("50000", 5, False))):
        out.append(CreateAccount(tick_ts(), f"trader{i + 1}", None, F(deposit), f"key-{seed}-{i}", f"secret-{seed}-{i}"))
        for symbol in paths:
            if isolated:
                out.append(SetMarginType(tick_ts(), i + 1, symbol, True))
            out.append(SetLeverage(tick_ts(), i + 1, symbol, leverage))
    # the leveraged accounts open longs early, so the slide liquidates them
    out.append(PlaceOrder(tick_ts(), 1, "BTCUSDT", "BUY", "MARKET", qty=F("0.3")))
    out.append(PlaceOrder(tick_ts(), 2, "ETHUSDT", "BUY", "MARKET", qty=F("5")))
    out.append(PlaceOrder(tick_ts(), 3, "BTCUSDT", "SELL", "MARKET", qty=F("0.2")))
    placed = 3
    for i in range(n):
        symbol = rng.choice(("BTCUSDT", "ETHUSDT"))
        price = paths[symbol][i]
        tick = TICK[symbol]
        roll = rng.random()
        if roll < 0.25:
            out.append(MarkPrice(tick_ts(), symbol, price))
        elif roll < 0.40:
            out.append(Trade(tick_ts(), symbol, price, F("0.5"), rng.choice(("BUY", "SELL")), 10_000 + i))
        elif roll < 0.50:
            update_id += 1
            out.append(_book(tick_ts(), symbol, price, rng, update_id))
        elif roll < 0.58:
            update_id += 1
            level = (_align(price, tick) - tick * 5 * rng.randint(1, 5), F(str(rng.randint(0, 9))))
            out.append(BookDelta(tick_ts(), symbol, (level,), (), update_id, update_id, update_id - 1))
        elif roll < 0.78:
            account = rng.randint(1, 3)
            side = rng.choice(("BUY", "SELL"))
            qty = STEP * rng.randint(1, 40) if symbol == "BTCUSDT" else STEP * rng.randint(10, 900)
            kind = rng.random()
            if kind < 0.5:
                offset = tick * rng.randint(1, 60)
                limit = price - offset if side == "BUY" else price + offset
                out.append(PlaceOrder(tick_ts(), account, symbol, side, "LIMIT", qty=qty, price=limit,
                                      client_order_id=f"c{seed}-{i}"))
            elif kind < 0.8:
                out.append(PlaceOrder(tick_ts(), account, symbol, side, "MARKET", qty=qty))
            else:
                stop = price - tick * 200 if side == "SELL" else price + tick * 200
                out.append(PlaceOrder(tick_ts(), account, symbol, side, "STOP_MARKET", qty=qty, stop_price=stop,
                                      working_type="MARK_PRICE"))
            placed += 1
        elif roll < 0.86:
            out.append(CancelOrder(tick_ts(), rng.randint(1, 3), symbol, order_id=rng.randint(1, placed)))
        elif roll < 0.89:
            out.append(CancelAllOrders(tick_ts(), rng.randint(1, 3), symbol))
        elif roll < 0.92:
            account, amount = rng.randint(1, 3), F(str(rng.randint(10, 300)))
            if i % 2 == 0:
                out.append(Deposit(tick_ts(), account, amount))
            else:  # futures -> spot wallet and back (refused when the source cannot pay)
                out.append(UniversalTransfer(tick_ts(), account, UMFUTURE_MAIN if i % 4 == 1 else MAIN_UMFUTURE, amount))
        elif roll < 0.94:
            out.append(Funding(tick_ts(), symbol, F(rng.choice(("0.0001", "-0.0002", "0.0005")))))
        else:
            out.append(MarkPrice(tick_ts(), symbol, price))
    return out


def observable_state(ex: Exchange) -> Any:
    """What clients can read: accounts, positions, orders, trades, income, spot wallet, markets, books, fund."""
    accounts = []
    for aid in ex.account_ids():
        accounts.append((aid, ex.account_view(aid), ex.positions(aid), ex.open_orders(aid), ex.all_orders(aid),
                         ex.trades(aid), ex.income(aid), ex.hedge_mode(aid), ex.spot_wallet(aid),
                         [(s, ex.leverage(aid, s), ex.is_isolated(aid, s)) for s in sorted(ex.instruments)]))
    markets = [(ex.market(s), ex.book_levels(s, 50)) for s in sorted(ex.instruments)]
    return accounts, markets, ex.insurance_fund


def run_journaled(journal: Any, exchange: Exchange, inputs: list[Any], *, flush: bool = False) -> list[Any]:
    """What the node does per input: journal, apply, record (``flush``: and commit, as a lone client's
    input is; needed with group commit). Returns every event, in order."""
    events: list[Any] = []
    for msg in inputs:
        journal.append(msg)
        caused = exchange.apply(msg)
        journal.record(msg, caused)
        if flush:
            journal.flush()
        events.extend(caused)
    return events


def reference_run(inputs: list[Any]) -> tuple[Exchange, list[Any]]:
    """The uninterrupted run: a fresh exchange, every input applied, no journal."""
    exchange = genesis()
    events: list[Any] = []
    for msg in inputs:
        events.extend(exchange.apply(msg))
    return exchange, events


async def start_journaled_node(journal: Any) -> tuple[Any, Any]:
    """Recover ``journal`` (genesis for a new file), attach it to a started node: (exchange, node)."""
    from exchange_sim.journal import recover
    from exchange_sim.runtime.node import Node

    exchange, _ = recover(journal, genesis)
    node = Node(exchange, journal)
    node.add_listener(journal.record)
    await node.start()
    return exchange, node

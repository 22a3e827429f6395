"""Core throughput on a workload that exercises what it names. Prints one JSON line.

1. ``walk_one_account``: trade ticks on a random walk, p ← p·exp(N(0, 2·10⁻⁴)) from 60,000,
   random sizes and aggressor sides, and *only* trades (no MarkPrice), so the last price is the
   mark: every tick goes through resting-order matching, the trigger indexes and the margin
   monitor. One account holds a cross 20x long of 1 BTC with resting protective orders: a
   stop-market on the mark 3% below, a take-profit 3% above, and limit orders resting 0.5% on
   either side that trades fill. When the walk consumes them, a "strategy" step every 5,000
   ticks re-opens the position and re-places the orders (those commands are part of the
   workload and of the time). Events produced are reported by type.
2. ``walk_1000_accounts``: the same kind of walk through 1,000 accounts, mixed isolated and cross
   (every other account isolated), leverage 5-50x, long and short, sizes 0.01-0.5 BTC, one
   wallet each a little above its initial margin. Their liquidations (and margin calls) fire
   during the walk: the figure reports them, and the events by type.
3. ``raw_capture``: decoding the raw Binance capture in ../shared/data (depth diffs, trades, the
   REST snapshot) + applying it, one account holding 0.5 BTC; its trades mark the position.
4. ``order_commands``: submit a resting limit order and cancel the previous one, repeatedly.

If ``nautilus_trader`` is importable its reference figures (nautilus_reference.py, its own
workload) are printed alongside; no ratio is computed unless the workloads are the same.
"""

from __future__ import annotations

import gc
import math
import random
import time
from collections import Counter

from _common import SHARED_DATA, SMOKE, F, emit, exchange

from exchange_sim.core.messages import (
    BookSnapshot, CancelAllOrders, CancelOrder, CreateAccount, PlaceOrder, SetLeverage, SetMarginType, Trade,
)

SYM = "BTCUSDT"
TICK = F("0.1")
SIGMA = 2e-4


def walk(n: int, seed: int, start: float = 60_000.0, ts0: int = 1_000) -> list[Trade]:
    """``n`` trade ticks on p ← p·exp(N(0, σ)), 1 ms apart (built before timing)."""
    rng = random.Random(seed)
    p = start
    out = []
    for i in range(n):
        p *= math.exp(rng.gauss(0.0, SIGMA))
        price = int(p * 10) * TICK
        out.append(Trade(ts0 + i, SYM, price, F("0.001") * rng.randint(1, 500),
                         "BUY" if rng.random() < 0.5 else "SELL", i + 1))
    return out


def protect(ex, aid: int, ts: int, price: int) -> int:
    """Open (or top up to) 1 BTC long at 20x with a stop, a take-profit and two resting limits; commands sent."""
    ex.apply(BookSnapshot(ts, SYM, ((price - TICK, F("100")),), ((price, F("100")),), ts))
    pos = ex.positions(aid, SYM)
    have = pos[0].qty if pos else 0
    sent = 1
    if have < F("1"):
        ex.apply(PlaceOrder(ts, aid, SYM, "BUY", "MARKET", qty=F("1") - have))
        sent += 1
    ex.apply(BookSnapshot(ts, SYM, (), (), ts))  # trade-only data from here: fills at the last price
    step = lambda frac: int(price * frac) // TICK * TICK  # noqa: E731
    for msg in (
        PlaceOrder(ts, aid, SYM, "SELL", "STOP_MARKET", qty=F("1"), stop_price=step(0.97), reduce_only=True,
                   working_type="MARK_PRICE"),
        PlaceOrder(ts, aid, SYM, "SELL", "TAKE_PROFIT_MARKET", qty=F("1"), stop_price=step(1.03), reduce_only=True),
        PlaceOrder(ts, aid, SYM, "BUY", "LIMIT", qty=F("0.05"), price=step(0.995)),
        PlaceOrder(ts, aid, SYM, "SELL", "LIMIT", qty=F("0.05"), price=step(1.005), reduce_only=True),
    ):
        ex.apply(msg)
        sent += 1
    return sent


def walk_one_account(n: int) -> dict:
    ex = exchange()
    aid = ex.apply(CreateAccount(1, "bench", None, F("1000000")))[0].account
    ex.apply(SetLeverage(1, aid, SYM, 20))
    ticks = walk(n, seed=3)
    commands = protect(ex, aid, 2, F("60000"))
    counts: Counter = Counter()
    apply = ex.apply
    every = 5_000
    gc.disable()
    t0 = time.perf_counter()
    for i, tick in enumerate(ticks):
        for e in apply(tick):
            counts[type(e).__name__] += 1
        if i % every == every - 1:
            apply(CancelAllOrders(tick.ts, aid, SYM))
            commands += 1 + protect(ex, aid, tick.ts, tick.price)
    dt = time.perf_counter() - t0
    gc.enable()
    prices = [t.price for t in ticks]
    return {
        "walk_one_account_trade_ticks_per_s": round(n / dt),
        "walk_one_account_ticks": n,
        "walk_one_account_strategy_commands": commands,
        "walk_one_account_price_range": [round(min(prices) / 1e8, 1), round(max(prices) / 1e8, 1)],
        "walk_one_account_events": sum(counts.values()),
        "walk_one_account_events_by_type": dict(sorted(counts.items())),
    }


def walk_many_accounts(n_accounts: int, n: int) -> dict:
    ex = exchange()
    rng = random.Random(5)
    price = F("60000")
    ex.apply(BookSnapshot(1, SYM, ((price - TICK, F("100000")),), ((price, F("100000")),), 1))
    ex.apply(Trade(1, SYM, price, F("0.001"), "BUY", 0))
    for a in range(n_accounts):
        qty = F("0.01") * rng.randint(1, 50)
        lev = rng.choice((5, 10, 20, 25, 50))
        im = qty * 60_000 // lev
        aid = ex.apply(CreateAccount(2, f"a{a}", None, im + im // 5 + F("50")))[0].account
        if a % 2 == 0:
            ex.apply(SetMarginType(2, aid, SYM, True))
        ex.apply(SetLeverage(2, aid, SYM, lev))
        ex.apply(PlaceOrder(2, aid, SYM, "BUY" if rng.random() < 0.5 else "SELL", "MARKET", qty=qty))
    ex.apply(BookSnapshot(3, SYM, (), (), 3))  # trade-only: liquidations fill on the no-book price model
    ticks = walk(n, seed=9)
    open_before = sum(1 for aid in ex.account_ids() if ex.positions(aid))
    counts: Counter = Counter()
    apply = ex.apply
    gc.disable()
    t0 = time.perf_counter()
    for tick in ticks:
        for e in apply(tick):
            counts[type(e).__name__] += 1
    dt = time.perf_counter() - t0
    gc.enable()
    open_after = sum(1 for aid in ex.account_ids() if ex.positions(aid))
    prices = [t.price for t in ticks]
    return {
        "walk_1000_accounts_trade_ticks_per_s": round(n / dt),
        "walk_1000_accounts_ticks": n,
        "walk_1000_accounts_accounts": n_accounts,
        "walk_1000_accounts_positions_open_before_after": [open_before, open_after],
        "walk_1000_accounts_price_range": [round(min(prices) / 1e8, 1), round(max(prices) / 1e8, 1)],
        "walk_1000_accounts_liquidations": counts["Liquidation"],
        "walk_1000_accounts_margin_calls": counts["MarginCall"],
        "walk_1000_accounts_events": sum(counts.values()),
        "walk_1000_accounts_events_by_type": dict(sorted(counts.items())),
    }


def raw_capture(limit: int | None) -> tuple[float, int, int]:
    """Decode + apply the raw capture: (core inputs per second, inputs, events produced)."""
    from feeds.replay import read_file

    path = SHARED_DATA / "binance-usdm_BTCUSDT_ws-raw_2024-08-08T2354-2400Z.jsonl.gz"
    ex = exchange()
    aid = ex.apply(CreateAccount(1, "bench", None, F("1000000")))[0].account
    ex.apply(SetLeverage(1, aid, SYM, 20))
    count = 0
    produced = 0
    opened = False
    t0 = time.perf_counter()
    for ev in read_file(str(path), symbols=[SYM]):
        if not hasattr(ev, "symbol") or type(ev).__name__ == "FeedSignal":
            continue
        produced += len(ex.apply(ev))
        count += 1
        if not opened and ex.market(SYM).best_bid and ex.market(SYM).mark:
            produced += len(ex.apply(PlaceOrder(ev.ts, aid, SYM, "BUY", "MARKET", qty=F("0.5"))))
            opened = True
        if limit and count >= limit:
            break
    return count / (time.perf_counter() - t0), count, produced


def order_commands(n: int) -> float:
    ex = exchange()
    aid = ex.apply(CreateAccount(1, "bench", None, F("1000000")))[0].account
    ex.apply(BookSnapshot(1, SYM, ((F("59999.9"), F("100")),), ((F("60000"), F("100")),), 1))
    ex.apply(Trade(1, SYM, F("60000"), F("0.001"), "BUY", 0))
    ex.apply(SetLeverage(1, aid, SYM, 20))
    ex.apply(PlaceOrder(1, aid, SYM, "BUY", "MARKET", qty=F("1")))
    prices = [F("59000") + (i % 200) * F("0.1") for i in range(n)]
    places = [PlaceOrder(20 + i, aid, SYM, "BUY", "LIMIT", qty=F("0.01"), price=p) for i, p in enumerate(prices)]
    apply = ex.apply
    first = apply(places[0])[0].order_id
    cancels = [CancelOrder(20 + i, aid, SYM, order_id=first + i) for i in range(n)]
    gc.disable()
    t0 = time.perf_counter()
    for i in range(1, n):
        apply(places[i])
        apply(cancels[i - 1])
    dt = time.perf_counter() - t0
    gc.enable()
    return 2 * (n - 1) / dt


def main() -> None:
    figures = walk_one_account(50_000 if SMOKE else 1_000_000)
    figures |= walk_many_accounts(200 if SMOKE else 1_000, 50_000 if SMOKE else 300_000)
    rate, count, produced = raw_capture(20_000 if SMOKE else None)
    figures["raw_capture_decode_and_apply_events_per_s"] = round(rate)
    figures["raw_capture_events"] = count
    figures["raw_capture_events_produced"] = produced
    figures["order_commands_per_s"] = round(order_commands(20_000 if SMOKE else 200_000))
    try:
        import nautilus_trader  # noqa: F401
    except ImportError:
        figures["nautilus_reference"] = "not installed (pip install nautilus_trader to measure it in the same run)"
    else:
        from nautilus_reference import order_commands_per_s, trade_ticks_per_s
        figures["nautilus_trade_ticks_per_s_its_own_workload"] = round(trade_ticks_per_s(20_000 if SMOKE else 200_000))
        figures["nautilus_order_commands_per_s"] = round(order_commands_per_s(2_000 if SMOKE else 20_000))
        figures["ratio_vs_nautilus_orders"] = round(figures["order_commands_per_s"]
                                                    / figures["nautilus_order_commands_per_s"], 2)
    emit("core_throughput", figures)


if __name__ == "__main__":
    main()

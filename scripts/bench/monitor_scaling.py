"""Margin-monitor scaling: per-tick cost with 1 .. 1,000,000 open positions, nothing triggering
and 1% triggering; memory for the largest set; and a walk of the mark through the positions'
guards, timing the ticks that cross guards (they produce margin calls and liquidations)
separately from those that do not. Prints one JSON line.

Positions are isolated and cross mixed (every other account is isolated), 10 per account over
10 symbols. The tick moves one symbol's mark; cost is the mean of many ticks on that symbol.
Accounts keep no order/fill history here (``history_limit=0``): the figure is the monitor's
state (accounts, positions, risk units, guard indexes). Per-account history (default: the last
1,000 orders, fills and income rows) costs about 1 KB more per position; ``rss_mb_with_history``
reports the largest size built with it.
"""

from __future__ import annotations

import gc
import math
import random
import sys
import time
from collections import Counter

from _common import SMOKE, F, emit, exchange, rss_mb

from exchange_sim.core.messages import BookSnapshot, CreateAccount, MarkPrice, PlaceOrder, SetLeverage, SetMarginType

SYMBOLS = 10


def build(n_positions: int, seed: int = 7, history: int | None = 0, leverages=(5, 10, 20, 50)):
    ex = exchange(SYMBOLS, warning_ratio=0, history_limit=history)
    syms = list(ex.instruments)[:SYMBOLS]
    rng = random.Random(seed)
    ts = 1
    price = F("60000")
    for sym in syms:
        tick = ex.instruments[sym].tick_size
        ex.apply(BookSnapshot(ts, sym, ((price - tick, F("1000000")),), ((price, F("1000000")),), 1))
        ex.apply(MarkPrice(ts, sym, price))
    n_accounts = max(1, n_positions // SYMBOLS)
    made = 0
    for a in range(n_accounts):
        ts += 1
        aid = ex.apply(CreateAccount(ts, f"a{a}", None, F("1000000")))[0].account
        isolated = a % 2 == 0
        for sym in syms:
            if made >= n_positions:
                break
            if isolated:
                ex.apply(SetMarginType(ts, aid, sym, True))
            lev = rng.choice(leverages)
            ex.apply(SetLeverage(ts, aid, sym, lev))
            side = "BUY" if rng.random() < 0.5 else "SELL"
            qty = F("0.001") * rng.randint(2, 50)
            ex.apply(PlaceOrder(ts, aid, sym, side, "MARKET", qty=qty))
            made += 1
    return ex, syms, ts


def tick_cost(ex, sym, ts, ticks: int, lo: int, hi: int) -> float:
    """Mean seconds per mark tick alternating inside [lo, hi] (nothing crosses a guard)."""
    msgs = [MarkPrice(ts + i, sym, lo if i % 2 else hi) for i in range(ticks)]
    apply = ex.apply
    gc.disable()
    t0 = time.perf_counter()
    for m in msgs:
        apply(m)
    dt = time.perf_counter() - t0
    gc.enable()
    return dt / ticks


def long_liquidation_prices(ex, sym: str) -> list[int]:
    """The liquidation prices of every long in ``sym`` (public position views; setup, not timed)."""
    return sorted((p.liquidation_price for aid in ex.account_ids() for p in ex.positions(aid, sym)
                   if p.qty > 0 and p.liquidation_price > 0), reverse=True)


def trigger_cost(n_positions: int) -> tuple[float, int, int]:
    """One tick that crosses ~1% of the longs' liquidation prices: (seconds, events, liquidations)."""
    ex, syms, ts = build(n_positions, seed=11)
    sym = syms[0]
    prices = long_liquidation_prices(ex, sym)
    if not prices:
        return 0.0, 0, 0
    target = max(1, n_positions // 100)
    price = prices[min(len(prices) - 1, target - 1)]
    t0 = time.perf_counter()
    events = ex.apply(MarkPrice(ts + 1, sym, price))
    return time.perf_counter() - t0, len(events), sum(type(e).__name__ == "Liquidation" for e in events)


def guard_walk(n_positions: int, ticks: int) -> dict:
    """Mark ticks p ← p·exp(N(−drift, 2·10⁻⁴)) walking 15% down through the guards of one symbol.

    A tick that produces events crossed at least one unit's guard (margin call, liquidation or
    re-judgement with news); its cost is reported apart from the quiet ticks'.
    """
    ex, syms, ts = build(n_positions, seed=13, leverages=range(5, 51))  # 46 distinct liquidation prices
    sym = syms[0]
    rng = random.Random(17)
    drift = math.log(0.85) / ticks
    p = 60_000.0
    msgs = []
    for i in range(ticks):
        p *= math.exp(rng.gauss(drift, 2e-4))
        msgs.append(MarkPrice(ts + 1 + i, sym, int(p * 10) * F("0.1")))
    quiet = crossing = 0.0
    n_quiet = n_crossing = 0
    counts: Counter = Counter()
    apply = ex.apply
    clock = time.perf_counter
    gc.disable()
    for m in msgs:
        t0 = clock()
        events = apply(m)
        dt = clock() - t0
        if events:
            crossing += dt
            n_crossing += 1
            for e in events:
                counts[type(e).__name__] += 1
        else:
            quiet += dt
            n_quiet += 1
    gc.enable()
    tag = f"{n_positions}"
    return {
        f"walk_ticks_{tag}": ticks,
        f"walk_crossing_ticks_{tag}": n_crossing,
        f"walk_crossing_us_per_tick_{tag}": round(crossing / max(1, n_crossing) * 1e6, 1),
        f"walk_quiet_us_per_tick_{tag}": round(quiet / max(1, n_quiet) * 1e6, 2),
        f"walk_liquidations_{tag}": counts["Liquidation"],
        f"walk_margin_calls_{tag}": counts["MarginCall"],
        f"walk_events_by_type_{tag}": dict(sorted(counts.items())),
    }


def main() -> None:
    sizes = [1, 1_000, 10_000] if SMOKE else [1, 1_000, 100_000, 1_000_000]
    if len(sys.argv) > 1:
        sizes = [int(s) for s in sys.argv[1:]]
    figures: dict = {}
    for n in sizes:
        t0 = time.perf_counter()
        ex, syms, ts = build(n)
        setup = time.perf_counter() - t0
        sym = syms[0]
        ticks = 20_000 if n < 1_000_000 else 5_000
        cost = tick_cost(ex, sym, ts, ticks, F("59990"), F("60010"))
        figures[f"no_trigger_us_per_tick_{n}"] = round(cost * 1e6, 3)
        figures[f"setup_s_{n}"] = round(setup, 1)
        if n == max(sizes):
            figures[f"rss_mb_{n}"] = round(rss_mb(), 1)
        del ex
        gc.collect()
    if not SMOKE:
        ex, _, _ = build(100_000, history=1000)
        figures["rss_mb_with_history_100000"] = round(rss_mb(), 1)
        del ex
        gc.collect()
    n_trig = 10_000 if SMOKE else 100_000
    cost, events, liquidations = trigger_cost(n_trig)
    figures[f"one_pct_trigger_ms_per_tick_{n_trig}"] = round(cost * 1e3, 2)
    figures[f"one_pct_trigger_events_{n_trig}"] = events
    figures[f"one_pct_trigger_liquidations_{n_trig}"] = liquidations
    figures |= guard_walk(10_000 if SMOKE else 100_000, 5_000 if SMOKE else 20_000)
    base = figures["no_trigger_us_per_tick_1"]
    big = 10_000 if SMOKE else 100_000
    if f"no_trigger_us_per_tick_{big}" in figures and base:
        figures[f"ratio_{big}_vs_1"] = round(figures[f"no_trigger_us_per_tick_{big}"] / base, 2)
    emit("monitor_scaling", figures)


if __name__ == "__main__":
    main()

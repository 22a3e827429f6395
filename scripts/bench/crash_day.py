"""Crash-day replay at scale (benchmarks issue, item 6). Prints one JSON line.

The 2024-08-05 BTCUSDT 1m klines in ../shared/data are expanded to ticks: each bar's path
(open -> nearer extreme -> other extreme -> close, feeds.klines) is interpolated into
``TICKS_PER_LEG`` trades per leg, one tick apart at least, each trade also marking the price
(no separate mark stream). 10,000 accounts hold random leveraged positions (long and short,
5x-100x, isolated and cross). Reports wall time, events/s and liquidations/s.
"""

from __future__ import annotations

import gc
import random
import time

from _common import SHARED_DATA, SMOKE, F, emit, exchange

from exchange_sim.core.messages import (
    BookSnapshot, CreateAccount, Liquidation, PlaceOrder, SetLeverage, SetMarginType, Trade,
)
from feeds.archive import _bars, _rows
from feeds.klines import Bar, path
from feeds.replay import open_text

SYM = "BTCUSDT"
KLINES = SHARED_DATA / "binance-usdm_BTCUSDT_1m_2024-08-05T0500-0759Z.csv"
TICKS_PER_LEG = 40


def ticks(bars: list[Bar]) -> list[Trade]:
    out: list[Trade] = []
    tick = F("0.1")
    prev = None
    for bar in bars:
        points = path(bar)
        for (t0, p0), (t1, p1) in zip(points, points[1:], strict=False):
            for k in range(TICKS_PER_LEG):
                price = p0 + (p1 - p0) * k // TICKS_PER_LEG
                price -= price % tick
                ts = t0 + (t1 - t0) * k // TICKS_PER_LEG
                side = "BUY" if prev is None or price >= prev else "SELL"
                out.append(Trade(ts, SYM, price, F("0.01"), side))
                prev = price
        out.append(Trade(points[-1][0], SYM, bar.close, F("0.01"), "BUY"))
    return out


def main() -> None:
    _, _, rows = _rows(open_text(str(KLINES)), KLINES.name, None)  # the bars themselves, not their events
    bars = list(_bars(rows, False))
    if SMOKE:
        bars = bars[:40]
    n_accounts = 1_000 if SMOKE else 10_000
    ex = exchange(history_limit=100)
    rng = random.Random(5)
    first = bars[0].open
    ts = bars[0].open_time - 1000
    tick = F("0.1")
    ex.apply(BookSnapshot(ts, SYM, ((first - tick, F("100000")),), ((first, F("100000")),), 1))
    ex.apply(Trade(ts, SYM, first, F("0.01"), "BUY"))
    for a in range(n_accounts):
        aid = ex.apply(CreateAccount(ts, f"bot{a}", None, F(str(rng.choice([100, 500, 1000, 5000])))))[0].account
        if rng.random() < 0.5:
            ex.apply(SetMarginType(ts, aid, SYM, True))
        lev = rng.choice([5, 10, 20, 25, 50, 75, 100])
        ex.apply(SetLeverage(ts, aid, SYM, lev))
        equity = ex.accounts[aid].cross_wallet
        notional = equity * lev * rng.randint(30, 90) // 100
        qty = max(F("0.002"), notional * 10**8 // first // F("0.001") * F("0.001"))
        ex.apply(PlaceOrder(ts, aid, SYM, "BUY" if rng.random() < 0.7 else "SELL", "MARKET", qty=qty))
    # the book for the replay: an empty snapshot -> fills use the last price (no-book model)
    ex.apply(BookSnapshot(ts, SYM, (), (), 2))
    opened = sum(1 for a in ex.accounts.values() if a.positions)
    events = ticks(bars)
    liquidations = 0
    apply = ex.apply
    gc.disable()
    t0 = time.perf_counter()
    for ev in events:
        for out in apply(ev):
            if type(out) is Liquidation:
                liquidations += 1
    wall = time.perf_counter() - t0
    gc.enable()
    emit("crash_day", {
        "bars": len(bars), "ticks": len(events), "accounts": n_accounts, "positions_opened": opened,
        "wall_s": round(wall, 3), "ticks_per_s": round(len(events) / wall),
        "liquidations": liquidations, "liquidations_per_s": round(liquidations / wall, 1),
        "low": str(min(b.low for b in bars) / 10**8),
    })


if __name__ == "__main__":
    main()

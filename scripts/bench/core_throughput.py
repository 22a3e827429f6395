"""Core throughput (benchmarks issue, items 1 and 2). Prints one JSON line.

1. Replay throughput: trade events per second through the whole core (book, resting orders,
   triggers, margin monitor) with one account holding a leveraged position, events already
   decoded; then again decoding the raw Binance capture in ../shared/data (depth diffs, trades,
   the REST snapshot), decode + apply.
2. Order throughput: submit a resting limit order and cancel the previous one, repeatedly.

If ``nautilus_trader`` is importable the reference workload runs too (see nautilus_reference.py)
and the ratio is printed; otherwise the reference figure is reported as not measured.
"""

from __future__ import annotations

import gc
import random
import time

from _common import SHARED_DATA, SMOKE, F, emit, exchange

from exchange_sim.core.messages import (
    BookSnapshot, CancelOrder, CreateAccount, MarkPrice, PlaceOrder, SetLeverage, SetMarginType, Trade,
)

SYM = "BTCUSDT"


def with_position(ex, ts: int = 1) -> int:
    aid = ex.apply(CreateAccount(ts, "bench", None, F("1000000")))[0].account
    ex.apply(BookSnapshot(ts, SYM, ((F("59999.9"), F("100")),), ((F("60000"), F("100")),), 1))
    ex.apply(MarkPrice(ts, SYM, F("60000")))
    ex.apply(SetMarginType(ts, aid, SYM, True))
    ex.apply(SetLeverage(ts, aid, SYM, 20))
    ex.apply(PlaceOrder(ts, aid, SYM, "BUY", "MARKET", qty=F("1")))
    # a protective stop on mark and a take-profit on last price keep the trigger indexes live
    ex.apply(PlaceOrder(ts, aid, SYM, "SELL", "STOP_MARKET", qty=F("1"), stop_price=F("50000"),
                        reduce_only=True, working_type="MARK_PRICE"))
    ex.apply(PlaceOrder(ts, aid, SYM, "SELL", "TAKE_PROFIT_MARKET", qty=F("1"), stop_price=F("70000"),
                        reduce_only=True))
    return aid


def decoded_trades(n: int) -> float:
    ex = exchange()
    with_position(ex)
    rng = random.Random(3)
    base = F("60000")
    tick = F("0.1")
    events = [Trade(10 + i, SYM, base + rng.randint(-500, 500) * tick, F("0.01") * rng.randint(1, 50),
                    "BUY" if rng.random() < 0.5 else "SELL", i) for i in range(n)]
    apply = ex.apply
    gc.disable()
    t0 = time.perf_counter()
    for e in events:
        apply(e)
    dt = time.perf_counter() - t0
    gc.enable()
    return n / dt


def raw_capture(limit: int | None) -> tuple[float, int]:
    """Decode + apply the raw capture: (core events per second, core events)."""
    from feeds.replay import read_file

    path = SHARED_DATA / "binance-usdm_BTCUSDT_ws-raw_2024-08-08T2354-2400Z.jsonl.gz"
    ex = exchange()
    aid = ex.apply(CreateAccount(1, "bench", None, F("1000000")))[0].account
    ex.apply(SetLeverage(1, aid, SYM, 20))
    count = 0
    opened = False
    t0 = time.perf_counter()
    for ev in read_file(str(path), symbols=[SYM]):
        if not hasattr(ev, "symbol") or type(ev).__name__ == "FeedSignal":
            continue
        ex.apply(ev)
        count += 1
        if not opened and ex.markets[SYM].has_book and ex.markets[SYM].mark:
            ex.apply(PlaceOrder(ev.ts, aid, SYM, "BUY", "MARKET", qty=F("0.5")))
            opened = True
        if limit and count >= limit:
            break
    return count / (time.perf_counter() - t0), count


def order_commands(n: int) -> float:
    ex = exchange()
    aid = with_position(ex)
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
    n = 50_000 if SMOKE else 1_000_000
    figures = {"decoded_trade_events_per_s": round(decoded_trades(n))}
    rate, count = raw_capture(20_000 if SMOKE else None)
    figures["raw_capture_decode_and_apply_events_per_s"] = round(rate)
    figures["raw_capture_events"] = count
    if not SMOKE:
        from feeds.replay import open_text
        lines = sum(1 for _ in open_text(str(SHARED_DATA / "binance-usdm_BTCUSDT_ws-raw_2024-08-08T2354-2400Z.jsonl.gz")))
        figures["raw_capture_lines"] = lines
        figures["raw_capture_lines_per_s"] = round(lines * rate / count)
    figures["order_commands_per_s"] = round(order_commands(20_000 if SMOKE else 200_000))
    try:
        import nautilus_trader  # noqa: F401
    except ImportError:
        figures["nautilus_reference"] = "not installed (pip install nautilus_trader to measure it in the same run)"
    else:
        from nautilus_reference import trade_ticks_per_s, order_commands_per_s
        ref = trade_ticks_per_s(200_000 if not SMOKE else 20_000)
        figures["nautilus_trade_ticks_per_s"] = round(ref)
        figures["ratio_vs_nautilus_ticks"] = round(figures["decoded_trade_events_per_s"] / ref, 2)
        ref_orders = order_commands_per_s(20_000 if not SMOKE else 2_000)
        figures["nautilus_order_commands_per_s"] = round(ref_orders)
        figures["ratio_vs_nautilus_orders"] = round(figures["order_commands_per_s"] / ref_orders, 2)
    emit("core_throughput", figures)


if __name__ == "__main__":
    main()

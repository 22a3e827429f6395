"""How the golden sessions' inputs were made: ``python -m tests.golden.build`` rewrites them.

The inputs are committed data; this script documents them and remakes them after a deliberate
change (then run ``python -m tests.golden.regen`` and review both diffs). Market data is either a
slice of a real recording in ``$EXSIM_SHARED_DATA`` (read through ``feeds.replay`` and written with
``feeds.recorder``, so it is our own recording format) or a short hand-written script.

Sessions:
- ``crash_isolated_cross``: BTCUSDT 1-minute bars of 2024-08-05 06:00-06:39 UTC (the crash to
  48,888) with a thin synthetic book; isolated and cross accounts, one-way and hedge, stops,
  take-profits, resting limits, auto-add and added/removed isolated margin, a funding settlement,
  a margin warning, full and partial liquidations with the insurance fund (the crash gaps
  through every liquidation price: no margin call, the liquidation is the event).
- ``cross_hedge_eth``: hand-written ETHUSDT/BTCUSDT books and marks; a cross hedge book, limit
  orders filled by trades, stop-limit, reduce-only, a stale feed that holds the monitor, funding
  both ways, cross liquidations walking the book (reached at once: no margin call).
- ``adl_empty_fund``: insurance fund 0; an isolated long's bankruptcy gap is covered by ADL of the
  most profitable short.
- ``known_defects`` (EXPECTED TO CHANGE when issue 16's defects 1 and 2 are fixed): an isolated
  position opened next to a cross position (defect 1) and a cross hedge book marked past its
  upper root (defect 2).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from exchange_sim.core.fixed import to_fixed as F
from exchange_sim.core.messages import (
    AdjustIsolatedMargin, BookSnapshot, CreateAccount, Deposit, FeedStatus, Funding, MarkPrice, PlaceOrder,
    SetAutoAddMargin, SetLeverage, SetMarginType, SetPositionMode, Trade, Transfer, Withdraw, dumps,
)
from feeds.klines import PathOptions
from feeds.recorder import Recorder
from feeds.replay import read_file
from tests.golden.replay import SESSIONS

KLINES = "binance-usdm_BTCUSDT_1m_2024-08-05T0500-0759Z.csv"
BTC, ETH = "BTCUSDT", "ETHUSDT"


def _write(path: Path, messages: list[Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(dumps(m) + "\n" for m in messages), encoding="utf-8")


def _record(path: Path, events: list[Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rec = Recorder(str(path), compress=False)
    rec.open()
    for e in events:
        rec.write(e)
    rec.close()


def book(ts: int, symbol: str, bid: str, ask: str, qty: str = "50", levels: int = 3, step: str = "1") -> BookSnapshot:
    bids = tuple((F(bid) - i * F(step), F(qty)) for i in range(levels))
    asks = tuple((F(ask) + i * F(step), F(qty)) for i in range(levels))
    return BookSnapshot(ts, symbol, bids, asks, 1)


def order(ts: int, aid: int, symbol: str, side: str, kind: str, qty: str = "0", **kw: Any) -> PlaceOrder:
    prices = {k: F(v) for k, v in kw.items() if k in ("price", "stop_price", "take_profit_price", "stop_loss_price")}
    rest = {k: v for k, v in kw.items() if k not in prices}
    return PlaceOrder(ts, aid, symbol, side, kind, qty=F(qty), **prices, **rest)


def crash_isolated_cross(root: Path) -> None:
    data = Path(os.environ.get("EXSIM_SHARED_DATA", "/work/shared/data")) / KLINES
    t0, t1 = 1722837600000, 1722837600000 + 40 * 60_000  # 06:00 .. 06:40
    opts = PathOptions(book_levels=3, book_qty=F("20"), tick=F("0.1"))
    market = [e for e in read_file(str(data), symbol=BTC, options=opts) if t0 <= e.ts < t1]
    market.append(Funding(t0 + 10 * 60_000 + 5, BTC, F("0.0001")))
    market.sort(key=lambda e: e.ts)  # stable: the funding settlement sits after its minute's bar point
    _record(root / "market.jsonl", market)
    t = t0 + 1
    c: list[Any] = []

    def at(*msgs: Any) -> None:
        c.extend(msgs)

    # 1 iso20: isolated long 1 BTC at 20x, liquidated in the crash (a gap: no margin call)
    at(CreateAccount(t, "iso20", None, F("10000")), SetMarginType(t + 1, 1, BTC, True),
       SetLeverage(t + 2, 1, BTC, 20), order(t + 3, 1, BTC, "BUY", "MARKET", "1"))
    # 2 cross10: cross long at 10x with a protective stop and a resting limit buy lower down
    at(CreateAccount(t + 10, "cross10", None, F("20000")), SetLeverage(t + 11, 2, BTC, 10),
       order(t + 12, 2, BTC, "BUY", "MARKET", "1"),
       order(t + 13, 2, BTC, "SELL", "STOP_MARKET", stop_price="51000", close_position=True,
             working_type="MARK_PRICE"),
       order(t + 14, 2, BTC, "BUY", "LIMIT", "0.2", price="50000"))
    # 3 hedge5: hedge mode, cross, a short leg with a take-profit and a small long leg
    at(CreateAccount(t + 20, "hedge5", None, F("10000")), SetPositionMode(t + 21, 3, True),
       SetLeverage(t + 22, 3, BTC, 5, "SHORT"), SetLeverage(t + 23, 3, BTC, 5, "LONG"),
       order(t + 24, 3, BTC, "SELL", "MARKET", "0.5", position_side="SHORT"),
       order(t + 25, 3, BTC, "BUY", "MARKET", "0.1", position_side="LONG"),
       order(t + 26, 3, BTC, "BUY", "TAKE_PROFIT_MARKET", "0.5", stop_price="49500", position_side="SHORT"))
    # 4 iso_auto: isolated 25x with auto-add, margin added then partly removed
    at(CreateAccount(t + 30, "iso_auto", None, F("5000")), SetMarginType(t + 31, 4, BTC, True),
       SetLeverage(t + 32, 4, BTC, 25), order(t + 33, 4, BTC, "BUY", "MARKET", "0.5"),
       SetAutoAddMargin(t + 34, 4, BTC, True),
       AdjustIsolatedMargin(t + 35, 4, BTC, F("200"), True),
       AdjustIsolatedMargin(t + 36, 4, BTC, F("100"), False))
    # 5 cross50: thin cross account at 50x: liquidation and fund take-over (a gap: no margin call)
    at(CreateAccount(t + 40, "cross50", None, F("1500")), SetLeverage(t + 41, 5, BTC, 50),
       order(t + 42, 5, BTC, "BUY", "MARKET", "0.8"))
    # 6 big: tier-3 cross position (15 BTC, ~790k notional), partial liquidation first
    at(CreateAccount(t + 50, "big", None, F("45000")), SetLeverage(t + 51, 6, BTC, 20),
       order(t + 52, 6, BTC, "BUY", "LIMIT", "5", price="52800", time_in_force="IOC"),
       order(t + 53, 6, BTC, "BUY", "MARKET", "5"), order(t + 54, 6, BTC, "BUY", "MARKET", "5"))
    # 7 sub-account of 2, funded by a transfer; a deposit, a withdrawal; a short on the way down
    t = t0 + 5 * 60_000 + 7
    at(CreateAccount(t, "sub", 2, 0), Transfer(t + 1, 2, 7, F("3000")), Deposit(t + 2, 7, F("500")),
       Withdraw(t + 3, 7, F("250")), SetLeverage(t + 4, 7, BTC, 10),
       order(t + 5, 7, BTC, "SELL", "MARKET", "0.3", take_profit_price="49000", stop_loss_price="54500"))
    _write(root / "commands.jsonl", c)


def cross_hedge_eth(root: Path) -> None:
    t = 1_700_000_000_000
    m: list[Any] = []
    c: list[Any] = []
    m += [book(t, ETH, "2999.99", "3000", "500", step="0.5"), MarkPrice(t, ETH, F("3000")),
          book(t, BTC, "59999.9", "60000", "20", step="5"), MarkPrice(t, BTC, F("60000"))]
    # 1 hedge: cross hedge book on ETH, 20x, both legs; 2 maker: limit orders filled by trades
    c += [CreateAccount(t + 1, "hedge", None, F("30000")), SetPositionMode(t + 2, 1, True),
          SetLeverage(t + 3, 1, ETH, 20, "LONG"), SetLeverage(t + 4, 1, ETH, 20, "SHORT"),
          order(t + 5, 1, ETH, "BUY", "MARKET", "100", position_side="LONG"),
          order(t + 6, 1, ETH, "SELL", "MARKET", "60", position_side="SHORT"),
          CreateAccount(t + 7, "maker", None, F("50000")), SetLeverage(t + 8, 2, ETH, 10),
          order(t + 9, 2, ETH, "BUY", "LIMIT", "5", price="2990"),
          order(t + 10, 2, ETH, "SELL", "LIMIT", "5", price="3010", time_in_force="GTX"),
          order(t + 11, 2, BTC, "BUY", "LIMIT", "0.2", price="59800"),
          order(t + 12, 2, BTC, "SELL", "STOP", "0.1", price="59000", stop_price="59100", reduce_only=True),
          CreateAccount(t + 13, "btccross", None, F("4000")), SetLeverage(t + 14, 3, BTC, 25),
          order(t + 15, 3, BTC, "BUY", "MARKET", "1")]
    t += 1000
    m += [Trade(t, ETH, F("2990"), F("8"), "SELL"), Trade(t + 1, BTC, F("59800"), F("1"), "SELL"),
          MarkPrice(t + 2, ETH, F("2995")), MarkPrice(t + 3, BTC, F("59700")),
          book(t + 4, BTC, "59690", "59700", "20", step="5")]
    t += 1000
    m += [Funding(t, ETH, F("0.0003")), Funding(t + 1, BTC, F("-0.0002"))]
    t += 1000
    c += [order(t, 2, BTC, "SELL", "MARKET", "0.1", reduce_only=True)]
    # the BTC feed goes stale: the monitor holds, then the feed comes back below the account's guard
    m += [FeedStatus(t + 1, BTC, True, "gap"), book(t + 2, BTC, "57500", "57510", "2", step="10"),
          MarkPrice(t + 3, BTC, F("57600")), MarkPrice(t + 4, BTC, F("57550")),
          FeedStatus(t + 5, BTC, False), MarkPrice(t + 6, BTC, F("57540"))]
    t += 1000
    m += [MarkPrice(t, BTC, F("58000")), book(t + 1, BTC, "56800", "56810", "0.3", levels=5, step="20"),
          Trade(t + 2, BTC, F("59050"), F("0.5"), "SELL"), MarkPrice(t + 3, BTC, F("56790")),
          MarkPrice(t + 4, BTC, F("56500")), MarkPrice(t + 5, BTC, F("55900"))]
    t += 1000
    # ETH falls: the hedge book's net long loses; a cross liquidation (from below 80% to past 100%)
    for i, p in enumerate(["2900", "2800", "2700", "2600", "2500", "2450", "2400", "2350", "2300", "2250", "2200"]):
        m += [book(t + 10 * i, ETH, str(int(p) - 1), p, "30", levels=4, step="1"), MarkPrice(t + 10 * i + 1, ETH, F(p))]
    _write(root / "market.jsonl", m)
    _write(root / "commands.jsonl", c)


def adl_empty_fund(root: Path) -> None:
    t = 1_700_100_000_000
    m: list[Any] = [book(t, BTC, "59999.9", "60000", "50", step="1"), MarkPrice(t, BTC, F("60000"))]
    c: list[Any] = [
        CreateAccount(t + 1, "longiso", None, F("10000")), SetMarginType(t + 2, 1, BTC, True),
        SetLeverage(t + 3, 1, BTC, 50), order(t + 4, 1, BTC, "BUY", "MARKET", "2"),
        CreateAccount(t + 5, "short_a", None, F("50000")), SetLeverage(t + 6, 2, BTC, 10),
        order(t + 7, 2, BTC, "SELL", "MARKET", "1"),
        CreateAccount(t + 8, "short_b", None, F("50000")), SetLeverage(t + 9, 3, BTC, 5),
        order(t + 10, 3, BTC, "SELL", "MARKET", "0.5"),
        order(t + 11, 3, BTC, "BUY", "LIMIT", "0.1", price="50000"),
    ]
    t += 1000
    # the book vanishes far below; the mark falls through the isolated long's liquidation price
    m += [book(t, BTC, "55000", "59000", "0.01", levels=2, step="100"), MarkPrice(t + 1, BTC, F("59200")),
          MarkPrice(t + 2, BTC, F("58700"))]
    _write(root / "market.jsonl", m)
    _write(root / "commands.jsonl", c)
    (root / "config.json").write_text(json.dumps({"insurance_fund": "0"}) + "\n", encoding="utf-8")


def known_defects(root: Path) -> None:
    t = 1_700_200_000_000
    m: list[Any] = [book(t, ETH, "2999.99", "3000", "10000", step="0.01"), MarkPrice(t, ETH, F("3000")),
                    book(t, BTC, "59999.9", "60000", "10", step="0.1"), MarkPrice(t, BTC, F("60000"))]
    c: list[Any] = [
        # defect 1: cross ETH long, then an isolated BTC long drains the cross wallet
        CreateAccount(t + 1, "defect1", None, F("10000")), SetLeverage(t + 2, 1, ETH, 10),
        order(t + 3, 1, ETH, "BUY", "MARKET", "10"), SetMarginType(t + 4, 1, BTC, True),
        SetLeverage(t + 5, 1, BTC, 1), order(t + 6, 1, BTC, "BUY", "MARKET", "0.1"),
        # defect 2: cross hedge book LONG 5,000 / SHORT 4,000 at 25x
        CreateAccount(t + 7, "defect2", None, F("1200000")), SetPositionMode(t + 8, 2, True),
        SetLeverage(t + 9, 2, ETH, 25, "LONG"), SetLeverage(t + 10, 2, ETH, 25, "SHORT"),
        order(t + 11, 2, ETH, "BUY", "LIMIT", "5000", price="3000", time_in_force="IOC", position_side="LONG"),
        order(t + 12, 2, ETH, "SELL", "LIMIT", "4000", price="2999.99", time_in_force="IOC", position_side="SHORT"),
    ]
    t += 1000
    m += [MarkPrice(t, ETH, F("3000")), MarkPrice(t + 1, ETH, F("2500"))]
    for i, p in enumerate(["130000", "150000", "200000", "300000"]):
        m.append(MarkPrice(t + 10 + i, ETH, F(p)))
    m.append(MarkPrice(t + 20, ETH, F("2000")))
    _write(root / "market.jsonl", m)
    _write(root / "commands.jsonl", c)


BUILDERS = {f.__name__: f for f in (crash_isolated_cross, cross_hedge_eth, adl_empty_fund, known_defects)}


def main() -> None:
    for name, build in BUILDERS.items():
        build(SESSIONS / name)
        print(f"{name}: inputs written")


if __name__ == "__main__":
    main()

"""A lesson as data, and its offline run against the real core.

A ``Scenario`` says which accounts exist, which positions they open at the start prices, and the
price path (one ``{symbol: price}`` per step) played to all of them. ``run_scenario`` feeds it to
an ``Exchange`` exactly as a feed and clients would (book, mark, orders), step by step, and
records each account's equity and every margin call, liquidation and ADL it caused. The same
scenario is driven against a running server by ``lessons.live``.

Liquidity: at the start a one-level book per symbol lets the opening market orders fill at
exactly the start price; on every step the book is ``bid = price, ask = price + 1 tick`` with deep
size, then the mark moves to ``price``, so a liquidation triggered by that mark fills at the mark.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from exchange_sim.core import messages as m
from exchange_sim.core.fixed import to_fixed
from exchange_sim.core.instruments import Instrument

START_TS = 1_700_000_000_000  # ms; deterministic, any fixed value will do
STEP_MS = 1_000
DEEP = to_fixed("1000000")


class LessonError(Exception):
    """A lesson could not be set up (a rejected opening order means the script is wrong)."""


@dataclass(frozen=True, slots=True)
class PositionPlan:
    symbol: str
    side: str  # BUY (long) or SELL (short)
    qty: str
    leverage: int
    isolated: bool


@dataclass(frozen=True, slots=True)
class AccountPlan:
    label: str
    deposit: str
    positions: tuple[PositionPlan, ...]


@dataclass(frozen=True, slots=True)
class Phase:
    """A named stretch of the path starting at step ``start`` (used for captions and tables)."""

    start: int
    text: str


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    title: str
    accounts: tuple[AccountPlan, ...]
    start_prices: dict[str, str]
    path: tuple[dict[str, str], ...]
    phases: tuple[Phase, ...] = ()
    fees_off: bool = False  # run on a lesson profile with trading and clearance fees set to 0
    notes: tuple[str, ...] = ()


LESSON_PREFIX = "LESSON"  # a live lesson trades LESSONBTCUSDT, a clone of BTCUSDT nobody else holds


def lesson_symbol(symbol: str) -> str:
    """The lesson instrument cloned from ``symbol``: ``BTCUSDT`` → ``LESSONBTCUSDT``."""
    return symbol if symbol.startswith(LESSON_PREFIX) else LESSON_PREFIX + symbol


def lesson_clones(instruments: dict[str, Instrument], symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
                  ) -> dict[str, Instrument]:
    """Clones of ``symbols`` (same tick, lot, fee and tier rules) under their lesson names.

    A live lesson moves these books and marks as its script says while the real symbols keep
    following their feed: the class's positions and the live market are never touched.
    """
    return {lesson_symbol(s): dataclasses.replace(instruments[s], symbol=lesson_symbol(s),
                                                  base=LESSON_PREFIX + instruments[s].base)
            for s in symbols if s in instruments}


def on_lesson_symbols(scenario: Scenario) -> Scenario:
    """The same lesson played on the lesson instruments instead of the real symbols."""
    def rename(prices: dict[str, str]) -> dict[str, str]:
        return {lesson_symbol(s): p for s, p in prices.items()}

    accounts = tuple(dataclasses.replace(a, positions=tuple(dataclasses.replace(p, symbol=lesson_symbol(p.symbol))
                                                            for p in a.positions)) for a in scenario.accounts)
    return dataclasses.replace(scenario, accounts=accounts, start_prices=rename(scenario.start_prices),
                               path=tuple(rename(step) for step in scenario.path))


@dataclass(frozen=True, slots=True)
class OpenPosition:
    """A position right after opening, as the core reports it (fixed-point ints)."""

    label: str
    symbol: str
    qty: int
    entry_price: int
    leverage: int
    isolated: bool
    initial_margin: int
    maintenance_margin: int
    liquidation_price: int
    bankruptcy_price: int


@dataclass(frozen=True, slots=True)
class Happening:
    """A margin call, liquidation or ADL of one account, at a step of the path."""

    step: int
    label: str
    kind: str  # MARGIN_CALL, WARNING, LIQUIDATION, ADL
    symbol: str
    price: int  # fill price (liquidation/ADL) or the mark at the step
    qty: int = 0
    loss: int = 0
    fee: int = 0


@dataclass(slots=True)
class ScenarioRun:
    scenario: Scenario
    instruments: dict[str, Instrument]
    account_ids: dict[str, int]
    opened: list[OpenPosition] = field(default_factory=list)
    prices: list[dict[str, int]] = field(default_factory=list)  # step 0 = start
    equity: dict[str, list[int]] = field(default_factory=dict)  # margin balance per step
    wallet: dict[str, list[int]] = field(default_factory=dict)
    happenings: list[Happening] = field(default_factory=list)
    insurance_fund: int = 0

    def liquidations(self, label: str | None = None) -> list[Happening]:
        return [h for h in self.happenings if h.kind == "LIQUIDATION" and (label is None or h.label == label)]

    def first_liquidation_step(self, label: str) -> int | None:
        steps = [h.step for h in self.liquidations(label)]
        return min(steps) if steps else None

    def final_wallet(self, label: str) -> int:
        return self.wallet[label][-1]


def lesson_instruments(symbols: list[str], *, fees_off: bool) -> dict[str, Instrument]:
    """The venue profile's instruments, or a lesson profile with every fee set to 0."""
    from exchange_sim.profiles import load_profile

    instruments = load_profile("binance_usdm", symbols)
    if fees_off:
        instruments = {s: dataclasses.replace(i, maker_fee=0, taker_fee=0, liquidation_fee=0)
                       for s, i in instruments.items()}
    return instruments


def _symbols(scenario: Scenario) -> list[str]:
    return sorted(scenario.start_prices)


def start_book(scenario: Scenario, symbol: str, inst: Instrument) -> tuple[tuple[m.Level, ...], tuple[m.Level, ...]]:
    """Bids and asks that let the opening orders fill at exactly the start price."""
    p = to_fixed(scenario.start_prices[symbol])
    sells = any(pp.side == m.SELL and pp.symbol == symbol for a in scenario.accounts for pp in a.positions)
    if sells:
        return ((p, DEEP),), ((p + inst.tick_size, DEEP),)
    return ((p - inst.tick_size, DEEP),), ((p, DEEP),)


def step_book(price: int, inst: Instrument) -> tuple[tuple[m.Level, ...], tuple[m.Level, ...]]:
    return ((price, DEEP),), ((price + inst.tick_size, DEEP),)


class _Driver:
    def __init__(self, scenario: Scenario, instruments: dict[str, Instrument] | None = None) -> None:
        from exchange_sim.core.exchange import Exchange, ExchangeConfig

        self.scenario = scenario
        self.instruments = instruments or lesson_instruments(_symbols(scenario), fees_off=scenario.fees_off)
        self.ex = Exchange(self.instruments, ExchangeConfig())
        self.ts = START_TS

    def apply(self, msg: Any) -> list[Any]:
        return self.ex.apply(msg)

    def command(self, msg: Any) -> list[Any]:
        events = self.apply(msg)
        rejected = [e for e in events if isinstance(e, m.CommandRejected)]
        if rejected:
            r = rejected[0]
            raise LessonError(f"{type(msg).__name__} rejected by the core: {r.code} {r.msg}")
        return events


def _happenings(step: int, events: list[Any], labels: dict[int, str], marks: dict[str, int]) -> list[Happening]:
    out = []
    for e in events:
        label = labels.get(getattr(e, "account", -1))
        if label is None:
            continue
        if isinstance(e, m.Liquidation):
            out.append(Happening(step, label, "LIQUIDATION", e.symbol, e.price, e.qty, e.loss, e.fee))
        elif isinstance(e, m.MarginCall):
            sym = e.symbol or (e.positions[0].symbol if e.positions else "")
            out.append(Happening(step, label, e.level, e.symbol, marks.get(sym, 0)))
        elif isinstance(e, m.Adl):
            out.append(Happening(step, label, "ADL", e.symbol, e.price, e.qty))
    return out


def run_scenario(scenario: Scenario, instruments: dict[str, Instrument] | None = None) -> ScenarioRun:
    """Play ``scenario`` to a fresh core and record what every account went through."""
    d = _Driver(scenario, instruments)
    ts = START_TS
    marks: dict[str, int] = {}
    for symbol in _symbols(scenario):
        bids, asks = start_book(scenario, symbol, d.instruments[symbol])
        marks[symbol] = to_fixed(scenario.start_prices[symbol])
        d.apply(m.BookSnapshot(ts=ts, symbol=symbol, bids=bids, asks=asks, update_id=1))
        d.apply(m.MarkPrice(ts=ts, symbol=symbol, mark=marks[symbol]))

    ids: dict[str, int] = {}
    for plan in scenario.accounts:
        events = d.command(m.CreateAccount(ts=ts, name=plan.label, deposit=to_fixed(plan.deposit),
                                           api_key=f"lesson-{plan.label}", api_secret="lesson"))
        created = [e for e in events if isinstance(e, m.AccountCreated)]
        if not created:
            raise LessonError(f"CreateAccount for {plan.label!r} produced no AccountCreated")
        ids[plan.label] = created[0].account
    run = ScenarioRun(scenario, d.instruments, ids)
    labels = {aid: label for label, aid in ids.items()}

    for plan in scenario.accounts:
        aid = ids[plan.label]
        for pos in plan.positions:
            if pos.isolated:
                d.command(m.SetMarginType(ts=ts, account=aid, symbol=pos.symbol, isolated=True))
            d.command(m.SetLeverage(ts=ts, account=aid, symbol=pos.symbol, leverage=pos.leverage))
            events = d.command(m.PlaceOrder(ts=ts, account=aid, symbol=pos.symbol, side=pos.side,
                                            order_type=m.MARKET, qty=to_fixed(pos.qty)))
            run.happenings.extend(_happenings(0, events, labels, marks))
        for pos in plan.positions:  # read after every leg is open: a cross LP depends on the others
            view = next((p for p in d.ex.positions(aid, pos.symbol)), None)
            if view is None:
                raise LessonError(f"{plan.label}: the opening {pos.side} {pos.qty} {pos.symbol} did not fill")
            run.opened.append(OpenPosition(plan.label, pos.symbol, view.qty, view.entry_price, view.leverage,
                                           view.isolated, view.initial_margin, view.maintenance_margin,
                                           view.liquidation_price, view.bankruptcy_price))

    def record() -> None:
        run.prices.append(dict(marks))
        for label, aid in ids.items():
            view = d.ex.account_view(aid)
            assert view is not None
            run.equity.setdefault(label, []).append(view.margin_balance)
            run.wallet.setdefault(label, []).append(view.wallet_balance)

    record()
    for step, prices in enumerate(scenario.path, start=1):
        ts += STEP_MS
        for symbol, text in sorted(prices.items()):
            price = to_fixed(text)
            marks[symbol] = price
            bids, asks = step_book(price, d.instruments[symbol])
            d.apply(m.BookSnapshot(ts=ts, symbol=symbol, bids=bids, asks=asks, update_id=step + 1))
            events = d.apply(m.MarkPrice(ts=ts, symbol=symbol, mark=price))
            run.happenings.extend(_happenings(step, events, labels, marks))
        record()
    run.insurance_fund = d.ex.insurance_fund
    return run


def linear_path(start: dict[str, str], end: dict[str, str], steps: int) -> list[dict[str, str]]:
    """``steps`` evenly spaced price points from just after ``start`` to ``end`` (2 decimals)."""
    from decimal import Decimal

    out = []
    for i in range(1, steps + 1):
        point = {}
        for symbol, first in start.items():
            a, b = Decimal(first), Decimal(end[symbol])
            point[symbol] = str((a + (b - a) * i / steps).quantize(Decimal("0.1")))
        out.append(point)
    return out

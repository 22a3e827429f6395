"""A hypothesis state machine that drives the core at random and checks it against the model after every input.

The machine only uses the core's message types and its public queries (``account_view``,
``market``, ``insurance_fund``); what is right is decided by ``tests/core/model.py``. After
every input it checks:

1. no risk unit whose symbols have a fresh feed is at a margin ratio ≥ 100% (it must have been
   liquidated in that very input);
2. a unit that crossed the margin-call ratio (80%) without being liquidated in that input got one
   MARGIN_CALL, and no second one until its ratio fell below 80% − hysteresis (re-armed); a unit
   liquidated in an input got no MARGIN_CALL nor WARNING in it (the liquidation is the event);
3. every liquidation of a unit happened at a mark at or beyond one of the model's liquidation
   prices of that unit, never before (checked when the input was a mark move and nothing else
   changed the unit in that input);
4. an isolated liquidation costs the account at most that position's isolated wallet: the cross
   wallet does not fall;
5. every wallet obeys the ledger identity, rebuilt from the events alone (deposits −
   withdrawals ± transfers + realized PnL − commissions − clearance fees + funding + insurance
   top-ups);
6. the insurance fund moves only by clearance fees, take-overs and top-ups, in inputs that
   liquidate, and by exactly the changes it reports.

Rounding: the core keeps money in 1e-8 units (margins rounded up, payouts down); the model is
exact. A check only fails beyond a tolerance of 1e-6 USDT per unit of position size, far below
any real defect (defect 1 misses by 1,000 USDT).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from exchange_sim.core.exchange import Exchange, ExchangeConfig
from exchange_sim.core.messages import (
    Adl, AdjustIsolatedMargin, AutoAddMargin, BalanceUpdate, BookSnapshot, CancelAllOrders, CommandRejected, CreateAccount,
    Deposit, FeedStatus, Funding, FundingPayment, InsuranceFundChange, Liquidation, MarginCall, MarkPrice, OrderUpdate,
    MAIN_UMFUTURE, UMFUTURE_MAIN, PlaceOrder, SetAutoAddMargin, SetLeverage, SetMarginType, SetPositionMode, Trade,
    Transfer, UniversalTransfer, Withdraw,
)
from exchange_sim.profiles import load_profile
from tests.core.model import AccountState, Leg, Model, RiskUnit, risk_units

UNIT = 10**8
SYMBOLS = ("BTCUSDT", "ETHUSDT")
START = {"BTCUSDT": 60_000, "ETHUSDT": 3_000}
CALL, REARM = Fraction(4, 5), Fraction(3, 4)  # ExchangeConfig defaults: 80%, hysteresis 5%
LEVERAGES = (1, 2, 3, 5, 10, 20, 25, 50, 75, 100, 125)
DEPOSITS = (500, 2_000, 10_000, 50_000, 300_000, 1_200_000, 3_000_000)
MODEL = Model()

STATS: Counter = Counter()  # totals over every run in this process (the slow test prints them)


def fx(units: int) -> Fraction:
    return Fraction(units, UNIT)


def units(value: Fraction | int) -> int:
    return int(Fraction(value) * UNIT)


class ModelMismatch(AssertionError):
    """The core disagrees with the reference model."""


@dataclass(frozen=True)
class Focus:
    """Which parts of the input space a run explores."""

    name: str
    hedge: bool = True
    isolated: bool = True
    whales: bool = True


MIXED = Focus("mixed isolated and cross, one-way", hedge=False)
HEDGE = Focus("cross hedge books", isolated=False)
EVERYTHING = Focus("everything")


class CoreVersusModel(RuleBasedStateMachine):
    focus = EVERYTHING

    def __init__(self) -> None:
        super().__init__()
        self.ex = Exchange(load_profile(), ExchangeConfig())
        self.t = 1_700_000_000_000
        self.accounts: list[int] = []
        self.parent: dict[int, int] = {}
        self.hedge: dict[int, bool] = {}
        self.ledger: dict[int, int] = {}
        self.spot: dict[int, int] = {}  # each account's spot (funding) wallet, from the transfers alone
        self.level: dict[tuple, str] = {}  # unit key -> "armed" | "called" | "free"
        self.stale: set[str] = set()
        STATS["runs"] += 1

    # ------------------------------------------------------------------ driving the core

    def tick(self) -> int:
        self.t += 1
        return self.t

    def mark(self, symbol: str) -> int:
        return self.ex.market(symbol).mark

    def apply(self, msg) -> list:
        before = {aid: self.state(aid) for aid in self.accounts}
        marks_before = {s: self.mark(s) for s in SYMBOLS}
        fund_before = self.ex.insurance_fund
        events = self.ex.apply(msg)
        STATS["steps"] += 1
        self.book_ledger(msg, events)
        self.check(msg, events, before, marks_before, fund_before)
        return events

    def state(self, aid: int) -> AccountState:
        view = self.ex.account_view(aid)
        legs = tuple(Leg(p.symbol, p.position_side, fx(p.qty), fx(p.entry_price), p.isolated, fx(p.isolated_wallet))
                     for p in view.positions)
        return AccountState(aid, fx(view.cross_wallet), legs)

    def marks(self) -> dict[str, Fraction]:
        return {s: fx(self.mark(s)) for s in SYMBOLS}

    def account(self, i: int) -> int:
        return self.accounts[i % len(self.accounts)]

    # ------------------------------------------------------------------ rules


    @initialize(setups=st.lists(st.tuples(st.sampled_from(DEPOSITS), st.booleans(), st.booleans(), st.booleans(),
                                          st.sampled_from(LEVERAGES), st.sampled_from(LEVERAGES)),
                                min_size=2, max_size=4))
    def start(self, setups):
        """Marks, books, and 2-4 accounts each with its own margin types, position mode and leverages."""
        for s in SYMBOLS:
            self.apply(MarkPrice(self.tick(), s, START[s] * UNIT))
            self.book(s, START[s] * UNIT, 10, 500 if s == "ETHUSDT" else 30, 5)
        for deposit, btc_isolated, eth_isolated, hedge, btc_lev, eth_lev in setups:
            self.create(deposit, None)
            aid = self.accounts[-1]
            for symbol, isolated, lev in (("BTCUSDT", btc_isolated, btc_lev), ("ETHUSDT", eth_isolated, eth_lev)):
                if isolated and self.focus.isolated:
                    self.apply(SetMarginType(self.tick(), aid, symbol, True))
                if hedge and self.focus.hedge:
                    if not self.hedge[aid]:
                        self.apply(SetPositionMode(self.tick(), aid, True))
                        self.hedge[aid] = True
                    for side in ("LONG", "SHORT"):
                        self.apply(SetLeverage(self.tick(), aid, symbol, lev, side))
                else:
                    self.apply(SetLeverage(self.tick(), aid, symbol, lev))

    def create(self, deposit: int, parent: int | None) -> None:
        events = self.apply(CreateAccount(self.tick(), f"a{len(self.accounts)}", parent, deposit * UNIT))
        aid = events[0].account
        STATS["accounts"] += 1
        self.accounts.append(aid)
        self.hedge[aid] = False
        if parent is not None:
            self.parent[aid] = parent

    def book(self, symbol: str, mid: int, spread_ticks: int, qty: int, levels: int) -> None:
        tick = self.ex.instruments[symbol].tick_size
        mid = mid // tick * tick
        half = max(1, spread_ticks) * tick
        step = max(tick, mid // 2000 // tick * tick)
        bids = tuple((mid - half - i * step, qty * UNIT) for i in range(levels) if mid - half - i * step > 0)
        asks = tuple((mid + half + i * step, qty * UNIT) for i in range(levels))
        self.apply(BookSnapshot(self.tick(), symbol, bids, asks, 1))

    @rule(kind=st.sampled_from(("create", "deposit", "withdraw", "transfer", "to_spot", "from_spot")),
          i=st.integers(0, 7),
          amount=st.sampled_from(DEPOSITS), share=st.sampled_from((Fraction(1, 4), Fraction(9, 10), 1, 2)),
          flag=st.booleans())
    def money(self, kind, i, amount, share, flag):
        """A new account (``flag``: a sub-account of account i), a deposit, a withdrawal of a share of
        what may be withdrawn (2 = too much), a transfer between a master and a sub (``flag``: up), or a
        universal transfer into the spot wallet (a share of max withdraw) or back (a share of the spot
        wallet as counted here, 2 = too much)."""
        aid = self.account(i)
        if kind == "create":
            if len(self.accounts) < 8:
                self.create(amount, aid if flag and aid not in self.parent else None)
        elif kind == "deposit":
            self.apply(Deposit(self.tick(), aid, amount * UNIT))
        elif kind == "withdraw":
            self.apply(Withdraw(self.tick(), aid, max(1, units(fx(self.ex.account_view(aid).max_withdraw) * share))))
        elif kind == "to_spot":
            can = self.ex.account_view(aid).max_withdraw
            amount = max(1, units(fx(can) * share))
            events = self.apply(UniversalTransfer(self.tick(), aid, UMFUTURE_MAIN, amount))
            if (amount <= can) == isinstance(events[0], CommandRejected):
                self.fail(f"max withdraw {fx(can)}: transfer to spot of {fx(amount)} decided wrongly", None, events)
        elif kind == "from_spot":
            self.apply(UniversalTransfer(self.tick(), aid, MAIN_UMFUTURE, max(1, units(fx(self.spot.get(aid, 0)) * share))))
        else:
            subs = [a for a in self.accounts if a in self.parent]
            if subs:
                sub = subs[i % len(subs)]
                src, dst = (sub, self.parent[sub]) if flag else (self.parent[sub], sub)
                self.apply(Transfer(self.tick(), src, dst,
                                    max(1, units(fx(self.ex.account_view(src).max_withdraw) * share))))

    @rule(kind=st.sampled_from(("margin_type", "position_mode", "leverage", "leverage", "auto_add")),
          i=st.integers(0, 7), symbol=st.sampled_from(SYMBOLS), flag=st.booleans(), leg=st.booleans(),
          leverage=st.sampled_from(LEVERAGES))
    def setting(self, kind, i, symbol, flag, leg, leverage):
        """Margin type (``flag``: isolated), position mode (``flag``: hedge), leverage, auto-add margin."""
        aid = self.account(i)
        side = ("LONG" if leg else "SHORT") if self.hedge[aid] else "BOTH"
        if kind == "margin_type" and self.focus.isolated:
            self.apply(SetMarginType(self.tick(), aid, symbol, flag))
        elif kind == "position_mode" and self.focus.hedge:
            events = self.apply(SetPositionMode(self.tick(), aid, flag))
            if events and not isinstance(events[0], CommandRejected):
                self.hedge[aid] = flag
        elif kind == "leverage":
            self.apply(SetLeverage(self.tick(), aid, symbol, leverage, side))
        elif kind == "auto_add" and self.focus.isolated:
            self.apply(SetAutoAddMargin(self.tick(), aid, symbol, flag, side))

    ORDER = dict(
        i=st.integers(0, 7), symbol=st.sampled_from(SYMBOLS), buy=st.booleans(),
        kind=st.sampled_from(("MARKET", "MARKET", "LIMIT", "LIMIT_IOC", "STOP_MARKET", "TAKE_PROFIT_MARKET")),
        share=st.sampled_from((Fraction(1, 20), Fraction(1, 4), Fraction(1, 2), Fraction(9, 10), Fraction(99, 100))),
        offset=st.sampled_from((-300, -50, -5, 0, 5, 50, 300)), leg=st.booleans(),
        reduce_only=st.sampled_from((False, False, False, True)))

    @rule(**ORDER)
    def order(self, **kw):
        self.place(**kw)

    @rule(**ORDER)
    def another_order(self, **kw):  # orders are most of what happens: two rules draw them
        self.place(**kw)

    del ORDER

    def place(self, i, symbol, buy, kind, share, offset, leg, reduce_only):
        """An order sized at a share of what the account can afford at its leverage."""
        aid = self.account(i)
        inst = self.ex.instruments[symbol]
        mark = self.mark(symbol)
        view = self.ex.account_view(aid)
        hedge = self.hedge[aid]
        side = "BUY" if buy else "SELL"
        position_side = ("LONG" if leg else "SHORT") if hedge else "BOTH"
        lev = self.ex.leverage(aid, symbol, position_side)
        budget = fx(view.available_balance) * share * lev
        qty = units(budget / fx(mark)) // inst.step_size * inst.step_size
        qty = max(inst.min_qty, min(qty, inst.max_qty))
        price = (mark + mark * offset // 10_000) // inst.tick_size * inst.tick_size
        common = dict(qty=qty, position_side=position_side, reduce_only=reduce_only and not hedge)
        if kind == "MARKET":
            qty = min(qty, inst.market_max_qty)
            msg = PlaceOrder(self.tick(), aid, symbol, side, "MARKET", **(common | {"qty": qty}))
        elif kind in ("LIMIT", "LIMIT_IOC"):
            msg = PlaceOrder(self.tick(), aid, symbol, side, "LIMIT", price=price,
                             time_in_force="IOC" if kind == "LIMIT_IOC" else "GTC", **common)
        else:
            # a stop waits on the side it protects, a take-profit on the other: neither triggers at once
            above = (kind == "STOP_MARKET") == buy
            price = (mark + mark * (abs(offset) or 5) // 10_000 * (1 if above else -1)) // inst.tick_size * inst.tick_size
            msg = PlaceOrder(self.tick(), aid, symbol, side, kind, stop_price=price, working_type="MARK_PRICE",
                             **(common | {"qty": min(qty, inst.market_max_qty)}))
        self.apply(msg)

    @rule(i=st.integers(0, 7), symbol=st.sampled_from(SYMBOLS))
    def cancel_all(self, i, symbol):
        self.apply(CancelAllOrders(self.tick(), self.account(i), symbol))

    @precondition(lambda self: self.focus.isolated)
    @rule(i=st.integers(0, 7), j=st.integers(0, 3), add=st.booleans(),
          share=st.sampled_from((Fraction(1, 10), Fraction(1, 2), Fraction(9, 10), 1)))
    def isolated_margin(self, i, j, add, share):
        """Add a share of the available balance to an isolated leg, or remove a share of its margin."""
        aid = self.account(i)
        view = self.ex.account_view(aid)
        legs = [p for p in view.positions if p.isolated]
        if not legs:
            return
        leg = legs[j % len(legs)]
        amount = units(fx(view.available_balance if add else leg.isolated_wallet) * share)
        self.apply(AdjustIsolatedMargin(self.tick(), aid, leg.symbol, max(1, amount), add, leg.position_side))

    @rule(symbol=st.sampled_from(SYMBOLS), rate=st.sampled_from((-30, -3, -1, 1, 3, 30)))
    def funding(self, symbol, rate):
        self.apply(Funding(self.tick(), symbol, rate * UNIT // 10_000))  # rate in basis points

    @rule(symbol=st.sampled_from(SYMBOLS),
          move=st.sampled_from((-6000, -3000, -1000, -200, -20, -2, 2, 20, 200, 1000, 3000, 6000)),
          with_book=st.booleans())
    def mark_move(self, symbol, move, with_book):
        """Move the mark by ``move`` basis points (±60% at most), optionally taking the book along."""
        self.move_mark(symbol, move, with_book)

    def move_mark(self, symbol: str, move: int, with_book: bool) -> None:
        inst = self.ex.instruments[symbol]
        mark = self.mark(symbol)
        new = (mark + mark * move // 10_000) // inst.tick_size * inst.tick_size
        new = min(max(new, inst.min_price), inst.max_price)
        if with_book:
            self.book(symbol, new, 3, 50 if symbol == "ETHUSDT" else 3, 4)
        self.apply(MarkPrice(self.tick(), symbol, new))

    @rule(i=st.integers(0, 7), u=st.integers(0, 3), r=st.integers(0, 3),
          beyond=st.sampled_from((0, 1, 10, 100, 500)), short=st.sampled_from((False, False, True)))
    def mark_to_a_root(self, **kw):
        self.to_root(**kw)

    def to_root(self, i, u, r, beyond, short):
        """Put a mark exactly on, just beyond, or just short of one of a unit's model liquidation prices."""
        aid = self.account(i)
        unit_list = risk_units(self.state(aid))
        if not unit_list:
            return
        unit = unit_list[u % len(unit_list)]
        symbol = unit.symbols[r % len(unit.symbols)]
        inst = self.ex.instruments[symbol]
        roots = [p for p in MODEL.liquidation_prices(unit, symbol, self.marks())
                 if fx(inst.min_price) <= p <= fx(inst.max_price)]
        if not roots:
            return
        root = roots[r % len(roots)]
        marks = self.marks()
        step = root * beyond / 10_000 + fx(inst.tick_size)
        up, down = root + step, root - step
        up_bad = MODEL.shortfall(unit, marks | {symbol: up}) < 0
        target = (down if up_bad else up) if short else (up if up_bad else down)
        tick = inst.tick_size
        new = -(-units(target) // tick) * tick if target == up else units(target) // tick * tick  # outward
        self.book(symbol, new, 2, 50 if symbol == "ETHUSDT" else 3, 4)
        STATS["root_jumps"] += 1
        self.apply(MarkPrice(self.tick(), symbol, min(max(new, inst.min_price), inst.max_price)))

    @rule(i=st.integers(0, 7), u=st.integers(0, 3), r=st.integers(0, 3),
          beyond=st.sampled_from((0, 1, 10, 100, 500)), short=st.sampled_from((False, False, True)))
    def mark_to_another_root(self, **kw):
        self.to_root(**kw)

    @rule(symbol=st.sampled_from(SYMBOLS), offset=st.sampled_from((-100, -10, 0, 10, 100)),
          qty=st.sampled_from((1, 10, 1000)), buy=st.booleans())
    def trade(self, symbol, offset, qty, buy):
        inst = self.ex.instruments[symbol]
        mark = self.mark(symbol)
        price = (mark + mark * offset // 10_000) // inst.tick_size * inst.tick_size
        self.apply(Trade(self.tick(), symbol, price, qty * inst.step_size * 100, "BUY" if buy else "SELL"))

    @rule(symbol=st.sampled_from(SYMBOLS), spread=st.sampled_from((1, 5, 50)), qty=st.sampled_from((1, 20, 2000)),
          levels=st.sampled_from((1, 5)))
    def book_snapshot(self, symbol, spread, qty, levels):
        self.book(symbol, self.mark(symbol), spread, qty, levels)

    @rule(symbol=st.sampled_from(SYMBOLS), moves=st.lists(st.sampled_from((-3000, -300, -30, 30, 300, 3000)),
                                                          max_size=3), stays=st.booleans())
    def stale_spell(self, symbol, moves, stays):
        """The feed goes stale (the monitor holds), marks move meanwhile, and (unless ``stays``) it comes back."""
        # ``self.stale`` changes before the input, so the check after it already judges by the new state
        if symbol not in self.stale:
            self.stale.add(symbol)
            self.apply(FeedStatus(self.tick(), symbol, True, "test"))
        for move in moves:
            self.move_mark(symbol, move, False)
        if not stays:
            self.stale.discard(symbol)
            self.apply(FeedStatus(self.tick(), symbol, False, ""))

    @precondition(lambda self: self.focus.isolated)
    @rule(i=st.integers(0, 7), cross_btc=st.booleans(), buys=st.tuples(st.booleans(), st.booleans()),
          levs=st.tuples(st.sampled_from(LEVERAGES), st.sampled_from(LEVERAGES)),
          shares=st.tuples(st.sampled_from((Fraction(1, 4), Fraction(1, 2), Fraction(9, 10))),
                           st.sampled_from((Fraction(1, 4), Fraction(1, 2), Fraction(9, 10), Fraction(99, 100)))))
    def cross_and_isolated(self, i, cross_btc, buys, levs, shares):
        """One account, cross in one symbol and isolated in the other: a cross position, then an isolated one."""
        aid = self.account(i)
        cross, iso = ("BTCUSDT", "ETHUSDT") if cross_btc else ("ETHUSDT", "BTCUSDT")
        for symbol, isolated, lev, buy, share in ((cross, False, levs[0], buys[0], shares[0]),
                                                  (iso, True, levs[1], buys[1], shares[1])):
            if self.ex.is_isolated(aid, symbol) != isolated:
                self.apply(SetMarginType(self.tick(), aid, symbol, isolated))
            side = ("LONG" if buy else "SHORT") if self.hedge[aid] else "BOTH"
            self.apply(SetLeverage(self.tick(), aid, symbol, lev, side))
            self.place(i, symbol, buy, "MARKET", share, 0, buy, False)

    @precondition(lambda self: self.focus.whales)
    @rule(i=st.integers(0, 7), symbol=st.sampled_from(SYMBOLS), net=st.sampled_from((1, 5, 10, 25, 50)))
    def hedge_book(self, i, symbol, net):
        """A cross hedge book: a long leg and a short leg ``net``% smaller, at the highest leverage allowed."""
        aid = self.account(i)
        if not self.hedge[aid] or self.ex.is_isolated(aid, symbol):
            return
        inst = self.ex.instruments[symbol]
        mark = self.mark(symbol)
        view = self.ex.account_view(aid)
        for side in ("LONG", "SHORT"):
            self.apply(SetLeverage(self.tick(), aid, symbol, 25, side))
        gross = fx(view.available_balance) * 25 * Fraction(9, 10) / fx(mark)
        long_qty = gross / (2 - Fraction(net, 100))
        for side, q in (("LONG", long_qty), ("SHORT", long_qty * (1 - Fraction(net, 100)))):
            qty = min(units(q) // inst.step_size * inst.step_size, inst.max_qty)
            if qty < inst.min_qty:
                return
            tick = inst.tick_size
            price = mark // tick * tick + (tick if side == "LONG" else -tick)  # the touch: no open loss
            self.book(symbol, mark, 1, int(fx(qty)) + 1, 1)
            self.apply(PlaceOrder(self.tick(), aid, symbol, "BUY" if side == "LONG" else "SELL", "LIMIT", qty=qty,
                                  price=price, time_in_force="IOC", position_side=side))

    # ------------------------------------------------------------------ the ledger, from events only

    def book_ledger(self, msg, events) -> None:
        if isinstance(msg, CreateAccount) and events and not isinstance(events[0], CommandRejected):
            self.ledger[events[0].account] = msg.deposit
        accepted = not (len(events) == 1 and isinstance(events[0], CommandRejected))
        if accepted and isinstance(msg, Deposit):
            self.ledger[msg.account] += msg.amount
        if accepted and isinstance(msg, Withdraw):
            self.ledger[msg.account] -= msg.amount
        if isinstance(msg, UniversalTransfer):
            into_futures = msg.kind == MAIN_UMFUTURE
            if into_futures and accepted != (msg.amount <= self.spot.get(msg.account, 0)):
                self.fail(f"spot wallet {fx(self.spot.get(msg.account, 0))}: transfer of {fx(msg.amount)} "
                          f"{'accepted' if accepted else 'refused'}", msg, events)
            if not accepted and events[0].code != -5002:
                self.fail("a universal transfer refused with another code than the venue's -5002", msg, events)
            STATS["spot_transfers" if accepted else "spot_transfers_refused"] += 1
            if accepted:
                change = msg.amount if into_futures else -msg.amount
                self.ledger[msg.account] += change
                self.spot[msg.account] = self.spot.get(msg.account, 0) - change
        if accepted and isinstance(msg, Transfer):
            self.ledger[msg.from_account] -= msg.amount
            self.ledger[msg.to_account] += msg.amount
        for e in events:
            if isinstance(e, OrderUpdate) and e.exec_type == "TRADE":
                self.ledger[e.account] += e.realized_pnl - e.commission
            elif isinstance(e, FundingPayment):
                self.ledger[e.account] += e.amount
            elif isinstance(e, Liquidation):
                self.ledger[e.account] -= e.fee
            elif isinstance(e, BalanceUpdate) and e.reason == "INSURANCE_TOP_UP":
                self.ledger[e.account] += e.change

    # ------------------------------------------------------------------ the checks

    def fail(self, what: str, msg, events) -> None:
        shown = "\n  ".join(repr(e) for e in events[:40])
        raise ModelMismatch(f"{what}\n input: {msg!r}\n events:\n  {shown}")

    def check(self, msg, events, before, marks_before, fund_before) -> None:
        marks = self.marks()
        after = {aid: self.state(aid) for aid in self.accounts}
        liquidated: dict[tuple, list[Liquidation]] = {}
        for e in events:
            if isinstance(e, Liquidation):
                key = (e.account, e.symbol, e.position_side) if e.isolated else (e.account,)
                liquidated.setdefault(key, []).append(e)
        calls: Counter = Counter()
        for e in events:
            if isinstance(e, MarginCall):
                key = (e.account, e.symbol, e.positions[0].position_side) if e.symbol else (e.account,)
                if key in liquidated:
                    self.fail(f"unit {key}: a {e.level} in the input that liquidates it", msg, events)
                if e.level == "MARGIN_CALL":
                    calls[key] += 1
        self.check_liquidations(msg, events, before, marks_before, marks, liquidated)
        seen = set()
        for aid, state in after.items():
            if self.ledger.get(aid) != units(state.wallet_balance):
                self.fail(f"account {aid}: wallet {state.wallet_balance} != ledger {fx(self.ledger.get(aid, 0))}",
                          msg, events)
            if self.ex.spot_wallet(aid) != self.spot.get(aid, 0):
                self.fail(f"account {aid}: spot wallet {self.ex.spot_wallet(aid)} != {self.spot.get(aid, 0)}",
                          msg, events)
            for unit in risk_units(state):
                seen.add(unit.key)
                self.check_unit(unit, marks, msg, events, calls, liquidated)
        for key in list(self.level):
            if key not in seen:
                del self.level[key]
        self.check_fund(msg, events, fund_before, bool(liquidated))

    def tolerance(self, unit: RiskUnit) -> Fraction:
        return Fraction(1, 10**6) * (1 + sum(abs(leg.qty) for leg in unit.legs))

    def check_unit(self, unit: RiskUnit, marks, msg, events, calls, liquidated) -> None:
        if any(s in self.stale for s in unit.symbols):
            STATS["held_unit_checks"] += 1
            return
        STATS["unit_checks"] += 1
        tol = self.tolerance(unit)
        shortfall = MODEL.shortfall(unit, marks)
        if shortfall < -tol and MODEL.maintenance(unit, marks) > 0:
            ratio = MODEL.ratio(unit, marks)
            roots = {s: [float(r) for r in MODEL.liquidation_prices(unit, s, marks)] for s in unit.symbols}
            shown = "inf" if ratio is None else f"{float(ratio):.4f}"
            self.fail(f"unit {unit.key} at ratio {shown} (margin balance "
                      f"{float(MODEL.margin_balance(unit, marks)):.2f}, MM {float(MODEL.maintenance(unit, marks)):.2f})"
                      f" with a fresh feed and not liquidated; model liquidation prices {roots}", msg, events)
        # margin calls: "armed" (a call is due at 80%), "called" (no second call), "free" (either: the
        # ratio sat within rounding of a threshold, or the unit was just liquidated)
        level = self.level.get(unit.key, "armed")
        n = calls.get(unit.key, 0)
        at_call = MODEL.shortfall(unit, marks, CALL)
        must, may = at_call < -tol, at_call <= tol
        at_rearm = MODEL.shortfall(unit, marks, REARM)
        if unit.key in liquidated:
            self.level[unit.key] = "free"
            return
        ratio = MODEL.ratio(unit, marks)
        shown = "inf" if ratio is None else f"{float(ratio):.4f}"
        if n > 1:
            self.fail(f"unit {unit.key}: {n} margin calls in one input", msg, events)
        if n and level == "called":
            self.fail(f"unit {unit.key}: a second margin call (ratio {shown}) without re-arming", msg, events)
        if n and not may:
            self.fail(f"unit {unit.key}: margin call at ratio {shown} < 80%", msg, events)
        if must and level == "armed" and not n:
            self.fail(f"unit {unit.key} crossed 80% (ratio {shown}) without a margin call", msg, events)
        STATS["margin_calls_checked"] += n
        new = "called" if n else level
        if at_rearm > tol:
            new = "armed"
        elif at_rearm >= -tol or (may and not must and not n):
            new = "free"
        self.level[unit.key] = new

    def check_liquidations(self, msg, events, before, marks_before, marks, liquidated) -> None:
        for key in liquidated:
            STATS["liquidations"] += 1
            aid = key[0]
            if not isinstance(msg, MarkPrice) or self.other_activity(aid, events):
                STATS["liquidations_in_other_inputs"] += 1
                continue
            pre = [u for u in risk_units(before[aid]) if u.key == key]
            if not pre:
                self.fail(f"unit {key} liquidated but had no position before", msg, events)
            unit = pre[0]
            tol = self.tolerance(unit)
            shortfall = MODEL.shortfall(unit, marks)
            if shortfall > tol:
                roots = {s: [float(r) for r in MODEL.liquidation_prices(unit, s, marks)] for s in unit.symbols}
                ratio = MODEL.ratio(unit, marks)
                self.fail(f"unit {key} liquidated at ratio {float(ratio):.6f} < 100% (mark {float(marks[msg.symbol])}"
                          f", model liquidation prices {roots})", msg, events)
            STATS["liquidations_checked"] += 1
            if unit.isolated:
                lost = before[aid].wallet_balance - self.state(aid).wallet_balance
                if lost > unit.wallet + tol:
                    self.fail(f"isolated unit {key} lost {float(lost)} > its isolated wallet {float(unit.wallet)}",
                              msg, events)
                if self.state(aid).cross_wallet < before[aid].cross_wallet - tol:
                    self.fail(f"isolated liquidation of {key} took money from the cross wallet", msg, events)
                STATS["isolated_losses_checked"] += 1

    @staticmethod
    def other_activity(aid: int, events) -> bool:
        """Did anything change the account in this input before its liquidation began (a stop's fill,
        auto-add margin, an ADL fill as another account's counterparty)?"""
        for e in events:
            if getattr(e, "account", None) != aid:
                continue
            if isinstance(e, OrderUpdate) and e.client_order_id.startswith("autoclose-"):
                return False  # the liquidation's own order: what follows is the liquidation
            if isinstance(e, OrderUpdate) and e.exec_type == "TRADE":
                return True
            if isinstance(e, (AutoAddMargin, FundingPayment, Adl)):
                return True
        return False

    def check_fund(self, msg, events, fund_before, liquidated) -> None:
        changes = [e for e in events if isinstance(e, InsuranceFundChange)]
        if sum(e.change for e in changes) != self.ex.insurance_fund - fund_before:
            self.fail("the insurance fund moved by more than its reported changes", msg, events)
        for e in changes:
            if e.reason not in ("CLEARANCE_FEE", "TAKEOVER", "TOP_UP"):
                self.fail(f"insurance fund moved for {e.reason}", msg, events)
        if changes and not liquidated:
            self.fail("the insurance fund moved in an input that liquidated nothing", msg, events)

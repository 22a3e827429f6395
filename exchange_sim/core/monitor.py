"""The margin monitor: owns the risk units and their guard prices; judges units and returns verdicts.

A *risk unit* is what the venue judges as one: an isolated position alone, or a cross account as
a whole (cross wallet + Σ cross uPnL against Σ cross maintenance margin). Each unit has a level
(0 normal, 1 warned, 2 margin-called) and the next margin-ratio threshold it can cross:
the warning ratio, the margin-call ratio, auto-add margin, or 100% (liquidation).

The monitor acts on nothing itself. It learns what changed from the ledger's change list
(``absorb``) and from marks (``on_mark``), and ``judge`` returns *verdicts*, in order: ``WARN`` and
``CALL`` carry the ``MarginCall`` event, ``AUTO_ADD`` the amount to move into an isolated
position (the caller moves it and judges the unit again with ``after_auto_add``), ``LIQUIDATE``
the positions the liquidation engine must close. A unit at or past 100% gets ``LIQUIDATE`` alone,
no call: the liquidation is the event (calls are for 80%-100%).

Scaling. The per-tick cost does not grow with the number of open positions: every unit keeps
*guard prices* in two sorted indexes per symbol (``guards_down`` fire when the mark falls to the
guard, ``guards_up`` when it rises to it), the way stop orders are kept, and a mark update pops
only the guards it crosses. A popped unit is re-judged exactly and re-registered.

- A unit whose positions are all in one symbol (every isolated position, most cross accounts)
  gets the exact prices nearest the mark, on both sides, where its ratio reaches the threshold
  (margin.threshold_crossings: the Binance liquidation-price formula generalised to θ, every
  root of the piecewise-linear ratio curve; a cross hedge book has one below and one far above
  the mark), plus re-arm guards while it is warned or called (ratio back below threshold −
  hysteresis).
- A cross account spread over several symbols gets conservative guards: the slack to the
  threshold, S = θ·margin balance − MM, is split evenly between its symbols, and each symbol's
  guard sits where its mark alone could consume its share at the fastest possible rate
  (θ·|net qty| + gross qty × an upper bound of its MMR). No combination of moves can reach the
  threshold before some guard fires, so nothing is missed; when one fires the account is
  re-judged exactly and gets fresh guards. Its re-arm is checked whenever it is re-judged.

Anything that moves a unit's money or positions reaches the monitor through the ledger (the
only writer of wallets): an isolated position's change also re-judges its account's cross unit,
because its margin, fees and closes move the cross wallet. A unit holding a symbol whose feed
is stale is *held*: never liquidated on stale prices, re-judged when the feed is fresh again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from sortedcontainers import SortedList

from .accounts import Account, Position
from .exchange_config import ExchangeConfig
from .fixed import SCALE
from .instruments import Instrument
from .margin import initial_margin, margin_ratio, threshold_crossings
from .messages import MarginCall, MarginCallPosition
from .risk_view import RiskView

INF = 1 << 62
WARN, CALL, AUTO_ADD, LIQUIDATE = "WARN", "CALL", "AUTO_ADD", "LIQUIDATE"


class RiskUnit:
    __slots__ = ("id", "account", "position", "level", "guards")

    def __init__(self, uid: int, account: int, position: Position | None) -> None:
        self.id = uid
        self.account = account
        self.position = position  # the isolated position, or None for a cross account
        self.level = 0
        self.guards: list[tuple[str, bool, tuple[int, int]]] = []  # (symbol, is_down, key)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the monitor decided about one unit; the caller acts on it."""

    kind: str  # WARN | CALL | AUTO_ADD | LIQUIDATE
    unit: RiskUnit
    positions: tuple[Position, ...] = ()
    event: MarginCall | None = None  # WARN, CALL
    amount: int = 0  # AUTO_ADD: what to move from the cross wallet into the position


class MarginMonitor:
    def __init__(self, instruments: Mapping[str, Instrument], config: ExchangeConfig) -> None:
        self.instruments = instruments
        self.config = config
        self.units: dict[int, RiskUnit] = {}
        self.cross_units: dict[int, RiskUnit] = {}  # account id -> its cross unit
        self.isolated_units: dict[Position, RiskUnit] = {}
        self.dirty: dict[int, RiskUnit] = {}
        self.held: set[int] = set()
        self.guards_down: dict[str, SortedList] = {s: SortedList() for s in instruments}
        self.guards_up: dict[str, SortedList] = {s: SortedList() for s in instruments}
        self.guard_down_max: dict[str, int] = dict.fromkeys(instruments, -1)
        self.guard_up_min: dict[str, int] = dict.fromkeys(instruments, INF)
        self.next_unit_id = 0

    # ------------------------------------------------------------------ what changed

    def absorb(self, changes: Iterable[tuple[Account, Position | None]], judging: RiskUnit | None = None) -> None:
        """Mark dirty every unit the ledger's changes touch (except ``judging``, being judged now)."""
        for acct, pos in changes:
            if pos is not None and pos.isolated:
                unit = self.isolated_units.get(pos)
                if unit is None and pos.qty:
                    unit = self.isolated_units[pos] = self._new_unit(acct.id, pos)
                if unit is not None and unit is not judging:
                    self.dirty[unit.id] = unit
            self._account_touched(acct)

    def _account_touched(self, acct: Account) -> None:
        unit = self.cross_units.get(acct.id)
        if unit is None:
            if not any(not p.isolated and p.qty for p in acct.positions.values()):
                return
            unit = self.cross_units[acct.id] = self._new_unit(acct.id, None)
        self.dirty[unit.id] = unit

    def _new_unit(self, account: int, pos: Position | None) -> RiskUnit:
        self.next_unit_id += 1
        unit = RiskUnit(self.next_unit_id, account, pos)
        self.units[unit.id] = unit
        return unit

    def on_mark(self, symbol: str, mark: int) -> None:
        """Pop the guards ``mark`` crosses: their units become dirty (the per-tick path)."""
        if self.guard_down_max[symbol] < mark and self.guard_up_min[symbol] > mark:
            return
        hit: set[int] = set()
        down = self.guards_down[symbol]
        while down and -down[0][0] >= mark:
            hit.add(down.pop(0)[1])
        up = self.guards_up[symbol]
        while up and up[0][0] <= mark:
            hit.add(up.pop(0)[1])
        self._refresh_guard_cache(symbol)
        for uid in sorted(hit):
            unit = self.units.get(uid)
            if unit is not None:
                self.dirty[uid] = unit

    def release(self, symbol: str, view: RiskView) -> None:
        """A symbol's feed is fresh again: the units held while it was stale become dirty."""
        for uid in sorted(self.held):
            unit = self.units.get(uid)
            if unit is None:
                self.held.discard(uid)
                continue
            if any(p.symbol == symbol for p in view.unit_positions(unit.account, unit.position)):
                self.held.discard(uid)
                self.dirty[uid] = unit

    def next_dirty(self) -> RiskUnit | None:
        """The next unit to judge (lowest id first, for a deterministic order), or None."""
        while self.dirty:
            uid = min(self.dirty)
            unit = self.dirty.pop(uid)
            if uid in self.units:
                return unit
        return None

    # ------------------------------------------------------------------ judging a unit

    def judge(self, unit: RiskUnit, view: RiskView, now: int, after_auto_add: bool = False) -> list[Verdict]:
        """Judge a unit exactly at the current marks; re-register its guards unless it is liquidated."""
        self._unregister(unit)
        positions = view.unit_positions(unit.account, unit.position)
        if not positions:
            self._drop_unit(unit)
            return []
        if any(view.stale(p.symbol) for p in positions):
            self.held.add(unit.id)
            return []
        cfg = self.config
        mm, balance = view.unit_margin(unit.account, unit.position, positions)
        ratio = margin_ratio(mm, balance)
        pos = unit.position
        if not after_auto_add and pos is not None and pos.auto_add and pos.leverage > 1 \
                and ratio >= cfg.auto_add_ratio:
            acct = view.ledger.accounts[pos.account]
            amount = min(initial_margin(pos.notional(view.mark_of(pos)), pos.leverage), view.available(acct))
            if amount > 0:
                return [Verdict(AUTO_ADD, unit, (pos,), amount=amount)]
        if ratio >= SCALE:
            # no call at or past 100%: the liquidation is the event; a partial liquidation that
            # leaves the unit above 80% calls no more than one that was called on the way up
            unit.level = 2
            return [Verdict(LIQUIDATE, unit, tuple(positions))]
        verdicts = []
        call, warn, hyst = cfg.margin_call_ratio, cfg.warning_ratio, cfg.margin_call_hysteresis
        if ratio >= call and unit.level < 2:
            verdicts.append(self._margin_call(CALL, unit, positions, ratio, view, now))
            unit.level = 2
        elif warn and ratio >= warn and unit.level < 1:
            verdicts.append(self._margin_call(WARN, unit, positions, ratio, view, now))
            unit.level = 1
        if unit.level == 2 and ratio < call - hyst:
            unit.level = 1 if warn and ratio >= warn else 0
        if unit.level == 1 and ratio < warn - hyst:
            unit.level = 0
        self._register(unit, positions, ratio, view)
        return verdicts

    def _drop_unit(self, unit: RiskUnit) -> None:
        self.units.pop(unit.id, None)
        self.held.discard(unit.id)
        if unit.position is not None:
            if self.isolated_units.get(unit.position) is unit:
                del self.isolated_units[unit.position]
        elif self.cross_units.get(unit.account) is unit:
            del self.cross_units[unit.account]

    def _margin_call(self, kind: str, unit: RiskUnit, positions: list[Position], ratio: int, view: RiskView,
                     now: int) -> Verdict:
        acct = view.ledger.accounts[unit.account]
        rows = []
        for pos in positions:
            mark = view.mark_of(pos)
            rows.append(MarginCallPosition(
                pos.symbol, pos.side, pos.qty, pos.isolated, pos.isolated_wallet, mark, pos.pnl(mark),
                self.instruments[pos.symbol].maintenance_margin(pos.notional(mark))))
        symbol = unit.position.symbol if unit.position is not None else ""
        level = "MARGIN_CALL" if kind == CALL else "WARNING"
        event = MarginCall(now, acct.id, symbol, level, ratio, acct.cross_wallet, tuple(rows))
        return Verdict(kind, unit, tuple(positions), event=event)

    # ------------------------------------------------------------------ guards

    def _next_threshold(self, unit: RiskUnit, ratio: int) -> int:
        cfg = self.config
        candidates = [SCALE]
        if unit.level < 2:
            candidates.append(cfg.margin_call_ratio)
        if unit.level < 1 and cfg.warning_ratio:
            candidates.append(cfg.warning_ratio)
        pos = unit.position
        if pos is not None and pos.auto_add and pos.leverage > 1:
            candidates.append(cfg.auto_add_ratio)
        above = [c for c in candidates if c > ratio]
        return min(above) if above else SCALE

    def _rearm_threshold(self, unit: RiskUnit) -> int:
        cfg = self.config
        if unit.level == 2:
            return cfg.margin_call_ratio - cfg.margin_call_hysteresis
        if unit.level == 1:
            return cfg.warning_ratio - cfg.margin_call_hysteresis
        return 0

    def _register(self, unit: RiskUnit, positions: list[Position], ratio: int, view: RiskView) -> None:
        theta = self._next_threshold(unit, ratio)
        symbols = sorted({p.symbol for p in positions})
        if len(symbols) == 1:
            symbol = symbols[0]
            inst = self.instruments[symbol]
            legs = [(p.qty, p.cost) for p in positions]
            wallet = unit.position.isolated_wallet if unit.position is not None \
                else view.ledger.accounts[unit.account].cross_wallet
            mark = view.mark_of(positions[0])
            # every crossing of θ nearest the mark, on both sides (a hedge book has two)
            thresholds = [theta]
            rearm = self._rearm_threshold(unit)
            if rearm > 0:
                thresholds.append(rearm)
            for level in thresholds:
                below, above = threshold_crossings(inst, legs, wallet, level, mark)
                if below > 0:
                    self._add_guard(unit, symbol, True, below)
                if above > 0:
                    self._add_guard(unit, symbol, False, above)
            return
        mm, balance = view.unit_margin(unit.account, unit.position, positions)
        slack = theta * balance // SCALE - mm
        if slack <= 0:
            # the exact judgement just said otherwise (rounding): look again on the next tick
            slack = 0
        budget = slack // len(symbols)
        for symbol in symbols:
            held = [p for p in positions if p.symbol == symbol]
            mark = view.mark(symbol)
            if not mark:
                continue
            net = sum(p.qty for p in held)
            gross = sum(abs(p.qty) for p in held)
            mmr_bound = self.instruments[symbol].tier_for_notional(2 * gross * mark // SCALE).mmr
            rate = theta * abs(net) + gross * mmr_bound
            distance = budget * SCALE * SCALE // rate if rate else INF
            if net >= 0:
                self._add_guard(unit, symbol, True, mark - distance)
            if net <= 0:
                self._add_guard(unit, symbol, False, min(mark + distance, 2 * mark))
            elif gross * self.instruments[symbol].tiers[-1].mmr > theta * net:
                # a hedge book long on balance: a rise can still consume the slack once its gross
                # maintenance grows faster than its net gain (at the latest in a higher tier)
                rate_up = gross * mmr_bound - theta * net
                up = mark + budget * SCALE * SCALE // rate_up if rate_up > 0 else INF
                self._add_guard(unit, symbol, False, min(up, 2 * mark))

    def _add_guard(self, unit: RiskUnit, symbol: str, down: bool, price: int) -> None:
        if down:
            if price <= 0:
                return
            key = (-price, unit.id)
            self.guards_down[symbol].add(key)
            if price > self.guard_down_max[symbol]:
                self.guard_down_max[symbol] = price
        else:
            key = (price, unit.id)
            self.guards_up[symbol].add(key)
            if price < self.guard_up_min[symbol]:
                self.guard_up_min[symbol] = price
        unit.guards.append((symbol, down, key))

    def _unregister(self, unit: RiskUnit) -> None:
        if not unit.guards:
            return
        touched = set()
        for symbol, down, key in unit.guards:
            (self.guards_down if down else self.guards_up)[symbol].discard(key)
            touched.add(symbol)
        unit.guards = []
        for symbol in touched:
            self._refresh_guard_cache(symbol)

    def _refresh_guard_cache(self, symbol: str) -> None:
        down, up = self.guards_down[symbol], self.guards_up[symbol]
        self.guard_down_max[symbol] = -down[0][0] if down else -1
        self.guard_up_min[symbol] = up[0][0] if up else INF

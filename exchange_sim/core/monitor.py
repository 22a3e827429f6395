"""The margin monitor: marks risk to market on every mark price, calls margin, starts liquidations.

A *risk unit* is what the venue judges as one: an isolated position alone, or a cross account as
a whole (cross wallet + Σ cross uPnL against Σ cross maintenance margin). Each unit has a level
(0 normal, 1 warned, 2 margin-called) and the next margin-ratio threshold it can cross:
the warning ratio, the margin-call ratio, auto-add margin, or 100% (liquidation).

Scaling. The per-tick cost does not grow with the number of open positions: every unit keeps
*guard prices* in two sorted indexes per symbol (``guards_down`` fire when the mark falls to the
guard, ``guards_up`` when it rises to it), the way stop orders are kept, and a mark update pops
only the guards it crosses. A popped unit is re-judged exactly and re-registered.

- A unit whose positions are all in one symbol (every isolated position, most cross accounts)
  gets the exact price where its ratio reaches the threshold (margin.threshold_price: the
  Binance liquidation-price formula generalised to θ), plus a re-arm guard in the other
  direction while it is warned or called (ratio back below threshold − hysteresis).
- A cross account spread over several symbols gets conservative guards: the slack to the
  threshold, S = θ·margin balance − MM, is split evenly between its symbols, and each symbol's
  guard sits where its mark alone could consume its share at the fastest possible rate
  (θ·|net qty| + gross qty × an upper bound of its MMR). No combination of moves can reach the
  threshold before some guard fires, so nothing is missed; when one fires the account is
  re-judged exactly and gets fresh guards. Its re-arm is checked whenever it is re-judged.

Anything that changes a unit's wallet or positions (fills, funding, transfers, margin moves)
marks it dirty; dirty units are re-judged at the end of the input that dirtied them. A unit
holding a symbol whose feed is stale is *held*: never liquidated on stale prices, re-judged when
the feed is fresh again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING


from .accounts import Account, Position
from .fixed import SCALE
from .margin import initial_margin, margin_ratio, threshold_crossings
from .messages import AutoAddMargin, BalanceUpdate, MarginCall, MarginCallPosition, PositionUpdate

if TYPE_CHECKING:
    from .exchange import Exchange

INF = 1 << 62


class RiskUnit:
    __slots__ = ("id", "account", "position", "level", "guards")

    def __init__(self, uid: int, account: int, position: Position | None) -> None:
        self.id = uid
        self.account = account
        self.position = position  # the isolated position, or None for a cross account
        self.level = 0
        self.guards: list[tuple[str, bool, tuple[int, int]]] = []  # (symbol, is_down, key)


class MarginMonitor:
    """Mixin: the margin monitor half of the Exchange."""

    # ------------------------------------------------------------------ bookkeeping hooks

    def _position_changed(self: "Exchange", acct: Account, pos: Position) -> None:
        by_symbol = self.positions_by_symbol[pos.symbol]
        if pos.qty:
            by_symbol[pos] = None
        else:
            by_symbol.pop(pos, None)
        if pos.isolated:
            unit = pos.unit
            if unit is None and pos.qty:
                unit = pos.unit = self._new_unit(acct.id, pos)
            if unit is not None:
                self.dirty_units[unit.id] = unit
        # an isolated position moves money through the cross wallet (its margin, fees, what a close
        # returns): the cross account is judged again as well
        self._account_changed(acct)

    def _account_changed(self: "Exchange", acct: Account) -> None:
        unit = acct.unit
        if unit is None:
            if not any(not p.isolated and p.qty for p in acct.positions.values()):
                return
            unit = acct.unit = self._new_unit(acct.id, None)
        self.dirty_units[unit.id] = unit

    def _new_unit(self: "Exchange", account: int, pos: Position | None) -> RiskUnit:
        self.next_unit_id += 1
        unit = RiskUnit(self.next_unit_id, account, pos)
        self.units[unit.id] = unit
        return unit

    def _refresh_dirty(self: "Exchange") -> None:
        """Re-judge every unit changed by the current input, in a deterministic order."""
        while self.dirty_units:
            uid = min(self.dirty_units)
            unit = self.dirty_units.pop(uid)
            if uid in self.units:
                self._evaluate(unit)

    # ------------------------------------------------------------------ per tick

    def _monitor_mark(self: "Exchange", symbol: str, mark: int) -> None:
        """Pop the guards ``mark`` crosses and re-judge their units (the per-tick path)."""
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
                self.dirty_units[uid] = unit
        self._refresh_dirty()

    def _refresh_guard_cache(self: "Exchange", symbol: str) -> None:
        down, up = self.guards_down[symbol], self.guards_up[symbol]
        self.guard_down_max[symbol] = -down[0][0] if down else -1
        self.guard_up_min[symbol] = up[0][0] if up else INF

    # ------------------------------------------------------------------ judging a unit

    def _unit_positions(self: "Exchange", unit: RiskUnit) -> list[Position]:
        if unit.position is not None:
            return [unit.position] if unit.position.qty else []
        acct = self.accounts[unit.account]
        return [p for _, p in sorted(acct.positions.items()) if not p.isolated and p.qty]

    def _mark_of(self: "Exchange", pos: Position) -> int:
        return self.markets[pos.symbol].mark or pos.entry_price

    def _margin_sums(self: "Exchange", positions) -> tuple[int, int]:
        """(Σ maintenance margin, Σ unrealized PnL) of positions at the current marks."""
        mm = 0
        pnl = 0
        for pos in positions:
            mark = self._mark_of(pos)
            mm += self.instruments[pos.symbol].maintenance_margin(pos.notional(mark))
            pnl += pos.pnl(mark)
        return mm, pnl

    def _unit_margin(self: "Exchange", unit: RiskUnit, positions: list[Position]) -> tuple[int, int]:
        """(Σ maintenance margin, margin balance) of a unit at the current marks."""
        mm, pnl = self._margin_sums(positions)
        if unit.position is not None:
            return mm, unit.position.isolated_wallet + pnl
        return mm, self.accounts[unit.account].cross_wallet + pnl

    def unit_ratio(self: "Exchange", unit: RiskUnit) -> int:
        positions = self._unit_positions(unit)
        return margin_ratio(*self._unit_margin(unit, positions)) if positions else 0

    def _evaluate(self: "Exchange", unit: RiskUnit) -> None:
        """Judge a unit exactly: auto-add, margin call, liquidation; then re-register its guards."""
        self._unregister(unit)
        positions = self._unit_positions(unit)
        if not positions:
            self._drop_unit(unit)
            return
        if any(self.markets[p.symbol].stale for p in positions):
            self.held_units.add(unit.id)
            return
        cfg = self.config
        mm, balance = self._unit_margin(unit, positions)
        ratio = margin_ratio(mm, balance)
        pos = unit.position
        if pos is not None and pos.auto_add and pos.leverage > 1 and ratio >= cfg.auto_add_ratio:
            if self._auto_add_margin(pos):
                mm, balance = self._unit_margin(unit, positions)
                ratio = margin_ratio(mm, balance)
        if ratio >= SCALE:
            if unit.level < 2:
                self._margin_call(unit, positions, ratio, "MARGIN_CALL")
            self._liquidate(unit, positions)
            return
        call, warn, hyst = cfg.margin_call_ratio, cfg.warning_ratio, cfg.margin_call_hysteresis
        if ratio >= call and unit.level < 2:
            self._margin_call(unit, positions, ratio, "MARGIN_CALL")
            unit.level = 2
        elif warn and ratio >= warn and unit.level < 1:
            self._margin_call(unit, positions, ratio, "WARNING")
            unit.level = 1
        if unit.level == 2 and ratio < call - hyst:
            unit.level = 1 if warn and ratio >= warn else 0
        if unit.level == 1 and ratio < warn - hyst:
            unit.level = 0
        self._register(unit, positions, ratio)

    def _drop_unit(self: "Exchange", unit: RiskUnit) -> None:
        self.units.pop(unit.id, None)
        self.held_units.discard(unit.id)
        if unit.position is not None:
            unit.position.unit = None
        else:
            acct = self.accounts.get(unit.account)
            if acct is not None and acct.unit is unit:
                acct.unit = None

    def _margin_call(self: "Exchange", unit: RiskUnit, positions: list[Position], ratio: int, level: str) -> None:
        acct = self.accounts[unit.account]
        rows = []
        for pos in positions:
            mark = self._mark_of(pos)
            rows.append(MarginCallPosition(
                pos.symbol, pos.side, pos.qty, pos.isolated, pos.isolated_wallet, mark, pos.pnl(mark),
                self.instruments[pos.symbol].maintenance_margin(pos.notional(mark))))
        symbol = unit.position.symbol if unit.position is not None else ""
        self.out.append(MarginCall(self.now, acct.id, symbol, level, ratio, acct.cross_wallet, tuple(rows)))

    def _auto_add_margin(self: "Exchange", pos: Position) -> bool:
        """Move the position's IM (or what is available, if less) from the cross wallet into it."""
        acct = self.accounts[pos.account]
        amount = min(initial_margin(pos.notional(self._mark_of(pos)), pos.leverage), self._available(acct))
        if amount <= 0:
            return False
        acct.cross_wallet -= amount
        pos.isolated_wallet += amount
        self.out.append(AutoAddMargin(self.now, acct.id, pos.symbol, pos.side, amount))
        self.out.append(BalanceUpdate(self.now, acct.id, acct.cross_wallet, -amount, "AUTO_ADD_MARGIN"))
        self.out.append(PositionUpdate(self.now, acct.id, pos.symbol, pos.side, pos.qty, pos.entry_price, True,
                                       pos.isolated_wallet, pos.leverage, "AUTO_ADD_MARGIN"))
        self._account_changed(acct)
        return True

    # ------------------------------------------------------------------ guards

    def _next_threshold(self: "Exchange", unit: RiskUnit, ratio: int) -> int:
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

    def _rearm_threshold(self: "Exchange", unit: RiskUnit) -> int:
        cfg = self.config
        if unit.level == 2:
            return cfg.margin_call_ratio - cfg.margin_call_hysteresis
        if unit.level == 1:
            return cfg.warning_ratio - cfg.margin_call_hysteresis
        return 0

    def _register(self: "Exchange", unit: RiskUnit, positions: list[Position], ratio: int) -> None:
        theta = self._next_threshold(unit, ratio)
        symbols = sorted({p.symbol for p in positions})
        if len(symbols) == 1:
            symbol = symbols[0]
            inst = self.instruments[symbol]
            legs = [(p.qty, p.cost) for p in positions]
            wallet = unit.position.isolated_wallet if unit.position is not None \
                else self.accounts[unit.account].cross_wallet
            mark = self._mark_of(positions[0])
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
        mm, balance = self._unit_margin(unit, positions)
        slack = theta * balance // SCALE - mm
        if slack <= 0:
            # the exact judgement just said otherwise (rounding): look again on the next tick
            slack = 0
        budget = slack // len(symbols)
        for symbol in symbols:
            held = [p for p in positions if p.symbol == symbol]
            mark = self.markets[symbol].mark
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

    def _add_guard(self: "Exchange", unit: RiskUnit, symbol: str, down: bool, price: int) -> None:
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

    def _unregister(self: "Exchange", unit: RiskUnit) -> None:
        if not unit.guards:
            return
        touched = set()
        for symbol, down, key in unit.guards:
            (self.guards_down if down else self.guards_up)[symbol].discard(key)
            touched.add(symbol)
        unit.guards = []
        for symbol in touched:
            self._refresh_guard_cache(symbol)

    def _release_held(self: "Exchange", symbol: str) -> None:
        """A symbol's feed is fresh again: re-judge the units held while it was stale."""
        for uid in sorted(self.held_units):
            unit = self.units.get(uid)
            if unit is None:
                self.held_units.discard(uid)
                continue
            if any(p.symbol == symbol for p in self._unit_positions(unit)):
                self.held_units.discard(uid)
                self.dirty_units[uid] = unit
        self._refresh_dirty()
        mark = self.markets[symbol].mark
        if mark:
            self._monitor_mark(symbol, mark)

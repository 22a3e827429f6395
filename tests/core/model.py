"""An independent reference of the venue's margin rules, written from margin-rules.md alone.

Deliberately slow and obviously correct: exact ``Fraction`` arithmetic in plain USDT (no
fixed-point units, no rounding), no indexes, no caches, every quantity recomputed from the
account's legs and the marks each time it is asked for. It shares no code with
``exchange_sim.core`` (``test_model.py`` parses this file's imports to keep it so); the tiers are
read from the shipped profile's JSON data and their maintenance amounts (cum) derived here.

margin-rules.md, "Quantities":
- unrealized PnL = side × qty × (mark − entry), at the mark;
- margin balance = wallet + uPnL (cross: cross wallet + Σ cross uPnL; isolated: isolated wallet
  + that position's uPnL);
- maintenance margin = notional × MMR(tier) − cum(tier), tier chosen by the notional;
- margin ratio = MM / margin balance, liquidation at ≥ 100%; cross sums over all cross
  positions, isolated is per position.

A *risk unit* is what is judged as one: each isolated position alone, and the cross part of each
account (all its cross positions against its cross wallet). ``roots`` gives every price of one
symbol at which the unit's ratio reaches a threshold θ (100% = the liquidation prices), the other
symbols' marks held where they are: margin balance − MM/θ is continuous and piecewise linear in
the price (cum keeps MM continuous at tier edges), so it is solved exactly on each piece between
the prices where some leg's notional crosses a tier floor. A cross hedge book can have two such
roots (issue 16, defect 2); the Binance formula gives the one of the tiers it was solved in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

PROFILE = Path(__file__).resolve().parents[2] / "exchange_sim" / "profiles" / "binance_usdm.json"

Number = Fraction | int


def exact(text: str | int | Fraction) -> Fraction:
    """Decimal text (or an int / Fraction) as an exact Fraction."""
    return Fraction(text) if not isinstance(text, str) else Fraction(text.strip())


@dataclass(frozen=True)
class Tier:
    """One bracket: notional in [floor, cap), ``max_leverage``, MMR and maintenance amount cum."""

    bracket: int
    floor: Fraction
    cap: Fraction
    max_leverage: int
    mmr: Fraction
    cum: Fraction


def tiers_from_data(raw_tiers: list[dict]) -> tuple[Tier, ...]:
    """Brackets from profile data; cum_k = cum_{k−1} + floor_k × (MMR_k − MMR_{k−1})."""
    out = []
    cum = Fraction(0)
    prev_mmr = Fraction(0)
    for raw in sorted(raw_tiers, key=lambda t: int(t["bracket"])):
        floor, mmr = exact(str(raw["notional_floor"])), exact(str(raw["mmr"]))
        cum = cum + floor * (mmr - prev_mmr)
        prev_mmr = mmr
        out.append(Tier(int(raw["bracket"]), floor, exact(str(raw["notional_cap"])), int(raw["max_leverage"]),
                        mmr, cum))
    return tuple(out)


@dataclass(frozen=True)
class Symbol:
    name: str
    tiers: tuple[Tier, ...]
    min_price: Fraction
    max_price: Fraction
    taker_fee: Fraction
    maker_fee: Fraction
    liquidation_fee: Fraction


def load_symbols(path: Path = PROFILE) -> dict[str, Symbol]:
    """Every symbol of the shipped profile, read from its JSON data."""
    data = json.loads(path.read_text(encoding="utf-8"))["symbols"]
    return {name: Symbol(name, tiers_from_data(d["tiers"]), exact(d["min_price"]), exact(d["max_price"]),
                         exact(d["taker_fee"]), exact(d["maker_fee"]), exact(d["liquidation_fee"]))
            for name, d in sorted(data.items())}


def tier_of(tiers: tuple[Tier, ...], notional: Fraction) -> Tier:
    """The bracket whose [floor, cap) holds the notional (the last bracket above every cap)."""
    for tier in tiers:
        if tier.floor <= notional < tier.cap:
            return tier
    return tiers[-1]


def maintenance_margin(tiers: tuple[Tier, ...], notional: Fraction) -> Fraction:
    """notional × MMR(tier) − cum(tier), the tier chosen by the notional."""
    tier = tier_of(tiers, abs(notional))
    return abs(notional) * tier.mmr - tier.cum


@dataclass(frozen=True)
class Leg:
    """A position leg: BOTH (one-way) or LONG/SHORT (hedge); ``qty`` signed (+ long, − short)."""

    symbol: str
    side: str
    qty: Fraction
    entry_price: Fraction
    isolated: bool = False
    isolated_wallet: Fraction = Fraction(0)

    def pnl(self, mark: Fraction) -> Fraction:
        """side × qty × (mark − entry)."""
        return self.qty * (mark - self.entry_price)

    def notional(self, mark: Fraction) -> Fraction:
        return abs(self.qty) * mark


@dataclass(frozen=True)
class AccountState:
    account: int
    cross_wallet: Fraction
    legs: tuple[Leg, ...]

    @property
    def wallet_balance(self) -> Fraction:
        """Cross wallet plus every isolated wallet."""
        return self.cross_wallet + sum((leg.isolated_wallet for leg in self.legs), Fraction(0))


@dataclass(frozen=True)
class RiskUnit:
    """An isolated leg alone (``key`` = (account, symbol, side)) or an account's cross legs (key = (account,))."""

    key: tuple
    wallet: Fraction
    legs: tuple[Leg, ...]

    @property
    def isolated(self) -> bool:
        return len(self.key) == 3

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(sorted({leg.symbol for leg in self.legs}))


def risk_units(state: AccountState) -> list[RiskUnit]:
    """Every risk unit of an account: one per open isolated leg, one for the open cross legs (if any)."""
    units = [RiskUnit((state.account, leg.symbol, leg.side), leg.isolated_wallet, (leg,))
             for leg in state.legs if leg.isolated and leg.qty]
    cross = tuple(leg for leg in state.legs if not leg.isolated and leg.qty)
    if cross:
        units.append(RiskUnit((state.account,), state.cross_wallet, cross))
    return units


class Model:
    """The venue's margin arithmetic over plain states (no memory between calls)."""

    def __init__(self, symbols: dict[str, Symbol] | None = None) -> None:
        self.symbols = symbols if symbols is not None else load_symbols()

    def maintenance(self, unit: RiskUnit, marks: dict[str, Fraction]) -> Fraction:
        """Σ maintenance margin of the unit's legs at the marks."""
        return sum((maintenance_margin(self.symbols[leg.symbol].tiers, leg.notional(marks[leg.symbol]))
                    for leg in unit.legs), Fraction(0))

    def margin_balance(self, unit: RiskUnit, marks: dict[str, Fraction]) -> Fraction:
        """The unit's wallet plus its legs' uPnL at the marks."""
        return unit.wallet + sum((leg.pnl(marks[leg.symbol]) for leg in unit.legs), Fraction(0))

    def ratio(self, unit: RiskUnit, marks: dict[str, Fraction]) -> Fraction | None:
        """MM / margin balance; None stands for infinity (MM > 0 and no positive balance)."""
        mm = self.maintenance(unit, marks)
        balance = self.margin_balance(unit, marks)
        if mm <= 0:
            return Fraction(0)
        if balance <= 0:
            return None
        return mm / balance

    def shortfall(self, unit: RiskUnit, marks: dict[str, Fraction], theta: Fraction = Fraction(1)) -> Fraction:
        """θ × margin balance − MM: ≤ 0 exactly when the ratio is ≥ θ (for MM > 0)."""
        return theta * self.margin_balance(unit, marks) - self.maintenance(unit, marks)

    def roots(self, unit: RiskUnit, symbol: str, marks: dict[str, Fraction],
              theta: Fraction = Fraction(1)) -> list[Fraction]:
        """Every price p > 0 of ``symbol`` where θ·balance − MM changes sign or touches 0, ascending.

        The other symbols' marks stay at ``marks``. With θ = 1 these are the liquidation prices.
        """
        legs = [leg for leg in unit.legs if leg.symbol == symbol]
        if not legs:
            return []
        tiers = self.symbols[symbol].tiers
        others = [leg for leg in unit.legs if leg.symbol != symbol]
        constant = theta * unit.wallet
        for leg in others:
            mark = marks[leg.symbol]
            constant += theta * leg.pnl(mark) - maintenance_margin(self.symbols[leg.symbol].tiers, leg.notional(mark))
        # breakpoints: prices where one leg's notional reaches a tier floor
        edges = sorted({tier.floor / abs(leg.qty) for leg in legs for tier in tiers if tier.floor > 0})
        bounds = [Fraction(0)] + edges
        found: list[Fraction] = []
        for i, low in enumerate(bounds):
            high = bounds[i + 1] if i + 1 < len(bounds) else None
            # on [low, high) every leg's tier is fixed: the one holding its notional at low
            slope = Fraction(0)
            intercept = constant
            for leg in legs:
                tier = tier_of(tiers, abs(leg.qty) * low)
                slope += theta * leg.qty - abs(leg.qty) * tier.mmr
                intercept += -theta * leg.qty * leg.entry_price + tier.cum
            if slope == 0:
                if intercept == 0 and low > 0:
                    found.append(low)  # flat at zero: the piece's start stands for it
                continue
            price = -intercept / slope
            if price >= low and (high is None or price < high) and price > 0:
                found.append(price)
        return sorted(set(found))

    def liquidation_prices(self, unit: RiskUnit, symbol: str, marks: dict[str, Fraction]) -> list[Fraction]:
        """The unit's liquidation prices in ``symbol`` (ratio = 100%), ascending; [] = none."""
        return self.roots(unit, symbol, marks, Fraction(1))


def binance_one_way_lp(side: int, qty: Fraction, entry: Fraction, wallet: Fraction,
                       tiers: tuple[Tier, ...]) -> Fraction | None:
    """margin-rules.md's closed form for one leg with W′ = ``wallet``, trying each tier for Q·LP.

    long: (Q·EP − W′ − cum) / (Q·(1 − MMR)); short: (Q·EP + W′ + cum) / (Q·(1 + MMR)).
    """
    for tier in tiers:
        if side > 0:
            lp = (qty * entry - wallet - tier.cum) / (qty * (1 - tier.mmr))
        else:
            lp = (qty * entry + wallet + tier.cum) / (qty * (1 + tier.mmr))
        if lp > 0 and tier_of(tiers, qty * lp) is tier:
            return lp
    return None


def bankruptcy_price(leg: Leg, wallet: Fraction) -> Fraction:
    """Where the leg's equity (W′ + uPnL) is 0: long EP − W′/Q, short EP + W′/Q."""
    return leg.entry_price - wallet / leg.qty

"""Instruments and their leverage/maintenance tiers, from a venue profile.

A profile is plain data (``exchange_sim/profiles/binance_usdm.json``): tick and lot sizes,
minimums, fees, the liquidation clearance fee and the notional brackets. ``cum`` (the
maintenance amount) is derived, never typed in: cum_k = cum_{k-1} + floor_k × (MMR_k − MMR_{k-1}),
which keeps maintenance margin continuous at tier edges (margin-rules.md, "Tiers").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .fixed import SCALE, mul, to_fixed


@dataclass(frozen=True, slots=True)
class Tier:
    """One notional bracket: [floor, cap) at up to ``max_leverage``, maintenance ``mmr`` and ``cum``."""

    bracket: int
    floor: int
    cap: int
    max_leverage: int
    mmr: int
    cum: int


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    base: str
    quote: str
    tick_size: int
    step_size: int
    min_qty: int
    max_qty: int
    market_max_qty: int
    min_notional: int
    min_price: int
    max_price: int
    contract_size: int
    maker_fee: int
    taker_fee: int
    liquidation_fee: int
    market_take_bound: int
    price_precision: int
    qty_precision: int
    tiers: tuple[Tier, ...]

    @property
    def max_leverage(self) -> int:
        return self.tiers[0].max_leverage

    def tier_for_notional(self, notional: int) -> Tier:
        """The bracket whose [floor, cap) holds ``notional`` (the last one above all caps)."""
        for tier in self.tiers:
            if notional < tier.cap:
                return tier
        return self.tiers[-1]

    def max_notional(self, leverage: int) -> int:
        """Largest position notional allowed at ``leverage``: cap of the last tier allowing it."""
        for tier in reversed(self.tiers):
            if tier.max_leverage >= leverage:
                return tier.cap
        return 0

    def maintenance_margin(self, notional: int) -> int:
        """notional × MMR(tier) − cum(tier), tier chosen by the notional; never below 0."""
        tier = self.tier_for_notional(notional)
        return max(0, -(-notional * tier.mmr // SCALE) - tier.cum)

    @staticmethod
    def from_dict(symbol: str, data: Mapping[str, Any]) -> "Instrument":
        """Build an instrument from profile data (numbers as decimal text)."""
        tiers = []
        cum = 0
        prev_mmr = 0
        for raw in sorted(data["tiers"], key=lambda t: int(t["bracket"])):
            floor = to_fixed(str(raw["notional_floor"]))
            mmr = to_fixed(str(raw["mmr"]))
            cum = cum + mul(floor, mmr - prev_mmr)
            prev_mmr = mmr
            tiers.append(Tier(int(raw["bracket"]), floor, to_fixed(str(raw["notional_cap"])),
                              int(raw["max_leverage"]), mmr, cum))
        f = lambda key, default="0": to_fixed(str(data.get(key, default)))  # noqa: E731
        return Instrument(
            symbol=symbol,
            base=str(data["base"]),
            quote=str(data.get("quote", "USDT")),
            tick_size=f("tick_size"),
            step_size=f("step_size"),
            min_qty=f("min_qty"),
            max_qty=f("max_qty"),
            market_max_qty=f("market_max_qty", str(data["max_qty"])),
            min_notional=f("min_notional"),
            min_price=f("min_price"),
            max_price=f("max_price", "100000000"),
            contract_size=f("contract_size", "1"),
            maker_fee=f("maker_fee"),
            taker_fee=f("taker_fee"),
            liquidation_fee=f("liquidation_fee"),
            market_take_bound=f("market_take_bound", "0.05"),
            price_precision=int(data.get("price_precision", 2)),
            qty_precision=int(data.get("qty_precision", 3)),
            tiers=tuple(tiers),
        )


def instruments_from_profile(profile: Mapping[str, Any]) -> dict[str, Instrument]:
    """Every symbol of a profile dict (``{"symbols": {"BTCUSDT": {...}}}``)."""
    return {sym: Instrument.from_dict(sym, d) for sym, d in sorted(profile["symbols"].items())}

"""The core's behaviour knobs: one frozen object every component is built from."""

from __future__ import annotations

from dataclasses import dataclass

from .fixed import to_fixed


@dataclass(frozen=True, slots=True)
class ExchangeConfig:
    """Behaviour knobs of the core (ratios and rates are fixed-point: 1.0 = SCALE)."""

    margin_call_ratio: int = to_fixed("0.8")
    warning_ratio: int = to_fixed("0.6")  # 0 disables the warning level
    margin_call_hysteresis: int = to_fixed("0.05")
    auto_add_ratio: int = to_fixed("0.9")  # isolated auto-add margin acts at this margin ratio
    half_spread: int = to_fixed("0.0001")  # no-book fill model: price moved against the taker by this
    default_leverage: int = 20
    insurance_fund: int = to_fixed("1000000")  # initial insurance fund balance (USDT)
    adl_enabled: bool = True
    venue_adl: bool = False  # cluster mode: ADL claims for the venue's coordinator (adl_claims.py)
    history_limit: int | None = 1000  # closed orders, fills and income kept per account (None: all)
    partial_liquidation_min_tier: int = 3  # positions in this bracket or above are first reduced a tier

"""Venue profiles shipped as data: ``load_profile("binance_usdm")`` → {symbol: Instrument}."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from exchange_sim.core.instruments import Instrument, instruments_from_profile


def profile_data(name: str = "binance_usdm") -> dict[str, Any]:
    """The raw profile dict shipped in this package."""
    text = resources.files(__package__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text)


def load_profile(name: str = "binance_usdm", symbols: list[str] | None = None) -> dict[str, Instrument]:
    """Instruments of a shipped profile, optionally only some symbols."""
    instruments = instruments_from_profile(profile_data(name))
    if symbols is not None:
        missing = [s for s in symbols if s not in instruments]
        if missing:
            raise KeyError(f"symbols not in profile {name!r}: {', '.join(missing)}")
        instruments = {s: instruments[s] for s in symbols}
    return instruments

"""Instruments loaded from a live venue through ccxt (markets + leverage tiers) as profile data.

``profile_from_ccxt`` is pure: it turns ccxt's unified market and leverage-tier structures into
the profile dict that ``instruments_from_profile`` reads, so it is tested offline; ``load_from_venue``
fetches them (needs the internet).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterable

from exchange_sim.core.instruments import Instrument, instruments_from_profile

DEFAULT_LIQUIDATION_FEE = "0.0125"


def _text(value: Any, default: str = "0") -> str:
    if value is None:
        return default
    return format(Decimal(str(value)).normalize(), "f")


def _decimals(step: str) -> int:
    exponent = Decimal(step).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def profile_from_ccxt(markets: Iterable[dict], tiers: dict[str, list[dict]]) -> dict[str, Any]:
    """A profile dict from ccxt markets (linear perpetuals) and ``fetch_leverage_tiers`` output."""
    symbols: dict[str, Any] = {}
    for market in markets:
        if not (market.get("swap") and market.get("linear")):
            continue
        venue_id = str(market["id"]).upper()
        rows = tiers.get(market["symbol"]) or tiers.get(venue_id)
        if not rows:
            continue
        limits = market.get("limits") or {}
        tick = _text(market["precision"]["price"])
        step = _text(market["precision"]["amount"])
        info = market.get("info") or {}
        symbols[venue_id] = {
            "base": market["base"], "quote": market["quote"],
            "tick_size": tick, "step_size": step,
            "min_qty": _text((limits.get("amount") or {}).get("min"), step),
            "max_qty": _text((limits.get("amount") or {}).get("max"), "1000000"),
            "market_max_qty": _text((limits.get("market") or {}).get("max")
                                    or (limits.get("amount") or {}).get("max"), "1000000"),
            "min_notional": _text((limits.get("cost") or {}).get("min"), "0"),
            "min_price": _text((limits.get("price") or {}).get("min"), tick),
            "max_price": _text((limits.get("price") or {}).get("max"), "100000000"),
            "contract_size": _text(market.get("contractSize"), "1"),
            "maker_fee": _text(market.get("maker"), "0.0002"),
            "taker_fee": _text(market.get("taker"), "0.0005"),
            "liquidation_fee": _text(info.get("liquidationFee"), DEFAULT_LIQUIDATION_FEE),
            "market_take_bound": _text(info.get("marketTakeBound"), "0.05"),
            "price_precision": int(info.get("pricePrecision", _decimals(tick))),
            "qty_precision": int(info.get("quantityPrecision", _decimals(step))),
            "tiers": [{"bracket": int(row.get("tier", i + 1)),
                       "notional_floor": _text(row["minNotional"]), "notional_cap": _text(row["maxNotional"]),
                       "max_leverage": int(float(row["maxLeverage"])),
                       "mmr": _text(row["maintenanceMarginRate"])}
                      for i, row in enumerate(sorted(rows, key=lambda r: float(r["minNotional"])))],
        }
    return {"venue": "ccxt", "symbols": symbols}


def load_from_venue(exchange_id: str = "binanceusdm", symbols: list[str] | None = None) -> dict[str, Instrument]:
    """Fetch markets and leverage tiers from a venue with ccxt (network) as instruments."""
    import ccxt

    venue = getattr(ccxt, exchange_id)({"enableRateLimit": True})
    try:
        markets = venue.load_markets()
        wanted = [m for m in markets.values() if symbols is None or str(m["id"]).upper() in symbols]
        tiers = venue.fetch_leverage_tiers([m["symbol"] for m in wanted])
    finally:
        close = getattr(venue, "close", None)
        if callable(close):
            close()
    return instruments_from_profile(profile_from_ccxt(wanted, tiers))

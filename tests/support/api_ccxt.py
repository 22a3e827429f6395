"""ccxt client configuration for the local simulator, exactly as docs/binance-api.md prescribes.

    cfg = ccxt_config("http://127.0.0.1:PORT", key, secret)
    client = ccxt.binanceusdm(cfg)                  # or ccxt.async_support / ccxt.pro

Besides the fapi URLs, every other REST URL key of the client points at ``<base>/unsupported/<key>``
on the simulator, so a call the simulator does not implement fails locally (404, −5000) instead
of leaving the machine.
"""

from __future__ import annotations

from typing import Any

import ccxt


def ccxt_config(base: str, api_key: str = "", secret: str = "", **extra: Any) -> dict[str, Any]:
    """The config dict that points an unmodified ccxt binanceusdm client at ``base``."""
    ws = base.replace("http://", "ws://", 1) + "/ws"
    template = ccxt.binanceusdm()
    api_urls: dict[str, Any] = {key: f"{base}/unsupported/{key}" for key in template.urls["api"] if key != "ws"}
    api_urls.update({
        "fapiPublic": base + "/fapi/v1", "fapiPublicV2": base + "/fapi/v2", "fapiPublicV3": base + "/fapi/v3",
        "fapiPrivate": base + "/fapi/v1", "fapiPrivateV2": base + "/fapi/v2", "fapiPrivateV3": base + "/fapi/v3",
        "fapiData": base + "/futures/data",
        "ws": {"linear": ws},
    })
    cfg: dict[str, Any] = {
        "apiKey": api_key, "secret": secret, "enableRateLimit": False,
        "urls": {"api": api_urls},
        "options": {"fetchCurrencies": False, "fetchOpenOrders": {"warnWithoutSymbol": False}},
        "exceptions": {"exact": template.exceptions["linear"]["exact"]},
    }
    for key, value in extra.items():
        if key == "options":
            cfg["options"].update(value)
        else:
            cfg[key] = value
    return cfg

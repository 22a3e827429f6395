"""A minimal hand-rolled Binance request signer, for tests that need to send what ccxt never would.

    status, body = await signed(session, sim.url, "GET", "/fapi/v3/account", {}, key, secret)
    status, body = await signed(..., timestamp=now - 60_000)            # stale
    status, body = await signed(..., signature="00" * 32)               # forged
    status, body = await raw(session, sim.url, "POST", "/fapi/v1/order", query="...", body="...", headers={...})

``signed`` puts ``timestamp`` first and ``signature`` last like the venue's clients do; GET and
DELETE carry everything in the query string, POST/PUT in a form body.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp

from exchange_sim.client import signature


def now_ms() -> int:
    return time.time_ns() // 1_000_000


signature_of = signature  # the one signer (exchange_sim.client), under the name these tests use


async def raw(session: aiohttp.ClientSession, base: str, method: str, path: str, *, query: str = "",
              body: str | bytes = "", headers: dict | None = None) -> tuple[int, Any]:
    url = base + path + (("?" + query) if query else "")
    hdrs = dict(headers or {})
    if body:
        hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
    async with session.request(method, url, data=body or None, headers=hdrs) as resp:
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text


async def signed(session: aiohttp.ClientSession, base: str, method: str, path: str, params: dict,
                 key: str, secret: str, *, timestamp: int | None = None, recv_window: int | None = None,
                 signature: str | None = None) -> tuple[int, Any]:
    """Send a signed request; ``timestamp``/``recv_window``/``signature`` override the honest values."""
    ordered: dict[str, Any] = {"timestamp": now_ms() if timestamp is None else timestamp}
    ordered.update(params)
    if recv_window is not None:
        ordered["recvWindow"] = recv_window
    payload = urlencode(ordered)
    sig = signature if signature is not None else signature_of(secret, payload)
    total = f"{payload}&signature={sig}"
    headers = {"X-MBX-APIKEY": key}
    if method in ("GET", "DELETE"):
        return await raw(session, base, method, path, query=total, headers=headers)
    return await raw(session, base, method, path, body=total, headers=headers)

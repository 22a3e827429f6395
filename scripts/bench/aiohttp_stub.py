"""The reference floor of the API round-trip benchmark: a do-nothing Binance order endpoint.

    python scripts/bench/aiohttp_stub.py --port PORT --exchange-info FILE     (keys: env EXSIM_STUB_KEYS)

An aiohttp server on 127.0.0.1 that does the least a venue must do for an unmodified ccxt
``binanceusdm`` client to place an order: look up the ``X-MBX-APIKEY``, verify the HMAC-SHA256
signature over the raw query string + raw body (signature last, as Binance signs), parse the
parameters, and answer with a valid order JSON (status NEW, an increasing ``orderId``). No
matching, no margin, no journal. ``GET /fapi/v1/exchangeInfo`` serves a canned file (the
simulator's own answer, saved by the benchmark) so ``load_markets`` sees the same markets;
``/fapi/v1/time`` answers the time. It runs the way the simulator runs (its own process, default
asyncio loop, ``aiohttp.web`` with no access log), so the two differ only in what they do per
request. ``EXSIM_STUB_KEYS`` is a JSON object ``{"apiKey": "secret", ...}``. Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import os
import signal
import time
from urllib.parse import parse_qsl

from aiohttp import web


def _error(code: int, msg: str, status: int = 400) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


def make_app(keys: dict[str, str], exchange_info: bytes) -> web.Application:
    secrets = {k: s.encode() for k, s in keys.items()}
    order_ids = itertools.count(1)

    async def verified(request: web.Request) -> dict[str, str] | web.Response:
        secret = secrets.get(request.headers.get("X-MBX-APIKEY", ""))
        if secret is None:
            return _error(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        query = request.rel_url.raw_query_string
        body = (await request.read()).decode("ascii") if request.can_read_body else ""
        raw = query + body
        head, sep, signature = raw.rpartition("&signature=")
        if not sep:
            return _error(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        expected = hmac.new(secret, head.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            return _error(-1022, "Signature for this request is not valid.")
        return dict(parse_qsl(head, keep_blank_values=True))

    async def new_order(request: web.Request) -> web.Response:
        p = await verified(request)
        if isinstance(p, web.Response):
            return p
        now = int(time.time() * 1000)
        order_type = p.get("type", "LIMIT")
        return web.json_response({
            "orderId": next(order_ids), "symbol": p.get("symbol", ""), "status": "NEW",
            "clientOrderId": p.get("newClientOrderId", ""), "price": p.get("price", "0"), "avgPrice": "0.00",
            "origQty": p.get("quantity", "0"), "executedQty": "0.000", "cumQty": "0.000", "cumQuote": "0.00000000",
            "timeInForce": p.get("timeInForce", "GTC"), "type": order_type, "reduceOnly": False,
            "closePosition": False, "side": p.get("side", "BUY"), "positionSide": p.get("positionSide", "BOTH"),
            "stopPrice": "0.00", "workingType": "CONTRACT_PRICE", "priceProtect": False, "origType": order_type,
            "priceMatch": "NONE", "selfTradePreventionMode": "NONE", "goodTillDate": 0, "updateTime": now,
        })

    async def cancel_all(request: web.Request) -> web.Response:
        p = await verified(request)
        if isinstance(p, web.Response):
            return p
        return web.json_response({"code": 200, "msg": "The operation of cancel all open order is done."})

    async def info(request: web.Request) -> web.Response:
        return web.Response(body=exchange_info, content_type="application/json")

    async def server_time(request: web.Request) -> web.Response:
        return web.json_response({"serverTime": int(time.time() * 1000)})

    app = web.Application()
    app.router.add_post("/fapi/v1/order", new_order)
    app.router.add_delete("/fapi/v1/allOpenOrders", cancel_all)
    app.router.add_get("/fapi/v1/exchangeInfo", info)
    app.router.add_get("/fapi/v1/time", server_time)
    return app


async def serve(port: int, keys: dict[str, str], exchange_info: bytes) -> None:
    runner = web.AppRunner(make_app(keys, exchange_info), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--exchange-info", required=True, help="file with the exchangeInfo JSON to serve")
    args = parser.parse_args()
    keys = json.loads(os.environ.get("EXSIM_STUB_KEYS", "{}"))
    with open(args.exchange_info, "rb") as fh:
        exchange_info = fh.read()
    asyncio.run(serve(args.port, keys, exchange_info))


if __name__ == "__main__":
    main()

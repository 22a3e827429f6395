"""Bots for the fault tests: real ccxt clients placing resting orders, counting what was acknowledged.

Each bot owns one account and places limit buys below the market (they rest, so every
acknowledged order must be open at the end) with client ids ``<name>-<n>``. A failed attempt
(gateway gone, 503 while a shard fails over) is retried with the same client id, through the next
gateway; a retry refused as ``-4116 ClientOrderId is duplicated`` means the first attempt was
applied, and counts as acknowledged. ``inputs(urls, shard)`` reads a shard's whole input stream
(the journal) for the duplicate check.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import nats
import nats.errors

from exchange_sim.cluster.layout import KIND, REFUSAL, REFUSES, REQUEST, ShardNames
from exchange_sim.core import messages as m
from tests.support.api_ccxt import ccxt_config

BTC = "BTC/USDT:USDT"


@dataclass
class Bot:
    name: str
    account: dict
    urls: list[str]
    gateway: int
    shard: str
    acknowledged: list[str] = field(default_factory=list)
    ack_times: list[float] = field(default_factory=list)
    failures: int = 0
    switches: int = 0
    _client: Any = None

    async def client(self) -> Any:
        if self._client is None:
            self._client = ccxt_async.binanceusdm(ccxt_config(self.urls[self.gateway], self.account["apiKey"],
                                                              self.account["apiSecret"], timeout=5000))
            await self._client.load_markets()
        return self._client

    async def switch(self) -> None:
        """Go to the next gateway (what a client does when its gateway is gone)."""
        if self._client is not None:
            await self._client.close()
            self._client = None
        self.gateway = (self.gateway + 1) % len(self.urls)
        self.switches += 1

    async def place(self, n: int, deadline: float) -> None:
        client_id = f"{self.name}-{n}"
        price = 59000 - (n % 100) * 0.1  # below the 60,000 market (inside the venue's price band): rests
        while time.monotonic() < deadline:
            try:
                client = await self.client()
                await client.create_order(BTC, "limit", "buy", 0.004, price, params={"newClientOrderId": client_id})
            except ccxt.InvalidOrder as exc:
                if "-4116" in str(exc) or "duplicated" in str(exc):
                    break  # the earlier attempt was applied
                raise
            except (ccxt.NetworkError, ccxt.OperationFailed, OSError) as exc:  # -1001 "try again", or unreachable
                self.failures += 1
                if isinstance(exc, (ccxt.NetworkError, OSError)):  # the gateway is unreachable (a 503 is not)
                    await self.switch()
                await asyncio.sleep(0.05)
                continue
            break
        else:
            return  # never acknowledged
        self.acknowledged.append(client_id)
        self.ack_times.append(time.monotonic())

    async def run(self, stop: asyncio.Event, limit: int = 180) -> None:  # MAX_NUM_ORDERS is 200 per symbol
        n = 0
        while not stop.is_set() and n < limit:
            n += 1
            await self.place(n, time.monotonic() + 20)
            await asyncio.sleep(0.025)  # at most ~40 orders/s a bot: the 180 last past the recovery

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def open_client_ids(self, url: str) -> list[str]:
        client = ccxt_async.binanceusdm(ccxt_config(url, self.account["apiKey"], self.account["apiSecret"]))
        try:
            await client.load_markets()
            return [o["clientOrderId"] for o in await client.fetch_open_orders(BTC)]
        finally:
            await client.close()


async def inputs(urls: list[str], shard: str, attempts: int = 6) -> list[tuple[int, dict, Any]]:
    """Every input in ``shard``'s input stream: (seq, headers, message). Retried from scratch while
    JetStream answers timeouts (it re-elects stream leaders for a few seconds after a node is lost)."""
    for attempt in range(attempts):
        try:
            return await _read_inputs(urls, shard)
        except (nats.errors.TimeoutError, asyncio.TimeoutError, nats.errors.NoServersError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(2)
    raise AssertionError("unreachable")


async def _read_inputs(urls: list[str], shard: str) -> list[tuple[int, dict, Any]]:
    names = ShardNames(shard)
    nc = await nats.connect(servers=urls)
    try:
        js = nc.jetstream()
        stored = (await js.stream_info(names.input_stream)).state.messages  # fewer than last_seq once trimmed
        out = []
        sub = await js.subscribe(names.input_subject, stream=names.input_stream, ordered_consumer=True)
        while len(out) < stored:
            msg = await sub.next_msg(timeout=10)
            headers = msg.headers or {}
            body = None if headers.get(KIND) == REFUSAL else m.loads(msg.data)  # a refusal marker has none
            out.append((msg.metadata.sequence.stream, headers, body))
        await sub.unsubscribe()
        return out
    finally:
        await nc.close()


def duplicated(journal: list[tuple[int, dict, Any]], new_exchange: Any) -> int:
    """Inputs applied twice: a request id journaled twice, or a client order id accepted twice when
    the journal is replayed into a fresh core (a retry refused with -4116 is not a duplicate)."""
    requests: dict[str, int] = {}
    accepted: dict[tuple[int, str], int] = {}
    core = new_exchange()
    refused = {int(h[REFUSES]) for _, h, _ in journal if h.get(KIND) == REFUSAL}
    for seq, headers, msg in journal:
        if seq in refused or headers.get(KIND) == REFUSAL:
            continue  # the core raised on it: it never happened
        if headers.get(KIND) == "cmd":
            request = headers.get(REQUEST, "")
            requests[request] = requests.get(request, 0) + 1
        for event in core.apply(msg):
            if isinstance(event, m.OrderUpdate) and event.exec_type == "NEW" and event.client_order_id:
                key = (event.account, event.client_order_id)
                accepted[key] = accepted.get(key, 0) + 1
    return sum(c - 1 for c in requests.values()) + sum(c - 1 for c in accepted.values())

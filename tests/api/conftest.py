"""Fixtures for the API tests: a running in-process simulator and real ccxt clients pointed at it."""

from __future__ import annotations

import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import pytest

from tests.support.api_server import ccxt_config, running_sim, seed_book


@pytest.fixture
async def sim():
    async with running_sim() as s:
        yield s


@pytest.fixture
async def market(sim):
    """The simulator with a BTCUSDT and an ETHUSDT book, marks and one trade each."""
    await seed_book(sim, "BTCUSDT", "60000")
    await seed_book(sim, "ETHUSDT", "3000", spread="1", qty="500")
    return sim


@pytest.fixture
async def clients(sim):
    """``await clients.async_(account)`` / ``clients.sync(account)`` / ``clients.pro(account)``; closed at the end."""
    made = []

    class Factory:
        def sync(self, account=None, **extra):
            c = ccxt.binanceusdm(ccxt_config(sim.url, *(_keys(account)), **extra))
            made.append(c)
            return c

        def async_(self, account=None, **extra):
            c = ccxt_async.binanceusdm(ccxt_config(sim.url, *(_keys(account)), **extra))
            made.append(c)
            return c

        def pro(self, account=None, **extra):
            c = ccxt_pro.binanceusdm(ccxt_config(sim.url, *(_keys(account)), **extra))
            made.append(c)
            return c

    yield Factory()
    for c in made:
        if isinstance(c, ccxt_async.Exchange):
            await c.close()


def _keys(account):
    if account is None:
        return ("", "")
    return (account["apiKey"], account["apiSecret"])

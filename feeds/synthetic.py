"""Synthetic markets for offline classrooms and tests: a seeded random walk and scripted scenarios.

Every step (``step_ms`` of market time, default 1 s) each symbol gets a ``BookSnapshot`` (a few
levels around the price, re-sent whole each step: a synthetic book has no diff sequence), a
``Trade`` at the new price and a ``MarkPrice``.
The price follows ``log-price += drift(t) + sigma × N(0, 1)`` with a per-scenario drift:

- ``walk``: no drift;
- ``flash_crash``: after 20 % of the run the price falls ``depth`` (default 20 %) within
  ``crash_steps`` steps, then recovers half of the fall over the next ``4 × crash_steps``;
- ``squeeze``: after 20 % of the run the price rises ``depth`` within ``crash_steps`` steps and
  stays there;
- ``slow_bleed``: the price falls ``depth`` evenly over the whole run.

Deterministic: one ``random.Random(seed)`` instance drives everything; the same seed and
arguments give the same events. Timestamps start at ``start_ts`` (ms). ``steps=None`` runs for
ever. ``speed``: 0 = as fast as possible, 1 = one step per ``step_ms`` of wall time, N = N× faster.

Served to clients (``exchange-sim run --feed synthetic``) the feed is given two callables:

- ``clock``: the session's clock in ms. Each step is stamped with it (never going backwards), so
  market data, orders and fills share one clock; without it the scripted ``start_ts`` is used.
- ``anchor``: the market's current last price of a symbol (fixed units, or None). When something
  else moved the price since the feed's previous step (a teacher's staged shock, an injected
  trade), the walk continues from there instead of jumping back to its own path.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from msgspec.structs import replace as _replace

from exchange_sim.core.fixed import SCALE
from exchange_sim.core.messages import BUY, SELL, BookSnapshot, MarkPrice, Trade

from .base import FeedSpecError, Pacer, check_symbols

SCENARIOS = ("walk", "flash_crash", "squeeze", "slow_bleed")
START_PRICES = {"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0}
TICKS = {"BTCUSDT": SCALE // 10, "ETHUSDT": SCALE // 100}


@dataclass(frozen=True, slots=True)
class SyntheticConfig:
    """A synthetic market: scenario, seed, length and shape."""

    scenario: str = "walk"
    seed: int = 1
    steps: int | None = 600
    step_ms: int = 1000
    start_ts: int = 1_722_816_000_000  # 2024-08-05T00:00Z
    sigma: float = 0.0005  # per step, in log-price
    depth: float = 0.20  # size of the scenario's move
    crash_steps: int = 30
    levels: int = 5
    level_qty: int = 2 * SCALE
    trade_qty: int = SCALE // 100
    speed: float = 0.0


def _drift(cfg: SyntheticConfig, step: int) -> float:
    """The scripted log-price move of one step."""
    total = cfg.steps or 3600
    start = total // 5
    n = max(cfg.crash_steps, 1)
    if cfg.scenario == "flash_crash":
        fall = math.log(1.0 - cfg.depth)
        if start <= step < start + n:
            return fall / n
        if start + n <= step < start + 5 * n:
            return -0.5 * fall / (4 * n)
    elif cfg.scenario == "squeeze":
        if start <= step < start + n:
            return math.log(1.0 + cfg.depth) / n
    elif cfg.scenario == "slow_bleed":
        return math.log(1.0 - cfg.depth) / total
    return 0.0


class SyntheticMarket:
    """The walk's state: one log-price per symbol, moved one step at a time."""

    def __init__(self, symbols: Sequence[str], cfg: SyntheticConfig = SyntheticConfig()) -> None:
        if cfg.scenario not in SCENARIOS:
            raise FeedSpecError(f"unknown synthetic scenario {cfg.scenario!r}; one of {', '.join(SCENARIOS)}")
        self.symbols = check_symbols(symbols)
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.logp = {s: math.log(START_PRICES.get(s, 100.0)) for s in self.symbols}
        self.last_price: dict[str, int] = {}  # what the previous step printed, per symbol
        self.trade_id = {s: 0 for s in self.symbols}
        self.step_no = 0

    def continue_from(self, symbol: str, price: int | None) -> None:
        """Carry on from ``price`` when the market left the walk's last print (a shock moved it)."""
        if price and price > 0 and self.last_price.get(symbol) not in (None, price):
            self.logp[symbol] = math.log(price / SCALE)

    def step(self, ts: int) -> list[Any]:
        """The next step's book, trade and mark of every symbol, stamped ``ts``."""
        cfg, rng = self.cfg, self.rng
        drift = _drift(cfg, self.step_no)
        out: list[Any] = []
        for s in self.symbols:
            tick = TICKS.get(s, SCALE // 100)
            prev = _price(self.logp[s], tick)
            self.logp[s] += drift + cfg.sigma * rng.gauss(0.0, 1.0)
            price = self.last_price[s] = _price(self.logp[s], tick)
            spread = tick * (1 + rng.randrange(2))
            bids = tuple((price - spread - i * tick, cfg.level_qty + rng.randrange(cfg.level_qty)) for i in
                         range(cfg.levels))
            asks = tuple((price + (i + 1) * tick, cfg.level_qty + rng.randrange(cfg.level_qty))
                         for i in range(cfg.levels))
            out.append(BookSnapshot(ts=ts, symbol=s, bids=bids, asks=asks, update_id=self.step_no + 1))
            self.trade_id[s] += 1
            out.append(Trade(ts=ts, symbol=s, price=price, qty=cfg.trade_qty * (1 + rng.randrange(5)),
                             taker_side=BUY if price >= prev else SELL, trade_id=self.trade_id[s]))
            out.append(MarkPrice(ts=ts, symbol=s, mark=price))
        self.step_no += 1
        return out

    @property
    def done(self) -> bool:
        return self.cfg.steps is not None and self.step_no >= self.cfg.steps


def synthetic_events(symbols: Sequence[str], cfg: SyntheticConfig = SyntheticConfig()) -> Iterator[Any]:
    """The events of a synthetic market, step by step (deterministic for a seed)."""
    market = SyntheticMarket(symbols, cfg)
    while not market.done:
        yield from market.step(cfg.start_ts + market.step_no * cfg.step_ms)


def _price(logp: float, tick: int) -> int:
    raw = round(math.exp(logp) * SCALE)
    return max(tick, raw - raw % tick)


class SyntheticFeed:
    """``synthetic_events`` as an async iterator, paced by ``cfg.speed``."""

    def __init__(self, symbols: Sequence[str], cfg: SyntheticConfig = SyntheticConfig(), *,
                 clock: Callable[[], int] | None = None,
                 anchor: Callable[[str], int | None] | None = None) -> None:
        self.symbols = check_symbols(symbols)
        self.cfg = cfg
        self.clock = clock
        self.anchor = anchor
        if cfg.scenario not in SCENARIOS:
            raise FeedSpecError(f"unknown synthetic scenario {cfg.scenario!r}; one of {', '.join(SCENARIOS)}")

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._run()

    async def _run(self) -> AsyncIterator[Any]:
        cfg = self.cfg
        market = SyntheticMarket(self.symbols, cfg)
        pacer = Pacer(cfg.speed)
        last_ts = 0
        n = 0
        while not market.done:
            script_ts = cfg.start_ts + market.step_no * cfg.step_ms
            await pacer.wait(script_ts)
            if self.anchor is not None:
                for s in market.symbols:
                    market.continue_from(s, self.anchor(s))
            ts = script_ts if self.clock is None else max(self.clock(), last_ts)
            last_ts = ts
            for ev in market.step(ts):
                if self.clock is not None and isinstance(ev, Trade):
                    ev = _replace(ev, trade_id=0)  # served: the venue numbers trades (shocks trade too)
                n += 1
                if n % 300 == 0:
                    await asyncio.sleep(0)
                yield ev

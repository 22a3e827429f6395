"""The one-account random-walk workload, shared by core_throughput.py and nautilus_reference.py.

Plain Python (no project or Nautilus imports), so both benchmarks run exactly the same ticks and
place exactly the same protective orders:

- ``ticks(n, seed)``: ``n`` trade ticks on p ← p·exp(N(0, 2·10⁻⁴)) from 60,000, the price cut to
  the 0.1 tick, sizes 0.001-0.5 BTC, aggressor side random; 1 ms apart.
- ``levels(price)``: the protective orders placed at ``price`` (a stop-market sell 3% below, a
  take-profit-market sell 3% above, a 0.05 limit buy 0.5% below, a reduce-only 0.05 limit sell
  0.5% above), with the position topped up to ``POSITION_TENTHS_BTC`` first.
- Every ``RESET_EVERY`` ticks the strategy cancels all its orders, tops the position up and
  places the orders again at the last price.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

SIGMA = 2e-4
START = 60_000.0
SEED = 3
LEVERAGE = 20
WALLET = 1_000_000  # USDT
POSITION_BTC = "1"
LIMIT_QTY_BTC = "0.05"
RESET_EVERY = 5_000
STOP, TAKE, BUY_LIMIT, SELL_LIMIT = 0.97, 1.03, 0.995, 1.005
_FIXED_TICK = 10_000_000  # 0.1 in the core's 1e-8 units


def ticks(n: int, seed: int = SEED, start: float = START) -> Iterator[tuple[int, int, bool]]:
    """``n`` ticks as (price in 0.1 USDT, size in 0.001 BTC, buyer is the aggressor)."""
    rng = random.Random(seed)
    p = start
    for _ in range(n):
        p *= math.exp(rng.gauss(0.0, SIGMA))
        yield int(p * 10), rng.randint(1, 500), rng.random() < 0.5


def levels(price_tenths: int) -> dict[str, int]:
    """The protective orders' prices (in 0.1 USDT) for a last price of ``price_tenths``."""
    fixed = price_tenths * _FIXED_TICK
    return {name: int(fixed * frac) // _FIXED_TICK
            for name, frac in (("stop", STOP), ("take", TAKE), ("buy_limit", BUY_LIMIT), ("sell_limit", SELL_LIMIT))}

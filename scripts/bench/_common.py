"""Shared helpers for the benchmarks: a profile with many symbols, fast account setup, JSON output."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from exchange_sim.core.exchange import Exchange, ExchangeConfig  # noqa: E402
from exchange_sim.core.fixed import to_fixed  # noqa: E402
from exchange_sim.profiles import load_profile  # noqa: E402

SHARED_DATA = ROOT.parent / "shared" / "data"
SMOKE = os.environ.get("EXSIM_BENCH_SMOKE") == "1"


def instruments(n_symbols: int = 2) -> dict:
    """BTCUSDT, ETHUSDT, and more BTC-like symbols (SYM2USDT, ...) when asked for more."""
    base = load_profile()
    out = dict(base)
    btc = base["BTCUSDT"]
    for i in range(2, n_symbols):
        sym = f"SYM{i}USDT"
        out[sym] = dataclasses.replace(btc, symbol=sym, base=f"SYM{i}")
    return out


def exchange(n_symbols: int = 2, **config) -> Exchange:
    return Exchange(instruments(n_symbols), ExchangeConfig(**config))


def rss_mb() -> float:
    """Current resident memory of this process (Linux /proc), else its peak."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    return f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"


def emit(name: str, figures: dict) -> None:
    """The benchmark's JSON line, with the machine and its 1-minute load average as the figures were taken."""
    load = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    print(json.dumps({"bench": name, "machine": machine(), "load_avg_1m_at_end": load, **figures}, sort_keys=False))


F = to_fixed

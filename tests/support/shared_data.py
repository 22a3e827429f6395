"""Where the project's shared recorded data lives: ``../shared/data`` beside the checkout.

``EXSIM_SHARED_DATA`` overrides it. Tests that need a file call ``require(name)``, which skips
with the reason when the data is not there (never silently).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("EXSIM_SHARED_DATA") or ROOT.parent / "shared" / "data")
if not SHARED_DATA.is_dir() and Path("/work/shared/data").is_dir():
    SHARED_DATA = Path("/work/shared/data")

CAPTURE = SHARED_DATA / "binance-usdm_BTCUSDT_ws-raw_2024-08-08T2354-2400Z.jsonl.gz"
CRASH_KLINES = SHARED_DATA / "binance-usdm_BTCUSDT_1m_2024-08-05T0500-0759Z.csv"


def require(path: Path) -> str:
    """``path`` as text, or skip the test saying which shared file is missing."""
    if not path.exists():
        pytest.skip(f"shared recorded data not found: {path} (set EXSIM_SHARED_DATA)")
    return str(path)

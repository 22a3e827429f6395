"""Headless Chromium for page tests (Debian's /usr/bin/chromium driven by python playwright).

``chromium_or_skip()`` says why a browser test cannot run (pytest.skip with the reason) instead of
silently passing; ``launch_chromium(p)`` starts it with the project's flags. ``classroom_node()``
builds a real node with a small class of accounts holding BTC positions, for dashboard tests.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("EXSIM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def chromium_or_skip() -> str:
    """The chromium executable, or pytest.skip saying what is missing and how to get it."""
    path = CHROMIUM if os.path.isabs(CHROMIUM) else shutil.which(CHROMIUM)
    if not path or not os.access(path, os.X_OK):
        pytest.skip(f"headless browser test needs Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        pytest.skip("headless browser test needs python playwright (pip install playwright)")
    return path


async def launch_chromium(p: Any) -> Any:
    return await p.chromium.launch(executable_path=chromium_or_skip(), args=CHROMIUM_ARGS)


def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS

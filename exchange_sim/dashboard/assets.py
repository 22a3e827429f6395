"""Where the third-party chart library comes from: an installed package, never a copy in the repo.

TradingView's lightweight-charts (Apache-2.0) is the npm package ``lightweight-charts``, installed
with ``npm install --prefix exchange_sim/dashboard`` (``exchange_sim/dashboard/package.json`` pins
the version). ``find_chart_js`` looks, in order, at: an explicit path (config
``[dashboard] chart_js``), ``$EXSIM_CHART_JS``, ``node_modules`` next to this module, and
``node_modules`` in the current directory.
"""

from __future__ import annotations

import os
from pathlib import Path

BUNDLE = Path("lightweight-charts") / "dist" / "lightweight-charts.standalone.production.js"
ENV_CHART_JS = "EXSIM_CHART_JS"
INSTALL_HINT = "npm install --prefix exchange_sim/dashboard"


class ChartLibraryMissing(Exception):
    """lightweight-charts is not installed where the dashboard looks for it."""


def candidates(explicit: str | None = None) -> list[Path]:
    out = []
    if explicit:
        out.append(Path(explicit))
    if os.environ.get(ENV_CHART_JS):
        out.append(Path(os.environ[ENV_CHART_JS]))
    out.append(Path(__file__).resolve().parent / "node_modules" / BUNDLE)
    out.append(Path.cwd() / "node_modules" / BUNDLE)
    return out


def find_chart_js(explicit: str | None = None) -> Path:
    """The lightweight-charts standalone bundle, or ChartLibraryMissing saying how to install it."""
    looked = candidates(explicit)
    for path in looked:
        if path.is_file():
            return path
    raise ChartLibraryMissing(
        "TradingView lightweight-charts is not installed; run `" + INSTALL_HINT + "` in the repository "
        "(looked at: " + ", ".join(str(p) for p in looked) + ")")

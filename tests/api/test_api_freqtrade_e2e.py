"""freqtrade from PyPI, unmodified and live, against the simulator (``scripts/e2e/freqtrade/run.py``).

It installs freqtrade in its own venv (hundreds of MB on first use) and trades for about four
minutes, so CI skips it; run it with ``EXSIM_E2E_FREQTRADE=1 python3 -m pytest -m slow -k freqtrade``
(or the script directly).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "e2e" / "freqtrade" / "run.py"


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("EXSIM_E2E_FREQTRADE"),
                    reason="installs freqtrade from PyPI and trades for minutes: set EXSIM_E2E_FREQTRADE=1 to run")
def test_freqtrade_enters_keeps_its_stop_on_the_exchange_exits_and_wallets_agree():
    done = subprocess.run([sys.executable, str(SCRIPT), "--minutes", "8"], capture_output=True, text=True,
                          timeout=1800, check=False)
    print(done.stdout)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert done.stdout.count("[ok]") == 4

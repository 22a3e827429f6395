"""Smoke test of the benchmarks: each script runs once on a small size and prints its JSON line.

No timing assertions (figures on a shared CI machine mean nothing); this only proves that every
benchmark still runs end to end against the current code: each script as a subprocess with
``EXSIM_BENCH_SMOKE=1``, exactly one JSON line on stdout with the expected figures.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "scripts" / "bench"
SHARED_DATA = ROOT.parent / "shared" / "data"
MOSQUITTO = os.environ.get("MOSQUITTO", "/usr/sbin/mosquitto")
TIMEOUT = 100  # seconds per script; the whole file takes well under 2 minutes

EXPECTED = {
    "core_throughput": {"walk_one_account_trade_ticks_per_s", "walk_one_account_events",
                        "walk_1000_accounts_trade_ticks_per_s", "walk_1000_accounts_liquidations",
                        "walk_1000_accounts_events", "raw_capture_decode_and_apply_events_per_s",
                        "raw_capture_events", "order_commands_per_s"},
    "monitor_scaling": {"no_trigger_us_per_tick_1", "no_trigger_us_per_tick_1000", "one_pct_trigger_events_10000",
                        "one_pct_trigger_liquidations_10000", "walk_crossing_ticks_10000",
                        "walk_crossing_us_per_tick_10000", "walk_liquidations_10000"},
    "api_roundtrip": {f"{who}_{n}_{fig}" for who in ("sim", "stub", "sim_nojournal", "sim_journal_full")
                      for n in ("1c", "8c") for fig in ("p50_ms", "p99_ms", "orders_per_s")}
                     | {"ratio_p50_1c_sim_over_stub", "ratio_throughput_8c_stub_over_sim", "met"},
    "tick_to_liquidation": {f"{who}_{fig}" for who in ("sim", "sim_nojournal")
                            for fig in ("user_stream_p50_ms", "user_stream_p99_ms", "mqtt_p50_ms", "mqtt_p99_ms",
                                        "rounds", "missed_rounds")} | {"met"},
    "crash_day": {"wall_s", "liquidations", "liquidations_per_s"},
}


FIGURES: dict[str, dict] = {}  # each script's figures from this session, so it runs once


def _mosquitto_available() -> bool:
    return os.access(MOSQUITTO, os.X_OK) or shutil.which("mosquitto") is not None


def run_script(args: list[str], env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, EXSIM_BENCH_SMOKE="1", **(env_extra or {}))
    return subprocess.run(args, cwd=BENCH, env=env, capture_output=True, text=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL)


def one_json_line(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, (f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\n"
                                  f"stderr:\n{proc.stderr[-3000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one JSON line, got {len(lines)}:\n{proc.stdout[-3000:]}"
    figures = json.loads(lines[0])
    assert isinstance(figures, dict)
    return figures


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_benchmark_prints_its_figures(name: str) -> None:
    if name in ("core_throughput", "crash_day") and not SHARED_DATA.is_dir():
        pytest.skip(f"{name} reads the recorded data in {SHARED_DATA}, which is not there")
    if name == "tick_to_liquidation" and not _mosquitto_available():
        pytest.skip(f"tick_to_liquidation starts mosquitto: no {MOSQUITTO} and none on PATH "
                    "(apt-get install mosquitto)")
    figures = one_json_line(run_script([sys.executable, f"{name}.py"]))
    FIGURES[name] = figures
    assert figures["bench"] == name
    missing = EXPECTED[name] - set(figures)
    assert not missing, f"{name} did not print {sorted(missing)}: {figures}"
    for key in EXPECTED[name] - {"met"}:
        assert isinstance(figures[key], (int, float)) and figures[key] >= 0, (key, figures[key])


# The workload did what its row says: these figures count work done, and must not be zero.
DID_WORK = {
    "core_throughput": {"walk_one_account_events", "walk_1000_accounts_liquidations", "walk_1000_accounts_events",
                        "raw_capture_events_produced"},
    "monitor_scaling": {"one_pct_trigger_events_10000", "one_pct_trigger_liquidations_10000",
                        "walk_crossing_ticks_10000", "walk_liquidations_10000", "walk_margin_calls_10000"},
    "crash_day": {"liquidations"},
}


@pytest.mark.parametrize("name", sorted(DID_WORK))
def test_benchmark_workload_did_work(name: str) -> None:
    """A row whose workload short-circuits (no events, no liquidations) is wrong: it fails here."""
    if name in ("core_throughput", "crash_day") and not SHARED_DATA.is_dir():
        pytest.skip(f"{name} reads the recorded data in {SHARED_DATA}, which is not there")
    figures = FIGURES.get(name) or one_json_line(run_script([sys.executable, f"{name}.py"]))
    idle = {key: figures.get(key) for key in DID_WORK[name] if not figures.get(key)}
    assert not idle, f"{name}: its workload did no work: {idle}"
    if name == "core_throughput":
        kinds = figures["walk_one_account_events_by_type"]
        assert kinds.get("OrderUpdate"), f"no protective or resting order ever filled on the walk: {kinds}"


def test_run_all_prints_each_benchmark_line() -> None:
    proc = run_script([str(BENCH / "run_all")], {"EXSIM_BENCHES": "monitor_scaling", "PYTHON": sys.executable})
    figures = one_json_line(proc)
    assert figures["bench"] == "monitor_scaling"


def test_nautilus_reference_when_installed() -> None:
    if importlib.util.find_spec("nautilus_trader") is None:
        pytest.skip("nautilus_trader is not installed (optional reference, not a project dependency; "
                    "see scripts/bench/nautilus_reference.py)")
    proc = run_script([sys.executable, "nautilus_reference.py", "2000"])
    figures = one_json_line(proc)
    assert figures["trade_ticks_per_s"] > 0 and figures["order_commands_per_s"] > 0

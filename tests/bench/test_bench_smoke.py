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

from exchange_sim.cluster.natsd import nats_server_binary

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
    "cluster": {"single_1c_p50_ms", "single_1c_p99_ms", "single_8c_orders_per_s", "gateway_1c_p50_ms",
                "gateway_1c_p99_ms", "gateway_8c_orders_per_s", "gateways2_8c_orders_per_s", "shard_inputs_per_s",
                "ingest_events", "ingest_published_per_s", "ingest_through_shards_per_s", "ingest_duplicates_dropped",
                "cpu_ms_per_order_leaders", "cpu_ms_per_order_nats", "cpu_ms_per_market_event_leaders",
                "refusal_rebuild_s", "refusal_rebuild_inputs"},
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
    if name == "cluster" and nats_server_binary() is None:
        pytest.skip("the cluster benchmark starts nats-server: not installed (apt-get install nats-server; .ci/run does)")
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
    "cluster": {"ingest_events", "ingest_duplicates_dropped", "shard_inputs_per_s", "gateway_8c_orders_per_s",
                "refusal_rebuild_inputs"},
}


@pytest.mark.parametrize("name", sorted(DID_WORK))
def test_benchmark_workload_did_work(name: str) -> None:
    """A row whose workload short-circuits (no events, no liquidations) is wrong: it fails here."""
    if name in ("core_throughput", "crash_day") and not SHARED_DATA.is_dir():
        pytest.skip(f"{name} reads the recorded data in {SHARED_DATA}, which is not there")
    if name == "cluster" and nats_server_binary() is None:
        pytest.skip("the cluster benchmark starts nats-server: not installed (apt-get install nats-server; .ci/run does)")
    figures = FIGURES.get(name) or one_json_line(run_script([sys.executable, f"{name}.py"]))
    idle = {key: figures.get(key) for key in DID_WORK[name] if not figures.get(key)}
    assert not idle, f"{name}: its workload did no work: {idle}"
    if name == "core_throughput":
        kinds = figures["walk_one_account_events_by_type"]
        assert kinds.get("OrderUpdate"), f"no protective or resting order ever filled on the walk: {kinds}"
    if name == "cluster":  # the whole burst published again: every event dropped as a duplicate
        assert figures["ingest_duplicates_dropped"] == figures["ingest_events"], figures


def test_run_all_prints_each_benchmark_line() -> None:
    proc = run_script([str(BENCH / "run_all")], {"EXSIM_BENCHES": "monitor_scaling", "PYTHON": sys.executable})
    figures = one_json_line(proc)
    assert figures["bench"] == "monitor_scaling"


def _nautilus_python() -> str | None:
    """An interpreter that has nautilus_trader: $EXSIM_NAUTILUS_PYTHON (e.g. a venv's), else this one if it has it."""
    if os.environ.get("EXSIM_NAUTILUS_PYTHON"):
        return os.environ["EXSIM_NAUTILUS_PYTHON"]
    return sys.executable if importlib.util.find_spec("nautilus_trader") is not None else None


def test_nautilus_reference_runs_the_core_workload() -> None:
    """The Nautilus row is comparable: same ticks, same strategy commands, and its ticks filled orders."""
    python = _nautilus_python()
    if python is None:
        pytest.skip("nautilus_trader is not installed here (optional reference, not a project dependency): "
                    "set EXSIM_NAUTILUS_PYTHON to a venv's python that has it (see scripts/bench/nautilus_reference.py)")
    n = 20_000
    theirs = one_json_line(run_script([python, "nautilus_reference.py", str(n)]))
    ours = one_json_line(run_script([sys.executable, "-c", "import json, core_throughput; "
                                     f"print(json.dumps(core_throughput.walk_one_account({n})))"]))
    assert theirs["nautilus_walk_one_account_price_range"] == ours["walk_one_account_price_range"]
    assert theirs["nautilus_walk_one_account_strategy_commands"] == ours["walk_one_account_strategy_commands"]
    assert theirs["nautilus_walk_one_account_ticks"] == n + 2  # the walk and two priming ticks
    # the ticks did work on both sides: resting limits filled (and positions moved)
    assert ours["walk_one_account_fills_by_order_type"].get("LIMIT")
    assert theirs["nautilus_walk_one_account_fills_by_order_type"].get("LIMIT")
    assert theirs["nautilus_walk_one_account_events_by_type"].get("OrderRejected", 0) == 0, theirs
    assert theirs["nautilus_walk_one_account_trade_ticks_per_s"] > 0 and theirs["nautilus_order_commands_per_s"] > 0

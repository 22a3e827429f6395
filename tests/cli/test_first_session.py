"""The README's first session, run as a new user would: real `exchange-sim` processes.

Each test runs the command itself and reads what it printed: the replay of the shared 5 August
2024 crash liquidates the high-leverage ladder, the README's ccxt snippet prints a real
liquidation price, a feed that cannot start is one line before anything listens, the session
file is announced when resumed, and the accounts commands print tables.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exchange_sim.client import SimClient
from tests.cli.helpers import ROOT, cli_command, cli_env, running_server
from tests.support.shared_data import CRASH_KLINES, require

TOKEN = "test-admin-token"


def run_cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), cwd=cwd, env=cli_env(), capture_output=True, text=True,
                          check=False, timeout=timeout)


def table_value(text: str, key: str) -> str:
    row = next(line for line in text.splitlines() if re.search(rf"[│|]\s*{re.escape(key)}\s*[│|]", line))
    return row.split("│")[2].strip()


def test_replay_of_the_shared_crash_opens_the_ladder_on_klines_and_liquidates_high_leverage(tmp_path):
    done = run_cli("replay", require(CRASH_KLINES), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "2024-08-05 05:00:00 → 2024-08-05 07:59:59 UTC" in out  # the recording's own dates
    assert table_value(out, "accounts") == "10"
    assert int(table_value(out, "Liquidation")) >= 4
    rows = {line.split("│")[2].strip(): line for line in out.splitlines() if re.search(r"│\s+\d+\s+│ (long|short)-", line)}
    for name in ("long-50x", "long-100x", "long-125x"):  # the fall from 53,505 to 48,888 kills them
        assert "LIQUIDATED" in rows[name], out
    assert "LIQUIDATED" not in rows["long-10x"] and "BTCUSDT +0.056" in rows["long-10x"], out


def test_replay_of_a_file_without_a_symbol_names_the_flag(tmp_path):
    head = Path(require(CRASH_KLINES)).read_text().splitlines()[:20]
    anonymous = tmp_path / "klines.csv"
    anonymous.write_text("\n".join(head) + "\n")
    done = run_cli("replay", str(anonymous), "--no-ladder", cwd=tmp_path)
    assert done.returncode == 2 and "--symbol BTCUSDT" in done.stderr and "pass symbol=" not in done.stderr
    done = run_cli("replay", str(anonymous), "--symbol", "BTCUSDT", "--no-ladder", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert table_value(done.stdout, "market events") == "152"  # 19 klines × open, high, low, close × (trade, mark)


@pytest.mark.parametrize("spec, says", [
    ("replay:/nonexistent.jsonl", "no such recording: /nonexistent.jsonl"),
    ("synthetic:nosuchscenario", "walk, flash_crash, squeeze, slow_bleed"),
    ("ccxt:nosuchexchange", "ccxt.pro has no exchange 'nosuchexchange'"),
    ("mqtt://127.0.0.1:1/x", "the MQTT broker does not answer"),
])
def test_a_feed_that_cannot_start_is_one_line_before_listening(tmp_path, spec, says):
    started = time.monotonic()
    done = run_cli("run", "--feed", spec, "--port", "0", "--db", str(tmp_path / "s.db"), cwd=tmp_path, timeout=60)
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and says in lines[0], done.stderr
    assert "listening on" not in done.stdout and "Traceback" not in done.stdout + done.stderr
    assert elapsed < 30, elapsed  # mqtt used to say nothing for 35 s
    assert not (tmp_path / "s.db").exists()  # refused before the session was opened


def test_bogus_feed_lists_the_allowed_feeds_once_and_help_names_the_scenarios(tmp_path):
    done = run_cli("run", "--feed", "bogus", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("mqtt://host:port/topic") == 1, done.stderr
    done = run_cli("run", "--help", cwd=tmp_path)
    assert all(name in done.stdout for name in ("walk", "flash_crash", "squeeze", "slow_bleed")), done.stdout


def test_offline_lesson_writes_its_chart_into_its_own_directory(tmp_path):
    done = run_cli("lesson", "cross-vs-isolated", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.glob("*.png"))
    assert (tmp_path / "lesson-charts" / "lesson-cross-vs-isolated.png").read_bytes()[:4] == b"\x89PNG"
    # the venue's numbers lead; the fee-free textbook numbers are labelled as the lesson profile's
    out = done.stdout
    assert out.index("lost on the venue (fees)") < out.index("lost, lesson profile (no fees)")
    assert table_value(out, "lost on the venue (fees)").split()[0] == "100.00"
    done = run_cli("lesson", "leverage", "--out-dir", str(tmp_path / "charts"), cwd=tmp_path)
    assert done.returncode == 0 and (tmp_path / "charts" / "lesson-leverage.png").exists()


def test_record_prints_progress_while_it_records(tmp_path):
    done = run_cli("record", "--feed", "synthetic?speed=0&steps=500", "--out", str(tmp_path / "r.jsonl"),
                   "--limit", "2500", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    progress = [ln for ln in done.stderr.splitlines() if ln.startswith("recording synthetic")]
    assert [ln.split(": ")[1].split(" events")[0] for ln in progress] == ["1,000", "2,000"], done.stderr
    assert "recorded 2,500 events" in done.stdout


async def test_session_file_reuse_is_announced_and_fresh_starts_a_new_one(tmp_path):
    async with running_server(tmp_path, "--feed", "synthetic") as server:
        await asyncio.to_thread(SimClient(server.url, TOKEN).create_account, "alice", "1000")
    assert any("a new session" in line for line in server.lines)
    async with running_server(tmp_path, "--feed", "manual") as server:
        banner = "\n".join(server.lines)
        accounts = await asyncio.to_thread(SimClient(server.url, TOKEN).accounts)
    assert "resumed the previous session" in banner and "1 accounts" in banner and "--fresh" in banner
    assert [a["name"] for a in accounts] == ["alice"]
    async with running_server(tmp_path, "--feed", "manual", "--fresh") as server:
        banner = "\n".join(server.lines)
        accounts = await asyncio.to_thread(SimClient(server.url, TOKEN).accounts)
    assert "a new session" in banner and "previous session was moved to" in banner and accounts == []
    assert len(list(tmp_path.glob("session.*.db"))) == 1


async def test_readme_ccxt_snippet_prints_a_liquidation_price_and_accounts_commands_print_tables(tmp_path):
    readme = (ROOT / "README.md").read_text()
    snippet = next(block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "ccxt.binanceusdm" in block)
    async with running_server(tmp_path, "--feed", "synthetic") as server:
        admin = SimClient(server.url, TOKEN)
        alice = await asyncio.to_thread(admin.create_account, "alice", "1000")
        for _ in range(100):  # bounded: the synthetic market's first step
            if (await asyncio.to_thread(admin.public, "/fapi/v1/ticker/price", {"symbol": "BTCUSDT"})).get("price"):
                break
            await asyncio.sleep(0.1)
        code = f"KEY, SECRET = {alice.api_key!r}, {alice.api_secret!r}\n" + snippet.replace("http://127.0.0.1:8765",
                                                                                          server.url).replace(
            "ws://127.0.0.1:8765", server.url.replace("http", "ws"))
        done = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", code], capture_output=True, text=True,
                                       env=cli_env(), timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        liquidation = float(done.stdout.strip().splitlines()[-1])
        entry = float((await asyncio.to_thread(admin.account, alice.account))["positions"][0]["entryPrice"])
        assert 0.94 < liquidation / entry < 0.97, (liquidation, entry)  # 20x isolated: about 4.6% below

        env = {"url": server.url, "token": TOKEN}

        def accounts(*args: str) -> subprocess.CompletedProcess:
            return run_cli("accounts", *args, "--url", env["url"], "--admin-token", env["token"], cwd=tmp_path)

        done = await asyncio.to_thread(accounts, "create", "bob", "--parent", str(alice.account))
        assert done.returncode == 0 and "/trade#key=" in done.stdout, done.stdout  # a join link for the student
        bob_id = int(table_value(done.stdout, "accountId"))
        done = await asyncio.to_thread(accounts, "list")
        assert done.returncode == 0, done.stderr
        alice_row = next(line for line in done.stdout.splitlines() if "alice" in line)
        assert alice_row.rstrip(" │").split("│")[-1].strip() == "1"  # one open position, as `show` says
        done = await asyncio.to_thread(accounts, "show", str(alice.account))
        assert done.returncode == 0 and "{" not in done.stdout, done.stdout  # tables, not raw JSON
        assert "liq. price" in done.stdout and "BTCUSDT" in done.stdout and "isolated" in done.stdout
        assert f"{liquidation:,.2f}".replace(",", "") in done.stdout.replace(",", "")
        done = await asyncio.to_thread(accounts, "transfer", str(alice.account), str(bob_id), "100")
        assert done.returncode == 0, done.stderr
        done = await asyncio.to_thread(accounts, "withdraw", str(bob_id), "40")
        assert done.returncode == 0, done.stderr
        assert float((await asyncio.to_thread(admin.account, bob_id))["walletBalance"]) == 60
        done = await asyncio.to_thread(accounts, "withdraw", str(bob_id), "1000")
        assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        done = await asyncio.to_thread(accounts, "reset", str(alice.account))
        assert done.returncode == 0, done.stderr
        assert (await asyncio.to_thread(admin.account, alice.account))["openPositions"] == 0

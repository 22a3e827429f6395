"""The exchange-sim command line: in process (typer's CliRunner) and as a real process."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess

import aiohttp
from typer.testing import CliRunner

from exchange_sim.cli import app
from tests.cli.helpers import cli_command, cli_env, running_server, write_recording

runner = CliRunner()
TOKEN = "test-admin-token"


def invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env=env or {})


# ----------------------------------------------------------------------------- in process


def test_lesson_cross_vs_isolated_prints_the_table_and_writes_the_png(tmp_path):
    png = tmp_path / "cvi.png"
    res = invoke("lesson", "cross-vs-isolated", "--png", str(png))
    assert res.exit_code == 0, res.output
    out = res.output
    assert "isolated" in out and "cross" in out and "LIQUIDATED" in out
    assert "49,799.20" in out and "46,184.74" in out
    assert "clearance fee set to 0" in out and "example E" in out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_unknown_lesson_lists_the_lessons():
    res = invoke("lesson", "margin-101")
    assert res.exit_code == 2
    assert "cross-vs-isolated" in res.output and "portfolio" in res.output and "leverage" in res.output


def test_config_error_is_one_line_naming_the_key(tmp_path):
    bad = tmp_path / "config.toml"
    bad.write_text("[server]\nport = 99999\n")
    res = invoke("run", "--config", str(bad))
    assert res.exit_code == 2
    assert "server.port" in res.output and "99999" in res.output and "0 to 65535" in res.output
    assert "Traceback" not in res.output
    res = invoke("run", "--config", str(bad), "--feed", "nasdaq")
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_config_error_keeps_section_names_in_brackets(tmp_path):
    bad = tmp_path / "config.toml"
    bad.write_text("[journal]\nkeep = 3\n")
    res = invoke("run", "--config", str(bad))
    assert res.exit_code == 2
    assert "journal.keep" in res.output and "allowed keys in [journal]" in res.output and "keep_snapshots" in res.output


def test_run_hands_the_journal_keys_to_the_journal():
    from exchange_sim.serve import journal_config
    from exchange_sim.config import parse_config
    from exchange_sim.journal import JournalConfig

    settings = parse_config({"journal": {"snapshot_every": 5, "keep_snapshots": 0, "synchronous": "NORMAL",
                                         "compact_events": True}}, env={})
    assert journal_config(settings) == JournalConfig(snapshot_every=5, keep_snapshots=0, synchronous="NORMAL",
                                                     compact_events=True, group_commit=True,
                                                     background_checkpoint=True, background_snapshot=True,
                                                     deferred_events=True, input_log=True)
    # the node acknowledges a batch only after the journal committed it: group commit is on
    assert journal_config(parse_config({}, env={})) == JournalConfig(group_commit=True, background_checkpoint=True, background_snapshot=True,
                                                                     deferred_events=True, input_log=True)


def test_an_unusable_mqtt_setting_is_one_line_without_the_password(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[mqtt]\nurl = "mqtt://127.0.0.1:1"\npassword = "sekret-pass-123"\n')
    res = invoke("run", "--config", str(cfg), "--feed", "manual", "--port", "0", "--db", str(tmp_path / "s.db"))
    assert res.exit_code == 1, res.output
    assert "[mqtt]" in res.output and "username" in res.output and "Traceback" not in res.output
    assert "sekret-pass-123" not in res.output
    assert not (tmp_path / "s.db").exists()  # refused before anything was opened
    cfg.write_text('[mqtt]\nurl = "mqtt://bob:in-url-secret-9@127.0.0.1:99999"\n')
    res = invoke("run", "--config", str(cfg), "--feed", "manual", "--port", "0", "--db", str(tmp_path / "s.db"))
    assert res.exit_code == 1 and "[mqtt]" in res.output and "in-url-secret-9" not in res.output, res.output


def test_replay_of_a_small_recording_shows_the_summary_and_liquidations(tmp_path):
    rec = write_recording(tmp_path / "fall.jsonl")
    res = invoke("replay", str(rec))
    assert res.exit_code == 0, res.output
    assert "replay summary" in res.output and "363" in res.output  # 121 × (book, trade, mark)
    row = next(line for line in res.output.splitlines() if "│ Liquidation" in line)
    assert int(row.split("│")[2].strip().replace(",", "")) >= 2  # 100x and 125x longs die in a 3% fall
    assert "long-125x" in res.output


def test_replay_of_a_missing_file_is_one_line(tmp_path):
    res = invoke("replay", str(tmp_path / "nope.jsonl"))
    assert res.exit_code == 2 and "no such recording" in res.output and "Traceback" not in res.output


def test_accounts_without_a_server_say_so(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = invoke("accounts", "list", "--url", f"http://127.0.0.1:{port}", "--admin-token", TOKEN)
    assert res.exit_code == 1 and "is `exchange-sim run` running?" in res.output


# ----------------------------------------------------------------------------- real processes


def test_lesson_and_replay_as_real_processes(tmp_path):
    done = subprocess.run(cli_command("lesson", "leverage", "--no-png"), cwd=tmp_path, env=cli_env(),
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "survives" in done.stdout and "LIQUIDATED" in done.stdout
    rec = write_recording(tmp_path / "fall.jsonl")
    done = subprocess.run(cli_command("replay", str(rec), "--no-ladder"), cwd=tmp_path, env=cli_env(),
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "replay summary" in done.stdout


def test_run_without_internet_is_one_clear_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run(cli_command("run", "--port", "0", "--db", str(tmp_path / "s.db")), cwd=tmp_path,
                          env=cli_env(EXSIM_BINANCE_WS_URL=f"ws://127.0.0.1:{port}"),
                          capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 1
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, done.stderr
    assert "cannot reach Binance" in lines[0] and "--feed synthetic" in lines[0] and "--feed replay:" in lines[0]
    assert "Traceback" not in done.stderr + done.stdout


async def test_run_synthetic_answers_ping_serves_the_dashboard_and_stops_on_sigint(tmp_path):
    async with running_server(tmp_path, "--feed", "synthetic") as server:
        async with aiohttp.ClientSession() as s:
            async with s.get(server.url + "/fapi/v1/ping") as res:
                assert res.status == 200 and await res.json() == {}
            async with s.get(server.url + "/") as res:
                assert res.status == 200 and "classroom dashboard" in await res.text()
            for _ in range(100):  # bounded: the synthetic feed steps once a second
                async with s.get(server.url + "/dashboard/state") as res:
                    doc = await res.json()
                if doc["symbols"]["BTCUSDT"]["mark"]:
                    break
                await asyncio.sleep(0.1)
            assert doc["symbols"]["BTCUSDT"]["mark"] > 0
        # the accounts commands against the running server's admin API
        res = await asyncio.to_thread(invoke, "accounts", "create", "alice", "--deposit", "1000", "--url", server.url,
                                      "--admin-token", TOKEN)
        assert res.exit_code == 0, res.output
        assert "apiKey" in res.output and "apiSecret" in res.output
        res = await asyncio.to_thread(invoke, "accounts", "deposit", "1", "250", "--url", server.url,
                                      env={"EXSIM_ADMIN_TOKEN": TOKEN})
        assert res.exit_code == 0, res.output
        res = await asyncio.to_thread(invoke, "accounts", "list", "--url", server.url, "--admin-token", TOKEN)
        assert res.exit_code == 0 and "alice" in res.output, res.output
        res = await asyncio.to_thread(invoke, "accounts", "show", "1", "--url", server.url, "--admin-token", TOKEN)
        assert res.exit_code == 0 and "1250" in res.output.replace(",", ""), res.output
        res = await asyncio.to_thread(invoke, "accounts", "list", "--url", server.url, "--admin-token", "wrong-token")
        assert res.exit_code == 1 and "401" in res.output
        code = await server.stop()
    assert code == 0, "\n".join(server.lines)
    assert any("stopped cleanly" in ln for ln in server.lines)
    assert not any("Traceback" in ln for ln in server.lines)
    # the session it journaled replays to the same events
    res = invoke("replay-session", str(tmp_path / "session.db"))
    assert res.exit_code == 0, res.output
    assert "identical" in res.output and "yes" in res.output


async def test_lesson_plays_live_on_a_manual_server(tmp_path):
    async with running_server(tmp_path, "--feed", "manual") as server:
        res = await asyncio.to_thread(invoke, "lesson", "cross-vs-isolated", "--live", server.url, "--admin-token",
                                      TOKEN, "--step-seconds", "0")
        assert res.exit_code == 0, res.output
        async with aiohttp.ClientSession() as s:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with s.get(server.url + "/sim/v1/events?type=Liquidation", headers=headers) as r:
                assert r.status == 200, await r.text()
                body = await r.json()
            async with s.get(server.url + "/dashboard/state") as r:
                doc = await r.json()
        events = body["events"] if isinstance(body, dict) else body
        names = {a["id"]: a for a in doc["accounts"]}
        assert sorted(names[e["account"]]["name"] for e in events) == ["cross", "isolated"], events
        assert "BTCUSDT" in json.dumps(events)
        # it cleaned up: no parent account, no position left open
        assert len(doc["accounts"]) == 2 and not any(a["positions"] for a in doc["accounts"])


def test_record_a_synthetic_feed_then_replay_it(tmp_path):
    out = tmp_path / "synthetic.jsonl"
    res = invoke("record", "--feed", "synthetic:flash_crash?speed=0&steps=60", "--out", str(out), "--limit", "150")
    assert res.exit_code == 0, res.output
    assert "recorded 150 events" in res.output
    assert len(out.read_text().splitlines()) == 150
    res = invoke("replay", str(out), "--no-ladder")
    assert res.exit_code == 0, res.output
    assert "150" in res.output
    res = invoke("record", "--feed", "manual", "--out", str(tmp_path / "m.jsonl"))
    assert res.exit_code == 1 and "no market data" in res.output


async def test_run_publishes_to_mqtt_from_the_config_and_sends_the_last_events_at_stop(tmp_path):
    from tests.support.mqtt_broker import Collector, Mosquitto, unique_prefix

    (tmp_path / "broker").mkdir()
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    prefix = unique_prefix()
    (tmp_path / "config.toml").write_text(f'[mqtt]\nurl = "{broker.url}"\ntopic_prefix = "{prefix}"\n'
                                          'client_id = "exsim-cli-test"\nbuffer_size = 500\n')
    try:
        async with Collector(broker.url, prefix) as sub, running_server(tmp_path, "--feed", "manual") as server:
            assert any(line.startswith("mqtt") and broker.url in line for line in server.lines)
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with aiohttp.ClientSession() as s:
                for name in ("a", "b", "c"):
                    async with s.post(server.url + "/sim/v1/accounts", json={"name": name, "deposit": "10"},
                                      headers=headers) as r:
                        assert r.status == 200, await r.text()
            assert await server.stop() == 0  # right away: what was applied still goes out
            assert "stopped cleanly" in "\n".join(server.lines)
            await sub.wait_for(lambda c: all(c.on(f"account/{a}/created") and c.on(f"account/{a}/balance")
                                             for a in (1, 2, 3)))
    finally:
        broker.stop()

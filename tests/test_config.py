"""config.toml -> frozen settings: defaults, the shipped file, environment, and error messages."""

from __future__ import annotations

import tomllib
from pathlib import Path

import msgspec
import pytest

from exchange_sim.config import ConfigError, Settings, load_config, parse_config

ROOT = Path(__file__).resolve().parents[1]


def parse(text: str, env: dict[str, str] | None = None) -> Settings:
    return parse_config(tomllib.loads(text), where="config.toml", env=env or {})


def error_of(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text, env)
    return str(info.value)


def test_defaults():
    s = load_config(None, env={})
    assert s.server.host == "127.0.0.1" and s.server.port == 8765 and s.server.admin_token is None
    assert s.feed.spec == "binance" and s.feed.symbols == ("BTCUSDT", "ETHUSDT")
    assert s.journal.db == "exchange-sim.db"
    assert (s.margin.margin_call_ratio, s.margin.warning_ratio, s.margin.hysteresis) == (0.8, 0.6, 0.05)
    assert s.profile.name == "binance_usdm" and dict(s.profile.extra_symbols) == {}
    assert s.mqtt.url is None


def test_shipped_config_toml_is_valid_and_matches_the_defaults():
    s = load_config(ROOT / "config.toml", env={})
    replace = msgspec.structs.replace
    assert replace(s, source="x") == replace(load_config(None, env={}), source="x")


def test_settings_are_frozen():
    s = load_config(None, env={})
    with pytest.raises(AttributeError):
        s.server.port = 1  # type: ignore[misc]


def test_sections_are_msgspec_structs_that_forbid_unknown_keys():
    from exchange_sim.config import SECTIONS

    for name, cls in SECTIONS.items():
        assert issubclass(cls, msgspec.Struct) and cls.__struct_config__.forbid_unknown_fields, name
        assert cls.__struct_config__.frozen, name


def test_the_unknown_key_message_users_liked():
    msg = error_of("[feed]\nstale_after = 10.0\n")
    assert msg == ("config.toml: unknown key feed.stale_after = 10.0; allowed keys in [feed]: bad_tick_band, "
                   "spec, stale_after_s, symbols")
    assert "allowed keys in [feeds.binance]: market_path, public_path, rest_url, ws_url" in error_of("[feeds.binance]\nurl = 'x'\n")


def test_unknown_key_names_the_key_and_the_allowed_ones():
    msg = error_of("[server]\nprot = 9000\n")
    assert "server.prot" in msg and "9000" in msg and "host, port" in msg


def test_unknown_section():
    msg = error_of("[sever]\nport = 1\n")
    assert "[sever]" in msg and "[server]" in msg
    assert "[feeds.kraken]" in error_of("[feeds.kraken]\nws_url = 'wss://x'\n")


@pytest.mark.parametrize("text, key, value, allowed", [
    ("[server]\nport = 70000", "server.port", "70000", "integer from 0 to 65535"),
    ("[server]\nport = '8765'", "server.port", "'8765'", "integer"),
    ("[server]\nadmin_token = 'short'", "server.admin_token", "<hidden>", "at least 8 characters"),
    ("[feed]\nspec = 'kraken'", "feed.spec", "'kraken'", "synthetic[:scenario]"),
    ("[feed]\nsymbols = []", "feed.symbols", "[]", "non-empty list"),
    ("[feed]\nsymbols = ['DOGEUSDT']", "feed.symbols", "'DOGEUSDT'", "BTCUSDT, ETHUSDT"),
    ("[feed]\nstale_after_s = 0", "feed.stale_after_s", "0", "(0.0, 3600.0]"),
    ("[feeds.binance]\nws_url = 'http://x'", "feeds.binance.ws_url", "'http://x'", "wss://"),
    ("[journal]\nsnapshot_every = 0", "journal.snapshot_every", "0", "from 1"),
    ("[journal]\nkeep_snapshots = -1", "journal.keep_snapshots", "-1", "integer from 0 to"),
    ("[journal]\nkeep_snapshots = 2.5", "journal.keep_snapshots", "2.5", "integer from 0 to"),
    ("[journal]\nsynchronous = 'OFF'", "journal.synchronous", "'OFF'", "'FULL', 'NORMAL'"),
    ("[journal]\nsynchronous = 'full'", "journal.synchronous", "'full'", "'FULL', 'NORMAL'"),
    ("[journal]\ncompact_events = 1", "journal.compact_events", "1", "true or false"),
    ("[mqtt]\nbuffer_size = 0", "mqtt.buffer_size", "0", "integer from 1 to"),
    ("[mqtt]\nclient_id = 'has space'", "mqtt.client_id", "'has space'", "without spaces"),
    ("[mqtt]\ntls_insecure = 'no'", "mqtt.tls_insecure", "'no'", "true or false"),
    ("[mqtt]\ntls_ca_file = '/no/such/ca.pem'", "mqtt.tls_ca_file", "'/no/such/ca.pem'", "readable file"),
    ("[mqtt]\nurl = 'mqtt://b:1883'\ntls_insecure = true", "mqtt.tls_insecure", "True", "mqtt.tls = true"),
    ("[mqtt]\nurl = 'tcp://broker'", "mqtt.url", "'tcp://broker'", "mqtt://"),
    ("[mqtt]\ntls = 'yes'", "mqtt.tls", "'yes'", "true or false"),
    ("[margin]\nmargin_call_ratio = 1.5", "margin.margin_call_ratio", "1.5", "(0.0, 1.0]"),
    ("[margin]\nwarning_ratio = 0.9", "margin.warning_ratio", "0.9", "below margin.margin_call_ratio"),
    ("[profile]\nname = 'ftx'", "profile.name", "'ftx'", "binance_usdm"),
])
def test_bad_values_name_key_value_and_what_is_allowed(text, key, value, allowed):
    msg = error_of(text)
    assert msg.startswith("config.toml: ")
    assert key in msg and value in msg and allowed in msg, msg


def test_secret_values_are_not_echoed():
    msg = error_of("[server]\nadmin_token = 'ab cd'\n")
    assert "ab cd" not in msg


def test_environment_overrides_the_file():
    env = {"EXSIM_ADMIN_TOKEN": "from-the-environment", "EXSIM_MQTT_URL": "mqtt://127.0.0.1:1883",
           "EXSIM_BINANCE_WS_URL": "ws://127.0.0.1:9/", "EXSIM_BINANCE_REST_URL": "http://127.0.0.1:9"}
    s = parse("[server]\nadmin_token = 'from-the-file'\n", env)
    assert s.server.admin_token == "from-the-environment"
    assert s.mqtt.url == "mqtt://127.0.0.1:1883"
    assert s.binance.ws_url == "ws://127.0.0.1:9/" and s.binance.rest_url == "http://127.0.0.1:9"
    msg = error_of("", {"EXSIM_MQTT_URL": "localhost"})
    assert "EXSIM_MQTT_URL" in msg and "environment" in msg


def test_command_line_overrides_are_validated():
    s = load_config(None, env={}).override(feed_spec="synthetic:flash_crash", port=0, host="127.0.0.1",
                                           admin_token="abcdefgh12", db="x.db")
    assert (s.feed.spec, s.server.port, s.server.admin_token, s.journal.db) == ("synthetic:flash_crash", 0,
                                                                              "abcdefgh12", "x.db")
    with pytest.raises(ConfigError, match="--feed"):
        load_config(None, env={}).override(feed_spec="nasdaq")
    with pytest.raises(ConfigError, match="--port"):
        load_config(None, env={}).override(port=-1)


def test_feed_specs_accepted():
    for spec in ("binance", "manual", "synthetic", "synthetic:slow_bleed", "ccxt:bybit", "replay:/tmp/x.jsonl",
                 "mqtt://127.0.0.1:1883/market"):
        assert parse(f"[feed]\nspec = '{spec}'\n").feed.spec == spec


def test_extra_symbols_from_the_profile_section():
    text = """
[feed]
symbols = ["BTCUSDT", "SOLUSDT"]
[profile.symbols.SOLUSDT]
base = "SOL"
tick_size = "0.01"
step_size = "1"
min_qty = "1"
max_qty = "100000"
min_notional = "5"
min_price = "0.42"
maker_fee = "0.0002"
taker_fee = "0.0005"
liquidation_fee = "0.015"
tiers = [{ bracket = 1, notional_floor = "0", notional_cap = "10000", max_leverage = 75, mmr = "0.005" }]
"""
    s = parse(text)
    assert "SOLUSDT" in s.profile.extra_symbols and s.feed.symbols == ("BTCUSDT", "SOLUSDT")
    msg = error_of("[profile.symbols.SOLUSDT]\nbase = 'SOL'\n")
    assert "profile.symbols.SOLUSDT" in msg and "missing" in msg


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, env={})


def test_journal_keys_reach_the_journal_config():
    from exchange_sim.journal import JournalConfig

    s = parse("[journal]\nkeep_snapshots = 0\nsynchronous = 'NORMAL'\ncompact_events = true\n")
    assert (s.journal.keep_snapshots, s.journal.synchronous, s.journal.compact_events) == (0, "NORMAL", True)
    defaults = load_config(None, env={}).journal
    config = JournalConfig()
    assert (defaults.keep_snapshots, defaults.synchronous, defaults.compact_events) == (
        config.keep_snapshots, config.synchronous, config.compact_events)
    assert defaults.snapshot_every == config.snapshot_every


def test_mqtt_keys_reach_the_bus_config(tmp_path):
    from exchange_sim.bus import BusConfig

    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here\n")
    s = parse(f"[mqtt]\nurl = 'mqtts://broker.example:8883'\ntls_ca_file = '{ca}'\ntls_insecure = true\n"
              "client_id = 'sim-1'\nbuffer_size = 50\n")
    bus = BusConfig.from_settings(s.mqtt)
    assert bus is not None and bus.tls and bus.port == 8883
    assert (bus.tls_ca_file, bus.tls_insecure, bus.client_id, bus.buffer_size) == (str(ca), True, "sim-1", 50)
    plain = BusConfig.from_settings(parse("[mqtt]\nurl = 'mqtt://127.0.0.1:1883'\n").mqtt)
    assert plain is not None and not plain.tls and plain.client_id is None
    assert plain.buffer_size == BusConfig("h").buffer_size == load_config(None, env={}).mqtt.buffer_size
    assert parse("[mqtt]\nurl = 'mqtt://b:1883'\ntls = true\ntls_insecure = true\n").mqtt.tls_insecure
    assert parse("[mqtt]\ntls_insecure = true\n").mqtt.url is None  # no broker: nothing to check
    assert parse("[mqtt]\nclient_id = ''\n").mqtt.client_id is None

"""config.toml -> frozen, validated settings.

    settings = load_config("config.toml")            # file + environment
    settings = load_config(None)                      # defaults + environment
    settings = settings.override(feed_spec="synthetic", port=0)   # command-line flags

Every key of every section is known: an unknown key, a wrong type or a value out of range raises
``ConfigError`` naming the key, the bad value and what is allowed. The environment overrides the
file for secrets and endpoints (``EXSIM_ADMIN_TOKEN``, ``EXSIM_MQTT_URL``,
``EXSIM_BINANCE_WS_URL``, ``EXSIM_BINANCE_REST_URL``); command-line flags override both.
Money-like numbers stay text here and are converted by whoever uses them.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

FEED_KINDS = ("binance", "ccxt:<exchange id>", "mqtt://host:port/topic", "replay:<file>",
              "synthetic[:scenario]", "manual")
ENV_ADMIN_TOKEN = "EXSIM_ADMIN_TOKEN"
ENV_MQTT_URL = "EXSIM_MQTT_URL"
ENV_BINANCE_WS_URL = "EXSIM_BINANCE_WS_URL"
ENV_BINANCE_REST_URL = "EXSIM_BINANCE_REST_URL"
_SYMBOL = re.compile(r"^[A-Z0-9]{2,20}$")


class ConfigError(Exception):
    """Bad configuration: the message names the key, the bad value and what is allowed."""


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8765
    admin_token: str | None = None  # None: the server generates one and prints it at start


@dataclass(frozen=True, slots=True)
class FeedSettings:
    spec: str = "binance"
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    stale_after_s: float = 10.0  # no data for this long marks a symbol stale (margin monitor holds)
    bad_tick_band: float = 0.10  # a price this far (fraction) from the last one is dropped as bad


@dataclass(frozen=True, slots=True)
class BinanceFeedSettings:
    ws_url: str = "wss://fstream.binance.com"  # the websocket root; the routes below hang off it
    rest_url: str = "https://fapi.binance.com"
    public_path: str = "/public"  # route of depth, bookTicker and trade streams
    market_path: str = "/market"  # route of markPrice, aggTrade and the other regular streams


@dataclass(frozen=True, slots=True)
class JournalSettings:
    db: str = "exchange-sim.db"
    snapshot_every: int = 10_000  # inputs between snapshots
    keep_snapshots: int = 3  # snapshots kept; older ones and the inputs they cover are deleted (0: keep all)
    synchronous: str = "NORMAL"  # NORMAL: commits survive a crash of the process; FULL: also a power cut
    compact_events: bool = False  # compaction also deletes the event log of the inputs it deletes


@dataclass(frozen=True, slots=True)
class MqttSettings:
    url: str | None = None  # None: no MQTT bridge
    topic_prefix: str = "exchange-sim"
    username: str | None = None
    password: str | None = None
    tls: bool = False
    tls_ca_file: str | None = None  # None: the system's trusted CAs
    tls_insecure: bool = False  # accept any certificate and host name (test brokers only)
    client_id: str | None = None  # None: the broker assigns one
    buffer_size: int = 10_000  # messages held while the broker is slow or down; the oldest dropped beyond


@dataclass(frozen=True, slots=True)
class MarginSettings:
    margin_call_ratio: float = 0.8
    warning_ratio: float = 0.6
    hysteresis: float = 0.05


@dataclass(frozen=True, slots=True)
class ProfileSettings:
    name: str = "binance_usdm"
    # extra instruments, same shape as a symbol of the profile JSON: {"SOLUSDT": {...}}
    extra_symbols: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    enabled: bool = True
    chart_js: str | None = None  # path to lightweight-charts.standalone.production.js (else found)


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = ServerSettings()
    feed: FeedSettings = FeedSettings()
    binance: BinanceFeedSettings = BinanceFeedSettings()
    journal: JournalSettings = JournalSettings()
    mqtt: MqttSettings = MqttSettings()
    margin: MarginSettings = MarginSettings()
    profile: ProfileSettings = ProfileSettings()
    dashboard: DashboardSettings = DashboardSettings()
    source: str = "<defaults>"

    def override(self, *, feed_spec: str | None = None, host: str | None = None, port: int | None = None,
                 admin_token: str | None = None, db: str | None = None) -> Settings:
        """These settings with command-line values (None = keep) applied and validated."""
        where = "command line"
        server, feed, journal = self.server, self.feed, self.journal
        if feed_spec is not None:
            feed = dataclasses.replace(feed, spec=_feed_spec(where, "--feed", feed_spec))
        if host is not None:
            server = dataclasses.replace(server, host=_host(where, "--host", host))
        if port is not None:
            server = dataclasses.replace(server, port=_port(where, "--port", port))
        if admin_token is not None:
            server = dataclasses.replace(server, admin_token=_token(where, "--admin-token", admin_token))
        if db is not None:
            journal = dataclasses.replace(journal, db=_nonempty(where, "--db", db))
        return dataclasses.replace(self, server=server, feed=feed, journal=journal)


# ----------------------------------------------------------------------------- validators


def _fail(where: str, key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{where}: {key} = {value!r} is not allowed; expected {allowed}")


def _str(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(where, key, value, "a string")
    return value


def _nonempty(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, key, value, "a non-empty string")
    return value


def _bool(where: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, key, value, "true or false")
    return value


def _int_range(lo: int, hi: int) -> Callable[[str, str, Any], int]:
    def check(where: str, key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise _fail(where, key, value, f"an integer from {lo} to {hi}")
        return value
    return check


def _float_range(lo: float, hi: float, *, lo_open: bool = False) -> Callable[[str, str, Any], float]:
    def check(where: str, key: str, value: Any) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            ok = (lo < value if lo_open else lo <= value) and value <= hi
        if not ok:
            bracket = "(" if lo_open else "["
            raise _fail(where, key, value, f"a number in {bracket}{lo}, {hi}]")
        return float(value)
    return check


_port = _int_range(0, 65535)


def _host(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9.\-:\[\]]{1,253}", value):
        raise _fail(where, key, value, "a host name or IP address such as 127.0.0.1")
    return value


def _token(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or len(value) < 8 or any(c.isspace() for c in value):
        raise _fail(where, key, "<hidden>" if isinstance(value, str) else value,
                    "a token of at least 8 characters without spaces")
    return value


def _one_of(*choices: str) -> Callable[[str, str, Any], str]:
    def check(where: str, key: str, value: Any) -> str:
        if value not in choices:
            raise _fail(where, key, value, "one of " + ", ".join(repr(c) for c in choices))
        return value
    return check


def _file(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, key, value, "the path of a readable file")
    if not Path(value).is_file():
        raise _fail(where, key, value, "the path of a readable file (no such file)")
    return value


def _client_id(where: str, key: str, value: Any) -> str:
    if (not isinstance(value, str) or not 1 <= len(value) <= 128 or not value.isprintable()
            or any(c.isspace() for c in value)):
        raise _fail(where, key, value, "1 to 128 printable characters without spaces")
    return value


def _feed_spec(where: str, key: str, value: Any) -> str:
    allowed = "one of " + ", ".join(FEED_KINDS)
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, key, value, allowed)
    try:
        from feeds import FeedSpecError, parse_spec
    except ImportError:  # feeds not installed: check the shape only
        if value.partition(":")[0].partition("?")[0] not in ("binance", "ccxt", "mqtt", "replay", "synthetic",
                                                              "manual"):
            raise _fail(where, key, value, allowed) from None
        return value
    try:
        parse_spec(value)
    except FeedSpecError as exc:
        raise _fail(where, key, value, f"{allowed} ({exc})") from None
    return value


def _symbols(where: str, key: str, value: Any) -> tuple[str, ...]:
    if (not isinstance(value, list) or not value
            or not all(isinstance(s, str) and _SYMBOL.match(s) for s in value)):
        raise _fail(where, key, value, 'a non-empty list of upper-case symbols such as ["BTCUSDT"]')
    if len(set(value)) != len(value):
        raise _fail(where, key, value, "a list without duplicates")
    return tuple(value)


def _url(schemes: tuple[str, ...]) -> Callable[[str, str, Any], str]:
    def check(where: str, key: str, value: Any) -> str:
        if not isinstance(value, str) or not any(value.startswith(s + "://") for s in schemes):
            raise _fail(where, key, value, "a URL starting with " + " or ".join(s + "://" for s in schemes))
        return value
    return check


def _route_path(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", value):
        raise _fail(where, key, value, 'a URL path such as "/public"')
    return value


def _optional(check: Callable[[str, str, Any], Any]) -> Callable[[str, str, Any], Any]:
    def wrapped(where: str, key: str, value: Any) -> Any:
        return None if value == "" else check(where, key, value)
    return wrapped


# section -> {key: validator}; the dataclass supplies the defaults
_SECTIONS: dict[str, tuple[type, dict[str, Callable[[str, str, Any], Any]]]] = {
    "server": (ServerSettings, {"host": _host, "port": _port, "admin_token": _optional(_token)}),
    "feed": (FeedSettings, {"spec": _feed_spec, "symbols": _symbols,
                            "stale_after_s": _float_range(0.0, 3600.0, lo_open=True),
                            "bad_tick_band": _float_range(0.0, 1.0, lo_open=True)}),
    "feeds.binance": (BinanceFeedSettings, {"ws_url": _url(("wss", "ws")),
                                            "rest_url": _url(("https", "http")),
                                            "public_path": _route_path, "market_path": _route_path}),
    "journal": (JournalSettings, {"db": _nonempty, "snapshot_every": _int_range(1, 10**9),
                                  "keep_snapshots": _int_range(0, 10**6), "synchronous": _one_of("FULL", "NORMAL"),
                                  "compact_events": _bool}),
    "mqtt": (MqttSettings, {"url": _optional(_url(("mqtt", "mqtts"))), "topic_prefix": _nonempty,
                            "username": _optional(_str), "password": _optional(_str), "tls": _bool,
                            "tls_ca_file": _optional(_file), "tls_insecure": _bool,
                            "client_id": _optional(_client_id), "buffer_size": _int_range(1, 10**7)}),
    "margin": (MarginSettings, {"margin_call_ratio": _float_range(0.0, 1.0, lo_open=True),
                                "warning_ratio": _float_range(0.0, 1.0, lo_open=True),
                                "hysteresis": _float_range(0.0, 0.5)}),
    "profile": (ProfileSettings, {"name": _nonempty}),
    "dashboard": (DashboardSettings, {"enabled": _bool, "chart_js": _optional(_nonempty)}),
}
_FIELD_NAMES = {"feeds.binance": "binance"}


def _section(where: str, name: str, table: Any) -> Any:
    cls, checks = _SECTIONS[name]
    if not isinstance(table, dict):
        raise _fail(where, f"[{name}]", table, "a table")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if name == "profile" and key == "symbols":
            values["extra_symbols"] = _extra_symbols(where, value)
            continue
        if key not in checks:
            raise ConfigError(f"{where}: unknown key {name}.{key} = {value!r}; "
                              f"allowed keys in [{name}]: {', '.join(sorted(checks))}"
                              + (", symbols" if name == "profile" else ""))
        values[key] = checks[key](where, f"{name}.{key}", value)
    return cls(**values)


def _extra_symbols(where: str, value: Any) -> Mapping[str, Mapping[str, Any]]:
    from exchange_sim.core.fixed import FixedPointError
    from exchange_sim.core.instruments import Instrument

    if not isinstance(value, dict):
        raise _fail(where, "profile.symbols", value, "tables [profile.symbols.<SYMBOL>]")
    out: dict[str, Mapping[str, Any]] = {}
    for symbol, data in value.items():
        key = f"profile.symbols.{symbol}"
        if not _SYMBOL.match(symbol) or not isinstance(data, dict):
            raise _fail(where, key, data, "a table named by an upper-case symbol, shaped like a profile symbol")
        try:
            Instrument.from_dict(symbol, data)
        except KeyError as exc:
            raise ConfigError(f"{where}: {key} is missing key {exc.args[0]!r}; needs base, tick_size, "
                              "step_size, min_qty, max_qty, min_notional, min_price, fees and tiers") from None
        except (FixedPointError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {key} has a bad value ({exc}); numbers are decimal text") from None
        out[symbol] = MappingProxyType(dict(data))
    return MappingProxyType(out)


def _check_cross(where: str, s: Settings) -> None:
    m = s.margin
    if not m.warning_ratio < m.margin_call_ratio:
        raise _fail(where, "margin.warning_ratio", m.warning_ratio,
                    f"a ratio below margin.margin_call_ratio ({m.margin_call_ratio})")
    if not m.hysteresis < m.warning_ratio:
        raise _fail(where, "margin.hysteresis", m.hysteresis,
                    f"less than margin.warning_ratio ({m.warning_ratio})")
    q = s.mqtt
    if q.url and (q.tls_ca_file is not None or q.tls_insecure) and not (q.tls or q.url.startswith("mqtts://")):
        key, value = ("mqtt.tls_ca_file", q.tls_ca_file) if q.tls_ca_file is not None else ("mqtt.tls_insecure", True)
        raise _fail(where, key, value, "to be set only with mqtt.tls = true or an mqtts:// url")
    try:
        from exchange_sim.profiles import profile_data
        known = set(profile_data(s.profile.name)["symbols"])
    except FileNotFoundError:
        from importlib import resources
        names = sorted(p.name.removesuffix(".json") for p in resources.files("exchange_sim.profiles").iterdir()
                       if p.name.endswith(".json"))
        raise _fail(where, "profile.name", s.profile.name, "one of " + ", ".join(names)) from None
    known |= set(s.profile.extra_symbols)
    for symbol in s.feed.symbols:
        if symbol not in known:
            raise _fail(where, "feed.symbols", symbol,
                        f"a symbol of profile {s.profile.name!r} ({', '.join(sorted(known))}) "
                        f"or one added as [profile.symbols.{symbol}]")


def parse_config(data: Mapping[str, Any], *, where: str = "config", env: Mapping[str, str] | None = None) -> Settings:
    """Validated settings from an already parsed TOML document (plus the environment)."""
    env = os.environ if env is None else env
    kwargs: dict[str, Any] = {}
    for top, value in data.items():
        if top == "feeds":
            if not isinstance(value, dict):
                raise _fail(where, "[feeds]", value, "tables such as [feeds.binance]")
            for sub, table in value.items():
                if f"feeds.{sub}" not in _SECTIONS:
                    raise ConfigError(f"{where}: unknown section [feeds.{sub}]; allowed: [feeds.binance]")
                kwargs[_FIELD_NAMES[f"feeds.{sub}"]] = _section(where, f"feeds.{sub}", table)
        elif top in _SECTIONS:
            kwargs[top] = _section(where, top, value)
        else:
            allowed = sorted(k for k in _SECTIONS if "." not in k) + ["feeds.binance"]
            raise ConfigError(f"{where}: unknown section [{top}]; allowed sections: "
                              + ", ".join(f"[{a}]" for a in allowed))
    settings = Settings(**kwargs, source=where)
    settings = _apply_env(settings, env)
    _check_cross(where, settings)
    return settings


def _apply_env(s: Settings, env: Mapping[str, str]) -> Settings:
    server, binance, mqtt = s.server, s.binance, s.mqtt
    if env.get(ENV_ADMIN_TOKEN):
        server = dataclasses.replace(server, admin_token=_token("environment", ENV_ADMIN_TOKEN,
                                                                env[ENV_ADMIN_TOKEN]))
    if env.get(ENV_BINANCE_WS_URL):
        binance = dataclasses.replace(binance, ws_url=_url(("wss", "ws"))("environment", ENV_BINANCE_WS_URL,
                                                                          env[ENV_BINANCE_WS_URL]))
    if env.get(ENV_BINANCE_REST_URL):
        binance = dataclasses.replace(binance, rest_url=_url(("https", "http"))(
            "environment", ENV_BINANCE_REST_URL, env[ENV_BINANCE_REST_URL]))
    if env.get(ENV_MQTT_URL):
        mqtt = dataclasses.replace(mqtt, url=_url(("mqtt", "mqtts"))("environment", ENV_MQTT_URL, env[ENV_MQTT_URL]))
    return dataclasses.replace(s, server=server, binance=binance, mqtt=mqtt)


def load_config(path: str | Path | None = None, *, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from a config.toml (None: defaults), overridden by the environment."""
    if path is None:
        return parse_config({}, where="<defaults>", env=env)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(p)!r} not found; pass --config PATH or create it "
                          "(the repository ships a commented config.toml)") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(p)!r} cannot be read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    return parse_config(data, where=str(p), env=env)

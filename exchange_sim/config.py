"""config.toml -> frozen, validated settings (msgspec Structs).

    settings = load_config("config.toml")            # file + environment
    settings = load_config(None)                      # defaults + environment
    settings = settings.override(feed_spec="synthetic", port=0)   # command-line flags

Every section is a frozen ``msgspec.Struct`` declared ``forbid_unknown_fields=True``; each key's
type and bounds are its annotation (``Annotated[int, Meta(ge=0, le=65535)]``) and its
``description`` is what the error message says is allowed. ``msgspec.convert`` does the
checking; this module only turns its error into one friendly line naming the key, the bad value
and what is allowed ("unknown key feed.stale_after = 10.0; allowed keys in [feed]: ..."). A few
rules no annotation can say are checked by hand afterwards (a feed spec that parses, symbols of
the profile, ratios in order, files that exist).

The environment overrides the file for secrets and endpoints (``EXSIM_ADMIN_TOKEN``,
``EXSIM_MQTT_URL``, ``EXSIM_BINANCE_WS_URL``, ``EXSIM_BINANCE_REST_URL``); command-line flags
override both. TOML has no null: an optional key set to "" means unset. Money-like numbers stay
text here and are converted by whoever uses them.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct, field

FEED_KINDS = ("binance", "ccxt:<exchange id>", "mqtt://host:port/topic", "replay:<file>",
              "synthetic[:scenario]", "manual")
ENV_ADMIN_TOKEN = "EXSIM_ADMIN_TOKEN"
ENV_MQTT_URL = "EXSIM_MQTT_URL"
ENV_BINANCE_WS_URL = "EXSIM_BINANCE_WS_URL"
ENV_BINANCE_REST_URL = "EXSIM_BINANCE_REST_URL"
SYMBOL_PATTERN = r"^[A-Z0-9]{2,20}$"
SECRET_KEYS = frozenset({"server.admin_token", "mqtt.password"})  # never echoed in a message


class ConfigError(Exception):
    """Bad configuration: the message names the key, the bad value and what is allowed."""


def _k(*, description: str, **bounds: Any) -> Meta:
    return Meta(description=description, **bounds)


Port = Annotated[int, _k(ge=0, le=65535, description="an integer from 0 to 65535")]
Host = Annotated[str, _k(pattern=r"^[A-Za-z0-9.\-:\[\]]{1,253}$",
                         description="a host name or IP address such as 127.0.0.1")]
Token = Annotated[str, _k(min_length=8, pattern=r"^\S+$", description="a token of at least 8 characters without spaces")]
NonEmpty = Annotated[str, _k(pattern=r"\S", description="a non-empty string")]
Symbol = Annotated[str, _k(pattern=SYMBOL_PATTERN, description="an upper-case symbol such as BTCUSDT")]
Ratio = Annotated[float, _k(gt=0.0, le=1.0, description="a number in (0.0, 1.0]")]
RoutePath = Annotated[str, _k(pattern=r"^(/[A-Za-z0-9._~-]+)+$", description='a URL path such as "/public"')]


def _url(*schemes: str) -> Any:
    return Annotated[str, _k(pattern="^(" + "|".join(schemes) + ")://",
                             description="a URL starting with " + " or ".join(s + "://" for s in schemes))]


def _int(lo: int, hi: int) -> Any:
    return Annotated[int, _k(ge=lo, le=hi, description=f"an integer from {lo} to {hi}")]


# ----------------------------------------------------------------------------- settings


class Section(Struct, frozen=True, forbid_unknown_fields=True):
    """A config.toml section: frozen, every key known."""


class ServerSettings(Section):
    host: Host = "127.0.0.1"
    port: Port = 8765
    admin_token: Token | None = None  # None: the server generates one and prints it at start


class FeedSettings(Section):
    spec: Annotated[str, _k(pattern=r"\S", description="one of " + ", ".join(FEED_KINDS))] = "binance"
    symbols: Annotated[tuple[Symbol, ...], _k(min_length=1, description='a non-empty list of upper-case symbols '
                                                                       'such as ["BTCUSDT"]')] = ("BTCUSDT", "ETHUSDT")
    # no data for this long marks a symbol stale (margin monitor holds)
    stale_after_s: Annotated[float, _k(gt=0.0, le=3600.0, description="a number in (0.0, 3600.0]")] = 10.0
    bad_tick_band: Ratio = 0.10  # a price this far (fraction) from the last one is dropped as bad


class BinanceFeedSettings(Section):
    """[feeds.binance]: the venue's endpoints (more feed URL keys belong here)."""

    ws_url: _url("wss", "ws") = "wss://fstream.binance.com"  # the websocket root; the routes below hang off it
    rest_url: _url("https", "http") = "https://fapi.binance.com"
    public_path: RoutePath = "/public"  # route of depth, bookTicker and trade streams
    market_path: RoutePath = "/market"  # route of markPrice, aggTrade and the other regular streams


class FeedsSettings(Section):
    binance: BinanceFeedSettings = BinanceFeedSettings()


class JournalSettings(Section):
    db: NonEmpty = "exchange-sim.db"
    snapshot_every: _int(1, 10**9) = 10_000  # inputs between snapshots
    keep_snapshots: _int(0, 10**6) = 3  # snapshots kept; older ones and the inputs they cover are deleted (0: keep all)
    # NORMAL: commits survive a crash of the process; FULL: also a power cut
    synchronous: Annotated[Literal["FULL", "NORMAL"], _k(description="one of 'FULL', 'NORMAL'")] = "NORMAL"
    compact_events: bool = False  # compaction also deletes the event log of the inputs it deletes


class MqttSettings(Section):
    url: _url("mqtt", "mqtts") | None = None  # None: no MQTT bridge
    topic_prefix: NonEmpty = "exchange-sim"
    username: str | None = None
    password: str | None = None
    tls: bool = False
    tls_ca_file: Annotated[str, _k(pattern=r"\S", description="the path of a readable file")] | None = None
    tls_insecure: bool = False  # accept any certificate and host name (test brokers only)
    client_id: Annotated[str, _k(min_length=1, max_length=128, pattern=r"^[!-~]+$",
                                 description="1 to 128 printable characters without spaces")] | None = None
    buffer_size: _int(1, 10**7) = 10_000  # messages held while the broker is slow or down; the oldest dropped beyond


class MarginSettings(Section):
    margin_call_ratio: Ratio = 0.8
    warning_ratio: Ratio = 0.6
    hysteresis: Annotated[float, _k(ge=0.0, le=0.5, description="a number in [0.0, 0.5]")] = 0.05


class ProfileSettings(Section):
    name: NonEmpty = "binance_usdm"
    # extra instruments, same shape as a symbol of the profile JSON: [profile.symbols.SOLUSDT]
    extra_symbols: dict[str, dict[str, Any]] = field(default_factory=dict, name="symbols")


class DashboardSettings(Section):
    enabled: bool = True
    chart_js: NonEmpty | None = None  # path to lightweight-charts.standalone.production.js (else found)


class Settings(Section):
    server: ServerSettings = ServerSettings()
    feed: FeedSettings = FeedSettings()
    feeds: FeedsSettings = FeedsSettings()
    journal: JournalSettings = JournalSettings()
    mqtt: MqttSettings = MqttSettings()
    margin: MarginSettings = MarginSettings()
    profile: ProfileSettings = ProfileSettings()
    dashboard: DashboardSettings = DashboardSettings()
    source: str = "<defaults>"

    @property
    def binance(self) -> BinanceFeedSettings:
        return self.feeds.binance

    def override(self, *, feed_spec: str | None = None, host: str | None = None, port: int | None = None,
                 admin_token: str | None = None, db: str | None = None) -> Settings:
        """These settings with command-line values (None = keep) applied and validated."""
        where = "command line"
        server, feed, journal = self.server, self.feed, self.journal
        if feed_spec is not None:
            feed = _set(feed, "spec", _feed_spec(where, "--feed", feed_spec), where, "--feed")
        if host is not None:
            server = _set(server, "host", host, where, "--host")
        if port is not None:
            server = _set(server, "port", port, where, "--port")
        if admin_token is not None:
            server = _set(server, "admin_token", admin_token, where, "--admin-token", secret=True)
        if db is not None:
            journal = _set(journal, "db", db, where, "--db")
        return msgspec.structs.replace(self, server=server, feed=feed, journal=journal)


SECTIONS: dict[str, type[Section]] = {"server": ServerSettings, "feed": FeedSettings, "feeds.binance": BinanceFeedSettings,
                                      "journal": JournalSettings, "mqtt": MqttSettings, "margin": MarginSettings,
                                      "profile": ProfileSettings, "dashboard": DashboardSettings}


# ----------------------------------------------------------------------------- friendly errors


def _keys(cls: type[Section]) -> list[str]:
    return sorted(f.encode_name for f in msgspec.structs.fields(cls))


def _field(cls: type[Section], name: str) -> msgspec.structs.FieldInfo:
    return next(f for f in msgspec.structs.fields(cls) if f.encode_name == name)


def _allowed(cls: type[Section], name: str) -> str:
    """What a key accepts: its description, else its type in words."""
    info = msgspec.inspect.type_info(_field(cls, name).type)
    if isinstance(info, msgspec.inspect.UnionType):  # T | None
        info = next(t for t in info.types if not isinstance(t, msgspec.inspect.NoneType))
    if isinstance(info, msgspec.inspect.Metadata):
        description = (info.extra_json_schema or {}).get("description")
        if description:
            return str(description)
        info = info.type
    words = {msgspec.inspect.BoolType: "true or false", msgspec.inspect.StrType: "a string",
             msgspec.inspect.IntType: "an integer", msgspec.inspect.FloatType: "a number"}
    return words.get(type(info), "a table")


def _fail(where: str, key: str, value: Any, allowed: str, *, secret: bool = False) -> ConfigError:
    shown = "<hidden>" if secret or key in SECRET_KEYS else repr(value)
    return ConfigError(f"{where}: {key} = {shown} is not allowed; expected {allowed}")


def _translate(exc: msgspec.ValidationError, data: Mapping[str, Any], where: str) -> ConfigError:
    """msgspec's error as one line: the key, its value and what the key allows."""
    text = str(exc)
    found = re.search(r"at `\$((?:\.[A-Za-z0-9_]+)*)(?:\[[^\]]*\])*`$", text)
    path = found.group(1).lstrip(".").split(".") if found else []
    section, cls = _section_of(path)
    unknown = re.match(r"Object contains unknown field `([^`]+)`", text)
    if unknown:
        key = unknown.group(1)
        if cls is None:
            return _unknown_section(where, ".".join([*path, key]))
        name = ".".join(path)
        return ConfigError(f"{where}: unknown key {name}.{key} = {_lookup(data, [*path, key])!r}; "
                           f"allowed keys in [{name}]: {', '.join(_keys(cls))}")
    if cls is None or len(path) == len(section.split(".")):
        return _fail(where, f"[{'.'.join(path)}]", _lookup(data, path), "a table")
    key = path[len(section.split("."))]
    return _fail(where, f"{section}.{key}", _lookup(data, [*section.split("."), key]), _allowed(cls, key))


def _section_of(path: list[str]) -> tuple[str, type[Section] | None]:
    for size in (2, 1):
        name = ".".join(path[:size])
        if len(path) >= size and name in SECTIONS:
            return name, SECTIONS[name]
    return "", None


def _unknown_section(where: str, name: str) -> ConfigError:
    if name.startswith("feeds."):
        return ConfigError(f"{where}: unknown section [{name}]; allowed: [feeds.binance]")
    allowed = [k for k in SECTIONS if k != "feeds.binance"] + ["feeds.binance"]
    return ConfigError(f"{where}: unknown section [{name}]; allowed sections: " + ", ".join(f"[{a}]" for a in allowed))


def _lookup(data: Any, path: list[str]) -> Any:
    for part in path:
        if not isinstance(data, Mapping):
            return data
        data = data.get(part)
    return data


def _set(section: Section, name: str, value: Any, where: str, key: str, *, secret: bool = False) -> Any:
    """``section`` with key ``name`` = ``value``, checked by its annotation (errors name ``key``)."""
    cls = type(section)
    try:
        checked = msgspec.convert({name: value}, cls)
    except msgspec.ValidationError:
        raise _fail(where, key, value, _allowed(cls, name), secret=secret) from None
    return msgspec.structs.replace(section, **{_field(cls, name).name: getattr(checked, _field(cls, name).name)})


# ----------------------------------------------------------------------------- what annotations cannot say


def _feed_spec(where: str, key: str, value: str) -> str:
    try:
        from feeds import FeedSpecError, parse_spec
    except ImportError:  # feeds not installed: check the shape only
        if value.partition(":")[0].partition("?")[0] not in ("binance", "ccxt", "mqtt", "replay", "synthetic",
                                                              "manual"):
            raise _fail(where, key, value, "one of " + ", ".join(FEED_KINDS)) from None
        return value
    try:
        parse_spec(value)
    except FeedSpecError as exc:  # its message already names the allowed feeds
        raise ConfigError(f"{where}: {key} = {value!r} is not allowed: {exc}") from None
    return value


def _extra_symbols(where: str, value: Mapping[str, Any]) -> None:
    from exchange_sim.core.fixed import FixedPointError
    from exchange_sim.core.instruments import Instrument

    for symbol, data in value.items():
        key = f"profile.symbols.{symbol}"
        if not re.match(SYMBOL_PATTERN, symbol):
            raise _fail(where, key, data, "a table named by an upper-case symbol, shaped like a profile symbol")
        try:
            Instrument.from_dict(symbol, data)
        except KeyError as exc:
            raise ConfigError(f"{where}: {key} is missing key {exc.args[0]!r}; needs base, tick_size, "
                              "step_size, min_qty, max_qty, min_notional, min_price, fees and tiers") from None
        except (FixedPointError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {key} has a bad value ({exc}); numbers are decimal text") from None


def _check_rules(where: str, s: Settings) -> None:
    _feed_spec(where, "feed.spec", s.feed.spec)
    if len(set(s.feed.symbols)) != len(s.feed.symbols):
        raise _fail(where, "feed.symbols", list(s.feed.symbols), "a list without duplicates")
    _extra_symbols(where, s.profile.extra_symbols)
    m = s.margin
    if not m.warning_ratio < m.margin_call_ratio:
        raise _fail(where, "margin.warning_ratio", m.warning_ratio,
                    f"a ratio below margin.margin_call_ratio ({m.margin_call_ratio})")
    if not m.hysteresis < m.warning_ratio:
        raise _fail(where, "margin.hysteresis", m.hysteresis, f"less than margin.warning_ratio ({m.warning_ratio})")
    q = s.mqtt
    if q.tls_ca_file is not None and not Path(q.tls_ca_file).is_file():
        raise _fail(where, "mqtt.tls_ca_file", q.tls_ca_file, "the path of a readable file (no such file)")
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


# ----------------------------------------------------------------------------- loading


def _unset_empty(data: Mapping[str, Any]) -> dict[str, Any]:
    """The document with optional keys set to "" removed (TOML has no null: "" means unset)."""
    out: dict[str, Any] = {}
    for top, value in data.items():
        if not isinstance(value, Mapping):
            out[top] = value
            continue
        tables = {f"{top}.{sub}": v for sub, v in value.items()} if top == "feeds" else {top: value}
        cleaned: dict[str, Any] = {}
        for name, table in tables.items():
            cls = SECTIONS.get(name)
            if cls is None or not isinstance(table, Mapping):
                cleaned[name] = table
                continue
            optional = {f.encode_name for f in msgspec.structs.fields(cls) if f.default is None}
            cleaned[name] = {k: v for k, v in table.items() if not (k in optional and v == "")}
        out[top] = ({k.partition(".")[2]: v for k, v in cleaned.items()} if top == "feeds" else cleaned[top])
    return out


def parse_config(data: Mapping[str, Any], *, where: str = "config", env: Mapping[str, str] | None = None) -> Settings:
    """Validated settings from an already parsed TOML document (plus the environment)."""
    env = os.environ if env is None else env
    for top in data:
        if top == "source" or (top not in SECTIONS and top != "feeds"):
            raise _unknown_section(where, top)
    document = _unset_empty(data)
    try:
        settings = msgspec.convert(document, Settings)
    except msgspec.ValidationError as exc:
        raise _translate(exc, document, where) from None
    settings = msgspec.structs.replace(_apply_env(settings, env), source=where)
    _check_rules(where, settings)
    return settings


def _apply_env(s: Settings, env: Mapping[str, str]) -> Settings:
    where = "environment"
    server, binance, mqtt = s.server, s.feeds.binance, s.mqtt
    if env.get(ENV_ADMIN_TOKEN):
        server = _set(server, "admin_token", env[ENV_ADMIN_TOKEN], where, ENV_ADMIN_TOKEN, secret=True)
    if env.get(ENV_BINANCE_WS_URL):
        binance = _set(binance, "ws_url", env[ENV_BINANCE_WS_URL], where, ENV_BINANCE_WS_URL)
    if env.get(ENV_BINANCE_REST_URL):
        binance = _set(binance, "rest_url", env[ENV_BINANCE_REST_URL], where, ENV_BINANCE_REST_URL)
    if env.get(ENV_MQTT_URL):
        mqtt = _set(mqtt, "url", env[ENV_MQTT_URL], where, ENV_MQTT_URL)
    return msgspec.structs.replace(s, server=server, feeds=FeedsSettings(binance=binance), mqtt=mqtt)


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


def venue_instruments(settings: Settings) -> dict[str, Any]:
    """The [profile]'s instruments plus its extra symbols, by symbol (what every core is built with)."""
    from exchange_sim.core.instruments import Instrument
    from exchange_sim.profiles import load_profile

    instruments = dict(load_profile(settings.profile.name))
    for symbol, data in settings.profile.extra_symbols.items():
        instruments[symbol] = Instrument.from_dict(symbol, data)
    return instruments


def exchange_config(settings: Settings) -> Any:
    """The core's ExchangeConfig with the [margin] settings."""
    from exchange_sim.core.exchange import ExchangeConfig
    from exchange_sim.core.fixed import to_fixed

    margin = settings.margin
    return ExchangeConfig(margin_call_ratio=to_fixed(str(margin.margin_call_ratio)),
                          warning_ratio=to_fixed(str(margin.warning_ratio)),
                          margin_call_hysteresis=to_fixed(str(margin.hysteresis)))

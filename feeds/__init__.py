"""Market-data feeds: async iterators of the exchange core's market events.

``open_feed(spec, instruments)`` turns a feed spec (config ``[feed] source`` or the CLI) into a
feed object: iterate it with ``async for`` (entering it first with ``async with`` when it is an
async context manager, which ``exchange_sim.runtime.feeds.FeedSupervisor`` does). Specs:

| spec | feed |
|------|------|
| ``binance[?depth=100ms&trades=trade&mark=1&merge_ms=10]`` | Binance USDⓈ-M websockets, /public + /market (``feeds.binance``) |
| ``ccxt:<exchange id>`` | any ccxt.pro venue (``feeds.ccxt_pro``); ccxt config via ``ccxt_config=`` |
| ``mqtt://host:port/topic`` | ticks from an MQTT topic (``feeds.mqtt``) |
| ``replay:<file>[,<file>...][?speed=N&symbol=S&kind=K&book=L&history=K,F&times=now|original]`` | a recording (``feeds.replay``) |
| ``synthetic[:walk|flash_crash|squeeze|slow_bleed][?seed=N&steps=N&speed=N&start=now|MS]`` | ``feeds.synthetic`` |
| ``manual`` | no feed: prices come from the admin API; ``open_feed`` returns None |

``merge_ms``: how long a Binance message may wait for the other route so that the two arrive in
event-time order (0: as they come). Replay speed: 0 or ``max`` = as fast as possible, 1 or
``realtime`` = real time, N = N× real time; ``book=L`` gives klines a synthetic book of L levels,
``kind`` forces an archive layout, ``history=<1m klines.csv>,<funding.csv>`` is the kline/funding
past served before the replay's first event (``feeds.history``); ``synthetic?start=now`` stamps the
synthetic market from the wall clock (default: 2024-08-05T00:00Z).

Given a ``clock`` (the session's, in ms), live-like feeds share it: synthetic steps are stamped
with it and a replay is shifted to start at its time (``replay_times``: ``times=original`` keeps
the recording's own; a replay with ``history=`` keeps them by default, so its past lines up).
A bad spec raises ``FeedSpecError``; every feed error derives from ``FeedError``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from .base import (
    FeedDisconnected,
    FeedError,
    FeedFormatError,
    FeedSignal,
    FeedSpecError,
    is_market_event,
    only_market_events,
    wall_ms,
)

__all__ = [
    "FeedDisconnected", "FeedError", "FeedFormatError", "FeedSignal", "FeedSpec", "FeedSpecError",
    "is_market_event", "only_market_events", "open_feed", "parse_spec", "replay_times",
]

KINDS = ("binance", "ccxt", "mqtt", "replay", "synthetic", "manual")


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """A parsed feed spec: ``kind``, its target (venue id, file list, URL, scenario) and query params."""

    kind: str
    target: str = ""
    params: Mapping[str, str] = field(default_factory=dict)


def _split_query(text: str) -> tuple[str, dict[str, str]]:
    head, sep, query = text.partition("?")
    params = dict(parse_qsl(query, keep_blank_values=True)) if sep else {}
    return head, params


def parse_spec(spec: str) -> FeedSpec:
    """``"replay:day.csv?speed=10"`` → FeedSpec("replay", "day.csv", {"speed": "10"})."""
    text = (spec or "").strip()
    if not text:
        raise FeedSpecError("empty feed spec")
    if text.startswith("mqtt://"):
        return FeedSpec("mqtt", text)
    head, params = _split_query(text)
    kind, _, target = head.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise FeedSpecError(f"unknown feed {kind!r} in {spec!r}; use one of: binance, ccxt:<exchange>, "
                            "mqtt://host:port/topic, replay:<file>, synthetic[:scenario], manual")
    if kind == "ccxt" and not target:
        raise FeedSpecError(f"ccxt feed needs an exchange id: 'ccxt:<exchange id>', got {spec!r}")
    if kind == "replay" and not target:
        raise FeedSpecError(f"replay feed needs a file: 'replay:<file>', got {spec!r}")
    if kind in ("binance", "manual") and target:
        raise FeedSpecError(f"{kind} takes no ':' argument: {spec!r}")
    return FeedSpec(kind, target, params)


def _speed(value: str | None) -> float:
    if value in (None, "", "max", "fast", "0"):
        return 0.0
    if value in ("realtime", "real", "1x"):
        return 1.0
    try:
        speed = float(str(value).rstrip("xX"))
    except ValueError:
        raise FeedSpecError(f"bad speed {value!r}: a number, 'realtime' or 'max'") from None
    if speed < 0:
        raise FeedSpecError(f"speed must be >= 0, got {value!r}")
    return speed


def _int(params: Mapping[str, str], key: str, default: int | None) -> int | None:
    if key not in params:
        return default
    try:
        return int(params[key])
    except ValueError:
        raise FeedSpecError(f"{key} must be an integer, got {params[key]!r}") from None


def _bool(params: Mapping[str, str], key: str, default: bool) -> bool:
    if key not in params:
        return default
    return params[key].strip().lower() not in ("0", "false", "no", "off", "")


def replay_times(params: Mapping[str, str]) -> str:
    """``now`` (a served recording is shifted to start now) or ``original`` (its own timestamps).

    A replay with a ``history=`` past keeps its own times by default: that past is the archive's
    and must end where the recording begins.
    """
    times = params.get("times", "original" if params.get("history") else "now")
    if times not in ("now", "original"):
        raise FeedSpecError(f"times must be 'now' (shift the recording to start now) or 'original', got {times!r}")
    if times == "now" and params.get("history"):
        raise FeedSpecError("a replay with history= keeps its own times (its past comes from the archive): "
                            "drop times=now")
    return times


def open_feed(spec: str | FeedSpec, instruments: Sequence[str] | Mapping[str, Any], *,
              ws_url: str | None = None, rest_url: str | None = None,
              routes: Mapping[str, str] | None = None, ccxt_config: Mapping[str, Any] | None = None,
              symbol_map: Mapping[str, str] | None = None,
              speed: float | None = None, seed: int | None = None,
              clock: Callable[[], int] | None = None,
              anchor: Callable[[str], int | None] | None = None, endless: bool = False) -> Any:
    """The feed a spec names, for ``instruments`` (symbols, or the core's {symbol: Instrument}).

    Keyword arguments override what the spec's query says (``speed``, ``seed``) or give what a
    spec cannot carry (the Binance feed's root URLs and route paths ``{"public": "/public",
    "market": "/market"}``, a ccxt config dict, the session ``clock``, the synthetic walk's
    ``anchor``: the market's last price; ``endless``: a synthetic market without ``steps=`` runs
    until stopped). Returns None for ``manual``.
    """
    fs = spec if isinstance(spec, FeedSpec) else parse_spec(spec)
    symbols = list(instruments)
    if not symbols:
        raise FeedSpecError("a feed needs at least one instrument")
    p = fs.params
    if fs.kind == "manual":
        return None
    if fs.kind == "binance":
        from .binance import BinanceFeed

        trades = p.get("trades", "trade") or None
        return BinanceFeed(symbols, ws_url, rest_url, **{f"{r}_path": v for r, v in (routes or {}).items()},
                           depth=p.get("depth", "100ms") or None, trades=trades,
                           mark=_bool(p, "mark", True), book_ticker=_bool(p, "bookTicker", False),
                           merge_window=(_int(p, "merge_ms", 10) or 0) / 1000)
    if fs.kind == "ccxt":
        from .ccxt_pro import CcxtProFeed

        return CcxtProFeed(fs.target, symbols, config=dict(ccxt_config or {}),
                           symbol_map=dict(symbol_map or {}),
                           book=_bool(p, "book", True), trades=_bool(p, "trades", True),
                           mark=_bool(p, "mark", True), book_depth=_int(p, "depth", 100) or 100)
    if fs.kind == "mqtt":
        from .mqtt import MqttFeed

        return MqttFeed(fs.target, symbols)
    if fs.kind == "replay":
        from .klines import PathOptions
        from .replay import Replay

        tick = 10**7
        sym = p.get("symbol")
        if isinstance(instruments, Mapping):
            key = (sym or symbols[0]).upper()
            inst = instruments.get(key)
            tick = getattr(inst, "tick_size", tick) or tick
        options = PathOptions(book_levels=_int(p, "book", 0) or 0, tick=tick, marks=_bool(p, "marks", True),
                              trades=_bool(p, "trades", True))
        files = [f for f in fs.target.split(",") if f]
        pace = _speed(p.get("speed")) if speed is None else speed
        times = replay_times(p)
        return Replay(files, symbols, speed=pace, symbol=sym, kind=p.get("kind"), options=options,
                      start_at=clock if times == "now" else None)
    if fs.kind == "synthetic":
        from .synthetic import SyntheticConfig, SyntheticFeed

        start = p.get("start")
        extra = {"start_ts": wall_ms() if start == "now" else _int(p, "start", 0)} if start else {}
        cfg = SyntheticConfig(scenario=fs.target or "walk", **extra,
                              seed=seed if seed is not None else (_int(p, "seed", 1) or 0),
                              steps=_int(p, "steps", None if endless else 600) or None,
                              speed=_speed(p.get("speed", "1")) if speed is None else speed)
        return SyntheticFeed(symbols, cfg, clock=clock, anchor=anchor)
    raise FeedSpecError(f"unknown feed {fs.kind!r}")  # pragma: no cover - parse_spec guards

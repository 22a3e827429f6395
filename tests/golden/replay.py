"""Golden sessions: a command script plus market data in, the core's event log out, byte for byte.

A session is a directory under ``tests/golden/sessions/``:

- ``market.jsonl``: market events, one canonical message a line (``feeds.recorder`` format, the
  same lines ``feeds.replay`` reads back);
- ``commands.jsonl``: commands, one canonical message a line;
- ``config.json`` (optional): ``ExchangeConfig`` overrides, amounts as decimal text;
- ``events.jsonl``: the expected event log, ``messages.dumps`` of every event, in order
  (what the journal's event log stores).

Inputs are merged by timestamp; at equal timestamps market events come first, then commands,
each file keeping its own order. The exchange is the shipped Binance profile with the session's
config. Nothing here reads a clock or a random source, so the log depends only on the inputs and
the core.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exchange_sim.core.exchange import Exchange, ExchangeConfig
from exchange_sim.core.fixed import to_fixed
from exchange_sim.core.messages import dumps, loads
from exchange_sim.profiles import load_profile

SESSIONS = Path(__file__).parent / "sessions"


@dataclass(frozen=True, slots=True)
class Line:
    """One event's canonical JSON and the input (1-based line of the merged inputs) that caused it."""

    text: str
    input_no: int
    input_text: str


def session_names() -> list[str]:
    return sorted(p.name for p in SESSIONS.iterdir() if (p / "commands.jsonl").exists())


def _read(path: Path) -> list[Any]:
    if not path.exists():
        return []
    return [loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def config_of(session: Path) -> ExchangeConfig:
    path = session / "config.json"
    if not path.exists():
        return ExchangeConfig()
    raw = json.loads(path.read_text(encoding="utf-8"))
    return ExchangeConfig(**{k: (to_fixed(v) if isinstance(v, str) else v) for k, v in raw.items()})


def inputs(session: Path) -> list[Any]:
    """The session's inputs in the order the core gets them."""
    market, commands = _read(session / "market.jsonl"), _read(session / "commands.jsonl")
    return list(heapq.merge(market, commands, key=lambda m: m.ts))


def run(session: Path) -> Iterator[Line]:
    """Replay a session through a fresh Exchange; every event with the input that caused it."""
    ex = Exchange(load_profile(), config_of(session))
    for n, msg in enumerate(inputs(session), 1):
        input_text = dumps(msg)
        for event in ex.apply(msg):
            yield Line(dumps(event), n, input_text)


def expected(session: Path) -> list[str]:
    return (session / "events.jsonl").read_text(encoding="utf-8").splitlines()

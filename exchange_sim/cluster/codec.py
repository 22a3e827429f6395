"""Wire forms of what crosses NATS: inputs and event lists as the core's canonical JSON."""

from __future__ import annotations

from typing import Any

import msgspec

from exchange_sim.core import messages as m

_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
_REPLY = msgspec.json.Decoder(dict[str, msgspec.Raw])


def dump_events(events: list) -> bytes:
    """A JSON array of the events, each in ``messages.dumps`` form."""
    return b"[" + b",".join(m.dumps(e).encode() for e in events) + b"]"


def load_events(data: bytes | msgspec.Raw) -> list:
    return [m.loads(bytes(raw)) for raw in _RAW_LIST.decode(data)]


def dump_reply(seq: int, events: list, state: bytes = b"null") -> bytes:
    """A shard's answer to a command: the input sequence it was journaled at, its events and the
    state of its account after it (``account_state``'s JSON, or null)."""
    return b'{"seq":%d,"events":%s,"state":%s}' % (seq, dump_events(events), state)


def dump_error(kind: str, text: str) -> bytes:
    return msgspec.json.encode({"error": kind, "text": text})


def load_reply(data: bytes) -> tuple[int, list, msgspec.Raw | None] | tuple[str, str, None]:
    """``(seq, events, state JSON or None)`` or ``(error_kind, text, None)``."""
    parts = _REPLY.decode(data)
    if "error" in parts:
        return msgspec.json.decode(parts["error"]), msgspec.json.decode(parts.get("text", b'""')), None
    state = parts.get("state")
    return (msgspec.json.decode(parts["seq"]), load_events(parts["events"]),
            state if state is not None and bytes(state) != b"null" else None)


def dump_input(msg: Any) -> bytes:
    return m.dumps(msg).encode()


def load_input(data: bytes) -> Any:
    return m.loads(data)

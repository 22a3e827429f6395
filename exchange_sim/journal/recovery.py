"""Bring a session back: recover the exchange after a crash, or re-run a recorded session.

    journal = Journal(db_path, JournalConfig(snapshot_every=settings.journal.snapshot_every))
    exchange, next_seq = recover(journal, genesis=lambda: Exchange(load_profile(), ExchangeConfig()))

``recover`` restores the newest snapshot and applies every input stored after it, in order, to
the restored core. The core is a pure function of its inputs, so the result is the state the
crashed process had after its last stored input, exactly; inputs that were not stored were never
applied nor acknowledged (the node journals before it applies). Inputs marked refused (the core
raised on them live) are skipped, as the live node skipped them (``rebuild``). Events that the crash kept out
of the event log are regenerated and written. ``genesis`` makes the exchange for a new file; its
snapshot becomes snapshot 0, so the file alone is enough to replay the session later, with the
same profile and configuration.

``replay_session`` re-runs a session from its oldest snapshot (the genesis one unless compaction
removed it) and yields the events; ``compare_session`` checks them against the stored event
log byte for byte (the ``exchange-sim replay-session`` command).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from exchange_sim.core.messages import dumps

from .errors import JournalCorruptError, JournalError
from .store import Journal

log = logging.getLogger(__name__)


def _exchange_type(exchange_type: Any) -> Any:
    if exchange_type is not None:
        return exchange_type
    from exchange_sim.core.exchange import Exchange

    return Exchange


def _restore_newest(journal: Journal, seqs: list[int], exchange_type: Any,
                    genesis: Callable[[], Any] | None = None) -> tuple[Any, int]:
    """The newest snapshot (of ``seqs``) that restores, and its seq; older ones if newer are bad.

    When none restores but the journal still holds every input from the first one, and
    ``genesis`` is given, the session is rebuilt from ``genesis()`` and the whole journal (snapshots
    written by another core version are refused by ``Exchange.restore``).
    """
    for seq in reversed(seqs):
        try:
            return exchange_type.restore(journal.snapshot_at(seq)), seq
        except JournalError:
            raise
        except Exception as exc:  # noqa: BLE001 - a snapshot the core cannot read: fall back to an older one
            log.error("journal %s: snapshot after input %d cannot be restored (%s); trying an older one",
                      journal.path, seq, exc)
    if genesis is not None and (not journal.last_seq or journal.first_input_seq() == 1):
        log.warning("journal %s: no snapshot can be restored; replaying the whole journal from genesis",
                    journal.path)
        return genesis(), 0
    raise JournalCorruptError(f"journal {journal.path}: no snapshot can be restored")


def _replay(journal: Journal, exchange: Any, after: int) -> Iterator[tuple[int, list[Any]]]:
    """Apply every stored input after ``after`` to ``exchange`` (refused ones skipped: the live core
    was rebuilt without them); yield (seq, events) per input."""
    refused = journal.refused_seqs(after)
    expected = after + 1
    for seq, msg in journal.inputs(after=after):
        while expected in refused:
            expected += 1
        if seq != expected:
            raise JournalCorruptError(f"journal {journal.path}: inputs {expected}..{seq - 1} are missing")
        try:
            events = exchange.apply(msg)
        except Exception as exc:
            raise JournalCorruptError(f"journal {journal.path}: replaying input {seq} ({type(msg).__name__}) "
                                      f"raised {exc!r}") from exc
        yield seq, events
        expected += 1
    while expected in refused:
        expected += 1
    if expected <= journal.last_seq:
        raise JournalCorruptError(f"journal {journal.path}: inputs {expected}..{journal.last_seq} are missing")


def recover(journal: Journal | str | os.PathLike[str], genesis: Callable[[], Any] | None = None, *,
            exchange_type: Any = None) -> tuple[Any, int]:
    """The exchange as it was after the last stored input, and the seq the next input will get.

    A new (empty) journal gets ``genesis()`` as its snapshot 0. The journal is bound to the
    returned exchange, so it snapshots it every ``snapshot_every`` inputs from now on.
    Raises JournalCorruptError for a file that does not replay (gap, bad message, core error).
    """
    if not isinstance(journal, Journal):
        with Journal(journal) as opened:
            return recover(opened, genesis, exchange_type=exchange_type)
    seqs = journal.snapshot_seqs()
    if not seqs:
        if journal.last_seq and journal.first_input_seq() != 1:
            raise JournalCorruptError(f"journal {journal.path}: no snapshot and inputs start at "
                                      f"{journal.first_input_seq()}")
        if genesis is None:
            raise JournalError(f"journal {journal.path} holds no session yet: recover() needs genesis")
        exchange = genesis()
        journal.save_snapshot(0, exchange.snapshot())
        start = 0
    else:
        # events of inputs up to events_through are logged; if a snapshot lies beyond that (a file
        # written without record()), start from an older one so the missing events can be rebuilt
        usable = [s for s in seqs if s <= journal.events_through] or seqs
        exchange, start = _restore_newest(journal, usable, _exchange_type(exchange_type), genesis)
    replayed = 0
    for seq, events in _replay(journal, exchange, start):
        replayed += 1
        if seq > journal.events_through:
            journal.write_events(seq, events)
    journal.flush()
    journal.bind(exchange)
    log.info("journal %s: recovered from snapshot %d + %d inputs; next input %d",
             journal.path, start, replayed, journal.next_seq)
    return exchange, journal.next_seq


def rebuild(journal: Journal, exchange_type: Any = None) -> Any:
    """The exchange after every input appended so far except the refused ones (staged ones too).

    What the live node does when ``apply`` raised: the core may be half-changed, so it is thrown
    away and made again from the newest snapshot plus the inputs after it, exactly as a restart
    would. The journal is bound to the new exchange. Events are not written again.
    """
    seqs = journal.snapshot_seqs()
    if not seqs:
        raise JournalCorruptError(f"journal {journal.path}: no snapshot to rebuild the exchange from")
    exchange, start = _restore_newest(journal, seqs, _exchange_type(exchange_type))
    replayed = sum(1 for _ in _replay(journal, exchange, start))
    journal.bind(exchange)
    log.warning("journal %s: exchange rebuilt from snapshot %d + %d inputs", journal.path, start, replayed)
    return exchange


def replay_session(db: Journal | str | os.PathLike[str], *, exchange_type: Any = None) -> Iterator[Any]:
    """Re-run a recorded session from its oldest snapshot and yield every event, in order.

    Read-only: the file is not changed. Raises JournalCorruptError if it does not replay.
    """
    if not isinstance(db, Journal):
        journal = Journal(db, read_only=True)
        try:
            yield from replay_session(journal, exchange_type=exchange_type)
        finally:
            journal.close()
        return
    seqs = db.snapshot_seqs()
    if not seqs:
        raise JournalCorruptError(f"journal {db.path} has no snapshot to start a replay from")
    exchange = _exchange_type(exchange_type).restore(db.snapshot_at(seqs[0]))
    for _seq, events in _replay(db, exchange, seqs[0]):
        yield from events


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What ``compare_session`` found."""

    start_seq: int  # the snapshot the replay started from (0 = the very beginning)
    last_seq: int  # the last input replayed
    replayed_events: int
    stored_events: int  # logged events caused by inputs after start_seq
    first_difference: int | None  # index (0-based, from start_seq) of the first differing event

    @property
    def identical(self) -> bool:
        return self.first_difference is None and self.replayed_events == self.stored_events


def compare_session(db: str | os.PathLike[str], *, exchange_type: Any = None,
                    on_event: Callable[[str], None] | None = None) -> ReplayReport:
    """Replay ``db`` and compare each event's canonical JSON with the stored event log."""
    with Journal(db, read_only=True) as journal:
        seqs = journal.snapshot_seqs()
        start = seqs[0] if seqs else 0
        stored = journal.event_bodies(after_input=start)
        replayed = 0
        stored_count = 0
        first_difference: int | None = None
        exhausted = False
        for event in replay_session(journal, exchange_type=exchange_type):
            text = dumps(event)
            if on_event is not None:
                on_event(text)
            expected = None if exhausted else next(stored, None)
            if expected is None:
                exhausted = True
            else:
                stored_count += 1
            if first_difference is None and text != expected:
                first_difference = replayed
            replayed += 1
        remaining = 0 if exhausted else sum(1 for _ in stored)
        if remaining and first_difference is None:
            first_difference = replayed
        return ReplayReport(start, journal.last_seq, replayed, stored_count + remaining, first_difference)

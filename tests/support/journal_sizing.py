"""How big the journal gets for a day of live BTCUSDT + ETHUSDT (a benchmark, not a test).

    python -m tests.support.journal_sizing [RECORDING] [--db PATH]

Drives the real recorded Binance BTCUSDT feed (``../shared/data/...ws-raw...jsonl.gz``, six
minutes) through the real decoder (``feeds.binance_wire.WireDecoder``), the real core and the
journal, the way ``exchange-sim run --feed binance`` would: depth diffs merged into the 100 ms
windows the live feed subscribes to (``@depth@100ms``; the recording is ``@0ms``, reported too),
every public trade, a mark price a second. Prints inputs per second, stored bytes per input and
the extrapolation to a day for two symbols (ETHUSDT assumed to run at BTCUSDT's rate, which
over-estimates), without compaction and with the default compaction bound.
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from exchange_sim.core.messages import BookDelta, MarkPrice, Trade
from exchange_sim.journal import Journal, JournalConfig, recover
from feeds.binance_wire import WireDecoder, depth_snapshot
from tests.support.journal_session import genesis
from tests.support.shared_data import CAPTURE

RECORDING = CAPTURE
DAY_S = 86_400


def recorded_events(path: Path) -> Iterator[Any]:
    """Core market events decoded from the raw recording (``<local_ns> <json>`` lines)."""
    decoder = WireDecoder(("BTCUSDT",), want=frozenset({"depth", "trade"}))
    with gzip.open(path, "rt") as lines:
        for line in lines:
            _, _, text = line.partition(" ")
            msg = json.loads(text)
            if "lastUpdateId" in msg:
                yield from decoder.snapshot(depth_snapshot(msg, "BTCUSDT"))
            else:
                yield from decoder.feed(msg)


def merge_100ms(events: Iterator[Any]) -> Iterator[Any]:
    """Book diffs merged per 100 ms window (what ``@depth@100ms`` sends); other events pass."""
    pending: BookDelta | None = None
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}

    def flush() -> BookDelta:
        assert pending is not None
        return BookDelta(pending.ts, pending.symbol, tuple(sorted(bids.items(), reverse=True)),
                         tuple(sorted(asks.items())), first, last, prev)

    first = last = prev = 0
    for event in events:
        if isinstance(event, BookDelta):
            if pending is not None and event.ts // 100 != pending.ts // 100:
                yield flush()
                pending = None
            if pending is None:
                pending, bids, asks = event, {}, {}
                first, prev = event.first_update_id, event.prev_final_update_id
            bids.update(event.bids)
            asks.update(event.asks)
            last = event.final_update_id
            continue
        yield event
    if pending is not None:
        yield flush()


def with_marks(events: Iterator[Any]) -> Iterator[Any]:
    """A ``MarkPrice`` (with index, funding rate and next funding time) every second of feed time."""
    last_price = 0
    next_mark = None
    for event in events:
        if isinstance(event, Trade):
            last_price = event.price
        ts = event.ts
        if last_price and (next_mark is None or ts >= next_mark):
            next_mark = ts - ts % 1000 + 1000
            yield MarkPrice(ts, "BTCUSDT", last_price, last_price - 2_500_000_000, 10_000,
                            ts - ts % 28_800_000 + 28_800_000)
        yield event


def measure(events: list[Any], db: Path, config: JournalConfig) -> dict[str, Any]:
    with Journal(db, config) as journal:
        exchange, _ = recover(journal, genesis)
        started = time.perf_counter()
        for msg in events:
            journal.append(msg)
            journal.record(msg, exchange.apply(msg))
        journal.flush()
        elapsed = time.perf_counter() - started
        stats = journal.stats()
    with Journal(db, config) as journal:  # a restart: newest snapshot + the inputs after it
        started = time.perf_counter()
        _, next_seq = recover(journal)
        recovery = time.perf_counter() - started
        replayed = next_seq - 1 - journal.snapshot_seqs()[-1]
    return {"stats": stats, "elapsed": elapsed, "recovery": recovery, "replayed": replayed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recording", nargs="?", default=str(RECORDING))
    parser.add_argument("--snapshot-every", type=int, default=10_000)
    parser.add_argument("--keep", type=int, default=3)
    args = parser.parse_args()
    raw = list(recorded_events(Path(args.recording)))
    span_s = (raw[-1].ts - raw[0].ts) / 1000
    for label, events in (("live feed (@depth@100ms)", list(with_marks(merge_100ms(iter(raw))))),
                          ("as recorded (@depth@0ms)", list(with_marks(iter(raw))))):
        kinds: dict[str, int] = {}
        for e in events:
            kinds[type(e).__name__] = kinds.get(type(e).__name__, 0) + 1
        with tempfile.TemporaryDirectory() as tmp:
            full = measure(events, Path(tmp) / "full.db", JournalConfig(snapshot_every=args.snapshot_every,
                                                                        keep_snapshots=10**6))
            # the sample is too short for the default cadence to compact: check the bound formula at a
            # cadence that compacts many times over the sample, then apply it to the default cadence
            small_every = max(100, len(events) // 12)
            compacted = measure(events, Path(tmp) / "compact.db",
                                JournalConfig(snapshot_every=small_every, keep_snapshots=args.keep))
        s, c = full["stats"], compacted["stats"]
        per_input = s.page_bytes / len(events)
        rate = len(events) / span_s
        day_two = per_input * rate * DAY_S * 2
        # high-water mark: keep+1 cycles of inputs exist just before a compaction deletes the oldest
        bound = (args.keep + 1) * (args.snapshot_every * per_input + c.snapshot_bytes)
        small_bound = (args.keep + 1) * (small_every * per_input + c.snapshot_bytes)
        main_file = c.file_bytes - c.wal_bytes
        print(f"{label}: {len(events)} inputs over {span_s:.0f} s = {rate:.1f}/s per symbol {kinds}")
        print(f"  stored {s.page_bytes / 1e6:.2f} MB = {per_input:.0f} B/input (snapshot {c.snapshot_bytes / 1e3:.0f} kB); "
              f"journaling {len(events) / full['elapsed']:.0f} inputs/s with the core")
        print(f"  a day of BTCUSDT+ETHUSDT without compaction: {day_two / 1e9:.2f} GB "
              f"({2 * rate * DAY_S / 1e6:.1f} M inputs)")
        print(f"  compaction check (snapshot_every={small_every}, keep={args.keep}): {c.inputs} inputs kept, "
              f"{c.page_bytes / 1e6:.2f} MB in use, main file {main_file / 1e6:.2f} MB (high-water mark) + WAL "
              f"{c.wal_bytes / 1e6:.2f} MB, against the formula's {small_bound / 1e6:.2f} MB")
        print(f"  with the default compaction (snapshot_every={args.snapshot_every}, keep={args.keep}): bounded near "
              f"{bound / 1e6:.1f} MB of inputs + snapshots, plus the WAL (truncated to 8 MB after checkpoints) "
              f"and the event log (grows with trading only)")
        per_replayed = full["recovery"] / max(full["replayed"], 1)
        print(f"  recovery: {full['recovery']:.2f} s for {full['replayed']} inputs after the newest "
              f"snapshot; worst case ({args.snapshot_every} inputs) about {per_replayed * args.snapshot_every:.1f} s")


if __name__ == "__main__":
    main()

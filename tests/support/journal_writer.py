"""A journaled node in its own process, for SIGKILL tests: ``python -m tests.support.journal_writer``.

    python -m tests.support.journal_writer DB SEED N [SNAPSHOT_EVERY [forked|deferred]]

Recovers the exchange from DB (a new file starts from ``journal_session.genesis``), then submits
the inputs of ``session_inputs(SEED, N)`` that the journal does not hold yet through a real
``Node`` with the journal attached, and prints one line per acknowledged input, flushed at once:

    ack SEQ ORDER_ID         (ORDER_ID: the id a PlaceOrder got, 0 for anything else)
    done

The test kills it with SIGKILL whenever it likes and starts it again on the same file.
``forked``: snapshots pickled by forked children; ``deferred``: the journal as ``exchange-sim run``
configures it (group commit, inputs stored in the input log, their table rows, events and history
written after the acknowledgement).
"""

from __future__ import annotations

import asyncio
import sys

from exchange_sim.core.messages import OrderUpdate, PlaceOrder
from exchange_sim.journal import Journal, JournalConfig
from tests.support.journal_session import session_inputs, start_journaled_node


async def main(db: str, seed: int, n: int, snapshot_every: int, mode: str = "") -> None:
    journal = Journal(db, JournalConfig(snapshot_every=snapshot_every, keep_snapshots=2,
                                        background_snapshot=mode == "forked", group_commit=mode == "deferred",
                                        deferred_events=mode == "deferred", input_log=mode == "deferred"))
    exchange, node = await start_journaled_node(journal)
    next_seq = journal.next_seq
    inputs = session_inputs(seed, n)
    out = sys.stdout
    for seq in range(next_seq, len(inputs) + 1):
        msg = inputs[seq - 1]
        events = await node.submit(msg)
        order_id = 0
        if isinstance(msg, PlaceOrder):
            order_id = next((e.order_id for e in events if isinstance(e, OrderUpdate)), 0)
        out.write(f"ack {seq} {order_id}\n")
        out.flush()
    await node.stop()
    journal.close()
    out.write("done\n")
    out.flush()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(args[0], int(args[1]), int(args[2]), int(args[3]) if len(args) > 3 else 25,
                     args[4] if len(args) > 4 else ""))

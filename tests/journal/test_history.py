"""The history store (``exchange_sim.journal.history``): a read model of the journal's event log.

The core, run with an unbounded ``history_limit``, is the independent judge: every closed order,
fill and income row the store derived from the events must equal the core's own record, field for
field (tranIds included). Deleting the tables and rebuilding them from the event log, or
recovering after a crash that lost the last events, must give the same rows byte for byte.
"""

from __future__ import annotations

import sqlite3

from exchange_sim.core.exchange import Exchange, ExchangeConfig
from exchange_sim.core.messages import PlaceOrder
from exchange_sim.journal import Journal, JournalConfig, recover
from exchange_sim.journal.history import CLOSED_STATUSES, Page, rebuild
from exchange_sim.profiles import load_profile
from tests.support.journal_session import F, run_journaled, session_inputs

EVERYTHING = Page(limit=1_000_000, from_id=0)


def unbounded() -> Exchange:
    return Exchange(load_profile(), ExchangeConfig(history_limit=None))


def inputs_with_every_order_kind(seed: int, n: int) -> list:
    """The seeded session plus a trailing stop and a price-protected stop (fields only the input carries)."""
    inputs = session_inputs(seed, n)
    ts = inputs[20].ts
    extra = [PlaceOrder(ts, 3, "BTCUSDT", "SELL", "TRAILING_STOP_MARKET", qty=F("0.01"), callback_rate=F("1.5"),
                        activation_price=F("61000"), client_order_id="trail-1"),
             PlaceOrder(ts, 3, "BTCUSDT", "SELL", "STOP_MARKET", qty=F("0.01"), stop_price=F("50000"),
                        price_protect=True, client_order_id="protected-1")]
    return inputs[:21] + extra + inputs[21:]  # session timestamps only grow


def assert_matches_core(journal: Journal, exchange: Exchange) -> None:
    history = journal.history
    checked = 0
    for aid in exchange.account_ids():
        closed = [v for v in exchange.all_orders(aid) if v.status in CLOSED_STATUSES]
        assert history.orders(aid, EVERYTHING) == closed
        assert history.trades(aid, EVERYTHING) == exchange.trades(aid)
        assert history.income(aid, EVERYTHING) == exchange.income(aid)
        checked += len(closed) + len(exchange.trades(aid)) + len(exchange.income(aid))
    assert checked > 100  # the session really closed orders, filled and paid


def test_the_store_holds_exactly_what_the_core_remembers(tmp_path):
    inputs = inputs_with_every_order_kind(7, 700)
    with Journal(tmp_path / "s.db", JournalConfig(snapshot_every=0)) as journal:
        exchange, _ = recover(journal, unbounded)
        run_journaled(journal, exchange, inputs)
        journal.flush()
        assert_matches_core(journal, exchange)
        kinds = {v.order_type for aid in exchange.account_ids() for v in journal.history.orders(aid, EVERYTHING)}
        assert {"LIMIT", "MARKET", "STOP_MARKET"} <= kinds
        assert journal.history.liquidations(), "the session's slide liquidates the leveraged accounts"
        forced = journal.history.orders(1, EVERYTHING, force=("LIQUIDATION",))
        assert forced and all(v.client_order_id.startswith("autoclose-") for v in forced)
        for view in exchange.open_orders(3):  # open orders stay the core's: the store has not closed them
            assert journal.history.order(3, order_id=view.order_id) is None


def test_deleting_the_tables_and_replaying_rebuilds_them_exactly(tmp_path):
    db = tmp_path / "s.db"
    with Journal(db) as journal:
        exchange, _ = recover(journal, unbounded)
        run_journaled(journal, exchange, inputs_with_every_order_kind(11, 500))
        journal.flush()
        before = journal.history.fingerprint()
        assert sum(len(t) for t in before) > 100
        rebuilt = rebuild(journal._db)
        assert rebuilt.fingerprint() == before
    with sqlite3.connect(db) as raw:  # a file whose history tables are gone: opening it rebuilds them
        for table in ("history_orders", "history_trades", "history_income", "history_liquidations"):
            raw.execute(f"DROP TABLE {table}")
    with Journal(db) as reopened:
        assert reopened.history.fingerprint() == before


def test_recovery_writes_the_history_a_crash_kept_out(tmp_path):
    inputs = inputs_with_every_order_kind(5, 500)
    with Journal(tmp_path / "ref.db") as journal:
        exchange, _ = recover(journal, unbounded)
        run_journaled(journal, exchange, inputs)
        journal.flush()
        reference = journal.history.fingerprint()
    crash = tmp_path / "crash.db"
    with Journal(crash, JournalConfig(snapshot_every=100)) as journal:
        exchange, _ = recover(journal, unbounded)
        run_journaled(journal, exchange, inputs[:300])
        for msg in inputs[300:]:  # stored inputs whose events (and history) the crash lost
            journal.append(msg)
            exchange.apply(msg)
    with Journal(crash) as journal:
        recovered, _ = recover(journal, unbounded)
        assert journal.history.fingerprint() == reference
        assert_matches_core(journal, recovered)


def test_paging_takes_the_oldest_rows_from_an_id_or_a_start_and_the_newest_otherwise(tmp_path):
    with Journal(tmp_path / "s.db") as journal:
        exchange, _ = recover(journal, unbounded)
        run_journaled(journal, exchange, session_inputs(3, 400))
        journal.flush()
        history = journal.history
        trades = exchange.trades(3)
        assert len(trades) > 8
        ids = [t.trade_id for t in trades]
        assert [t.trade_id for t in history.trades(3, Page(limit=3, from_id=ids[2]))] == ids[2:5]
        assert [t.trade_id for t in history.trades(3, Page(limit=3))] == ids[-3:]
        assert [t.trade_id for t in history.trades(3, Page(limit=2, start=trades[4].ts))] == \
            [t.trade_id for t in trades if t.ts >= trades[4].ts][:2]
        assert [t.trade_id for t in history.trades(3, Page(limit=2, end=trades[4].ts))] == \
            [t.trade_id for t in trades if t.ts <= trades[4].ts][-2:]
        income = exchange.income(3)
        assert [r.tran_id for r in history.income(3, Page(limit=2, offset=2))] == [r.tran_id for r in income][-4:-2]

"""The session's history: closed orders, fills, income, liquidations and wallet transfers, a read model
of the event log.

    history = History(connection)            # the journal's own SQLite connection (``Journal.history``)
    history.record(msg, events)              # staged in the caller's open transaction
    history.orders(account, symbol=..., from_id=..., start=..., end=..., limit=...)
    rebuild(connection)                      # drop the tables and derive them again from ``events``

The core keeps live state (open orders, positions, wallets) and only a bounded tail of what is
over; this module keeps everything that is over, on disk, so every acknowledged order stays
queryable however long the session runs. Its rows are a pure function of the core's events (and,
for three order fields the events do not carry, of the input that placed the order), written in
the same SQLite transaction as those events: deleting the tables and calling ``rebuild`` gives
the same rows, byte for byte, as long as the event log is kept (``compact_events`` off); an order
whose placing input was compacted away is rebuilt with those three fields at 0.

Tables (every money and quantity column is the core's fixed-point integer):

``history_orders``
    One row per order (open ones too, so a closed row keeps its creation time and accumulated
    quote), updated by each ``OrderUpdate``; ``closed`` is 1 once the order reached FILLED,
    CANCELED, EXPIRED, TRIGGERED or REJECTED. ``force`` is LIQUIDATION / ADL for forced closes.
``history_trades``
    One row per fill (the ``OrderUpdate`` of exec type TRADE), keyed by the core's trade id.
``history_income``
    The venue's income flow (TRANSFER for deposits, withdrawals, transfers and resets;
    REALIZED_PNL and COMMISSION per fill; FUNDING_FEE; INSURANCE_CLEAR), numbered in the order
    the core books them, which is the core's own ``tranId`` sequence.
``history_liquidations``
    Every ``Liquidation`` and ``Adl`` event, as its canonical JSON.
``history_wallet_transfers``
    Every universal transfer between the spot (funding) and futures wallets (``WalletTransfer``),
    keyed by its ``tranId``: on disk, so the venue's transfer history is complete however many
    transfers a session makes (the core keeps only the spot wallet's balance).

Reads take the venue's paging rules (``Page``): with a from-id or a start time the *oldest*
``limit`` rows from there, otherwise the newest ``limit``; always returned oldest first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from exchange_sim.core import messages as m
from exchange_sim.core.fixed import SCALE
from exchange_sim.core.messages import dumps, loads
from exchange_sim.core.views import IncomeRecord, OrderView, TradeRecord

CLOSED_STATUSES = frozenset({"FILLED", "CANCELED", "EXPIRED", "TRIGGERED", "REJECTED", "EXPIRED_IN_MATCH"})
TRANSFER_REASONS = frozenset({"DEPOSIT", "WITHDRAW", "TRANSFER", "RESET"})  # the core books these as TRANSFER
INT64 = (1 << 63) - 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS history_orders (
    order_id INTEGER PRIMARY KEY, account INTEGER NOT NULL, symbol TEXT NOT NULL, client_order_id TEXT NOT NULL,
    side TEXT NOT NULL, position_side TEXT NOT NULL, order_type TEXT NOT NULL, time_in_force TEXT NOT NULL,
    status TEXT NOT NULL, price, stop_price, qty, filled_qty, avg_price, cum_quote,
    reduce_only INTEGER NOT NULL, close_position INTEGER NOT NULL, working_type TEXT NOT NULL,
    callback_rate, activation_price, price_protect INTEGER NOT NULL, conditional INTEGER NOT NULL,
    triggered_order_id INTEGER NOT NULL, create_ts INTEGER NOT NULL, update_ts INTEGER NOT NULL,
    reason TEXT NOT NULL, closed INTEGER NOT NULL, force TEXT);
CREATE INDEX IF NOT EXISTS history_orders_by_account ON history_orders (account, symbol, order_id);
CREATE INDEX IF NOT EXISTS history_orders_by_time ON history_orders (account, create_ts);
CREATE INDEX IF NOT EXISTS history_orders_by_client_id ON history_orders (account, client_order_id);
CREATE TABLE IF NOT EXISTS history_trades (
    trade_id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL, account INTEGER NOT NULL, symbol TEXT NOT NULL,
    side TEXT NOT NULL, position_side TEXT NOT NULL, price, qty, quote_qty, commission, realized_pnl,
    maker INTEGER NOT NULL, ts INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS history_trades_by_account ON history_trades (account, symbol, trade_id);
CREATE INDEX IF NOT EXISTS history_trades_by_time ON history_trades (account, ts);
CREATE INDEX IF NOT EXISTS history_trades_by_order ON history_trades (account, order_id);
CREATE TABLE IF NOT EXISTS history_income (
    tran_id INTEGER PRIMARY KEY, account INTEGER NOT NULL, symbol TEXT NOT NULL, income_type TEXT NOT NULL,
    amount, ts INTEGER NOT NULL, info TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_income_by_account ON history_income (account, tran_id);
CREATE INDEX IF NOT EXISTS history_income_by_time ON history_income (account, ts);
CREATE TABLE IF NOT EXISTS history_liquidations (
    seq INTEGER PRIMARY KEY, account INTEGER NOT NULL, symbol TEXT NOT NULL, kind TEXT NOT NULL,
    order_id INTEGER NOT NULL, ts INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_liquidations_by_account ON history_liquidations (account, ts);
CREATE TABLE IF NOT EXISTS history_wallet_transfers (
    tran_id INTEGER PRIMARY KEY, account INTEGER NOT NULL, kind TEXT NOT NULL, amount, ts INTEGER NOT NULL,
    spot_wallet);
CREATE INDEX IF NOT EXISTS history_wallet_transfers_by_account ON history_wallet_transfers (account, kind, tran_id);
"""
TABLES = ("history_orders", "history_trades", "history_income", "history_liquidations", "history_wallet_transfers")

_ORDER_COLUMNS = ("order_id, client_order_id, account, symbol, side, position_side, order_type, time_in_force, "
                  "status, price, stop_price, qty, filled_qty, avg_price, cum_quote, reduce_only, close_position, "
                  "working_type, callback_rate, activation_price, price_protect, conditional, triggered_order_id, "
                  "create_ts, update_ts, reason")
_TRADE_COLUMNS = ("trade_id, order_id, account, symbol, side, position_side, price, qty, quote_qty, commission, "
                  "realized_pnl, maker, ts")
_INCOME_COLUMNS = "tran_id, account, symbol, income_type, amount, ts, info"

_UPSERT_ORDER = """
INSERT INTO history_orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)
ON CONFLICT (order_id) DO UPDATE SET
    status = excluded.status, time_in_force = excluded.time_in_force, price = excluded.price,
    stop_price = excluded.stop_price, qty = excluded.qty, filled_qty = excluded.filled_qty,
    avg_price = excluded.avg_price, cum_quote = history_orders.cum_quote + excluded.cum_quote,
    reduce_only = excluded.reduce_only, close_position = excluded.close_position,
    working_type = excluded.working_type, update_ts = excluded.update_ts, closed = excluded.closed,
    reason = CASE WHEN ? THEN history_orders.reason ELSE excluded.reason END
"""


def _big(value: int) -> int | str:
    """An integer SQLite can hold exactly: as itself within 64 bits, else as its decimal text."""
    return value if -INT64 <= value <= INT64 else str(value)


def _bound(value: int) -> int:
    """``value`` clamped to SQLite's 64-bit range (a larger id or time cannot match, and cannot overflow)."""
    return max(-INT64 - 1, min(INT64, value))


@dataclass(frozen=True, slots=True)
class Page:
    """Which rows of a history a query wants (the venue's rules, see the module doc).

    ``from_id``: rows with id >= it; ``start``/``end``: inclusive time bounds (ms). With
    ``from_id`` or ``start`` the oldest ``limit`` rows are taken, else the newest ``limit``;
    ``offset`` skips that many rows first (income's ``page``).
    """

    limit: int
    from_id: int | None = None
    start: int | None = None
    end: int | None = None
    offset: int = 0

    @property
    def oldest_first(self) -> bool:
        return self.from_id is not None or self.start is not None


class History:
    """Closed orders, fills, income and liquidations in SQLite (see module doc)."""

    def __init__(self, db: sqlite3.Connection, *, create: bool = True) -> None:
        self._db = db
        # called before every read: the journal's ``write_deferred`` when its rows are written late
        self.before_read: Callable[[], object] | None = None
        if create:  # statement by statement: executescript would commit the caller's open transaction
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
        self._next_tran_id = int(db.execute("SELECT COALESCE(MAX(tran_id), 0) FROM history_income").fetchone()[0])

    @classmethod
    def temporary(cls) -> History:
        """A history in a private temporary SQLite file (deleted when closed): for a session without a journal."""
        db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA journal_mode=MEMORY")
        return cls(db)

    def close(self) -> None:
        self._db.close()

    def dump(self) -> bytes:
        """Every row as one SQLite database image (``load`` takes it back); for a history with a
        database of its own (``temporary``), such as a cluster shard's, stored with its snapshot."""
        self._read()
        return self._db.serialize()

    def load(self, image: bytes) -> None:
        """Replace every row with those of a ``dump`` image."""
        self._db.deserialize(image)
        self._next_tran_id = int(self._db.execute("SELECT COALESCE(MAX(tran_id), 0) FROM history_income").fetchone()[0])

    # ------------------------------------------------------------------ writing

    def record(self, msg: Any, events: Iterable[Any]) -> None:
        """Add what ``events`` (caused by the input ``msg``) finished, paid or liquidated.

        Writes into the connection's open transaction (the journal's batch); call it once per
        applied input, in order. ``msg`` may be None (it only supplies the order fields the
        events do not carry: callback rate, activation price, price protection).
        """
        placed = isinstance(msg, m.PlaceOrder)
        triggering: int | None = None  # a conditional order that just fired: the next NEW is its child
        clear_fee: list[Any] | None = None  # an INSURANCE_CLEAR row waiting for its symbol
        for event in events:
            kind = type(event)
            if kind is m.OrderUpdate:
                first_new = placed and event.exec_type == "NEW" and _placed_by(msg, event)
                if first_new:
                    placed = False
                if triggering is not None and event.exec_type == "NEW" and event.order_id != triggering:
                    self._db.execute("UPDATE history_orders SET triggered_order_id = ? WHERE order_id = ?",
                                     (event.order_id, triggering))
                    triggering = None
                self._order(event, msg if first_new else None)
                if event.exec_type == "TRIGGERED":
                    triggering = event.order_id
            elif kind is m.BalanceUpdate:
                if event.reason in TRANSFER_REASONS:
                    self._income(event.account, "", "TRANSFER", event.change, event.ts, "")
                elif event.reason == "LIQUIDATION_FEE":
                    if clear_fee is not None:
                        self._insert_income(clear_fee)
                    clear_fee = self._income_row(event.account, "", "INSURANCE_CLEAR", event.change, event.ts, "")
            elif kind is m.InsuranceFundChange:
                if clear_fee is not None and event.reason == "CLEARANCE_FEE" and event.account == clear_fee[1]:
                    clear_fee[2] = event.symbol
                    self._insert_income(clear_fee)
                    clear_fee = None
            elif kind is m.FundingPayment:
                if event.amount:
                    self._income(event.account, event.symbol, "FUNDING_FEE", event.amount, event.ts, "")
            elif kind is m.WalletTransfer:
                self._db.execute("INSERT OR REPLACE INTO history_wallet_transfers VALUES (?, ?, ?, ?, ?, ?)",
                                 (event.tran_id, event.account, event.kind, _big(event.amount), event.ts,
                                  _big(event.spot_wallet)))
            elif kind is m.Liquidation or kind is m.Adl:
                self._db.execute("INSERT INTO history_liquidations (account, symbol, kind, order_id, ts, body) "
                                 "VALUES (?, ?, ?, ?, ?, ?)",
                                 (event.account, event.symbol, kind.__name__, event.order_id, event.ts, dumps(event)))
        if clear_fee is not None:
            self._insert_income(clear_fee)

    def record_committed(self, msg: Any, events: list[Any]) -> None:
        """``record`` in a transaction of its own (a history without a journal: a node listener)."""
        if not events:
            return
        self._db.execute("BEGIN")
        try:
            self.record(msg, events)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _order(self, ev: m.OrderUpdate, placed: m.PlaceOrder | None) -> None:
        trade = ev.exec_type == "TRADE"
        quote = ev.last_qty * ev.last_price // SCALE if trade else 0
        cid = ev.client_order_id
        force = "LIQUIDATION" if cid.startswith("autoclose-") else "ADL" if cid.startswith("adl_autoclose") else None
        self._db.execute(_UPSERT_ORDER, (
            ev.order_id, ev.account, ev.symbol, cid, ev.side, ev.position_side, ev.order_type, ev.time_in_force,
            ev.status, _big(ev.price), _big(ev.stop_price), _big(ev.qty), _big(ev.filled_qty), _big(ev.avg_price),
            _big(quote), int(ev.reduce_only), int(ev.close_position), ev.working_type,
            _big(placed.callback_rate) if placed else 0, _big(placed.activation_price) if placed else 0,
            int(placed.price_protect) if placed else 0, int(ev.order_type in m.CONDITIONAL_TYPES),
            ev.ts, ev.ts, ev.reason, int(ev.status in CLOSED_STATUSES), force, int(trade)))
        if trade:
            self._db.execute("INSERT OR REPLACE INTO history_trades VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (
                ev.trade_id, ev.order_id, ev.account, ev.symbol, ev.side, ev.position_side, _big(ev.last_price),
                _big(ev.last_qty), _big(quote), _big(ev.commission), _big(ev.realized_pnl), int(ev.is_maker), ev.ts))
            if ev.realized_pnl:
                self._income(ev.account, ev.symbol, "REALIZED_PNL", ev.realized_pnl, ev.ts, str(ev.trade_id))
            if ev.commission:
                self._income(ev.account, ev.symbol, "COMMISSION", -ev.commission, ev.ts, str(ev.trade_id))

    def _income_row(self, account: int, symbol: str, kind: str, amount: int, ts: int, info: str) -> list[Any]:
        self._next_tran_id += 1
        return [self._next_tran_id, account, symbol, kind, _big(amount), ts, info]

    def _income(self, account: int, symbol: str, kind: str, amount: int, ts: int, info: str) -> None:
        self._insert_income(self._income_row(account, symbol, kind, amount, ts, info))

    def _insert_income(self, row: list[Any]) -> None:
        self._db.execute("INSERT OR REPLACE INTO history_income VALUES (?, ?, ?, ?, ?, ?, ?)", row)

    # ------------------------------------------------------------------ reading

    def _read(self) -> None:
        if self.before_read is not None:
            self.before_read()

    def order(self, account: int, order_id: int = 0, client_order_id: str = "") -> OrderView | None:
        """A closed order of ``account`` by id, else the newest closed one with that client id."""
        self._read()
        if order_id:
            sql, args = "order_id = ?", [_bound(order_id)]
        elif client_order_id:
            sql, args = "client_order_id = ?", [client_order_id]
        else:
            return None
        row = self._db.execute(f"SELECT {_ORDER_COLUMNS} FROM history_orders WHERE account = ? AND closed = 1 AND "
                               f"{sql} ORDER BY order_id DESC LIMIT 1", [account, *args]).fetchone()
        return _order_view(row) if row else None

    def orders(self, account: int, page: Page, *, symbol: str | None = None, conditional: bool | None = None,
               force: tuple[str, ...] = ()) -> list[OrderView]:
        """Closed orders of ``account`` (by id), paged; ``force``: only these forced-close kinds."""
        self._read()
        where, args = ["account = ?", "closed = 1"], [account]
        if conditional is not None:
            where.append("conditional = ?")
            args.append(int(conditional))
        if force:
            where.append(f"force IN ({','.join('?' * len(force))})")
            args.extend(force)
        rows = self._page("history_orders", _ORDER_COLUMNS, "order_id", "create_ts", where, args, symbol, page)
        return [_order_view(r) for r in rows]

    def trades(self, account: int, page: Page, *, symbol: str | None = None,
               order_id: int | None = None) -> list[TradeRecord]:
        self._read()
        where, args = ["account = ?"], [account]
        if order_id is not None:
            where.append("order_id = ?")
            args.append(_bound(order_id))
        rows = self._page("history_trades", _TRADE_COLUMNS, "trade_id", "ts", where, args, symbol, page)
        return [_trade_record(r) for r in rows]

    def income(self, account: int, page: Page, *, symbol: str | None = None,
               income_type: str | None = None) -> list[IncomeRecord]:
        self._read()
        where, args = ["account = ?"], [account]
        if income_type is not None:
            where.append("income_type = ?")
            args.append(income_type)
        rows = self._page("history_income", _INCOME_COLUMNS, "tran_id", "ts", where, args, symbol, page)
        return [IncomeRecord(r[0], r[1], r[2], r[3], int(r[4]), r[5], r[6]) for r in rows]

    def liquidations(self, account: int | None = None) -> list[Any]:
        """Every ``Liquidation``/``Adl`` event (of ``account``), oldest first."""
        self._read()
        sql, args = "SELECT body FROM history_liquidations", []
        if account is not None:
            sql, args = sql + " WHERE account = ?", [account]
        return [loads(body) for (body,) in self._db.execute(sql + " ORDER BY seq", args)]

    def wallet_transfers(self, account: int, kind: str, *, start: int | None = None, end: int | None = None,
                         offset: int = 0, limit: int = 10) -> tuple[int, list[m.WalletTransfer]]:
        """(how many match, ``limit`` of them newest first after ``offset``): universal transfers of
        ``account`` of type ``kind`` with ``start`` <= ts <= ``end`` (the venue's ``current``/``size``)."""
        self._read()
        where, args = "account = ? AND kind = ? AND ts >= ? AND ts <= ?", [
            account, kind, _bound(-INT64 if start is None else start), _bound(INT64 if end is None else end)]
        total = int(self._db.execute(f"SELECT COUNT(*) FROM history_wallet_transfers WHERE {where}",
                                     args).fetchone()[0])
        rows = self._db.execute(f"SELECT ts, account, kind, amount, tran_id, spot_wallet FROM history_wallet_transfers "
                                f"WHERE {where} ORDER BY tran_id DESC LIMIT ? OFFSET ?",
                                [*args, limit, _bound(offset)]).fetchall()
        return total, [m.WalletTransfer(r[0], r[1], r[2], int(r[3]), r[4], int(r[5])) for r in rows]

    def _page(self, table: str, columns: str, id_col: str, ts_col: str, where: list[str], args: list[Any],
              symbol: str | None, page: Page) -> list[tuple]:
        if symbol is not None:
            where.append("symbol = ?")
            args.append(symbol)
        if page.from_id is not None:
            where.append(f"{id_col} >= ?")
            args.append(_bound(page.from_id))
        if page.start is not None:
            where.append(f"{ts_col} >= ?")
            args.append(_bound(page.start))
        if page.end is not None:
            where.append(f"{ts_col} <= ?")
            args.append(_bound(page.end))
        order = "ASC" if page.oldest_first else "DESC"
        rows = self._db.execute(f"SELECT {columns} FROM {table} WHERE {' AND '.join(where)} "
                                f"ORDER BY {id_col} {order} LIMIT ? OFFSET ?",
                                [*args, page.limit, _bound(page.offset)]).fetchall()
        if not page.oldest_first:
            rows.reverse()
        return rows

    def fingerprint(self) -> tuple:
        """Every row of every table, in key order: equal fingerprints mean equal histories."""
        self._read()
        return tuple(tuple(self._db.execute(f"SELECT * FROM {t} ORDER BY 1")) for t in TABLES)

    def counts(self) -> dict[str, int]:
        self._read()
        return {t: int(self._db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in TABLES}


def _placed_by(msg: m.PlaceOrder, ev: m.OrderUpdate) -> bool:
    """Whether ``ev`` announces the order ``msg`` placed (the first NEW of its account, symbol and type)."""
    return (ev.account == msg.account and ev.symbol == msg.symbol and ev.order_type == msg.order_type
            and (not msg.client_order_id or ev.client_order_id == msg.client_order_id))


def _order_view(r: tuple) -> OrderView:
    return OrderView(
        order_id=r[0], client_order_id=r[1], account=r[2], symbol=r[3], side=r[4], position_side=r[5],
        order_type=r[6], time_in_force=r[7], status=r[8], price=int(r[9]), stop_price=int(r[10]), qty=int(r[11]),
        filled_qty=int(r[12]), avg_price=int(r[13]), cum_quote=int(r[14]), reduce_only=bool(r[15]),
        close_position=bool(r[16]), working_type=r[17], callback_rate=int(r[18]), activation_price=int(r[19]),
        price_protect=bool(r[20]), conditional=bool(r[21]), triggered_order_id=r[22], create_ts=r[23],
        update_ts=r[24], reason=r[25])


def _trade_record(r: tuple) -> TradeRecord:
    return TradeRecord(trade_id=r[0], order_id=r[1], account=r[2], symbol=r[3], side=r[4], position_side=r[5],
                       price=int(r[6]), qty=int(r[7]), quote_qty=int(r[8]), commission=int(r[9]),
                       realized_pnl=int(r[10]), maker=bool(r[11]), ts=r[12])


def _logged_inputs(db: sqlite3.Connection) -> Iterator[tuple[Any, list[Any]]]:
    """(input or None if compacted away, its events) for every input in the event log, in order."""
    cursor = db.execute("SELECT e.input_seq, e.body, i.body FROM events e LEFT JOIN inputs i ON i.seq = e.input_seq "
                        "ORDER BY e.seq")
    current: int | None = None
    msg: Any = None
    events: list[Any] = []
    for input_seq, body, input_body in cursor:
        if input_seq != current:
            if current is not None:
                yield msg, events
            current, events = input_seq, []
            msg = loads(input_body) if input_body is not None else None
        events.append(loads(body))
    if current is not None:
        yield msg, events


def rebuild(db: sqlite3.Connection) -> History:
    """Drop the history tables of a journal file's connection and derive them again from its event log."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for table in TABLES:
            db.execute(f"DROP TABLE IF EXISTS {table}")
        history = History(db)
        for msg, events in _logged_inputs(db):
            history.record(msg, events)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return history


__all__ = ["CLOSED_STATUSES", "History", "Page", "rebuild"]

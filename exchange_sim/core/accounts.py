"""Accounts, their wallets and positions, and the bookkeeping of a fill.

The cross wallet holds the account's free money; an isolated position carries its own
``isolated_wallet`` moved out of the cross wallet when it opens. The account's wallet balance
(Binance ``walletBalance``) is the cross wallet plus every isolated wallet, and a ledger keeps
the invariant checkable to the last unit:

    wallet = deposits − withdrawals + transfers in − transfers out + realized PnL + funding
             − fees + insurance top-ups

A position is (signed qty, cost basis): cost = Σ entry notional of what is open, so Q·EP is
exact and the entry price is derived. Closing part of a position removes a pro-rata share of
the cost (and of the isolated wallet) and realizes side × (close notional − removed cost).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .fixed import SCALE
from .margin import initial_margin, unrealized_pnl
from .messages import BOTH
from .orders import Order

if TYPE_CHECKING:
    from .monitor import RiskUnit

LEDGER_KEYS = ("deposits", "withdrawals", "transfers_in", "transfers_out", "realized_pnl", "funding",
               "fees", "insurance")


_LEG_KEYS: dict[tuple[str, str], tuple[str, str]] = {}


def leg_key(symbol: str, side: str) -> tuple[str, str]:
    """The one shared ``(symbol, position side)`` tuple (a memory saver for millions of positions)."""
    key = (symbol, side)
    return _LEG_KEYS.setdefault(key, key)


class Position:
    """One leg: BOTH in one-way mode, LONG or SHORT in hedge mode."""

    __slots__ = ("account", "symbol", "side", "qty", "cost", "isolated", "isolated_wallet", "leverage",
                 "auto_add", "update_ts", "unit")

    def __init__(self, account: int, symbol: str, side: str, isolated: bool, leverage: int) -> None:
        self.account = account
        self.symbol = symbol
        self.side = side
        self.qty = 0
        self.cost = 0
        self.isolated = isolated
        self.isolated_wallet = 0
        self.leverage = leverage
        self.auto_add = False
        self.update_ts = 0
        self.unit: RiskUnit | None = None  # the margin monitor's risk unit while open

    @property
    def entry_price(self) -> int:
        return self.cost * SCALE // abs(self.qty) if self.qty else 0

    def pnl(self, mark: int) -> int:
        return unrealized_pnl(self.qty, self.cost, mark)

    def notional(self, mark: int) -> int:
        return abs(self.qty) * mark // SCALE


class Account:
    __slots__ = ("id", "name", "parent", "api_key", "api_secret", "cross_wallet", "hedge", "isolated",
                 "leverage", "auto_add", "positions", "open_orders", "order_margin", "closed_orders",
                 "trades", "income", "update_ts", "ledger", "children", "unit", "history", "open_client_ids")

    def __init__(self, aid: int, name: str, parent: int | None, api_key: str, api_secret: str,
                 ts: int, history: int | None = None) -> None:
        self.id = aid
        self.name = name
        self.parent = parent
        self.api_key = api_key
        self.api_secret = api_secret
        self.cross_wallet = 0
        self.hedge = False
        self.isolated: set[str] = set()
        self.leverage: dict[tuple[str, str], int] = {}
        self.auto_add: set[tuple[str, str]] = set()
        self.positions: dict[tuple[str, str], Position] = {}
        self.open_orders: dict[int, Order] = {}
        self.open_client_ids: dict[str, Order] = {}
        self.order_margin = 0
        # finished orders, fills and income, newest last; see ``remember``
        self.history = history
        self.closed_orders: list[Order] = []
        self.trades: list = []
        self.income: list = []
        self.update_ts = ts
        self.ledger = dict.fromkeys(LEDGER_KEYS, 0)
        self.children: list[int] = []
        self.unit: RiskUnit | None = None  # the margin monitor's cross risk unit

    def open_order(self, order_id: int = 0, client_order_id: str = "") -> Order | None:
        """An open order by id, else by client id (None when neither names one)."""
        if order_id:
            return self.open_orders.get(order_id)
        return self.open_client_ids.get(client_order_id) if client_order_id else None

    def remember(self, records: list, item: object) -> None:
        """Keep ``item`` in a history list holding at least the last ``history`` entries (None: all).

        Trimming is amortised: the list may hold up to twice the limit before it is cut back.
        """
        limit = self.history
        if limit is None:
            records.append(item)
        elif limit > 0:
            records.append(item)
            if len(records) > 2 * limit:
                del records[:-limit]

    @property
    def wallet_balance(self) -> int:
        return self.cross_wallet + sum(p.isolated_wallet for p in self.positions.values())

    def ledger_balance(self) -> int:
        """What the wallet must equal according to the ledger (the invariant)."""
        g = self.ledger
        return (g["deposits"] - g["withdrawals"] + g["transfers_in"] - g["transfers_out"]
                + g["realized_pnl"] + g["funding"] - g["fees"] + g["insurance"])

    def leverage_of(self, symbol: str, side: str, default: int) -> int:
        return self.leverage.get((symbol, side if self.hedge else BOTH), default)

    def has_symbol_activity(self, symbol: str) -> tuple[bool, bool]:
        """(has open orders on symbol, has a position on symbol)."""
        orders = any(o.symbol == symbol for o in self.open_orders.values())
        pos = any(p.symbol == symbol and p.qty for p in self.positions.values())
        return orders, pos


def apply_fill(acct: Account, pos: Position, signed_qty: int, price: int, ts: int) -> int:
    """Book a fill of ``signed_qty`` at ``price`` on ``pos``; returns the realized PnL.

    Moves isolated margin between the cross wallet and the position (opening: IM of the fill
    at its leverage; closing: the pro-rata share plus the realized PnL back to the cross wallet).
    The realized PnL itself is credited here; fees are not.
    """
    realized = 0
    qty = pos.qty
    if qty and (qty > 0) != (signed_qty > 0):
        close = min(abs(signed_qty), abs(qty))
        removed = pos.cost if close == abs(qty) else pos.cost * close // abs(qty)
        notional = close * price // SCALE
        realized = notional - removed if qty > 0 else removed - notional
        if pos.isolated:
            released = pos.isolated_wallet if close == abs(qty) else pos.isolated_wallet * close // abs(qty)
            pos.isolated_wallet -= released
            acct.cross_wallet += released + realized
        else:
            acct.cross_wallet += realized
        pos.cost -= removed
        qty += close if qty < 0 else -close
        signed_qty += close if signed_qty < 0 else -close
    if signed_qty:
        notional = abs(signed_qty) * price // SCALE
        pos.cost += notional
        qty += signed_qty
        if pos.isolated:
            margin = initial_margin(notional, pos.leverage)
            pos.isolated_wallet += margin
            acct.cross_wallet -= margin
    pos.qty = qty
    if qty == 0:
        pos.cost = 0
        if pos.isolated and pos.isolated_wallet:
            acct.cross_wallet += pos.isolated_wallet
            pos.isolated_wallet = 0
    pos.update_ts = ts
    acct.ledger["realized_pnl"] += realized
    return realized

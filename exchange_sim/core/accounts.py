"""Accounts, their wallets and positions, and the bookkeeping of a fill.

The cross wallet holds the account's free money; an isolated position carries its own
``isolated_wallet`` moved out of the cross wallet when it opens. The account's wallet balance
(Binance ``walletBalance``) is the cross wallet plus every isolated wallet, and a ledger keeps
the invariant checkable to the last unit:

    wallet = deposits − withdrawals + transfers in − transfers out + realized PnL + funding
             − fees + insurance top-ups − to spot + from spot
    spot wallet = to spot − from spot  (never negative)

The spot (funding) wallet is the account's Binance spot wallet, which universal transfers
(MAIN_UMFUTURE / UMFUTURE_MAIN) move money into and out of; it only ever holds what came from
the futures wallet, so the two together are the account's money by the first ledger alone.

A position is (signed qty, cost basis): cost = Σ entry notional of what is open, so Q·EP is
exact and the entry price is derived. Every money field here (wallets, ledger totals) and every
position's size is written by ``ledger.Ledger`` alone; the rest of the core reads them.
"""

from __future__ import annotations

from .fixed import SCALE
from .margin import unrealized_pnl
from .messages import BOTH
from .orders import Order

LEDGER_KEYS = ("deposits", "withdrawals", "transfers_in", "transfers_out", "realized_pnl", "funding",
               "fees", "insurance", "to_spot", "from_spot")


_LEG_KEYS: dict[tuple[str, str], tuple[str, str]] = {}


def leg_key(symbol: str, side: str) -> tuple[str, str]:
    """The one shared ``(symbol, position side)`` tuple (a memory saver for millions of positions)."""
    key = (symbol, side)
    return _LEG_KEYS.setdefault(key, key)


class Position:
    """One leg: BOTH in one-way mode, LONG or SHORT in hedge mode."""

    __slots__ = ("account", "symbol", "side", "qty", "cost", "isolated", "isolated_wallet", "leverage",
                 "auto_add", "update_ts")

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

    @property
    def entry_price(self) -> int:
        return self.cost * SCALE // abs(self.qty) if self.qty else 0

    def pnl(self, mark: int) -> int:
        return unrealized_pnl(self.qty, self.cost, mark)

    def notional(self, mark: int) -> int:
        return abs(self.qty) * mark // SCALE


class Account:
    __slots__ = ("id", "name", "parent", "api_key", "api_secret", "cross_wallet", "spot_wallet", "hedge",
                 "isolated", "leverage", "auto_add", "positions", "open_orders", "order_margin", "closed_orders",
                 "trades", "income", "update_ts", "ledger", "children", "history", "open_client_ids",
                 "open_counts")

    def __init__(self, aid: int, name: str, parent: int | None, api_key: str, api_secret: str,
                 ts: int, history: int | None = None) -> None:
        self.id = aid
        self.name = name
        self.parent = parent
        self.api_key = api_key
        self.api_secret = api_secret
        self.cross_wallet = 0
        self.spot_wallet = 0  # the spot (funding) wallet: universal transfers only
        self.hedge = False
        self.isolated: set[str] = set()
        self.leverage: dict[tuple[str, str], int] = {}
        self.auto_add: set[tuple[str, str]] = set()
        self.positions: dict[tuple[str, str], Position] = {}
        self.open_orders: dict[int, Order] = {}
        self.open_client_ids: dict[str, Order] = {}
        self.open_counts: dict[tuple[str, bool], int] = {}  # (symbol, conditional) -> open orders: the venue's caps
        self.order_margin = 0
        # finished orders, fills and income, newest last; see ``remember``
        self.history = history
        self.closed_orders: list[Order] = []
        self.trades: list = []
        self.income: list = []
        self.update_ts = ts
        self.ledger = dict.fromkeys(LEDGER_KEYS, 0)
        self.children: list[int] = []

    def open_order(self, order_id: int = 0, client_order_id: str = "") -> Order | None:
        """An open order by id, else by client id (None when neither names one)."""
        if order_id:
            return self.open_orders.get(order_id)
        return self.open_client_ids.get(client_order_id) if client_order_id else None

    def add_open(self, order: Order) -> None:
        """Hold ``order`` as open: by id, by client id (the duplicate check) and in the per-symbol count."""
        self.open_orders[order.id] = order
        self.open_client_ids[order.client_id] = order
        key = (order.symbol, order.conditional)
        self.open_counts[key] = self.open_counts.get(key, 0) + 1

    def remove_open(self, order: Order) -> None:
        if self.open_orders.pop(order.id, None) is not None:
            key = (order.symbol, order.conditional)
            left = self.open_counts[key] - 1
            if left:
                self.open_counts[key] = left
            else:
                del self.open_counts[key]
        if self.open_client_ids.get(order.client_id) is order:
            del self.open_client_ids[order.client_id]

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
                + g["realized_pnl"] + g["funding"] - g["fees"] + g["insurance"] - g["to_spot"] + g["from_spot"])

    def spot_ledger_balance(self) -> int:
        """What the spot wallet must equal according to the ledger."""
        return self.ledger["to_spot"] - self.ledger["from_spot"]

    def leverage_of(self, symbol: str, side: str, default: int) -> int:
        return self.leverage.get((symbol, side if self.hedge else BOTH), default)

    def has_symbol_activity(self, symbol: str) -> tuple[bool, bool]:
        """(has open orders on symbol, has a position on symbol)."""
        orders = any(o.symbol == symbol for o in self.open_orders.values())
        pos = any(p.symbol == symbol and p.qty for p in self.positions.values())
        return orders, pos

"""What a gateway reads of one account, as its shard answers it: ``AccountState``.

A gateway holds no core. Before it runs a request's handler it asks the account's shard for the
account's state (``reads.py``): the core's views of the account — the account view with its
positions, the open orders, the settings the API reads (position mode, margin type and leverage
per symbol), the spot wallet, the sub-accounts — plus, when the request names an order, that
order (the core's or the history's). The handler then runs the API's unchanged query code on it
through ``ShardedExchange`` (gateway.py), which answers each ``Exchange`` query from the state:

    state = state_of(ex, history, account, seq, order_id=7)     # on the shard
    data = encode(state); state = decode(data)                  # over NATS
    state.positions("BTCUSDT"); state.order(7, "")               # on the gateway

Every value is a view the core computed at input ``seq`` of its shard, so the answers are the
single node's at that point of the journal.
"""

from __future__ import annotations

from typing import Any

import msgspec

from exchange_sim.core import messages as m
from exchange_sim.core.exchange import Exchange
from exchange_sim.core.views import AccountView, OrderView, PositionView

SIDES = (m.BOTH, m.LONG, m.SHORT)
_OPEN = frozenset({"NEW", "PARTIALLY_FILLED"})  # in ``open_orders`` already


class AccountState(msgspec.Struct, frozen=True):
    """One account at input ``seq`` of its shard (see module doc)."""

    account: int
    shard: str
    seq: int
    view: AccountView | None
    open_orders: list[OrderView]
    hedge: bool
    isolated: list[str]
    leverage: dict[str, int]  # "SYMBOL SIDE" -> leverage, every symbol and side
    spot_wallet: int
    children: list[int]
    named_orders: list[OrderView] = []  # the orders the request names or the command touched (closed ones too)
    insurance_fund: int = 0  # the shard's slice of the fund (venue-wide reads only)

    # the ``Exchange`` queries, answered from the state
    def positions(self, symbol: str | None = None) -> list[PositionView]:
        if self.view is None:
            return []
        return [p for p in self.view.positions if symbol is None or p.symbol == symbol]

    def orders_open(self, symbol: str | None = None) -> list[OrderView]:
        return [o for o in self.open_orders if symbol is None or o.symbol == symbol]

    def order(self, order_id: int, client_order_id: str) -> OrderView | None:
        for o in self.open_orders:
            if (order_id and o.order_id == order_id) or (not order_id and o.client_order_id == client_order_id):
                return o
        for o in self.named_orders:
            if (order_id and o.order_id == order_id) or (not order_id and o.client_order_id == client_order_id):
                return o
        return None

    def leverage_of(self, symbol: str, side: str, default: int) -> int:
        return self.leverage.get(f"{symbol} {side}", default)


def state_of(ex: Exchange, history: Any, account: int, shard: str, seq: int, *, order_id: int = 0,
             client_order_id: str = "", touched: tuple[int, ...] = ()) -> AccountState:
    """The state of ``account`` in ``ex`` (its shard's core) after input ``seq``, with the order named
    by ``order_id``/``client_order_id`` (the core's or the history's) and the orders ``touched``."""
    named = []
    if order_id or client_order_id:
        found = ex.order(account, order_id=order_id, client_order_id=client_order_id)
        if found is None and history is not None:
            found = history.order(account, order_id=order_id, client_order_id=client_order_id)
        if found is not None:
            named.append(found)
    for touched_id in touched:
        found = ex.order(account, order_id=touched_id)
        if found is not None and found.status not in _OPEN:
            named.append(found)
    leverage = {f"{symbol} {side}": ex.leverage(account, symbol, side) for symbol in ex.instruments for side in SIDES}
    return AccountState(
        account=account, shard=shard, seq=seq, view=ex.account_view(account), open_orders=ex.open_orders(account),
        hedge=ex.hedge_mode(account), isolated=[s for s in ex.instruments if ex.is_isolated(account, s)],
        leverage=leverage, spot_wallet=ex.spot_wallet(account), children=ex.children(account), named_orders=named,
        insurance_fund=ex.insurance_fund)


_ENCODER = msgspec.json.Encoder()
_STATE = msgspec.json.Decoder(AccountState)
_STATES = msgspec.json.Decoder(list[AccountState])


def encode(state: AccountState | list[AccountState] | None) -> bytes:
    return _ENCODER.encode(state)


def decode(data: bytes | msgspec.Raw) -> AccountState:
    return _STATE.decode(data)


def decode_list(data: bytes | msgspec.Raw) -> list[AccountState]:
    return _STATES.decode(data)

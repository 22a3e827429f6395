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

OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED"})  # an order with one is in ``open_orders``


class AccountState(msgspec.Struct, frozen=True):
    """One account at input ``seq`` of its shard (see module doc)."""

    account: int
    shard: str
    seq: int
    view: AccountView | None
    open_orders: list[OrderView]
    hedge: bool
    isolated: list[str]
    leverage: dict[str, int]  # "SYMBOL SIDE" -> leverage, as the account set it (else the default)
    spot_wallet: int
    children: list[int]
    named_orders: list[OrderView] = []  # the orders the request names or the command touched (closed ones too)
    insurance_fund: int = 0  # the shard's slice of the fund (venue-wide reads only)
    partial: bool = False  # a command's answer: ``open_orders`` left out, ``named_orders`` = the orders it touched

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
        return self.leverage.get(f"{symbol} {side if self.hedge else m.BOTH}", default)

    def after(self, answer: AccountState) -> AccountState:
        """This state brought forward by a command's (partial) ``answer``: its views, and the open
        orders updated with the orders the command touched."""
        if not answer.partial:
            return answer
        live = {o.order_id: o for o in self.open_orders}
        for o in answer.named_orders:
            if o.status in OPEN_STATUSES:
                live[o.order_id] = o
            else:
                live.pop(o.order_id, None)
        return msgspec.structs.replace(answer, open_orders=[live[i] for i in sorted(live)], partial=self.partial)


def state_of(ex: Exchange, history: Any, account: int, shard: str, seq: int, *, order_id: int = 0,
             client_order_id: str = "", touched: tuple[int, ...] | None = None) -> AccountState:
    """The state of ``account`` in ``ex`` (its shard's core) after input ``seq``, with the order named
    by ``order_id``/``client_order_id`` (the core's or the history's). With ``touched`` (a command's
    answer) it is partial: those orders instead of every open order."""
    named = []
    if order_id or client_order_id:
        found = ex.order(account, order_id=order_id, client_order_id=client_order_id)
        if found is None and history is not None:
            found = history.order(account, order_id=order_id, client_order_id=client_order_id)
        if found is not None:
            named.append(found)
    for touched_id in touched or ():
        found = ex.order(account, order_id=touched_id)
        if found is not None:
            named.append(found)
    acct = ex.accounts.get(account)
    leverage = {f"{symbol} {side}": lev for (symbol, side), lev in acct.leverage.items()} if acct else {}
    return AccountState(
        account=account, shard=shard, seq=seq, view=ex.account_view(account),
        open_orders=ex.open_orders(account) if touched is None else [], hedge=ex.hedge_mode(account),
        isolated=sorted(acct.isolated) if acct else [], leverage=leverage, spot_wallet=ex.spot_wallet(account),
        children=ex.children(account), named_orders=named, insurance_fund=ex.insurance_fund,
        partial=touched is not None)


_ENCODER = msgspec.json.Encoder()
_STATE = msgspec.json.Decoder(AccountState)
_STATES = msgspec.json.Decoder(list[AccountState])


def encode(state: AccountState | list[AccountState] | None) -> bytes:
    return _ENCODER.encode(state)


def decode(data: bytes | msgspec.Raw) -> AccountState:
    return _STATE.decode(data)


def decode_list(data: bytes | msgspec.Raw) -> list[AccountState]:
    return _STATES.decode(data)

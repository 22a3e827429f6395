"""Which MQTT topic each core message goes to, and its JSON payload. Pure: no I/O, no clock.

Topics (``exchange-sim`` is the configurable prefix):

=====================================================  ===========================  ===  ======
topic                                                  what                         QoS  retain
=====================================================  ===========================  ===  ======
``exchange-sim/market/{symbol}/trade``                 ``Trade`` the core consumed   0   no
``exchange-sim/market/{symbol}/book``                  ``BookSnapshot``/``BookDelta``  0   no
``exchange-sim/market/{symbol}/mark``                  ``MarkPrice``/``IndexPrice``    0   no
``exchange-sim/market/{symbol}/funding``               ``Funding`` settlement        0   no
``exchange-sim/market/{symbol}/status``                ``MarketStatus`` (stale/live)  1   no
``exchange-sim/market/{symbol}/insurance``             ``InsuranceFundChange``       1   no
``exchange-sim/account/{id}/order``                    every ``OrderUpdate``          1   no
``exchange-sim/account/{id}/fill``                     ``OrderUpdate`` with exec_type TRADE  1  no
``exchange-sim/account/{id}/position``                 ``PositionUpdate``             1   no
``exchange-sim/account/{id}/balance``                  ``BalanceUpdate``              1   no
``exchange-sim/account/{id}/funding``                  ``FundingPayment``             1   no
``exchange-sim/account/{id}/margin_call``              ``MarginCall``                 1   no
``exchange-sim/account/{id}/liquidation``              ``Liquidation``                1   no
``exchange-sim/account/{id}/adl``                      ``Adl`` (the reduced account)  1   no
``exchange-sim/account/{id}/auto_add_margin``          ``AutoAddMargin``              1   no
``exchange-sim/account/{id}/setting``                  ``SettingChanged``             1   no
``exchange-sim/account/{id}/wallet_transfer``          ``WalletTransfer`` (spot wallet)  1   no
``exchange-sim/account/{id}/created``                  ``AccountCreated``             1   no
``exchange-sim/account/{id}/rejected``                 ``CommandRejected``            1   no
``exchange-sim/account/{id}/summary``                  ``AccountSummary`` (below)     1   yes
``exchange-sim/rejected``                              ``CommandRejected`` without account  1  no
``exchange-sim/status``                                ``{"online": true|false, ...}``  1   yes
=====================================================  ===========================  ===  ======

An event type added to the core later is still published: to ``account/{id}/{snake_name}`` if
it has an ``account``, else ``market/{symbol}/{snake_name}`` if it has a ``symbol``, else
``exchange-sim/events/{snake_name}``.

Payload: one JSON object per message, the core message's fields plus three of the bus's::

    {"seq": 12, "epoch": 1732213000123, "type": "Liquidation", "ts": 1722838200000,
     "account": 3, "symbol": "BTCUSDT", "position_side": "BOTH", "side": "SELL",
     "qty": "0.5", "price": "49012.3", "mark": "49020", "bankruptcy_price": "48990.1",
     "fee": "367.59", "loss": "0", "partial": false, "isolated": false, "order_id": 41}

- ``seq``: 1, 2, 3, ... per topic, so a subscriber sees a gap (a message dropped while the
  broker was down and the buffer full). The same ``seq`` twice is a redelivery (QoS 1, or a
  resend after a reconnect): ignore the repeat.
- ``epoch``: when this publisher started (ms); a new epoch restarts every topic's ``seq`` at 1.
- ``type``: the core message's name (``OrderUpdate``, ``MarginCall``, ...).
- Money, prices, quantities and rates are exact decimal strings (``"0.001"``, ``"-12.5"``);
  ids, counts, leverage and timestamps (integer ms) are JSON integers; enumerations are the
  venue's words (``"BUY"``, ``"STOP_MARKET"``); book levels are ``[["price", "qty"], ...]``;
  ``MarginCall.positions`` is a list of objects.

``AccountSummary`` (retained, republished after every input that touched the account, and after
a reconnect that followed dropped messages)::

    {"seq": 9, "epoch": ..., "type": "AccountSummary", "ts": ..., "account": 3,
     "wallet": "9632.41", "open_orders": 2, "margin_calls": 1, "liquidations": 1, "adl": 0,
     "positions": [{"symbol": "BTCUSDT", "position_side": "BOTH", "qty": "-0.5",
                    "entry_price": "50000", "isolated": false, "isolated_wallet": "0",
                    "leverage": 20}],
     "margin": {...}}

``wallet`` is the cross wallet of the last ``BalanceUpdate``; ``margin`` is present when the
publisher can read the account from the core (``AccountView``: ``margin_balance``,
``available_balance``, ``maintenance_margin``, ``cross_margin_ratio``, ... as above).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exchange_sim.core import messages as m
from exchange_sim.core.fixed import fmt_trim
from exchange_sim.core.messages import Message

# int fields that are ids, counts, leverage or timestamps; every other int is fixed-point money
COUNT_FIELDS = frozenset({
    "ts", "account", "order_id", "trade_id", "leverage", "counterparty", "update_id", "first_update_id",
    "final_update_id", "prev_final_update_id", "next_funding_ts", "code", "parent", "from_account",
    "to_account", "create_ts", "update_ts", "tran_id", "triggered_order_id", "adl_quantile",
    "book_update_id", "open_orders", "margin_calls", "liquidations", "adl", "seq", "epoch", "claim",
})
RESERVED = ("seq", "epoch", "type")

_MARKET_TOPICS: dict[type, str] = {
    m.Trade: "trade", m.BookSnapshot: "book", m.BookDelta: "book", m.MarkPrice: "mark",
    m.IndexPrice: "mark", m.Funding: "funding",
}
_EVENT_TOPICS: dict[type, str] = {
    m.MarketStatus: "status", m.InsuranceFundChange: "insurance", m.OrderUpdate: "order",
    m.PositionUpdate: "position", m.BalanceUpdate: "balance", m.FundingPayment: "funding",
    m.MarginCall: "margin_call", m.Liquidation: "liquidation", m.Adl: "adl",
    m.AutoAddMargin: "auto_add_margin", m.SettingChanged: "setting", m.AccountCreated: "created",
    m.CommandRejected: "rejected",
}
_OPEN = frozenset({"NEW", "PARTIALLY_FILLED"})


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One MQTT message ready to publish."""

    topic: str
    payload: bytes
    qos: int
    retain: bool = False


def plain(value: Any, name: str = "") -> Any:
    """A message field as JSON: fixed-point ints as decimal strings, ids/counts/ts as ints."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if name in COUNT_FIELDS else fmt_trim(value)
    if isinstance(value, (tuple, list)):
        return [plain(v, name) for v in value]
    if isinstance(value, Message):
        return {name: plain(getattr(value, name), name) for name in value.__struct_fields__}
    names = _field_names(value)
    if names is not None:
        return {name: plain(getattr(value, name), name) for name in names}
    if isinstance(value, dict):
        return {k: plain(v, k) for k, v in value.items()}
    raise TypeError(f"cannot publish a {type(value).__name__} field {name!r}")


def _field_names(value: Any) -> tuple[str, ...] | None:
    """The fields of a core message (msgspec Struct) or a view (dataclass); None for anything else."""
    if isinstance(value, type):
        return None
    if isinstance(value, m.Message):
        return m.field_names(value)
    if dataclasses.is_dataclass(value):
        return tuple(f.name for f in dataclasses.fields(value))
    return None


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


class _Summary:
    """What the bus knows of one account from its events."""

    def __init__(self, account: int) -> None:
        self.account = account
        self.wallet = 0
        self.ts = 0
        self.positions: dict[tuple[str, str], m.PositionUpdate] = {}
        self.open_orders: set[int] = set()
        self.margin_calls = 0
        self.liquidations = 0
        self.adl = 0

    def update(self, event: Any) -> None:
        self.ts = max(self.ts, getattr(event, "ts", 0))
        if isinstance(event, m.BalanceUpdate):
            self.wallet = event.wallet
        elif isinstance(event, m.PositionUpdate):
            key = (event.symbol, event.position_side)
            if event.qty:
                self.positions[key] = event
            else:
                self.positions.pop(key, None)
        elif isinstance(event, m.OrderUpdate):
            if event.status in _OPEN:
                self.open_orders.add(event.order_id)
            else:
                self.open_orders.discard(event.order_id)
        elif isinstance(event, m.MarginCall) and event.level == "MARGIN_CALL":
            self.margin_calls += 1
        elif isinstance(event, m.Liquidation):
            self.liquidations += 1
        elif isinstance(event, m.Adl):
            self.adl += 1

    def payload(self, account_view: Callable[[int], Any] | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "AccountSummary", "ts": self.ts, "account": self.account, "wallet": self.wallet,
            "open_orders": len(self.open_orders), "margin_calls": self.margin_calls,
            "liquidations": self.liquidations, "adl": self.adl,
            "positions": [{"symbol": p.symbol, "position_side": p.position_side, "qty": p.qty,
                           "entry_price": p.entry_price, "isolated": p.isolated,
                           "isolated_wallet": p.isolated_wallet, "leverage": p.leverage}
                          for _, p in sorted(self.positions.items())],
        }
        if account_view is not None:
            view = account_view(self.account)
            if view is not None:
                out["margin"] = {name: getattr(view, name) for name in _field_names(view) or ()
                                 if name not in ("positions", "account")}
        return plain(out)


class TopicMapper:
    """Turns ``(input_msg, events)`` from the node into numbered MQTT messages."""

    def __init__(self, prefix: str, epoch: int, *, publish_market: bool = True,
                 account_view: Callable[[int], Any] | None = None) -> None:
        self.prefix = prefix.rstrip("/")
        self.epoch = epoch
        self.publish_market = publish_market
        self.account_view = account_view
        self.seqs: dict[str, int] = {}
        self._summaries: dict[int, _Summary] = {}

    def _message(self, topic: str, body: dict[str, Any], qos: int, retain: bool = False) -> Outgoing:
        seq = self.seqs.get(topic, 0) + 1
        self.seqs[topic] = seq
        payload = {"seq": seq, "epoch": self.epoch, **body}
        return Outgoing(topic, _dumps(payload), qos, retain)

    def _event_body(self, msg: Any) -> dict[str, Any]:
        return {"type": type(msg).__name__, **plain(msg)}

    def topic_of(self, event: Any) -> tuple[str, int]:
        """The topic and QoS of a core event (not of a market input)."""
        name = _EVENT_TOPICS.get(type(event)) or snake(type(event).__name__)
        account = getattr(event, "account", None)
        symbol = getattr(event, "symbol", "")
        if isinstance(event, m.InsuranceFundChange):
            return f"{self.prefix}/market/{symbol}/{name}", 1
        if isinstance(account, int) and not isinstance(account, bool):
            return f"{self.prefix}/account/{account}/{name}", 1
        if isinstance(event, m.CommandRejected):
            return f"{self.prefix}/rejected", 1
        if symbol:
            return f"{self.prefix}/market/{symbol}/{name}", 1
        return f"{self.prefix}/events/{name}", 1

    def messages_for(self, input_msg: Any, events: list[Any]) -> list[Outgoing]:
        """Everything to publish for one applied input, in order, summaries last."""
        out: list[Outgoing] = []
        market = _MARKET_TOPICS.get(type(input_msg))
        if market is not None and self.publish_market:
            out.append(self._message(f"{self.prefix}/market/{input_msg.symbol}/{market}",
                                     self._event_body(input_msg), 0))
        touched: list[int] = []
        for event in events:
            topic, qos = self.topic_of(event)
            body = self._event_body(event)
            out.append(self._message(topic, body, qos))
            if isinstance(event, m.OrderUpdate) and event.exec_type == "TRADE":
                out.append(self._message(f"{self.prefix}/account/{event.account}/fill", body, qos))
            for account in self._accounts_of(event):
                self._summary(account).update(event)
                if account not in touched:
                    touched.append(account)
        for account in touched:
            out.append(self.summary_message(account))
        return out

    def summary_message(self, account: int) -> Outgoing:
        body = self._summary(account).payload(self.account_view)
        return self._message(f"{self.prefix}/account/{account}/summary", body, 1, retain=True)

    def all_summaries(self) -> list[Outgoing]:
        """A fresh retained summary of every account seen (after a reconnect that lost messages)."""
        return [self.summary_message(a) for a in sorted(self._summaries)]

    def status_message(self, online: bool) -> Outgoing:
        """The retained ``{prefix}/status`` message (``online`` false is also the will)."""
        return Outgoing(f"{self.prefix}/status", _dumps({"online": online, "epoch": self.epoch}), 1, True)

    def _summary(self, account: int) -> _Summary:
        summary = self._summaries.get(account)
        if summary is None:
            summary = self._summaries[account] = _Summary(account)
        return summary

    @staticmethod
    def _accounts_of(event: Any) -> list[int]:
        """The accounts whose summary ``event`` changes."""
        account = getattr(event, "account", None)
        if isinstance(event, (m.InsuranceFundChange, m.CommandRejected)):
            return []  # not the account's state (a rejection changed nothing)
        if not isinstance(account, int) or isinstance(account, bool):
            return []
        return [account]

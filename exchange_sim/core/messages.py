"""Everything that goes into and comes out of the exchange core, as immutable messages.

Three families:
- market events (what the feeds deliver): ``BookSnapshot``, ``BookDelta``, ``Trade``,
  ``MarkPrice``, ``IndexPrice``, ``Funding`` (a settlement), ``FeedStatus``;
- commands (what clients and the admin ask for): ``CreateAccount``, ``PlaceOrder``, ...;
- events (what the core answers): ``OrderUpdate``, ``MarginCall``, ``Liquidation``, ...

Every number is a fixed-point int (see ``fixed``), every timestamp integer milliseconds, every
enumeration the venue's own word (``"BUY"``, ``"STOP_MARKET"``, ``"GTX"``), so the API layer
passes them through. ``encode``/``decode`` turn any of them into plain JSON-able dicts and back,
which is what the journal stores and what makes event logs comparable byte for byte.
"""

from __future__ import annotations

from .events import (  # noqa: F401  (re-exported: import every message from here)
    AccountCreated,
    CommandRejected,
    SettingChanged,
    OrderUpdate,
    BalanceUpdate,
    PositionUpdate,
    FundingPayment,
    MarginCallPosition,
    MarginCall,
    Liquidation,
    InsuranceFundChange,
    InsuranceFundTransferred,
    Adl,
    AdlClaim,
    AdlClaimClosed,
    AutoAddMargin,
    MarketStatus,
    WalletTransfer,
)
from .message_base import (  # noqa: F401
    BOTH,
    BUY,
    CONDITIONAL_TYPES,
    CONTRACT_PRICE,
    FOK,
    GTC,
    GTX,
    IOC,
    LIMIT,
    LONG,
    Level,
    MARKET,
    MARK_PRICE,
    Message,
    ORDER_TYPES,
    SELL,
    SHORT,
    STOP,
    STOP_MARKET,
    TAKE_PROFIT,
    TAKE_PROFIT_MARKET,
    TRAILING_STOP_MARKET,
    _REGISTRY,
    decode,
    dumps,
    encode,
    field_names,
    loads,
)

# ----------------------------------------------------------------------------- market events


class BookSnapshot(Message, frozen=True):
    """The whole visible book; replaces what was there. Never fills resting orders by itself."""

    ts: int
    symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    update_id: int = 0


class BookDelta(Message, frozen=True):
    """Changed levels (qty 0 deletes a level), with the venue's U/u/pu sequence numbers."""

    ts: int
    symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    first_update_id: int = 0
    final_update_id: int = 0
    prev_final_update_id: int = 0


class Trade(Message, frozen=True):
    """A public trade; ``taker_side`` is the aggressor's side."""

    ts: int
    symbol: str
    price: int
    qty: int
    taker_side: str = BUY
    trade_id: int = 0


class MarkPrice(Message, frozen=True):
    """A new mark price (optionally with index, current funding rate and next funding time)."""

    ts: int
    symbol: str
    mark: int
    index: int | None = None
    funding_rate: int | None = None
    next_funding_ts: int | None = None


class IndexPrice(Message, frozen=True):
    ts: int
    symbol: str
    price: int


class Funding(Message, frozen=True):
    """A funding settlement now, at ``rate``, paid on every position open at this instant."""

    ts: int
    symbol: str
    rate: int


class FeedStatus(Message, frozen=True):
    """The runtime says a symbol's feed went stale (or came back): stale holds the margin monitor."""

    ts: int
    symbol: str
    stale: bool
    reason: str = ""


MARKET_EVENTS = (BookSnapshot, BookDelta, Trade, MarkPrice, IndexPrice, Funding, FeedStatus)

# ----------------------------------------------------------------------------- commands


class CreateAccount(Message, frozen=True):
    ts: int
    name: str
    parent: int | None = None
    deposit: int = 0
    api_key: str = ""
    api_secret: str = ""


class Deposit(Message, frozen=True):
    ts: int
    account: int
    amount: int


class Withdraw(Message, frozen=True):
    ts: int
    account: int
    amount: int


class Transfer(Message, frozen=True):
    """Move cross-wallet funds between a master and one of its sub-accounts (either way)."""

    ts: int
    from_account: int
    to_account: int
    amount: int


MAIN_UMFUTURE, UMFUTURE_MAIN = "MAIN_UMFUTURE", "UMFUTURE_MAIN"  # spot -> futures, futures -> spot
UNIVERSAL_TRANSFER_KINDS = (MAIN_UMFUTURE, UMFUTURE_MAIN)


class UniversalTransfer(Message, frozen=True):
    """Move money between the account's spot (funding) wallet and its futures wallet (Binance
    ``POST /sapi/v1/asset/transfer``): ``kind`` MAIN_UMFUTURE (spot to futures) or UMFUTURE_MAIN."""

    ts: int
    account: int
    kind: str
    amount: int


class ResetAccount(Message, frozen=True):
    """Cancel orders, close positions at mark, and set the wallet to ``deposit`` (classroom reset)."""

    ts: int
    account: int
    deposit: int | None = None


class SetMarginType(Message, frozen=True):
    ts: int
    account: int
    symbol: str
    isolated: bool


class SetPositionMode(Message, frozen=True):
    ts: int
    account: int
    hedge: bool


class SetLeverage(Message, frozen=True):
    ts: int
    account: int
    symbol: str
    leverage: int
    position_side: str = BOTH


class AdjustIsolatedMargin(Message, frozen=True):
    """Add (``add=True``) or remove isolated margin of a position (Binance positionMargin type 1/2)."""

    ts: int
    account: int
    symbol: str
    amount: int
    add: bool
    position_side: str = BOTH


class SetAutoAddMargin(Message, frozen=True):
    ts: int
    account: int
    symbol: str
    enabled: bool
    position_side: str = BOTH


class PlaceOrder(Message, frozen=True):
    """A new order. Conditional types wait for ``stop_price`` (on mark or contract price)."""

    ts: int
    account: int
    symbol: str
    side: str
    order_type: str
    qty: int = 0
    price: int = 0
    stop_price: int = 0
    time_in_force: str = GTC
    reduce_only: bool = False
    close_position: bool = False
    position_side: str = BOTH
    working_type: str = CONTRACT_PRICE
    callback_rate: int = 0  # trailing stop, fixed units of percent (1.0 = 1%)
    activation_price: int = 0
    client_order_id: str = ""
    take_profit_price: int = 0  # attached TP (becomes a TAKE_PROFIT_MARKET reduce-only on fill)
    stop_loss_price: int = 0  # attached SL (becomes a STOP_MARKET reduce-only on fill)
    price_protect: bool = False


class CancelOrder(Message, frozen=True):
    ts: int
    account: int
    symbol: str
    order_id: int = 0
    client_order_id: str = ""


class ModifyOrder(Message, frozen=True):
    """Change a resting limit order's price and quantity (Binance PUT /fapi/v1/order): it keeps its
    id, loses its queue place, and is re-checked for margin; it may execute at the new price."""

    ts: int
    account: int
    symbol: str
    side: str
    qty: int
    price: int
    order_id: int = 0
    client_order_id: str = ""


class CancelAllOrders(Message, frozen=True):
    """Cancel a symbol's open orders: ``which`` is ALL, REGULAR (not conditional) or CONDITIONAL."""

    ts: int
    account: int
    symbol: str
    which: str = "ALL"


# ----------------------------------------------------------------------------- venue-wide pieces (cluster mode)


class InsuranceFundTransfer(Message, frozen=True):
    """The venue's fund service moves money into (``amount`` > 0, a grant) or out of (< 0, a sweep)
    this core's slice of the insurance fund; ``ref`` makes it idempotent (venue_fund.py)."""

    ts: int
    amount: int
    ref: str


class AutoDeleverage(Message, frozen=True):
    """The venue's ADL coordinator closes ``qty`` of this account's profitable position (its leg
    ``position_side`` of ``symbol``, on the side that ``side`` closes) at the bankrupt position's
    ``price`` against the claim in ``ref`` (``<shard>:<claim>:<part>``; adl_claims.py)."""

    ts: int
    account: int
    symbol: str
    side: str
    position_side: str
    qty: int
    price: int
    counterparty: int
    ref: str


class CloseAdlClaim(Message, frozen=True):
    """The coordinator is done with this core's ADL claim: ``left`` of it found no position to
    deleverage on the venue and is taken over by this core's fund float (adl_claims.py)."""

    ts: int
    claim: int
    qty: int


COMMANDS = (
    CreateAccount, Deposit, Withdraw, Transfer, UniversalTransfer, ResetAccount, SetMarginType, SetPositionMode,
    SetLeverage, AdjustIsolatedMargin, SetAutoAddMargin, PlaceOrder, CancelOrder, CancelAllOrders, ModifyOrder,
    InsuranceFundTransfer, AutoDeleverage, CloseAdlClaim,
)

"""Events: what the core answers (order and position updates, margin calls, liquidations, ...)."""

from __future__ import annotations

from .message_base import BOTH, CONTRACT_PRICE, Message


class AccountCreated(Message, frozen=True):
    ts: int
    account: int
    name: str
    parent: int | None


class CommandRejected(Message, frozen=True):
    """A command changed nothing; ``code``/``msg`` are the venue's."""

    ts: int
    account: int | None
    command: str
    code: int
    msg: str
    client_order_id: str = ""
    symbol: str = ""


class SettingChanged(Message, frozen=True):
    """Leverage, margin type, position mode or auto-add margin changed."""

    ts: int
    account: int
    symbol: str
    setting: str
    value: str
    position_side: str = BOTH


class OrderUpdate(Message, frozen=True):
    """An order's new state, Binance ORDER_TRADE_UPDATE style (``exec_type`` NEW/TRADE/CANCELED/...)."""

    ts: int
    account: int
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    position_side: str
    order_type: str
    time_in_force: str
    status: str
    exec_type: str
    price: int
    stop_price: int
    qty: int
    filled_qty: int
    avg_price: int
    last_qty: int = 0
    last_price: int = 0
    commission: int = 0
    realized_pnl: int = 0
    is_maker: bool = False
    trade_id: int = 0
    reduce_only: bool = False
    close_position: bool = False
    working_type: str = CONTRACT_PRICE
    reason: str = ""


class BalanceUpdate(Message, frozen=True):
    """The cross wallet changed by ``change`` for ``reason`` (ORDER, FUNDING_FEE, DEPOSIT, ...)."""

    ts: int
    account: int
    wallet: int
    change: int
    reason: str


class PositionUpdate(Message, frozen=True):
    ts: int
    account: int
    symbol: str
    position_side: str
    qty: int  # signed: + long, - short
    entry_price: int
    isolated: bool
    isolated_wallet: int
    leverage: int
    reason: str


class FundingPayment(Message, frozen=True):
    ts: int
    account: int
    symbol: str
    position_side: str
    rate: int
    mark: int
    amount: int  # signed, + received


class MarginCallPosition(Message, frozen=True):
    symbol: str
    position_side: str
    qty: int
    isolated: bool
    isolated_wallet: int
    mark: int
    unrealized_pnl: int
    maintenance_margin: int


class MarginCall(Message, frozen=True):
    """Margin ratio crossed ``level`` (MARGIN_CALL or WARNING); ``symbol`` empty for a cross account."""

    ts: int
    account: int
    symbol: str
    level: str
    margin_ratio: int
    cross_wallet: int
    positions: tuple[MarginCallPosition, ...]


class Liquidation(Message, frozen=True):
    """A position (or part of it) liquidated: the IOC fill, the fee, the loss, the bankruptcy take-over."""

    ts: int
    account: int
    symbol: str
    position_side: str
    side: str
    qty: int
    price: int
    mark: int
    bankruptcy_price: int
    fee: int
    loss: int
    partial: bool
    isolated: bool
    order_id: int = 0


class InsuranceFundChange(Message, frozen=True):
    ts: int
    symbol: str
    change: int
    balance: int
    reason: str
    account: int | None = None


class InsuranceFundTransferred(Message, frozen=True):
    """The fund service's grant (``amount`` > 0) or sweep (< 0) applied to this core's fund slice."""

    ts: int
    ref: str
    amount: int
    balance: int


class Adl(Message, frozen=True):
    """An opposite-side profitable position reduced at the bankrupt position's price."""

    ts: int
    account: int
    symbol: str
    position_side: str
    qty: int
    price: int
    counterparty: int
    order_id: int = 0


class AdlClaim(Message, frozen=True):
    """Cluster mode: ``qty`` of ``account``'s bankrupt position closed at ``price`` is left for the
    venue's coordinator to deleverage against the profitable positions closed by ``side``."""

    ts: int
    account: int
    claim: int
    symbol: str
    side: str
    qty: int
    price: int


class AdlClaimClosed(Message, frozen=True):
    """The coordinator is done with a claim; ``qty`` of it was left and taken over by the fund
    float (which booked ``change``)."""

    ts: int
    account: int
    claim: int
    symbol: str
    qty: int
    change: int


class AutoAddMargin(Message, frozen=True):
    ts: int
    account: int
    symbol: str
    position_side: str
    amount: int


class MarketStatus(Message, frozen=True):
    """A symbol's data went stale or came back (the monitor holds while stale)."""

    ts: int
    symbol: str
    stale: bool
    reason: str


class WalletTransfer(Message, frozen=True):
    """A universal transfer between the account's spot (funding) wallet and its futures wallet.

    ``kind`` is the venue's type (MAIN_UMFUTURE: spot to futures, UMFUTURE_MAIN: back);
    ``tran_id`` the venue's ``tranId`` (the same number as the futures TRANSFER income line);
    ``spot_wallet`` the spot wallet after it.
    """

    ts: int
    account: int
    kind: str
    amount: int
    tran_id: int
    spot_wallet: int

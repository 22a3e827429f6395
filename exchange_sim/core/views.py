"""Read-only snapshots of core state for the API, dashboard and tests (all numbers fixed-point ints)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PositionView:
    account: int
    symbol: str
    position_side: str  # BOTH (one-way), LONG or SHORT (hedge)
    qty: int  # signed: + long, - short
    entry_price: int
    mark: int
    unrealized_pnl: int
    notional: int  # signed like qty, at mark
    leverage: int
    isolated: bool
    isolated_wallet: int  # 0 for cross
    initial_margin: int
    maintenance_margin: int
    liquidation_price: int  # 0 = none
    bankruptcy_price: int  # 0 = none
    margin_ratio: int  # isolated: this position's; cross: the account's cross ratio
    auto_add_margin: bool
    adl_quantile: int  # 0..5 lights
    update_ts: int


@dataclass(frozen=True, slots=True)
class OrderView:
    order_id: int
    client_order_id: str
    account: int
    symbol: str
    side: str
    position_side: str
    order_type: str
    time_in_force: str
    status: str  # NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED, (conditional) TRIGGERED
    price: int
    stop_price: int
    qty: int
    filled_qty: int
    avg_price: int
    cum_quote: int
    reduce_only: bool
    close_position: bool
    working_type: str
    callback_rate: int
    activation_price: int
    price_protect: bool
    conditional: bool  # an algo (trigger) order
    triggered_order_id: int  # the order a triggered conditional became (0 if none)
    create_ts: int
    update_ts: int
    reason: str  # why it ended, e.g. LIQUIDATION, ADL, EXPIRED_POST_ONLY


@dataclass(frozen=True, slots=True)
class AccountView:
    account: int
    name: str
    parent: int | None
    hedge_mode: bool
    wallet_balance: int  # cross wallet + every isolated wallet
    cross_wallet: int
    unrealized_pnl: int  # all positions
    cross_unrealized_pnl: int
    margin_balance: int  # wallet_balance + unrealized_pnl
    available_balance: int
    position_initial_margin: int
    open_order_initial_margin: int
    maintenance_margin: int  # cross positions only
    cross_margin_ratio: int  # cross MM / cross margin balance (fixed; 1.0 = 100%)
    max_withdraw: int
    positions: tuple[PositionView, ...]
    update_ts: int


@dataclass(frozen=True, slots=True)
class TradeRecord:
    trade_id: int
    order_id: int
    account: int
    symbol: str
    side: str
    position_side: str
    price: int
    qty: int
    quote_qty: int
    commission: int
    realized_pnl: int
    maker: bool
    ts: int


@dataclass(frozen=True, slots=True)
class IncomeRecord:
    tran_id: int
    account: int
    symbol: str
    income_type: str  # TRANSFER, REALIZED_PNL, FUNDING_FEE, COMMISSION, INSURANCE_CLEAR, ...
    amount: int
    ts: int
    info: str = ""


@dataclass(frozen=True, slots=True)
class MarketView:
    symbol: str
    last_price: int  # 0 = none yet
    mark: int
    index: int
    funding_rate: int
    next_funding_ts: int
    best_bid: int
    best_bid_qty: int
    best_ask: int
    best_ask_qty: int
    book_update_id: int
    stale: bool
    ts: int

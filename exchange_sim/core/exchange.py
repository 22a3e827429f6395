"""The Exchange facade: market events and commands in, events out. Pure and deterministic.

    ex = Exchange(load_profile(), ExchangeConfig())
    events = ex.apply(MarkPrice(ts=..., symbol="BTCUSDT", mark=to_fixed("60000")))
    events = ex.apply(PlaceOrder(ts=..., account=1, symbol="BTCUSDT", side=BUY, order_type=MARKET, qty=...))

``apply`` takes any message of ``messages.MARKET_EVENTS`` or ``messages.COMMANDS`` and returns
the list of events it caused, in order. A rejected command returns exactly one
``CommandRejected`` (venue code and message) and changes nothing. Timestamps are the caller's
(integer ms); the core reads no clock. Query methods (``views``) never change state.

The behaviour is split by concept over mixins sharing this object's state: ``trading``
(orders and fills), ``monitor`` (margin monitor), ``liquidation`` (liquidation, insurance fund,
ADL), ``account_commands`` (accounts, wallets, modes, leverage, margin), ``queries`` (views).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from sortedcontainers import SortedList

from .account_commands import AccountCommands
from .accounts import Account, Position
from .fixed import SCALE, to_fixed
from .instruments import Instrument
from .liquidation import LiquidationEngine
from .matching import SymbolMarket
from .messages import (
    CONTRACT_PRICE, MARK_PRICE, AdjustIsolatedMargin, CommandRejected, BalanceUpdate, FundingPayment, PositionUpdate, BookDelta, BookSnapshot, CancelAllOrders, CancelOrder,
    CreateAccount, Deposit, FeedStatus, Funding, IndexPrice, MarketStatus, MarkPrice, ModifyOrder, PlaceOrder, ResetAccount,
    SetAutoAddMargin, SetLeverage, SetMarginType, SetPositionMode, Trade, Transfer, Withdraw,
)
from .monitor import INF, MarginMonitor, RiskUnit
from .queries import Queries
from .trading import Trading


@dataclass(frozen=True, slots=True)
class ExchangeConfig:
    """Behaviour knobs of the core (ratios and rates are fixed-point: 1.0 = SCALE)."""

    margin_call_ratio: int = to_fixed("0.8")
    warning_ratio: int = to_fixed("0.6")  # 0 disables the warning level
    margin_call_hysteresis: int = to_fixed("0.05")
    auto_add_ratio: int = to_fixed("0.9")  # isolated auto-add margin acts at this margin ratio
    half_spread: int = to_fixed("0.0001")  # no-book fill model: price moved against the taker by this
    default_leverage: int = 20
    insurance_fund: int = to_fixed("1000000")  # initial insurance fund balance (USDT)
    adl_enabled: bool = True
    history_limit: int | None = 1000  # closed orders, fills and income kept per account (None: all)
    partial_liquidation_min_tier: int = 3  # positions in this bracket or above are first reduced a tier


class Exchange(Trading, MarginMonitor, LiquidationEngine, AccountCommands, Queries):
    def __init__(self, instruments: Mapping[str, Instrument], config: ExchangeConfig | None = None) -> None:
        self.instruments: dict[str, Instrument] = dict(sorted(instruments.items()))
        self.config = config or ExchangeConfig()
        self.markets: dict[str, SymbolMarket] = {s: SymbolMarket(i) for s, i in self.instruments.items()}
        self.mark_fed: set[str] = set()  # symbols with their own mark stream (else last price marks)
        self.accounts: dict[int, Account] = {}
        self.accounts_by_key: dict[str, int] = {}
        self.initial_deposit: dict[int, int] = {}
        self.orders: dict = {}
        # open positions per symbol (an insertion-ordered set; sort by (account, side) to iterate)
        self.positions_by_symbol: dict[str, dict[Position, None]] = {s: {} for s in self.instruments}
        self.units: dict[int, RiskUnit] = {}
        self.dirty_units: dict[int, RiskUnit] = {}
        self.held_units: set[int] = set()
        self.guards_down: dict[str, SortedList] = {s: SortedList() for s in self.instruments}
        self.guards_up: dict[str, SortedList] = {s: SortedList() for s in self.instruments}
        self.guard_down_max: dict[str, int] = dict.fromkeys(self.instruments, -1)
        self.guard_up_min: dict[str, int] = dict.fromkeys(self.instruments, INF)
        self.insurance_fund = self.config.insurance_fund
        self.next_account_id = 0
        self.next_order_id = 0
        self.next_trade_id = 0
        self.next_tran_id = 0
        self.next_unit_id = 0
        self.next_liquidation_id = 0
        self.now = 0
        self.out: list = []

    _HANDLERS: dict[type, Callable[[Any, Any], None]] = {}

    def apply(self, msg: Any) -> list:
        """Apply one market event or command; return the events it caused, in order."""
        out: list = []
        self.out = out
        before, self.now = self.now, msg.ts
        handler = self._HANDLERS.get(type(msg))
        if handler is None:
            raise TypeError(f"not a market event or command: {type(msg).__name__}")
        handler(self, msg)
        if len(out) == 1 and type(out[0]) is CommandRejected:
            self.now = before  # a refused command leaves no trace, not even its time
        if self.dirty_units:
            self._refresh_dirty()
        return out

    # ------------------------------------------------------------------ market events

    def _on_trade(self, msg: Trade) -> None:
        mkt = self.markets.get(msg.symbol)
        if mkt is None:
            return
        price = msg.price
        mkt.last_price = price
        mkt.ts = msg.ts
        if mkt.best_bid_order >= price or mkt.best_ask_order <= price:
            self._execute_resting(mkt.trade_fills(price, msg.qty, msg.taker_side))
        if mkt.trig_up_min[CONTRACT_PRICE] <= price or mkt.trig_down_max[CONTRACT_PRICE] >= price \
                or mkt.trailing:
            self._on_price(mkt, CONTRACT_PRICE, price, msg.ts)
        if msg.symbol not in self.mark_fed:
            self._new_mark(mkt, price, msg.ts)

    def _on_mark(self, msg: MarkPrice) -> None:
        mkt = self.markets.get(msg.symbol)
        if mkt is None:
            return
        self.mark_fed.add(msg.symbol)
        if msg.index is not None:
            mkt.index = msg.index
        if msg.funding_rate is not None:
            mkt.funding_rate = msg.funding_rate
        if msg.next_funding_ts is not None:
            mkt.next_funding_ts = msg.next_funding_ts
        self._new_mark(mkt, msg.mark, msg.ts)

    def _new_mark(self, mkt: SymbolMarket, mark: int, ts: int) -> None:
        if mark <= 0:
            return
        mkt.mark = mark
        mkt.ts = ts
        if mkt.trig_up_min[MARK_PRICE] <= mark or mkt.trig_down_max[MARK_PRICE] >= mark or mkt.trailing:
            self._on_price(mkt, MARK_PRICE, mark, ts)
        if not mkt.stale:
            symbol = mkt.symbol
            if self.guard_down_max[symbol] >= mark or self.guard_up_min[symbol] <= mark:
                self._monitor_mark(symbol, mark)

    def _on_index(self, msg: IndexPrice) -> None:
        mkt = self.markets.get(msg.symbol)
        if mkt is not None:
            mkt.index = msg.price

    def _on_snapshot(self, msg: BookSnapshot) -> None:
        mkt = self.markets.get(msg.symbol)
        if mkt is None:
            return
        mkt.book.apply_snapshot(msg.bids, msg.asks, msg.update_id, msg.ts)
        mkt.has_book = not mkt.book.empty  # an empty snapshot: the feed carries no depth
        for queue in list(mkt.resting_bids.values()) + list(mkt.resting_asks.values()):
            for order in queue:
                shown = mkt.book.displayed_at(order.is_buy, order.price)
                if order.queue_ahead > shown:
                    order.queue_ahead = shown

    def _on_delta(self, msg: BookDelta) -> None:
        mkt = self.markets.get(msg.symbol)
        if mkt is None:
            return
        mkt.book.apply_delta(msg.bids, msg.asks, msg.final_update_id, msg.ts)
        mkt.has_book = True
        if mkt.best_bid_order >= 0 or mkt.best_ask_order < INF:
            mkt.lower_queues(msg.bids, msg.asks)
            if mkt.crossed_by_book():
                self._execute_resting(mkt.cross_fills())

    def _on_funding(self, msg: Funding) -> None:
        """Settle funding: every open position of the symbol pays or receives notional × rate."""
        mkt = self.markets.get(msg.symbol)
        if mkt is None:
            return
        mkt.funding_rate = msg.rate
        for pos in sorted(self.positions_by_symbol[msg.symbol], key=lambda p: (p.account, p.side)):
            aid = pos.account
            mark = self._mark_of(pos)
            signed_notional = pos.qty * mark // SCALE
            amount = -signed_notional * msg.rate // SCALE  # payers round up, receivers down
            if not amount:
                continue
            acct = self.accounts[aid]
            if pos.isolated:
                pos.isolated_wallet += amount
            else:
                acct.cross_wallet += amount
            acct.ledger["funding"] += amount
            self._income(acct, msg.symbol, "FUNDING_FEE", amount)
            self.out.append(FundingPayment(msg.ts, aid, msg.symbol, pos.side, msg.rate, mark, amount))
            if pos.isolated:
                self.out.append(PositionUpdate(msg.ts, aid, pos.symbol, pos.side, pos.qty, pos.entry_price, True,
                                               pos.isolated_wallet, pos.leverage, "FUNDING_FEE"))
            else:
                self.out.append(BalanceUpdate(msg.ts, aid, acct.cross_wallet, amount, "FUNDING_FEE"))
            self._position_changed(acct, pos)

    def _on_feed_status(self, msg: FeedStatus) -> None:
        mkt = self.markets.get(msg.symbol)
        if mkt is None or mkt.stale == msg.stale:
            return
        mkt.stale = msg.stale
        mkt.stale_reason = msg.reason if msg.stale else ""
        self.out.append(MarketStatus(msg.ts, msg.symbol, msg.stale, msg.reason))
        if not msg.stale:
            self._release_held(msg.symbol)

    # ------------------------------------------------------------------ persistence

    def snapshot(self) -> bytes:
        """The full state as bytes (restore with ``Exchange.restore``)."""
        out, self.out = self.out, []
        try:
            return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)
        finally:
            self.out = out

    @staticmethod
    def restore(data: bytes) -> "Exchange":
        ex = pickle.loads(data)
        if not isinstance(ex, Exchange):
            raise TypeError("not an Exchange snapshot")
        return ex


Exchange._HANDLERS = {
    Trade: Exchange._on_trade,
    MarkPrice: Exchange._on_mark,
    IndexPrice: Exchange._on_index,
    BookSnapshot: Exchange._on_snapshot,
    BookDelta: Exchange._on_delta,
    Funding: Exchange._on_funding,
    FeedStatus: Exchange._on_feed_status,
    PlaceOrder: Trading._place_order,
    CancelOrder: AccountCommands._cancel_order,
    ModifyOrder: Trading._modify_order,
    CancelAllOrders: AccountCommands._cancel_all,
    CreateAccount: AccountCommands._create_account,
    Deposit: AccountCommands._deposit,
    Withdraw: AccountCommands._withdraw,
    Transfer: AccountCommands._transfer,
    ResetAccount: AccountCommands._reset,
    SetMarginType: AccountCommands._set_margin_type,
    SetPositionMode: AccountCommands._set_position_mode,
    SetLeverage: AccountCommands._set_leverage,
    AdjustIsolatedMargin: AccountCommands._adjust_margin,
    SetAutoAddMargin: AccountCommands._set_auto_add,
}

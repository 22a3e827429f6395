"""The Exchange facade: market events and commands in, events out. Pure and deterministic.

    ex = Exchange(load_profile(), ExchangeConfig())
    events = ex.apply(MarkPrice(ts=..., symbol="BTCUSDT", mark=to_fixed("60000")))
    events = ex.apply(PlaceOrder(ts=..., account=1, symbol="BTCUSDT", side=BUY, order_type=MARKET, qty=...))

``apply`` takes any message of ``messages.MARKET_EVENTS`` or ``messages.COMMANDS`` and returns
the list of events it caused, in order. A rejected command returns exactly one
``CommandRejected`` (venue code and message) and changes nothing. Timestamps are the caller's
(integer ms); the core reads no clock. Query methods (``queries``) never change state.

The facade owns the clock and the order of calls; the state lives in components that own it:

- ``Ledger`` (``ledger``): accounts, positions, every wallet and ledger total; it alone writes them
  and lists what it changed;
- ``SymbolMarket`` per symbol (``markets``): book, marks, index, funding, triggers, resting orders;
- ``OrderManager`` (``orders``): placement, cancels, modifies, triggers, fills and fees;
- ``MarginMonitor`` (``monitor``): risk units and guard prices; returns verdicts;
- ``LiquidationEngine`` (``liquidation``): insurance fund and ADL; acts on verdicts;
- ``AccountCommands`` (``account_commands``): the account registry and settings commands;
- ``FundFloat`` (``venue_fund``): the cluster fund service's grants and sweeps of the fund;
  ``AdlClaims`` (``liquidation.claims``): the cluster ADL coordinator's inputs.

After every step that can move money the facade hands the ledger's changes to the monitor and
judges the dirty units (``_judge``), acting on each verdict in order.
"""

from __future__ import annotations

import pickle
from typing import Any, Callable, Mapping

from .account_commands import AccountCommands
from .accounts import Position
from .exchange_config import ExchangeConfig
from .fixed import SCALE
from .instruments import Instrument
from .ledger import Ledger
from .liquidation import LiquidationEngine
from .matching import SymbolMarket
from .messages import (
    CONTRACT_PRICE, MARK_PRICE, AdjustIsolatedMargin, AutoAddMargin, BalanceUpdate, BookDelta, BookSnapshot,
    CancelAllOrders, CancelOrder, CommandRejected, CreateAccount, Deposit, FeedStatus, Funding, IndexPrice,
    MarketStatus, MarkPrice, ModifyOrder, PlaceOrder, PositionUpdate, ResetAccount, SetAutoAddMargin,
    SetLeverage, SetMarginType, SetPositionMode, Trade, Transfer, UniversalTransfer, Withdraw,
    InsuranceFundTransfer, AutoDeleverage, CloseAdlClaim,
)
from .monitor import AUTO_ADD, LIQUIDATE, MarginMonitor, RiskUnit
from .order_manager import OrderManager
from .queries import Queries
from .risk_view import RiskView
from .venue_fund import FundFloat

__all__ = ["Exchange", "ExchangeConfig", "SnapshotVersionError", "SNAPSHOT_FORMAT"]

# Snapshots are pickles of the whole component graph; a change of its shape bumps the format.
SNAPSHOT_FORMAT = 5  # 3: the account's spot (funding) wallet and its ledger keys; 4: the fund float's refs;
# 5: the account's open-order counts per symbol
_SNAPSHOT_MAGIC = b"exchange-sim core snapshot v"


class SnapshotVersionError(ValueError):
    """A snapshot written by another version of the core (recover from the journal instead)."""


class Exchange(Queries):
    def __init__(self, instruments: Mapping[str, Instrument], config: ExchangeConfig | None = None) -> None:
        instruments = dict(sorted(instruments.items()))
        cfg = config or ExchangeConfig()
        markets = {s: SymbolMarket(i) for s, i in instruments.items()}
        self.ledger = ledger = Ledger(instruments)
        view = RiskView(instruments, markets, ledger)
        self.orders = OrderManager(instruments, cfg, markets, ledger, view)
        self.monitor = MarginMonitor(instruments, cfg)
        self.liquidation = LiquidationEngine(instruments, cfg, markets, ledger, self.orders, view)
        self.account_commands = AccountCommands(instruments, cfg, ledger, self.orders, view)
        self.venue_fund = FundFloat(self.liquidation)
        super().__init__(instruments, cfg, ledger, markets, view, self.account_commands.accounts_by_key)
        self.now = 0

    # ------------------------------------------------------------------ what others read

    @property
    def insurance_fund(self) -> int:
        return self.liquidation.insurance_fund

    @property
    def next_order_id(self) -> int:
        return self.orders.next_order_id

    @property
    def next_trade_id(self) -> int:
        return self.orders.next_trade_id

    @property
    def next_account_id(self) -> int:
        return self.account_commands.next_account_id

    @property
    def positions_by_symbol(self) -> dict[str, dict[Position, None]]:
        return self.ledger.positions_by_symbol

    @property
    def guards_down(self) -> Mapping[str, Any]:
        return self.monitor.guards_down

    def adl_ranking(self, symbol: str, long_side: bool) -> list[Position]:
        return self.liquidation.adl_ranking(symbol, long_side)

    # ------------------------------------------------------------------ dispatch

    def apply(self, msg: Any) -> list:
        """Apply one market event or command; return the events it caused, in order."""
        before, self.now = self.now, msg.ts
        handler = _HANDLERS.get(type(msg))
        if handler is None:
            raise TypeError(f"not a market event or command: {type(msg).__name__}")
        out = handler(self, msg)
        if len(out) == 1 and type(out[0]) is CommandRejected:
            self.now = before  # a refused command leaves no trace, not even its time
        if self.ledger.changes or self.monitor.dirty:
            self._judge(out)
        return out

    def _judge(self, out: list) -> None:
        """Tell the monitor what the ledger changed; judge every dirty unit and act on its verdicts."""
        monitor, ledger = self.monitor, self.ledger
        while True:
            monitor.absorb(ledger.take_changes())
            unit = monitor.next_dirty()
            if unit is None:
                return
            self._judge_unit(out, unit, False)

    def _judge_unit(self, out: list, unit: RiskUnit, after_auto_add: bool) -> None:
        for verdict in self.monitor.judge(unit, self.view, self.now, after_auto_add):
            if verdict.kind == AUTO_ADD:
                self._auto_add(out, verdict.positions[0], verdict.amount)
                self.monitor.absorb(self.ledger.take_changes(), judging=unit)
                self._judge_unit(out, unit, True)
            elif verdict.kind == LIQUIDATE:
                out += self.liquidation.execute(verdict, self.now)
            elif verdict.event is not None:
                out.append(verdict.event)

    def _auto_add(self, out: list, pos: Position, amount: int) -> None:
        """Move the position's IM (or what is available, if less) from the cross wallet into it."""
        acct = self.ledger.accounts[pos.account]
        self.ledger.move_isolated(acct, pos, amount)
        now = self.now
        out.append(AutoAddMargin(now, acct.id, pos.symbol, pos.side, amount))
        out.append(BalanceUpdate(now, acct.id, acct.cross_wallet, -amount, "AUTO_ADD_MARGIN"))
        out.append(PositionUpdate(now, acct.id, pos.symbol, pos.side, pos.qty, pos.entry_price, True,
                                  pos.isolated_wallet, pos.leverage, "AUTO_ADD_MARGIN"))

    # ------------------------------------------------------------------ market events

    def _on_trade(self, msg: Trade) -> list:
        out: list = []
        mkt = self.markets.get(msg.symbol)
        if mkt is None:
            return out
        price = msg.price
        mkt.on_trade(price, msg.ts)
        if mkt.best_bid_order >= price or mkt.best_ask_order <= price:
            out += self.orders.execute_resting(mkt.trade_fills(price, msg.qty, msg.taker_side), self.now)
        if mkt.trig_up_min[CONTRACT_PRICE] <= price or mkt.trig_down_max[CONTRACT_PRICE] >= price \
                or mkt.trailing:
            out += self.orders.on_price(mkt, CONTRACT_PRICE, price, msg.ts)
        if not mkt.mark_fed:
            self._new_mark(out, mkt, price, msg.ts)
        return out

    def _on_mark(self, msg: MarkPrice) -> list:
        out: list = []
        mkt = self.markets.get(msg.symbol)
        if mkt is None:
            return out
        mkt.on_mark_stream(msg.index, msg.funding_rate, msg.next_funding_ts)
        self._new_mark(out, mkt, msg.mark, msg.ts)
        return out

    def _new_mark(self, out: list, mkt: SymbolMarket, mark: int, ts: int) -> None:
        if mark <= 0:
            return
        mkt.set_mark(mark, ts)
        if mkt.trig_up_min[MARK_PRICE] <= mark or mkt.trig_down_max[MARK_PRICE] >= mark or mkt.trailing:
            out += self.orders.on_price(mkt, MARK_PRICE, mark, ts)
        if not mkt.stale:
            monitor = self.monitor
            symbol = mkt.symbol
            if monitor.guard_down_max[symbol] >= mark or monitor.guard_up_min[symbol] <= mark:
                self.monitor.absorb(self.ledger.take_changes())
                monitor.on_mark(symbol, mark)
                self._judge(out)

    def _on_index(self, msg: IndexPrice) -> list:
        mkt = self.markets.get(msg.symbol)
        if mkt is not None:
            mkt.set_index(msg.price)
        return []

    def _on_snapshot(self, msg: BookSnapshot) -> list:
        mkt = self.markets.get(msg.symbol)
        if mkt is None:
            return []
        mkt.apply_snapshot(msg.bids, msg.asks, msg.update_id, msg.ts)
        return []

    def _on_delta(self, msg: BookDelta) -> list:
        mkt = self.markets.get(msg.symbol)
        if mkt is None:
            return []
        fills = mkt.apply_delta(msg.bids, msg.asks, msg.final_update_id, msg.ts)
        return self.orders.execute_resting(fills, self.now) if fills else []

    def _on_funding(self, msg: Funding) -> list:
        """Settle funding: every open position of the symbol pays or receives notional × rate."""
        out: list = []
        mkt = self.markets.get(msg.symbol)
        if mkt is None:
            return out
        mkt.set_funding_rate(msg.rate)
        for pos in sorted(self.ledger.positions_by_symbol[msg.symbol], key=lambda p: (p.account, p.side)):
            mark = self.view.mark_of(pos)
            signed_notional = pos.qty * mark // SCALE
            amount = -signed_notional * msg.rate // SCALE  # payers round up, receivers down
            if amount:
                out += self.ledger.settle_funding(self.ledger.accounts[pos.account], pos, msg.rate, mark, amount,
                                                  msg.ts)
        return out

    def _on_feed_status(self, msg: FeedStatus) -> list:
        mkt = self.markets.get(msg.symbol)
        if mkt is None or not mkt.set_stale(msg.stale, msg.reason):
            return []
        out: list = [MarketStatus(msg.ts, msg.symbol, msg.stale, msg.reason)]
        if not msg.stale:
            # re-judge the units held while the feed was stale, then look at the fresh mark
            self.monitor.absorb(self.ledger.take_changes())
            self.monitor.release(msg.symbol, self.view)
            self._judge(out)
            mark = mkt.mark
            if mark:
                self.monitor.on_mark(msg.symbol, mark)
                self._judge(out)
        return out

    # ------------------------------------------------------------------ commands

    def _refused(self, cmd: Any) -> list:
        """[the refusal] of a command naming an unknown account or symbol, else []."""
        refusal = self.account_commands.refusal(cmd)
        return [] if refusal is None else [refusal]

    # ------------------------------------------------------------------ persistence

    def snapshot(self) -> bytes:
        """The full state as bytes, tagged with the snapshot format (restore with ``Exchange.restore``)."""
        return _SNAPSHOT_MAGIC + str(SNAPSHOT_FORMAT).encode() + b"\n" + pickle.dumps(
            self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def restore(data: bytes) -> "Exchange":
        """The Exchange of a ``snapshot``; SnapshotVersionError for one of another core version."""
        head, _, body = data.partition(b"\n")
        if not head.startswith(_SNAPSHOT_MAGIC):
            raise SnapshotVersionError("snapshot written by an older core (before snapshot format 2); "
                                       "recover from the journal instead")
        version = head[len(_SNAPSHOT_MAGIC):].decode(errors="replace")
        if version != str(SNAPSHOT_FORMAT):
            raise SnapshotVersionError(f"snapshot format {version}, this core reads format {SNAPSHOT_FORMAT}; "
                                       "recover from the journal instead")
        ex = pickle.loads(body)
        if not isinstance(ex, Exchange):
            raise TypeError("not an Exchange snapshot")
        return ex


_HANDLERS: dict[type, Callable[[Exchange, Any], list]] = {
    Trade: Exchange._on_trade,
    MarkPrice: Exchange._on_mark,
    IndexPrice: Exchange._on_index,
    BookSnapshot: Exchange._on_snapshot,
    BookDelta: Exchange._on_delta,
    Funding: Exchange._on_funding,
    FeedStatus: Exchange._on_feed_status,
    PlaceOrder: lambda ex, m: ex.orders.place(m, ex.now),
    ModifyOrder: lambda ex, m: ex.orders.modify(m, ex.now),
    CancelOrder: lambda ex, m: ex._refused(m) or ex.orders.cancel(m, ex.now),
    CancelAllOrders: lambda ex, m: ex._refused(m) or ex.orders.cancel_all(m, ex.now),
    CreateAccount: lambda ex, m: ex.account_commands.create_account(m, ex.now),
    Deposit: lambda ex, m: ex.account_commands.deposit(m, ex.now),
    Withdraw: lambda ex, m: ex.account_commands.withdraw(m, ex.now),
    Transfer: lambda ex, m: ex.account_commands.transfer(m, ex.now),
    UniversalTransfer: lambda ex, m: ex.account_commands.universal_transfer(m, ex.now),
    ResetAccount: lambda ex, m: ex.account_commands.reset(m, ex.now),
    SetMarginType: lambda ex, m: ex._refused(m) or ex.account_commands.set_margin_type(m, ex.now),
    SetPositionMode: lambda ex, m: ex.account_commands.set_position_mode(m, ex.now),
    SetLeverage: lambda ex, m: ex.account_commands.set_leverage(m, ex.now),
    AdjustIsolatedMargin: lambda ex, m: ex._refused(m) or ex.account_commands.adjust_margin(m, ex.now),
    SetAutoAddMargin: lambda ex, m: ex._refused(m) or ex.account_commands.set_auto_add(m, ex.now),
    InsuranceFundTransfer: lambda ex, m: ex.venue_fund.transfer(m, ex.now),
    AutoDeleverage: lambda ex, m: ex._refused(m) or ex.liquidation.claims.deleverage(ex.liquidation, m, ex.now),
    CloseAdlClaim: lambda ex, m: ex.liquidation.claims.close(ex.liquidation, m, ex.now),
}

"""Read-only queries: frozen views of accounts, positions, orders and markets (never change state).

Liquidation prices shown here are margin-rules.md's formula at the current marks: isolated legs
each have their own; a cross symbol's legs share one, computed with W′ = cross wallet − TMM1 +
UPNL1 over the account's other cross symbols, so it moves when their marks move.

``Queries`` is the read side of the ``Exchange``: it holds the ledger, the markets and a
``RiskView`` and writes nothing.
"""

from __future__ import annotations

from typing import Mapping

from .accounts import Account, Position
from .exchange_config import ExchangeConfig
from .fixed import SCALE
from .instruments import Instrument
from .ledger import Ledger
from .margin import initial_margin, margin_ratio
from .matching import SymbolMarket
from .messages import BOTH
from .risk_view import RiskView
from .views import AccountView, IncomeRecord, MarketView, OrderView, PositionView, TradeRecord


class Queries:
    """The read side of the Exchange."""

    def __init__(self, instruments: dict[str, Instrument], config: ExchangeConfig, ledger: Ledger,
                 markets: dict[str, SymbolMarket], view: RiskView, accounts_by_key: Mapping[str, int]) -> None:
        self.instruments = instruments
        self.config = config
        self.ledger = ledger
        self.markets = markets
        self.view = view
        self._accounts_by_key = accounts_by_key

    @property
    def accounts(self) -> dict[int, Account]:
        return self.ledger.accounts

    def account_ids(self) -> list[int]:
        return list(self.accounts)

    def children(self, aid: int) -> list[int]:
        acct = self.accounts.get(aid)
        return list(acct.children) if acct else []

    def account_by_api_key(self, key: str) -> int | None:
        return self._accounts_by_key.get(key)

    def api_secret(self, aid: int) -> str:
        acct = self.accounts.get(aid)
        return acct.api_secret if acct else ""

    def spot_wallet(self, aid: int) -> int:
        """The account's spot (funding) wallet: what universal transfers moved out of futures and not back."""
        acct = self.accounts.get(aid)
        return acct.spot_wallet if acct else 0

    def hedge_mode(self, aid: int) -> bool:
        acct = self.accounts.get(aid)
        return bool(acct and acct.hedge)

    def is_isolated(self, aid: int, symbol: str) -> bool:
        acct = self.accounts.get(aid)
        return bool(acct and symbol in acct.isolated)

    def leverage(self, aid: int, symbol: str, position_side: str = BOTH) -> int:
        acct = self.accounts.get(aid)
        if acct is None:
            return self.config.default_leverage
        return acct.leverage_of(symbol, position_side, self.config.default_leverage)

    # ------------------------------------------------------------------ positions

    def liquidation_price_of(self, acct: Account, pos: Position) -> int:
        return self.view.liquidation_price_of(acct, pos)

    def bankruptcy_price_of(self, acct: Account, pos: Position) -> int:
        return self.view.bankruptcy_price_of(acct, pos)

    def _position_view(self, acct: Account, pos: Position, cross_ratio: int) -> PositionView:
        inst = self.instruments[pos.symbol]
        mark = self.view.mark_of(pos)
        notional = pos.notional(mark)
        pnl = pos.pnl(mark)
        mm = inst.maintenance_margin(notional)
        ratio = margin_ratio(mm, pos.isolated_wallet + pnl) if pos.isolated else cross_ratio
        wallet = pos.isolated_wallet if pos.isolated else acct.cross_wallet
        pnl_pct = pnl * SCALE // max(SCALE, wallet) if pnl > 0 else 0
        adl = 0 if pnl <= 0 else min(5, 1 + pnl_pct * 5 // SCALE)
        return PositionView(
            account=acct.id, symbol=pos.symbol, position_side=pos.side, qty=pos.qty,
            entry_price=pos.entry_price, mark=mark, unrealized_pnl=pnl,
            notional=notional if pos.qty > 0 else -notional, leverage=pos.leverage, isolated=pos.isolated,
            isolated_wallet=pos.isolated_wallet, initial_margin=initial_margin(notional, pos.leverage),
            maintenance_margin=mm, liquidation_price=self.liquidation_price_of(acct, pos),
            bankruptcy_price=self.bankruptcy_price_of(acct, pos), margin_ratio=ratio,
            auto_add_margin=pos.auto_add, adl_quantile=adl, update_ts=pos.update_ts,
        )

    def positions(self, aid: int, symbol: str | None = None) -> list[PositionView]:
        acct = self.accounts.get(aid)
        if acct is None:
            return []
        cross_ratio = self.view.cross_ratio(acct)[2]
        return [self._position_view(acct, p, cross_ratio) for _, p in sorted(acct.positions.items())
                if p.qty and (symbol is None or p.symbol == symbol)]

    def account_view(self, aid: int) -> AccountView | None:
        acct = self.accounts.get(aid)
        if acct is None:
            return None
        cross_mm, cross_pnl, cross_ratio = self.view.cross_ratio(acct)
        positions = tuple(self._position_view(acct, p, cross_ratio) for _, p in sorted(acct.positions.items())
                          if p.qty)
        pnl = sum(p.unrealized_pnl for p in positions)
        wallet = acct.wallet_balance
        position_im = sum(p.initial_margin for p in positions if not p.isolated) + \
            sum(p.isolated_wallet for p in positions if p.isolated)
        return AccountView(
            account=acct.id, name=acct.name, parent=acct.parent, hedge_mode=acct.hedge,
            wallet_balance=wallet, cross_wallet=acct.cross_wallet, unrealized_pnl=pnl,
            cross_unrealized_pnl=cross_pnl, margin_balance=wallet + pnl,
            available_balance=max(0, self.view.available(acct)), position_initial_margin=position_im,
            open_order_initial_margin=acct.order_margin, maintenance_margin=cross_mm,
            cross_margin_ratio=cross_ratio, max_withdraw=self.view.max_withdraw(acct), positions=positions,
            update_ts=acct.update_ts,
        )

    # ------------------------------------------------------------------ orders and records

    def open_orders(self, aid: int, symbol: str | None = None) -> list[OrderView]:
        acct = self.accounts.get(aid)
        if acct is None:
            return []
        return [o.view() for _, o in sorted(acct.open_orders.items()) if symbol is None or o.symbol == symbol]

    def all_orders(self, aid: int, symbol: str | None = None) -> list[OrderView]:
        acct = self.accounts.get(aid)
        if acct is None:
            return []
        closed = acct.closed_orders if acct.history is None else acct.closed_orders[-acct.history:] if acct.history else []
        orders = list(acct.open_orders.values()) + closed
        return [o.view() for o in sorted(orders, key=lambda o: o.id) if symbol is None or o.symbol == symbol]

    def order(self, aid: int, order_id: int = 0, client_order_id: str = "") -> OrderView | None:
        acct = self.accounts.get(aid)
        if acct is None:
            return None
        live = acct.open_order(order_id, client_order_id)
        if live is not None:
            return live.view()
        for o in reversed(acct.closed_orders):
            if (order_id and o.id == order_id) or (not order_id and o.client_id == client_order_id):
                return o.view()
        return None

    def trades(self, aid: int, symbol: str | None = None) -> list[TradeRecord]:
        acct = self.accounts.get(aid)
        if acct is None:
            return []
        trades = acct.trades if acct.history is None else acct.trades[-acct.history:] if acct.history else []
        return [t for t in trades if symbol is None or t.symbol == symbol]

    def income(self, aid: int) -> list[IncomeRecord]:
        acct = self.accounts.get(aid)
        if acct is None or acct.history == 0:
            return []
        return list(acct.income if acct.history is None else acct.income[-acct.history:])

    # ------------------------------------------------------------------ markets

    def market(self, symbol: str) -> MarketView:
        mkt = self.markets[symbol]
        bid, bid_qty = mkt.book.best_bid() if mkt.has_book else (0, 0)
        ask, ask_qty = mkt.book.best_ask() if mkt.has_book else (0, 0)
        return MarketView(symbol, mkt.last_price, mkt.mark, mkt.index, mkt.funding_rate, mkt.next_funding_ts,
                          bid, bid_qty, ask, ask_qty, mkt.book.update_id, mkt.stale, mkt.ts)

    def book_levels(self, symbol: str, depth: int = 20) -> tuple[list, list, int]:
        mkt = self.markets[symbol]
        bids, asks = mkt.book.levels(depth)
        return bids, asks, mkt.book.update_id

    def wallet_invariant_holds(self) -> bool:
        """Every account's wallet equals its ledger (deposits, transfers, PnL, funding, fees, top-ups,
        spot transfers), and its spot wallet, never negative, its spot ledger."""
        return self.ledger.wallet_invariant_holds()

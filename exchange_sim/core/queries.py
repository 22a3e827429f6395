"""Read-only queries: frozen views of accounts, positions, orders and markets (never change state).

Liquidation prices shown here are margin-rules.md's formula at the current marks: isolated legs
each have their own; a cross symbol's legs share one, computed with W′ = cross wallet − TMM1 +
UPNL1 over the account's other cross symbols, so it moves when their marks move.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .accounts import Account, Position
from .fixed import SCALE
from .margin import bankruptcy_price, initial_margin, liquidation_price, margin_ratio
from .messages import BOTH
from .views import AccountView, IncomeRecord, MarketView, OrderView, PositionView, TradeRecord

if TYPE_CHECKING:
    from .exchange import Exchange


class Queries:
    """Mixin: the read side of the Exchange."""

    def account_ids(self: "Exchange") -> list[int]:
        return list(self.accounts)

    def children(self: "Exchange", aid: int) -> list[int]:
        acct = self.accounts.get(aid)
        return list(acct.children) if acct else []

    def account_by_api_key(self: "Exchange", key: str) -> int | None:
        return self.accounts_by_key.get(key)

    def api_secret(self: "Exchange", aid: int) -> str:
        acct = self.accounts.get(aid)
        return acct.api_secret if acct else ""

    def hedge_mode(self: "Exchange", aid: int) -> bool:
        acct = self.accounts.get(aid)
        return bool(acct and acct.hedge)

    def is_isolated(self: "Exchange", aid: int, symbol: str) -> bool:
        acct = self.accounts.get(aid)
        return bool(acct and symbol in acct.isolated)

    def leverage(self: "Exchange", aid: int, symbol: str, position_side: str = BOTH) -> int:
        acct = self.accounts.get(aid)
        if acct is None:
            return self.config.default_leverage
        return acct.leverage_of(symbol, position_side, self.config.default_leverage)

    # ------------------------------------------------------------------ positions

    def _cross_context(self: "Exchange", acct: Account, symbol: str) -> int:
        """W′ for a cross symbol: cross wallet − MM + uPnL of the other cross symbols at their marks."""
        wallet = acct.cross_wallet
        for pos in acct.positions.values():
            if pos.isolated or not pos.qty or pos.symbol == symbol:
                continue
            mark = self._mark_of(pos)
            wallet += pos.pnl(mark) - self.instruments[pos.symbol].maintenance_margin(pos.notional(mark))
        return wallet

    def liquidation_price_of(self: "Exchange", acct: Account, pos: Position) -> int:
        inst = self.instruments[pos.symbol]
        if pos.isolated:
            return liquidation_price(inst, [(pos.qty, pos.cost)], pos.isolated_wallet)
        legs = [(p.qty, p.cost) for p in acct.positions.values()
                if p.symbol == pos.symbol and not p.isolated and p.qty]
        return liquidation_price(inst, legs, self._cross_context(acct, pos.symbol))

    def bankruptcy_price_of(self: "Exchange", acct: Account, pos: Position) -> int:
        if pos.isolated:
            return bankruptcy_price(pos.qty, pos.cost, pos.isolated_wallet)
        wallet = acct.cross_wallet + sum(p.pnl(self._mark_of(p)) for p in acct.positions.values()
                                         if p is not pos and not p.isolated and p.qty)
        return bankruptcy_price(pos.qty, pos.cost, wallet)

    def _position_view(self: "Exchange", acct: Account, pos: Position, cross_ratio: int) -> PositionView:
        inst = self.instruments[pos.symbol]
        mark = self._mark_of(pos)
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

    def _cross_ratio(self: "Exchange", acct: Account) -> tuple[int, int, int]:
        """(cross MM, cross uPnL, cross margin ratio)."""
        mm, pnl = self._margin_sums(p for p in acct.positions.values() if not p.isolated and p.qty)
        return mm, pnl, margin_ratio(mm, acct.cross_wallet + pnl)

    def positions(self: "Exchange", aid: int, symbol: str | None = None) -> list[PositionView]:
        acct = self.accounts.get(aid)
        if acct is None:
            return []
        cross_ratio = self._cross_ratio(acct)[2]
        return [self._position_view(acct, p, cross_ratio) for _, p in sorted(acct.positions.items())
                if p.qty and (symbol is None or p.symbol == symbol)]

    def account_view(self: "Exchange", aid: int) -> AccountView | None:
        acct = self.accounts.get(aid)
        if acct is None:
            return None
        cross_mm, cross_pnl, cross_ratio = self._cross_ratio(acct)
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
            available_balance=max(0, self._available(acct)), position_initial_margin=position_im,
            open_order_initial_margin=acct.order_margin, maintenance_margin=cross_mm,
            cross_margin_ratio=cross_ratio, max_withdraw=self.max_withdraw(acct), positions=positions,
            update_ts=acct.update_ts,
        )

    # ------------------------------------------------------------------ orders and records

    def open_orders(self: "Exchange", aid: int, symbol: str | None = None) -> list[OrderView]:
        acct = self.accounts.get(aid)
        if acct is None:
            return []
        return [o.view() for _, o in sorted(acct.open_orders.items()) if symbol is None or o.symbol == symbol]

    def all_orders(self: "Exchange", aid: int, symbol: str | None = None) -> list[OrderView]:
        acct = self.accounts.get(aid)
        if acct is None:
            return []
        closed = acct.closed_orders if acct.history is None else acct.closed_orders[-acct.history:] if acct.history else []
        orders = list(acct.open_orders.values()) + closed
        return [o.view() for o in sorted(orders, key=lambda o: o.id) if symbol is None or o.symbol == symbol]

    def order(self: "Exchange", aid: int, order_id: int = 0, client_order_id: str = "") -> OrderView | None:
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

    def trades(self: "Exchange", aid: int, symbol: str | None = None) -> list[TradeRecord]:
        acct = self.accounts.get(aid)
        if acct is None:
            return []
        trades = acct.trades if acct.history is None else acct.trades[-acct.history:] if acct.history else []
        return [t for t in trades if symbol is None or t.symbol == symbol]

    def income(self: "Exchange", aid: int) -> list[IncomeRecord]:
        acct = self.accounts.get(aid)
        if acct is None or acct.history == 0:
            return []
        return list(acct.income if acct.history is None else acct.income[-acct.history:])

    # ------------------------------------------------------------------ markets

    def market(self: "Exchange", symbol: str) -> MarketView:
        mkt = self.markets[symbol]
        bid, bid_qty = mkt.book.best_bid() if mkt.has_book else (0, 0)
        ask, ask_qty = mkt.book.best_ask() if mkt.has_book else (0, 0)
        return MarketView(symbol, mkt.last_price, mkt.mark, mkt.index, mkt.funding_rate, mkt.next_funding_ts,
                          bid, bid_qty, ask, ask_qty, mkt.book.update_id, mkt.stale, mkt.ts)

    def book_levels(self: "Exchange", symbol: str, depth: int = 20) -> tuple[list, list, int]:
        mkt = self.markets[symbol]
        bids, asks = mkt.book.levels(depth)
        return bids, asks, mkt.book.update_id

    def wallet_invariant_holds(self: "Exchange") -> bool:
        """Every account's wallet equals its ledger (deposits, transfers, PnL, funding, fees, top-ups)."""
        return all(a.wallet_balance == a.ledger_balance() for a in self.accounts.values())

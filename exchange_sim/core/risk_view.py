"""Read-only valuations at the current marks (margin-rules.md "Quantities"), shared by the parts.

The margin monitor, the liquidation engine, order placement and the queries all need the same
few numbers: a position's mark, maintenance margin and uPnL, a risk unit's margin balance, the
balance available for orders, liquidation and bankruptcy prices. ``RiskView`` computes them from
the ledger's accounts and the markets' marks and never changes either. A risk unit is named by
its account and, for an isolated unit, its position (None: the account's cross positions).
"""

from __future__ import annotations

from typing import Iterable, Mapping

from .accounts import Account, Position
from .instruments import Instrument
from .ledger import Ledger
from .margin import bankruptcy_price, initial_margin, liquidation_price, margin_ratio
from .matching import SymbolMarket


class RiskView:
    def __init__(self, instruments: Mapping[str, Instrument], markets: Mapping[str, SymbolMarket],
                 ledger: Ledger) -> None:
        self.instruments = instruments
        self.markets = markets
        self.ledger = ledger

    def mark_of(self, pos: Position) -> int:
        """The symbol's mark (the entry price before the first mark)."""
        return self.markets[pos.symbol].mark or pos.entry_price

    def stale(self, symbol: str) -> bool:
        return self.markets[symbol].stale

    def mark(self, symbol: str) -> int:
        return self.markets[symbol].mark

    def margin_sums(self, positions: Iterable[Position]) -> tuple[int, int]:
        """(Σ maintenance margin, Σ unrealized PnL) of positions at the current marks."""
        mm = 0
        pnl = 0
        for pos in positions:
            mark = self.mark_of(pos)
            mm += self.instruments[pos.symbol].maintenance_margin(pos.notional(mark))
            pnl += pos.pnl(mark)
        return mm, pnl

    def unit_positions(self, account: int, position: Position | None) -> list[Position]:
        """The open positions a risk unit judges together (isolated: one; cross: all cross legs)."""
        if position is not None:
            return [position] if position.qty else []
        acct = self.ledger.accounts[account]
        return [p for _, p in sorted(acct.positions.items()) if not p.isolated and p.qty]

    def unit_margin(self, account: int, position: Position | None, positions: list[Position]) -> tuple[int, int]:
        """(Σ maintenance margin, margin balance) of a risk unit at the current marks."""
        mm, pnl = self.margin_sums(positions)
        if position is not None:
            return mm, position.isolated_wallet + pnl
        return mm, self.ledger.accounts[account].cross_wallet + pnl

    def unit_ratio(self, acct: Account, pos: Position) -> int:
        """Margin ratio of the risk unit holding ``pos``."""
        position = pos if pos.isolated else None
        positions = self.unit_positions(acct.id, position)
        return margin_ratio(*self.unit_margin(acct.id, position, positions)) if positions else 0

    def cross_ratio(self, acct: Account) -> tuple[int, int, int]:
        """(cross MM, cross uPnL, cross margin ratio)."""
        mm, pnl = self.margin_sums(p for p in acct.positions.values() if not p.isolated and p.qty)
        return mm, pnl, margin_ratio(mm, acct.cross_wallet + pnl)

    def available(self, acct: Account) -> int:
        """Cross wallet + Σ cross uPnL − Σ cross position IM − open-order margin."""
        total = acct.cross_wallet - acct.order_margin
        markets = self.markets
        for pos in acct.positions.values():
            if pos.isolated or not pos.qty:
                continue
            mark = markets[pos.symbol].mark or pos.entry_price
            total += pos.pnl(mark) - initial_margin(pos.notional(mark), pos.leverage)
        return total

    def max_withdraw(self, acct: Account) -> int:
        """What can leave the cross wallet: available balance, never more than the wallet."""
        return max(0, min(acct.cross_wallet, self.available(acct)))

    def cross_context(self, acct: Account, symbol: str) -> int:
        """W′ for a cross symbol: cross wallet − MM + uPnL of the other cross symbols at their marks."""
        wallet = acct.cross_wallet
        for pos in acct.positions.values():
            if pos.isolated or not pos.qty or pos.symbol == symbol:
                continue
            mark = self.mark_of(pos)
            wallet += pos.pnl(mark) - self.instruments[pos.symbol].maintenance_margin(pos.notional(mark))
        return wallet

    def liquidation_price_of(self, acct: Account, pos: Position) -> int:
        inst = self.instruments[pos.symbol]
        if pos.isolated:
            return liquidation_price(inst, [(pos.qty, pos.cost)], pos.isolated_wallet)
        legs = [(p.qty, p.cost) for p in acct.positions.values()
                if p.symbol == pos.symbol and not p.isolated and p.qty]
        return liquidation_price(inst, legs, self.cross_context(acct, pos.symbol))

    def bankruptcy_price_of(self, acct: Account, pos: Position) -> int:
        if pos.isolated:
            return bankruptcy_price(pos.qty, pos.cost, pos.isolated_wallet)
        wallet = acct.cross_wallet + sum(p.pnl(self.mark_of(p)) for p in acct.positions.values()
                                         if p is not pos and not p.isolated and p.qty)
        return bankruptcy_price(pos.qty, pos.cost, wallet)

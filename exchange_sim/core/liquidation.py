"""The liquidation engine, the insurance fund and auto-deleveraging (margin-rules.md §2-4).

When a risk unit's margin ratio reaches 100%:

1. Cancel its open orders (cross: every order on a cross symbol; isolated: that symbol's leg).
2. Partial liquidation: a position in a high tier (bracket ≥ ``partial_liquidation_min_tier``,
   3 by default, so example A's tier-2 position goes whole) is first reduced to the next lower
   tier's cap; if the unit is then back under 100% after the loss and the clearance fee, stop.
3. Otherwise every position of the unit (cross: all of them, the domino) is closed by a
   liquidation order: IOC, limit at the bankruptcy price, walking the simulated book (or the
   no-book price model). Liquidation fills pay no trading fee.
4. What the book cannot take is taken over by the insurance fund at the bankruptcy price; the
   fund books the difference between that and the mark (where it unwinds). If the fund cannot
   cover that, auto-deleveraging closes opposite-side profitable positions of other accounts at
   the bankruptcy price, ranked as Binance ranks them (PnL% × margin ratio, PnL% = max(0, uPnL) /
   max(1, wallet)), with their open orders cancelled and no fee.
5. Clearance fee: ``liquidation_fee`` × liquidated notional, but never more than the equity the
   position had left after its fills; it goes to the fund. What is left of that equity after the
   fee returns to the trader (with the venue's 1.25% fee that is nothing: the trader loses the
   whole margin and the fund keeps what the fill achieved above the bankruptcy price).
6. A wallet never ends negative: the fund tops it back to 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .accounts import Account, Position
from .fixed import SCALE
from .margin import margin_ratio
from .messages import BUY, IOC, LIMIT, SELL, Adl, BalanceUpdate, InsuranceFundChange, Liquidation, PlaceOrder
from .orders import Order

if TYPE_CHECKING:
    from .exchange import Exchange
    from .monitor import RiskUnit


class LiquidationEngine:
    """Mixin: the liquidation half of the Exchange."""

    def _liquidate(self: "Exchange", unit: "RiskUnit", positions: list[Position]) -> None:
        acct = self.accounts[unit.account]
        pos = unit.position
        if pos is not None:
            self._cancel_where(acct, lambda o: not (o.symbol == pos.symbol and (
                not acct.hedge or o.position_side == pos.side)), "LIQUIDATION")
        else:
            self._cancel_where(acct, lambda o: o.symbol in acct.isolated, "LIQUIDATION")
        # partial liquidation of positions above the lowest tier, largest first
        for pos in sorted(positions, key=lambda p: (-p.notional(self._mark_of(p)), p.symbol, p.side)):
            inst = self.instruments[pos.symbol]
            mark = self._mark_of(pos)
            tier = inst.tier_for_notional(pos.notional(mark))
            if tier.bracket < max(2, self.config.partial_liquidation_min_tier) or not pos.qty:
                continue
            cap = inst.tiers[tier.bracket - 2].cap
            keep = cap * SCALE // mark // inst.step_size * inst.step_size
            close = abs(pos.qty) - keep
            if close <= 0:
                continue
            self._liquidation_order(acct, pos, close, partial=True)
            remaining = self._unit_positions(unit)
            if remaining and margin_ratio(*self._unit_margin(unit, remaining)) < SCALE:
                self.dirty_units[unit.id] = unit
                return
        for pos in self._unit_positions(unit):
            self._liquidation_order(acct, pos, abs(pos.qty), partial=False)
        if acct.cross_wallet < 0:
            self._top_up(acct, "")

    def _liquidation_order(self: "Exchange", acct: Account, pos: Position, qty: int, partial: bool) -> None:
        """Close ``qty`` of ``pos`` by a liquidation IOC at the bankruptcy price, then settle it."""
        mkt = self.markets[pos.symbol]
        inst = mkt.inst
        mark = self._mark_of(pos)
        long = pos.qty > 0
        bankrupt = self.bankruptcy_price_of(acct, pos)
        tick = inst.tick_size
        limit = -(-bankrupt // tick) * tick if long else bankrupt // tick * tick
        self.next_liquidation_id += 1
        cmd = PlaceOrder(ts=self.now, account=acct.id, symbol=pos.symbol, side=SELL if long else BUY,
                         order_type=LIMIT, qty=qty, price=limit, time_in_force=IOC, reduce_only=True,
                         position_side=pos.side)
        order = Order(0, cmd, "")
        self._assign_id(order)
        order.client_id = f"autoclose-{self.next_liquidation_id}"
        order.reason = "LIQUIDATION"
        self._open_order(acct, order)
        self._emit_order(order, "NEW")
        symbol, side, isolated = pos.symbol, pos.side, pos.isolated
        cross_before = acct.cross_wallet
        realized_before = acct.ledger["realized_pnl"]
        for price, take in mkt.taker_fills(not long, qty, limit, self.config.half_spread):
            self._fill(acct, order, take, price, maker=False, reason="LIQUIDATION", fee_rate=0)
        rest = qty - order.filled
        if rest > 0:
            price = limit if limit > 0 else mark
            fund_pnl = (mark - price) * rest // SCALE if long else (price - mark) * rest // SCALE
            if self.insurance_fund + fund_pnl >= 0 or not self.config.adl_enabled:
                self._fill(acct, order, rest, price, maker=False, reason="INSURANCE_TAKEOVER", fee_rate=0)
                self._fund(fund_pnl, "TAKEOVER", symbol, acct.id)
            else:
                self._fill(acct, order, rest, price, maker=False, reason="ADL", fee_rate=0)
                left = self._auto_deleverage(symbol, long, rest, price, acct.id)
                if left:
                    self._fund(fund_pnl * left // rest, "TAKEOVER", symbol, acct.id)
        # equity the closed part had left: isolated -> what came back to the cross wallet
        if isolated:
            equity = acct.cross_wallet - cross_before
        else:
            equity = acct.cross_wallet + sum(p.pnl(self._mark_of(p)) for p in acct.positions.values()
                                             if not p.isolated and p.qty)
        fee = min(inst.liquidation_fee * order.cum_quote // SCALE, max(0, equity))
        if fee:
            acct.cross_wallet -= fee
            acct.ledger["fees"] += fee
            self._income(acct, symbol, "INSURANCE_CLEAR", -fee)
            self.out.append(BalanceUpdate(self.now, acct.id, acct.cross_wallet, -fee, "LIQUIDATION_FEE"))
            self._fund(fee, "CLEARANCE_FEE", symbol, acct.id)
        if isolated and equity < 0:
            self._top_up(acct, symbol, -equity)
        if order.status in ("NEW", "PARTIALLY_FILLED"):
            self._finish(acct, order, "EXPIRED", "EXPIRED", "LIQUIDATION")
        self.out.append(Liquidation(
            self.now, acct.id, symbol, side, order.side, order.filled, order.avg_price, mark, bankrupt, fee,
            acct.ledger["realized_pnl"] - realized_before, partial, isolated, order.id))
        self._account_changed(acct)

    def _fund(self: "Exchange", change: int, reason: str, symbol: str, account: int | None) -> None:
        if not change:
            return
        self.insurance_fund += change
        self.out.append(InsuranceFundChange(self.now, symbol, change, self.insurance_fund, reason, account))

    def _top_up(self: "Exchange", acct: Account, symbol: str, amount: int | None = None) -> None:
        """The fund pays a negative cross wallet back to 0 (or ``amount`` lost beyond isolated margin)."""
        amount = -acct.cross_wallet if amount is None else amount
        if amount <= 0:
            return
        acct.cross_wallet += amount
        acct.ledger["insurance"] += amount
        self.out.append(BalanceUpdate(self.now, acct.id, acct.cross_wallet, amount, "INSURANCE_TOP_UP"))
        self._fund(-amount, "TOP_UP", symbol, acct.id)

    def adl_ranking(self: "Exchange", symbol: str, long_side: bool) -> list[Position]:
        """Profitable positions on one side of ``symbol``, highest ADL priority first."""
        mark = self.markets[symbol].mark
        ranked = []
        for pos in sorted(self.positions_by_symbol[symbol], key=lambda p: (p.account, p.side)):
            aid = pos.account
            if (pos.qty > 0) != long_side:
                continue
            pnl = pos.pnl(mark)
            if pnl <= 0:
                continue
            acct = self.accounts[aid]
            unit = pos.unit if pos.isolated else acct.unit
            ratio = self.unit_ratio(unit) if unit is not None else 0
            wallet = pos.isolated_wallet if pos.isolated else acct.cross_wallet
            score = pnl * SCALE // max(SCALE, wallet) * ratio // SCALE
            ranked.append((-score, aid, pos.side, pos))
        ranked.sort(key=lambda r: r[:3])
        return [r[3] for r in ranked]

    def _auto_deleverage(self: "Exchange", symbol: str, bankrupt_long: bool, qty: int, price: int,
                         counterparty: int) -> int:
        """Close ``qty`` of opposite-side profitable positions at ``price``; returns what is left."""
        for pos in self.adl_ranking(symbol, not bankrupt_long):
            if not qty:
                break
            if pos.account == counterparty or not pos.qty:
                continue
            acct = self.accounts[pos.account]
            self._cancel_where(acct, lambda o: False, "ADL")
            take = min(qty, abs(pos.qty))
            side = SELL if pos.qty > 0 else BUY
            cmd = PlaceOrder(ts=self.now, account=acct.id, symbol=symbol, side=side, order_type=LIMIT, qty=take,
                             price=price, time_in_force=IOC, reduce_only=True, position_side=pos.side)
            order = Order(0, cmd, "")
            self._assign_id(order)
            order.client_id = f"adl_autoclose-{order.id}"
            order.reason = "ADL"
            self._open_order(acct, order)
            pos_side = pos.side
            self._fill(acct, order, take, price, maker=False, reason="ADL", fee_rate=0)
            self.out.append(Adl(self.now, acct.id, symbol, pos_side, take, price, counterparty, order.id))
            qty -= take
        return qty

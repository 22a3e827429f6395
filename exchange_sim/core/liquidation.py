"""The liquidation engine, the insurance fund and auto-deleveraging (margin-rules.md §2-4).

It owns the insurance fund and acts on the margin monitor's ``LIQUIDATE`` verdicts. When a risk
unit's margin ratio reaches 100%:

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
   max(1, wallet)), with their open orders cancelled and no fee. With ``venue_adl`` (cluster mode)
   the core records an ADL claim instead and the venue's coordinator deleverages the positions of
   every shard against it (``adl_claims.py``).
5. Clearance fee: ``liquidation_fee`` × liquidated notional, but never more than the equity the
   position had left after its fills; it goes to the fund. What is left of that equity after the
   fee returns to the trader (with the venue's 1.25% fee that is nothing: the trader loses the
   whole margin and the fund keeps what the fill achieved above the bankruptcy price).
6. A wallet never ends negative: the fund tops it back to 0.

Fills and cancels go through the order manager, money through the ledger.
"""

from __future__ import annotations

from typing import Mapping

from .accounts import Account, Position
from .adl_claims import AdlClaims
from .exchange_config import ExchangeConfig
from .fixed import SCALE
from .instruments import Instrument
from .ledger import Ledger
from .margin import margin_ratio
from .matching import SymbolMarket
from .messages import BUY, IOC, LIMIT, SELL, Adl, InsuranceFundChange, Liquidation, PlaceOrder
from .monitor import Verdict
from .order_manager import OrderManager
from .orders import Order
from .risk_view import RiskView


class LiquidationEngine:
    def __init__(self, instruments: Mapping[str, Instrument], config: ExchangeConfig,
                 markets: Mapping[str, SymbolMarket], ledger: Ledger, orders: OrderManager, view: RiskView) -> None:
        self.instruments = instruments
        self.config = config
        self.markets = markets
        self.ledger = ledger
        self.orders = orders
        self.view = view
        self.insurance_fund = config.insurance_fund
        self.next_liquidation_id = 0
        self.claims = AdlClaims()

    def execute(self, verdict: Verdict, now: int) -> list:
        """Liquidate the unit of a ``LIQUIDATE`` verdict; returns the events, in order."""
        unit = verdict.unit
        acct = self.ledger.accounts[unit.account]
        view = self.view
        out: list = []
        iso = unit.position
        if iso is not None:
            self.orders.cancel_where(out, acct, lambda o: not (o.symbol == iso.symbol and (
                not acct.hedge or o.position_side == iso.side)), "LIQUIDATION", now)
        else:
            self.orders.cancel_where(out, acct, lambda o: o.symbol in acct.isolated, "LIQUIDATION", now)
        # partial liquidation of positions above the lowest tier, largest first
        for pos in sorted(verdict.positions, key=lambda p: (-p.notional(view.mark_of(p)), p.symbol, p.side)):
            inst = self.instruments[pos.symbol]
            mark = view.mark_of(pos)
            tier = inst.tier_for_notional(pos.notional(mark))
            if tier.bracket < max(2, self.config.partial_liquidation_min_tier) or not pos.qty:
                continue
            cap = inst.tiers[tier.bracket - 2].cap
            keep = cap * SCALE // mark // inst.step_size * inst.step_size
            close = abs(pos.qty) - keep
            if close <= 0:
                continue
            self._liquidation_order(out, acct, pos, close, True, now)
            remaining = view.unit_positions(unit.account, unit.position)
            if remaining and margin_ratio(*view.unit_margin(unit.account, unit.position, remaining)) < SCALE:
                return out  # back within maintenance: the monitor judges the unit again
        for pos in view.unit_positions(unit.account, unit.position):
            self._liquidation_order(out, acct, pos, abs(pos.qty), False, now)
        if acct.cross_wallet < 0:
            self._top_up(out, acct, "", -acct.cross_wallet, now)
        return out

    def _liquidation_order(self, out: list, acct: Account, pos: Position, qty: int, partial: bool,
                           now: int) -> None:
        """Close ``qty`` of ``pos`` by a liquidation IOC at the bankruptcy price, then settle it."""
        mkt = self.markets[pos.symbol]
        inst = mkt.inst
        mark = self.view.mark_of(pos)
        long = pos.qty > 0
        bankrupt = self.view.bankruptcy_price_of(acct, pos)
        tick = inst.tick_size
        limit = -(-bankrupt // tick) * tick if long else bankrupt // tick * tick
        self.next_liquidation_id += 1
        cmd = PlaceOrder(ts=now, account=acct.id, symbol=pos.symbol, side=SELL if long else BUY,
                         order_type=LIMIT, qty=qty, price=limit, time_in_force=IOC, reduce_only=True,
                         position_side=pos.side)
        order = Order(0, cmd, "")
        orders = self.orders
        orders.assign_id(order)
        order.client_id = f"autoclose-{self.next_liquidation_id}"
        order.reason = "LIQUIDATION"
        orders.open_order(acct, order)
        orders.emit_order(out, order, "NEW", now)
        symbol, side, isolated = pos.symbol, pos.side, pos.isolated
        cross_before = acct.cross_wallet
        realized_before = acct.ledger["realized_pnl"]
        for price, take in mkt.taker_fills(not long, qty, limit, self.config.half_spread):
            orders.fill(out, acct, order, take, price, False, now, reason="LIQUIDATION", fee_rate=0)
        rest = qty - order.filled
        if rest > 0:
            price = limit if limit > 0 else mark
            fund_pnl = (mark - price) * rest // SCALE if long else (price - mark) * rest // SCALE
            if self.insurance_fund + fund_pnl >= 0 or not self.config.adl_enabled:
                orders.fill(out, acct, order, rest, price, False, now, reason="INSURANCE_TAKEOVER", fee_rate=0)
                self._fund(out, fund_pnl, "TAKEOVER", symbol, acct.id, now)
            else:
                orders.fill(out, acct, order, rest, price, False, now, reason="ADL", fee_rate=0)
                if self.config.venue_adl:  # the venue's coordinator deleverages (adl_claims.py)
                    out.append(self.claims.open(symbol, long, rest, price, fund_pnl, acct.id, now))
                    left = 0
                else:
                    left = self._auto_deleverage(out, symbol, long, rest, price, acct.id, now)
                if left:
                    self._fund(out, fund_pnl * left // rest, "TAKEOVER", symbol, acct.id, now)
        # equity the closed part had left: isolated -> what came back to the cross wallet
        if isolated:
            equity = acct.cross_wallet - cross_before
        else:
            equity = acct.cross_wallet + sum(p.pnl(self.view.mark_of(p)) for p in acct.positions.values()
                                             if not p.isolated and p.qty)
        fee = min(inst.liquidation_fee * order.cum_quote // SCALE, max(0, equity))
        if fee:
            out += self.ledger.clearance_fee(acct, fee, symbol, now)
            self._fund(out, fee, "CLEARANCE_FEE", symbol, acct.id, now)
        if isolated and equity < 0:
            self._top_up(out, acct, symbol, -equity, now)
        if order.status in ("NEW", "PARTIALLY_FILLED"):
            orders.finish(out, acct, order, "EXPIRED", "EXPIRED", "LIQUIDATION", now)
        out.append(Liquidation(
            now, acct.id, symbol, side, order.side, order.filled, order.avg_price, mark, bankrupt, fee,
            acct.ledger["realized_pnl"] - realized_before, partial, isolated, order.id))

    def _fund(self, out: list, change: int, reason: str, symbol: str, account: int | None, now: int) -> None:
        if not change:
            return
        self.insurance_fund += change
        out.append(InsuranceFundChange(now, symbol, change, self.insurance_fund, reason, account))

    def take_over(self, out: list, change: int, symbol: str, account: int, now: int) -> None:
        """The fund books a takeover's gain or loss (an ADL claim's leftover: adl_claims.py)."""
        self._fund(out, change, "TAKEOVER", symbol, account, now)

    def _top_up(self, out: list, acct: Account, symbol: str, amount: int, now: int) -> None:
        """The fund pays a negative cross wallet back to 0 (or ``amount`` lost beyond isolated margin)."""
        if amount <= 0:
            return
        out += self.ledger.insurance_top_up(acct, amount, now)
        self._fund(out, -amount, "TOP_UP", symbol, acct.id, now)

    def adl_ranking(self, symbol: str, long_side: bool) -> list[Position]:
        """Profitable positions on one side of ``symbol``, highest ADL priority first."""
        return [r[3] for r in self.adl_candidates(symbol, long_side)]

    def adl_candidates(self, symbol: str, long_side: bool) -> list[tuple[int, int, str, Position]]:
        """``(-score, account, position side, position)`` of ``adl_ranking``, in its order."""
        mark = self.markets[symbol].mark
        ranked = []
        for pos in sorted(self.ledger.positions_by_symbol[symbol], key=lambda p: (p.account, p.side)):
            aid = pos.account
            if (pos.qty > 0) != long_side:
                continue
            pnl = pos.pnl(mark)
            if pnl <= 0:
                continue
            acct = self.ledger.accounts[aid]
            ratio = self.view.unit_ratio(acct, pos)
            wallet = pos.isolated_wallet if pos.isolated else acct.cross_wallet
            score = pnl * SCALE // max(SCALE, wallet) * ratio // SCALE
            ranked.append((-score, aid, pos.side, pos))
        ranked.sort(key=lambda r: r[:3])
        return ranked

    def _auto_deleverage(self, out: list, symbol: str, bankrupt_long: bool, qty: int, price: int,
                         counterparty: int, now: int) -> int:
        """Close ``qty`` of opposite-side profitable positions at ``price``; returns what is left."""
        for pos in self.adl_ranking(symbol, not bankrupt_long):
            if not qty:
                break
            if pos.account == counterparty or not pos.qty:
                continue
            qty -= self.deleverage(out, pos, min(qty, abs(pos.qty)), price, counterparty, now)
        return qty

    def deleverage(self, out: list, pos: Position, take: int, price: int, counterparty: int, now: int) -> int:
        """Close ``take`` of ``pos`` at ``price`` (no fee), its account's open orders cancelled; ``take``."""
        acct = self.ledger.accounts[pos.account]
        symbol = pos.symbol
        self.orders.cancel_where(out, acct, lambda o: False, "ADL", now)
        side = SELL if pos.qty > 0 else BUY
        cmd = PlaceOrder(ts=now, account=acct.id, symbol=symbol, side=side, order_type=LIMIT, qty=take,
                         price=price, time_in_force=IOC, reduce_only=True, position_side=pos.side)
        order = Order(0, cmd, "")
        self.orders.assign_id(order)
        order.client_id = f"adl_autoclose-{order.id}"
        order.reason = "ADL"
        self.orders.open_order(acct, order)
        pos_side = pos.side
        self.orders.fill(out, acct, order, take, price, False, now, reason="ADL", fee_rate=0)
        out.append(Adl(now, acct.id, symbol, pos_side, take, price, counterparty, order.id))
        return take

"""Small builders for core tests: an exchange, accounts, books, marks, in plain decimal text."""

from __future__ import annotations

import dataclasses
import pickle
from decimal import ROUND_HALF_UP, Decimal

from exchange_sim.core.exchange import Exchange, ExchangeConfig
from exchange_sim.core.fixed import SCALE, to_fixed
from exchange_sim.core.messages import (
    BookSnapshot, CreateAccount, MarkPrice, PlaceOrder, SetLeverage, SetMarginType, Trade,
)
from exchange_sim.profiles import load_profile

F = to_fixed


def instruments(fees: bool = True, liquidation_fee: str | None = None):
    """The shipped Binance profile, optionally without trading fees or with another clearance fee."""
    insts = load_profile()
    out = {}
    for sym, inst in insts.items():
        changes = {}
        if not fees:
            changes.update(maker_fee=0, taker_fee=0)
        if liquidation_fee is not None:
            changes["liquidation_fee"] = F(liquidation_fee)
        out[sym] = dataclasses.replace(inst, **changes)
    return out


def exchange(fees: bool = True, liquidation_fee: str | None = None, **config) -> Exchange:
    cfg = ExchangeConfig(**{k: (F(v) if isinstance(v, str) else v) for k, v in config.items()})
    return Exchange(instruments(fees, liquidation_fee), cfg)


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000_000

    def __call__(self) -> int:
        self.t += 1
        return self.t


def money(units: int, places: int = 2) -> Decimal:
    """Fixed units as a Decimal rounded half-up to ``places`` (how the doc prints its numbers)."""
    return (Decimal(units) / SCALE).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def book(ex: Exchange, ts: int, symbol: str, bid: str, ask: str, qty: str = "1000", levels: int = 1,
         step: str = "0") -> list:
    bids = tuple((F(bid) - i * F(step), F(qty)) for i in range(levels))
    asks = tuple((F(ask) + i * F(step), F(qty)) for i in range(levels))
    return ex.apply(BookSnapshot(ts, symbol, bids, asks, 1))


def mark(ex: Exchange, ts: int, symbol: str, price: str) -> list:
    return ex.apply(MarkPrice(ts, symbol, F(price)))


def trade(ex: Exchange, ts: int, symbol: str, price: str, qty: str, taker: str = "BUY") -> list:
    return ex.apply(Trade(ts, symbol, F(price), F(qty), taker))


def account(ex: Exchange, ts: int, deposit: str, name: str = "t", parent: int | None = None) -> int:
    events = ex.apply(CreateAccount(ts, name, parent, F(deposit)))
    return events[0].account


def open_position(ex: Exchange, clock: Clock, aid: int, symbol: str, side: str, qty: str, price: str,
                  leverage: int, isolated: bool) -> list:
    """Open a position at exactly ``price``: the book offers it there, the mark sits there."""
    tick = ex.instruments[symbol].tick_size
    p = F(price)
    ex.apply(BookSnapshot(clock(), symbol, ((p - tick, F("100000")),), ((p, F("100000")),), 1) if side == "BUY"
             else BookSnapshot(clock(), symbol, ((p, F("100000")),), ((p + tick, F("100000")),), 1))
    ex.apply(MarkPrice(clock(), symbol, p))
    if isolated != ex.is_isolated(aid, symbol):
        ex.apply(SetMarginType(clock(), aid, symbol, isolated))
    ex.apply(SetLeverage(clock(), aid, symbol, leverage))
    return ex.apply(PlaceOrder(clock(), aid, symbol, side, "MARKET", qty=F(qty)))


def fingerprint(ex: Exchange) -> bytes:
    """Everything a client can observe, for 'nothing changed' assertions."""
    state = []
    for aid in ex.account_ids():
        state.append((ex.account_view(aid), ex.all_orders(aid), ex.trades(aid), ex.income(aid),
                      ex.hedge_mode(aid), sorted(ex.accounts[aid].isolated), sorted(ex.accounts[aid].leverage.items()),
                      sorted(ex.accounts[aid].auto_add)))
    markets = [ex.market(s) for s in ex.instruments]
    return pickle.dumps((state, markets, ex.insurance_fund, ex.next_order_id, ex.next_trade_id,
                         ex.next_account_id))

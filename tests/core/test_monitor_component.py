"""The margin monitor alone, fed positions and marks (no Exchange), checked against the model.

The ledger books positions and money, the markets hold marks; the monitor learns of changes
from the ledger's change list and of prices from ``on_mark``, and returns verdicts. Its guard
prices must sit at the independent model's roots of the ratio curve (``tests/core/model.py``),
on both sides of the mark.
"""

from fractions import Fraction

import pytest

from exchange_sim.core.exchange_config import ExchangeConfig
from exchange_sim.core.fixed import SCALE
from exchange_sim.core.fixed import to_fixed as F
from exchange_sim.core.accounts import Account
from exchange_sim.core.ledger import Ledger
from exchange_sim.core.matching import SymbolMarket
from exchange_sim.core.monitor import CALL, LIQUIDATE, WARN, MarginMonitor
from exchange_sim.core.risk_view import RiskView
from tests.core import model as M
from tests.support.core_helpers import instruments

CFG = ExchangeConfig()


class Desk:
    """A ledger, markets and a monitor wired together by hand, the way the Exchange wires them."""

    def __init__(self) -> None:
        self.instruments = instruments(fees=False)
        self.markets = {s: SymbolMarket(i) for s, i in self.instruments.items()}
        self.ledger = Ledger(self.instruments)
        self.view = RiskView(self.instruments, self.markets, self.ledger)
        self.monitor = MarginMonitor(self.instruments, CFG)

    def account(self, aid: int, wallet: str) -> Account:
        acct = Account(aid, f"a{aid}", None, "", "", 0)
        self.ledger.add_account(acct)
        self.ledger.credit(acct, F(wallet), "deposits", "DEPOSIT", "TRANSFER", 0)
        return acct

    def fill(self, acct: Account, symbol: str, side: str, qty: str, price: str, leverage: int,
             isolated: bool = False) -> None:
        pos = acct.positions.get((symbol, side)) or self.ledger.open_position(
            acct, symbol, side, isolated, leverage, False)
        self.ledger.apply_fill(acct, pos, F(qty), F(price), 0)

    def mark(self, symbol: str, price: str | int) -> list:
        units = F(price) if isinstance(price, str) else price
        self.markets[symbol].mark = units
        self.monitor.absorb(self.ledger.take_changes())
        self.monitor.on_mark(symbol, units)
        return self.judge()

    def judge(self) -> list:
        verdicts = []
        self.monitor.absorb(self.ledger.take_changes())
        while (unit := self.monitor.next_dirty()) is not None:
            verdicts += self.monitor.judge(unit, self.view, 0)
        return verdicts

    def guards(self, symbol: str) -> tuple[list[int], list[int]]:
        return (sorted(-k[0] for k in self.monitor.guards_down[symbol]),
                sorted(k[0] for k in self.monitor.guards_up[symbol]))


def _model_unit(acct: Account) -> M.RiskUnit:
    legs = tuple(M.Leg(p.symbol, p.side, Fraction(p.qty, SCALE), Fraction(p.cost, abs(p.qty)), p.isolated,
                       Fraction(p.isolated_wallet, SCALE)) for p in acct.positions.values())
    state = M.AccountState(acct.id, Fraction(acct.cross_wallet, SCALE), legs)
    (unit,) = M.risk_units(state)
    return unit


def test_a_cross_hedge_book_is_guarded_at_both_model_roots_and_liquidated_above_the_upper_one():
    desk = Desk()
    acct = desk.account(1, "1200000")
    desk.markets["ETHUSDT"].mark = F("3000")
    desk.fill(acct, "ETHUSDT", "LONG", "5000", "3000", 25)
    desk.fill(acct, "ETHUSDT", "SHORT", "-4000", "3000", 25)
    assert desk.judge() == []  # ratio 23%: below every threshold
    unit = _model_unit(acct)
    roots = M.Model().roots(unit, "ETHUSDT", {"ETHUSDT": Fraction(3000)}, Fraction(6, 10))  # warning at 60%
    below, above = [r for r in roots if r < 3000], [r for r in roots if r > 3000]
    down, up = desk.guards("ETHUSDT")
    assert len(down) == len(up) == 1
    assert abs(Fraction(down[0], SCALE) - max(below)) < Fraction(1, SCALE)
    assert abs(Fraction(up[0], SCALE) - min(above)) < Fraction(1, SCALE)
    liq = M.Model().liquidation_prices(unit, "ETHUSDT", {"ETHUSDT": Fraction(3000)})
    assert [round(float(p), 2) for p in liq] == [1952.86, 124956.35]
    assert [v.kind for v in desk.mark("ETHUSDT", "100000")] == [CALL]  # past 60% and 80% in one move
    assert desk.mark("ETHUSDT", "124956.34") == []
    verdicts = desk.mark("ETHUSDT", "124956.36")
    assert [v.kind for v in verdicts] == [LIQUIDATE]  # already called: no second call
    assert {p.side for p in verdicts[0].positions} == {"LONG", "SHORT"}


@pytest.mark.parametrize("side,qty,lev,isolated", [
    ("BOTH", "1", 10, True), ("BOTH", "-1", 10, True), ("BOTH", "0.9", 10, True), ("BOTH", "1", 50, True),
    ("BOTH", "-0.5", 20, False), ("BOTH", "2", 5, False),
])
def test_one_leg_guards_sit_at_the_model_root_on_the_losing_side(side, qty, lev, isolated):
    desk = Desk()
    acct = desk.account(1, "20000")
    desk.markets["BTCUSDT"].mark = F("60000")
    desk.fill(acct, "BTCUSDT", side, qty, "60000", lev, isolated)
    assert desk.judge() == []
    unit = _model_unit(acct)
    roots = M.Model().roots(unit, "BTCUSDT", {"BTCUSDT": Fraction(60000)}, Fraction(6, 10))
    down, up = desk.guards("BTCUSDT")
    guards = [Fraction(g, SCALE) for g in down + up]
    assert len(guards) == len(roots) == 1
    assert abs(guards[0] - roots[0]) < Fraction(1, SCALE)
    assert (down != []) == (F(qty) > 0)  # a long is guarded below, a short above
    tick = desk.instruments["BTCUSDT"].tick_size
    guard = (down + up)[0]
    short_of = guard + tick if F(qty) > 0 else guard - tick
    assert desk.mark("BTCUSDT", short_of) == []
    assert [v.kind for v in desk.mark("BTCUSDT", guard - tick if F(qty) > 0 else guard + tick)] == [WARN]


def test_an_isolated_fill_re_judges_the_cross_unit_of_its_account():
    desk = Desk()
    acct = desk.account(1, "10000")
    desk.markets["ETHUSDT"].mark = F("3000")
    desk.markets["BTCUSDT"].mark = F("60000")
    desk.fill(acct, "ETHUSDT", "BOTH", "10", "3000", 10)
    desk.judge()
    assert desk.guards("ETHUSDT")[0][-1] > F("2008")  # the warning guard, above the 2,008.03 LP
    desk.fill(acct, "BTCUSDT", "BOTH", "0.1", "60000", 1, isolated=True)  # 6,000 leave the cross wallet
    desk.markets["ETHUSDT"].mark = F("2500")  # no guard crossed yet: the cross unit must be judged anyway
    kinds = [v.kind for v in desk.judge()]
    assert LIQUIDATE in kinds

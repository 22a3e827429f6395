"""The two textbook scenarios (issue: exchange core), end to end through the Exchange.

(1) margin-rules.md example E: 1,000 USDT, a BTC long with 100 USDT initial margin and ~50 USDT
maintenance (0.25 BTC at 50,000 = 12,500 at 125x: IM 100, MM 50 in tier 1).
(2) 10,000 USDT, BTC long 10x and ETH short 5x, in cross and in isolated.
"""

from decimal import Decimal

from exchange_sim.core.fixed import to_fixed as F
from exchange_sim.core.messages import Liquidation
from tests.support.core_helpers import Clock, account, exchange, mark, money, open_position


def liquidations(events):
    return [e for e in events if isinstance(e, Liquidation)]


def classroom_pair(liquidation_fee=None):
    ex, c = exchange(fees=False, liquidation_fee=liquidation_fee, half_spread=0), Clock()
    iso = account(ex, c(), "1000", "isolated")
    cross = account(ex, c(), "1000", "cross")
    open_position(ex, c, iso, "BTCUSDT", "BUY", "0.25", "50000", 125, isolated=True)
    open_position(ex, c, cross, "BTCUSDT", "BUY", "0.25", "50000", 125, isolated=False)
    ex.apply(__import__("exchange_sim.core.messages", fromlist=["BookSnapshot"]).BookSnapshot(c(), "BTCUSDT", (), (), 2))
    return ex, c, iso, cross


def test_example_e_plain_numbers_isolated_loses_50_cross_survives():
    # "plain numbers": no clearance fee, the leftover equity at the liquidation price comes back
    ex, c, iso, cross = classroom_pair(liquidation_fee="0")
    p_iso = ex.positions(iso)[0]
    assert money(p_iso.initial_margin) == Decimal("100") and money(p_iso.maintenance_margin) == Decimal("50")
    assert money(p_iso.liquidation_price) == Decimal("49799.20")
    events = mark(ex, c(), "BTCUSDT", "49799")  # a 50.25 USDT loss
    assert [liq.account for liq in liquidations(events)] == [iso]
    iso_view, cross_view = ex.account_view(iso), ex.account_view(cross)
    # isolated: lost ~50 (the loss up to the liquidation price), 950 left untouched
    assert money(iso_view.wallet_balance) == Decimal("949.75")
    assert iso_view.positions == ()
    # cross: same loss, equity ~950, far above maintenance: the position stays open
    assert money(cross_view.margin_balance) == Decimal("949.75")
    assert len(cross_view.positions) == 1 and cross_view.cross_margin_ratio < F("0.06")
    # the move continues: the whole 1,000 is at risk and the cross account is taken down
    lp = cross_view.positions[0].liquidation_price
    assert money(lp) == Decimal("46184.74")
    events = mark(ex, c(), "BTCUSDT", "46184")
    assert [liq.account for liq in liquidations(events)] == [cross]
    assert money(ex.account_view(cross).wallet_balance) < Decimal("50")
    assert money(ex.account_view(iso).wallet_balance) == Decimal("949.75")  # untouched by the rest
    assert ex.wallet_invariant_holds()


def test_example_e_with_the_venue_clearance_fee_isolated_caps_the_loss_at_the_margin():
    ex, c, iso, cross = classroom_pair()  # Binance's 1.25% clearance fee
    mark(ex, c(), "BTCUSDT", "49799")
    assert money(ex.account_view(iso).wallet_balance) == Decimal("900")  # whole 100 lost, 900 untouched
    assert ex.account_view(cross).positions
    mark(ex, c(), "BTCUSDT", "46184")
    assert money(ex.account_view(cross).wallet_balance) == Decimal("0")  # the whole 1,000
    assert ex.wallet_invariant_holds()


def portfolio(isolated: bool):
    ex, c = exchange(fees=False), Clock()
    a = account(ex, c(), "10000")
    open_position(ex, c, a, "BTCUSDT", "BUY", "0.5", "60000", 10, isolated)  # IM 3,000
    open_position(ex, c, a, "ETHUSDT", "SELL", "10", "3000", 5, isolated)  # IM 6,000
    ex.apply(__import__("exchange_sim.core.messages", fromlist=["BookSnapshot"]).BookSnapshot(c(), "BTCUSDT", (), (), 9))
    ex.apply(__import__("exchange_sim.core.messages", fromlist=["BookSnapshot"]).BookSnapshot(c(), "ETHUSDT", (), (), 9))
    return ex, c, a


def test_portfolio_cross_winner_holds_up_the_loser_then_the_domino():
    ex, c, a = portfolio(isolated=False)
    mark(ex, c(), "ETHUSDT", "2500")  # the short wins 5,000
    events = mark(ex, c(), "BTCUSDT", "54000")  # the long loses 3,000: below its isolated LP (54,216.87)
    assert not liquidations(events)
    view = ex.account_view(a)
    assert len(view.positions) == 2 and money(view.margin_balance) == Decimal("12000")
    # both turn: ETH squeezes and BTC keeps falling
    events = mark(ex, c(), "ETHUSDT", "3600") + mark(ex, c(), "BTCUSDT", "47000")
    liqs = liquidations(events)
    assert {liq.symbol for liq in liqs} == {"BTCUSDT", "ETHUSDT"}  # every cross position together
    assert len({liq.ts for liq in liqs}) == 1
    assert ex.positions(a) == [] and ex.account_view(a).wallet_balance >= 0
    assert ex.wallet_invariant_holds()


def test_portfolio_isolated_each_leg_liquidated_alone():
    ex, c, a = portfolio(isolated=True)
    btc, eth = ex.positions(a, "BTCUSDT")[0], ex.positions(a, "ETHUSDT")[0]
    assert money(btc.liquidation_price) == Decimal("54216.87")
    assert money(eth.liquidation_price) == Decimal("3585.66")
    mark(ex, c(), "ETHUSDT", "2500")
    events = mark(ex, c(), "BTCUSDT", "54000")
    assert [liq.symbol for liq in liquidations(events)] == ["BTCUSDT"]  # the winner did not save it
    wallet_after_btc = ex.account_view(a).wallet_balance
    assert money(10000 * 10**8 - wallet_after_btc) == Decimal("3000")  # lost exactly its margin
    events = mark(ex, c(), "ETHUSDT", "3600")
    assert [liq.symbol for liq in liquidations(events)] == ["ETHUSDT"]
    assert money(ex.account_view(a).wallet_balance) == Decimal("1000")  # 10,000 - 3,000 - 6,000
    assert ex.wallet_invariant_holds()

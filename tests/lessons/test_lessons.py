"""The three lessons run on the real core, and their numbers match margin-rules.md's formulas."""

from __future__ import annotations

from decimal import Decimal

import pytest

from exchange_sim.core.fixed import SCALE, to_fixed
from exchange_sim.lessons import (
    LESSONS,
    LessonError,
    build_lesson,
    cross_vs_isolated,
    lesson_scenario,
    leverage,
    plot_report,
    portfolio,
    print_report,
)
from exchange_sim.profiles import profile_data

CENT = Decimal("0.01")

# ----------------------------------------------------------------------------- formulas (margin-rules.md)


def tiers(symbol: str) -> list[tuple[Decimal, Decimal, Decimal, Decimal]]:
    """(floor, cap, mmr, cum) with cum_k = cum_{k-1} + floor_k × (MMR_k − MMR_{k−1})."""
    out, cum, prev = [], Decimal(0), Decimal(0)
    for t in profile_data()["symbols"][symbol]["tiers"]:
        floor, mmr = Decimal(t["notional_floor"]), Decimal(t["mmr"])
        cum += floor * (mmr - prev)
        prev = mmr
        out.append((floor, Decimal(t["notional_cap"]), mmr, cum))
    return out


def liquidation_price(symbol: str, qty: Decimal, entry: Decimal, wallet: Decimal) -> Decimal:
    """One-way LP: long (Q·EP − W′ − cum)/(Q(1 − MMR)), short (Q·EP + W′ + cum)/(Q(1 + MMR)),
    with the tier whose range contains Q·LP. ``qty`` signed; ``wallet`` is W′."""
    q = abs(qty)
    for floor, cap, mmr, cum in tiers(symbol):
        if qty > 0:
            lp = (q * entry - wallet - cum) / (q * (1 - mmr))
        else:
            lp = (q * entry + wallet + cum) / (q * (1 + mmr))
        if floor <= q * lp < cap:
            return lp
    raise AssertionError("no tier holds the LP")


def maintenance(symbol: str, notional: Decimal) -> Decimal:
    for _floor, cap, mmr, cum in tiers(symbol):
        if notional < cap:
            return notional * mmr - cum
    raise AssertionError


def dec(units: int) -> Decimal:
    return Decimal(units) / SCALE


def close(units: int, expected: Decimal, tol: Decimal = CENT) -> bool:
    return abs(dec(units) - expected) <= tol


# ----------------------------------------------------------------------------- cross vs isolated


@pytest.fixture(scope="module")
def cvi():
    return build_lesson("cross-vs-isolated")


def test_cross_vs_isolated_position_matches_example_e(cvi):
    run = cvi.run
    iso = next(p for p in run.opened if p.label == "isolated")
    cross = next(p for p in run.opened if p.label == "cross")
    for p in (iso, cross):
        assert dec(p.qty) == Decimal("0.25") and dec(p.entry_price) == Decimal(50000)
        assert p.leverage == 125
        assert dec(p.initial_margin) == Decimal(100)  # 12,500 / 125
        assert dec(p.maintenance_margin) == Decimal(50)  # 12,500 × 0.4%, tier 1
    assert iso.isolated and not cross.isolated
    assert close(iso.liquidation_price, liquidation_price("BTCUSDT", Decimal("0.25"), Decimal(50000), Decimal(100)))
    assert close(cross.liquidation_price, liquidation_price("BTCUSDT", Decimal("0.25"), Decimal(50000), Decimal(1000)))
    assert close(iso.liquidation_price, Decimal("49799.20"))
    assert close(cross.liquidation_price, Decimal("46184.74"))
    assert dec(iso.bankruptcy_price) == Decimal(49600)  # EP − WB/Q
    assert dec(cross.bankruptcy_price) == Decimal(46000)


def test_isolated_is_liquidated_first_losing_about_50(cvi):
    run = cvi.run
    lp_iso = liquidation_price("BTCUSDT", Decimal("0.25"), Decimal(50000), Decimal(100))
    step = run.first_liquidation_step("isolated")
    assert step is not None
    mark = dec(run.prices[step]["BTCUSDT"])
    assert mark <= lp_iso  # liquidated once the mark reaches the LP ...
    assert all(dec(p["BTCUSDT"]) > lp_iso for p in run.prices[:step])  # ... and not before
    # with zero fees the leftover equity at the liquidation price returns to the wallet
    lost = Decimal(1000) - dec(run.final_wallet("isolated"))
    assert lost == Decimal("0.25") * (Decimal(50000) - mark)
    assert Decimal(49) < lost < Decimal(51)  # "loses 50"
    assert Decimal(949) < dec(run.final_wallet("isolated")) < Decimal(951)  # "950 remain"
    # the cross account survives the same move, equity about 950, far above its maintenance
    assert run.first_liquidation_step("cross") > step
    assert run.equity["cross"][step] == run.equity["isolated"][step]
    assert dec(run.equity["cross"][step]) > 10 * maintenance("BTCUSDT", Decimal("0.25") * mark)


def test_cross_is_taken_down_when_the_move_continues(cvi):
    run = cvi.run
    lp_cross = liquidation_price("BTCUSDT", Decimal("0.25"), Decimal(50000), Decimal(1000))
    step = run.first_liquidation_step("cross")
    mark = dec(run.prices[step]["BTCUSDT"])
    assert mark <= lp_cross and all(dec(p["BTCUSDT"]) > lp_cross for p in run.prices[:step])
    lost = Decimal(1000) - dec(run.final_wallet("cross"))
    assert lost == Decimal("0.25") * (Decimal(50000) - mark)  # everything above maintenance
    assert lost > Decimal(950)


def test_with_venue_fees_isolated_forfeits_its_margin_and_cross_loses_everything(cvi):
    # taker fee 0.05% of 12,500 = 6.25 on opening; the 1.25% clearance fee eats the rest
    assert cvi.facts["venue_isolated_final"] == to_fixed("893.75")
    assert cvi.facts["venue_cross_final"] == 0


def test_cross_vs_isolated_output_says_fees_are_zero(cvi, tmp_path):
    from rich.console import Console

    console = Console(record=True, width=140)
    print_report(cvi, console)
    text = console.export_text()
    assert "liquidation clearance fee set to 0" in text and "example E" in text
    assert "LIQUIDATED" in text and "49,799.20" in text and "46,184.74" in text
    png = plot_report(cvi, tmp_path / "cvi.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- portfolio


def test_portfolio_liquidation_prices_match_the_formulas():
    report = build_lesson("portfolio")
    run = report.run
    opened = {(p.label, p.symbol): p for p in run.opened}
    fees = Decimal("0.0005") * (Decimal(30000) + Decimal(15000))  # taker fees of both opening orders
    wallet = Decimal(10000) - fees
    # isolated legs: W = the leg's isolated margin
    assert close(opened["isolated", "BTCUSDT"].liquidation_price,
                 liquidation_price("BTCUSDT", Decimal("0.5"), Decimal(60000), Decimal(3000)))
    assert close(opened["isolated", "ETHUSDT"].liquidation_price,
                 liquidation_price("ETHUSDT", Decimal(-5), Decimal(3000), Decimal(3000)))
    # cross legs: W′ = WB − TMM1 + UPNL1 (the other leg's maintenance; uPnL 0 at entry)
    assert close(opened["cross", "BTCUSDT"].liquidation_price,
                 liquidation_price("BTCUSDT", Decimal("0.5"), Decimal(60000),
                                   wallet - maintenance("ETHUSDT", Decimal(15000))))
    assert close(opened["cross", "ETHUSDT"].liquidation_price,
                 liquidation_price("ETHUSDT", Decimal(-5), Decimal(3000),
                                   wallet - maintenance("BTCUSDT", Decimal(30000))))


def test_portfolio_cross_holds_up_the_loser_then_dominoes():
    report = build_lesson("portfolio")
    run = report.run
    act1, act2, act3 = report.facts["act_ends"]
    iso_btc = [h for h in run.liquidations("isolated") if h.symbol == "BTCUSDT"]
    iso_eth = [h for h in run.liquidations("isolated") if h.symbol == "ETHUSDT"]
    assert iso_btc and iso_btc[0].step <= act1  # the isolated loser dies in act 1 ...
    assert run.first_liquidation_step("cross") > act2  # ... the cross account holds both legs
    assert run.equity["cross"][act2] > run.equity["isolated"][act2]  # and gets the recovery
    assert iso_eth and act2 < iso_eth[0].step <= act3
    cross_liqs = run.liquidations("cross")
    assert {h.symbol for h in cross_liqs} == {"BTCUSDT", "ETHUSDT"}  # the domino: both legs go
    assert run.final_wallet("cross") == 0
    # isolated loses the two margins (and the opening fees), keeps the rest
    fees = Decimal("0.0005") * Decimal(45000)
    assert dec(run.final_wallet("isolated")) == Decimal(10000) - fees - 3000 - 3000


# ----------------------------------------------------------------------------- leverage


def test_leverage_lesson_survivors_and_liquidation_prices():
    report = build_lesson("leverage")
    run = report.run
    opened = {p.label: p for p in run.opened}
    for lev, qty in leverage.LEVERAGES:
        p = opened[f"{lev}x"]
        assert p.leverage == lev and dec(p.initial_margin) == Decimal(600)
        assert close(p.liquidation_price, liquidation_price("BTCUSDT", Decimal(qty), Decimal(60000), Decimal(600)))
    assert close(opened["100x"].liquidation_price, Decimal("59648.24"))  # tier 2 at the LP (cum 50)
    assert report.facts["survivors"] == ["5x", "20x"]
    for lb in ("50x", "100x"):
        step = run.first_liquidation_step(lb)
        assert dec(run.prices[step]["BTCUSDT"]) <= dec(opened[lb].liquidation_price)
    # survivors ride the recovery: equity = deposit − opening fee + Q × (60,600 − 60,000)
    for lb, qty in (("5x", Decimal("0.05")), ("20x", Decimal("0.2"))):
        fee = Decimal("0.0005") * qty * 60000
        assert dec(report.facts["final_equity"][lb]) == Decimal(1000) - fee + qty * 600


def test_lessons_are_deterministic_and_known():
    assert set(LESSONS) == {"cross-vs-isolated", "portfolio", "leverage"}
    a = build_lesson("leverage").run
    b = build_lesson("leverage").run
    assert a.equity == b.equity and a.happenings == b.happenings
    with pytest.raises(LessonError):
        build_lesson("nope")
    assert lesson_scenario("portfolio").name == portfolio.NAME
    assert cross_vs_isolated.scenario().fees_off


def test_a_live_lesson_refuses_in_one_line_where_it_would_move_a_live_market():
    """A simulator without lesson instruments whose feed may be live: refused, and nothing created."""
    from typer.testing import CliRunner

    from exchange_sim.cli import app
    from exchange_sim.client import SimClient
    from tests.support.api_server import ADMIN_TOKEN, SimThread

    with SimThread() as st:
        res = CliRunner().invoke(app, ["lesson", "cross-vs-isolated", "--live", st.sim.url, "--admin-token",
                                       ADMIN_TOKEN, "--step-seconds", "0"])
        accounts = SimClient(st.sim.url, ADMIN_TOKEN).accounts()
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "would move the live market" in lines[0] and "--feed manual" in lines[0], res.output
    assert accounts == []

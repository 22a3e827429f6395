"""Lesson: the same BTC long in isolated and in cross margin (margin-rules.md, example E).

Two accounts of 1,000 USDT each buy 0.25 BTC at 50,000 at 125x: notional 12,500, initial margin
100, maintenance margin 50 (tier 1, MMR 0.4%). One is isolated (its risk is the 100 moved into the
position), one is cross (its risk is the whole wallet). The mark falls:

- to the isolated liquidation price (long: LP = (Q·EP − W − cum) / (Q·(1 − MMR)) with W = 100,
  about 49,799.20) the isolated account is liquidated: it loses about 50 and keeps about 950;
- the same move leaves the cross account with equity about 950, far above its 50 maintenance;
- the mark goes on falling to the cross liquidation price (W = 1,000, about 46,184.74) and the
  cross account is taken down with everything above maintenance gone.

Example E's plain numbers ignore fees, so the lesson runs on a lesson profile with trading and
clearance fees set to 0, and says so. A second run on the venue profile (1.25% clearance fee)
shows what the venue really does: the isolated account forfeits its whole 100 and the cross one
loses the whole account.
"""

from __future__ import annotations

from .report import LessonReport, pct, price_text, ratio_pct, usd
from .scenario import AccountPlan, Phase, PositionPlan, Scenario, ScenarioRun, run_scenario

NAME = "cross-vs-isolated"
DEPOSIT = "1000"
QTY = "0.25"
ENTRY = "50000"
LEVERAGE = 125
# phase 1 stops just through the isolated LP (49,799.1967…); phase 2 just through the cross LP
# (46,184.7389…) and on to the cross bankruptcy price 46,000.
PHASE_1 = ("49950", "49900", "49850", "49800", "49799.1", "49799.1")
PHASE_2 = ("49700", "49400", "49000", "48500", "48000", "47500", "47000", "46500", "46184.7", "46000")


def scenario(*, fees_off: bool = True) -> Scenario:
    long_btc = {False: PositionPlan("BTCUSDT", "BUY", QTY, LEVERAGE, isolated=False),
                True: PositionPlan("BTCUSDT", "BUY", QTY, LEVERAGE, isolated=True)}
    return Scenario(
        name=NAME,
        title="Cross vs isolated: the same 125x BTC long, the same fall",
        accounts=(AccountPlan("isolated", DEPOSIT, (long_btc[True],)),
                  AccountPlan("cross", DEPOSIT, (long_btc[False],))),
        start_prices={"BTCUSDT": ENTRY},
        path=tuple({"BTCUSDT": p} for p in PHASE_1 + PHASE_2),
        phases=(Phase(1, "fall to the isolated LP"), Phase(len(PHASE_1) + 1, "the fall goes on")),
        fees_off=fees_off,
    )


def _outcome(run: ScenarioRun, label: str) -> tuple[str, str, str]:
    liqs = run.liquidations(label)
    if not liqs:
        return "survives", "0.00", usd(run.final_wallet(label))
    first = liqs[0]
    deposit = run.wallet[label][0] + 0  # wallet after opening (fees already paid)
    return (f"step {first.step} @ {price_text(first.price)}", usd(deposit - run.final_wallet(label)),
            usd(run.final_wallet(label)))


def build(*, with_venue_fees: bool = True) -> LessonReport:
    """Run the lesson offline and describe it (plus the venue-fee comparison run)."""
    run = run_scenario(scenario(fees_off=True))
    venue = run_scenario(scenario(fees_off=False)) if with_venue_fees else None
    iso = next(p for p in run.opened if p.label == "isolated")
    cross = next(p for p in run.opened if p.label == "cross")
    iso_step = run.first_liquidation_step("isolated")
    cross_step = run.first_liquidation_step("cross")
    entry = iso.entry_price

    def at(step: int | None, label: str) -> str:
        return "—" if step is None else usd(run.equity[label][step])

    rows: list[tuple[str, ...]] = [
        ("deposit", usd(run.wallet["isolated"][0]), usd(run.wallet["cross"][0])),
        ("position", f"long {QTY} BTC @ {price_text(iso.entry_price)}", f"long {QTY} BTC @ {price_text(cross.entry_price)}"),
        ("margin mode, leverage", f"isolated, {iso.leverage}x", f"cross, {cross.leverage}x"),
        ("initial margin", usd(iso.initial_margin), usd(cross.initial_margin)),
        ("maintenance margin", usd(iso.maintenance_margin), usd(cross.maintenance_margin)),
        ("at risk", f"{usd(iso.initial_margin)} (isolated wallet)", f"{usd(run.wallet['cross'][0])} (whole wallet)"),
        ("liquidation price", price_text(iso.liquidation_price), price_text(cross.liquidation_price)),
        ("… distance from entry", pct(iso.liquidation_price - entry, entry), pct(cross.liquidation_price - entry, entry)),
        ("bankruptcy price", price_text(iso.bankruptcy_price), price_text(cross.bankruptcy_price)),
        (),
    ]
    if iso_step is not None:
        mark = run.prices[iso_step]["BTCUSDT"]
        rows.append((f"mark {price_text(mark)} (step {iso_step}): equity", at(iso_step, "isolated"), at(iso_step, "cross")))
        rows.append(("… what happened", "LIQUIDATED", "still open"))
    for label_row, fn in (("liquidated", _outcome),):
        iso_o, cross_o = fn(run, "isolated"), fn(run, "cross")
        rows.append((label_row, iso_o[0], cross_o[0]))
        if venue is not None:  # the venue's numbers first, then the fee-free textbook ones
            venue_iso, venue_cross = _outcome(venue, "isolated"), _outcome(venue, "cross")
            rows.append(("lost on the venue (fees)", venue_iso[1], venue_cross[1]))
            rows.append(("… wallet at the end (venue)", venue_iso[2], venue_cross[2]))
        rows.append(("lost, lesson profile (no fees)", iso_o[1], cross_o[1]))
        rows.append(("… wallet at the end (no fees)", iso_o[2], cross_o[2]))

    iso_liq = run.liquidations("isolated")
    cross_liq = run.liquidations("cross")
    story = [
        (f"Both accounts hold the same position: notional {usd(iso.qty * iso.entry_price // 10**8)}, "
         f"initial margin {usd(iso.initial_margin)}, maintenance {usd(iso.maintenance_margin)}."),
    ]
    if iso_liq and venue is not None:
        story.append(f"At {price_text(iso_liq[0].price)} the isolated position is liquidated: on the venue it loses "
                     f"{_outcome(venue, 'isolated')[1]}, its whole margin (the clearance fee takes what the liquidation "
                     f"leaves; {_outcome(run, 'isolated')[1]} on the fee-free lesson profile), and the rest of the "
                     "wallet is untouched.")
    elif iso_liq:
        story.append(f"At {price_text(iso_liq[0].price)} the isolated position is liquidated: it loses "
                     f"{_outcome(run, 'isolated')[1]} (lesson profile, no fees) and the other "
                     f"{_outcome(run, 'isolated')[2]} of the wallet is untouched.")
    if iso_step is not None:
        story.append(f"The same move leaves the cross account at equity {at(iso_step, 'cross')}, far above its "
                     f"{usd(cross.maintenance_margin)} maintenance: its position stays open.")
    if cross_liq:
        lost = (f"{_outcome(venue, 'cross')[1]} on the venue ({_outcome(run, 'cross')[1]} without fees)"
                if venue is not None else _outcome(run, "cross")[1])
        story.append(f"The fall goes on; at {price_text(cross_liq[0].price)} the cross account is liquidated and "
                     f"loses {lost}: the whole wallet was at risk.")
    facts: dict[str, object] = {"isolated_step": iso_step, "cross_step": cross_step,
                                "isolated_final": run.final_wallet("isolated"),
                                "cross_final": run.final_wallet("cross")}
    notes = [("Lesson profile: BTCUSDT with trading fees and the liquidation clearance fee set to 0, to reproduce "
              "the plain numbers of margin-rules.md example E (fees are ignored there).")]
    if venue is not None:
        facts["venue_isolated_final"] = venue.final_wallet("isolated")
        facts["venue_cross_final"] = venue.final_wallet("cross")
        facts["venue_run"] = venue
        notes.append(
            "With the venue's fees (0.05% taker, 1.25% clearance) the clearance fee is larger than the equity left "
            f"at the liquidation price: the isolated account ends with {usd(venue.final_wallet('isolated'))} "
            f"(its whole {usd(iso.initial_margin)} margin forfeited) and the cross account with "
            f"{usd(venue.final_wallet('cross'))}.")
    if run.opened:
        notes.append(f"Margin ratio = maintenance / margin balance; liquidation at 100%. Cross ratio at the isolated "
                     f"liquidation step: {ratio_margin(run, 'cross', iso_step)}.")
    return LessonReport(NAME, run.scenario.title, ("", "isolated", "cross"), tuple(rows), tuple(story),
                        tuple(notes), run, facts)


def ratio_margin(run: ScenarioRun, label: str, step: int | None) -> str:
    """Margin ratio of ``label`` at ``step`` from the recorded equity and the position's maintenance."""
    if step is None:
        return "—"
    pos = next(p for p in run.opened if p.label == label)
    mark = run.prices[step][pos.symbol]
    inst = run.instruments[pos.symbol]
    mm = inst.maintenance_margin(abs(pos.qty) * mark // 10**8)
    equity = run.equity[label][step]
    return "—" if equity <= 0 else ratio_pct(mm * 10**8 // equity)

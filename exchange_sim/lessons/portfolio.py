"""Lesson: a two-leg portfolio in cross and in isolated margin.

Two accounts of 10,000 USDT hold the same book: BTC long 0.5 @ 60,000 at 10x (initial margin
3,000) and ETH short 5 @ 3,000 at 5x (initial margin 3,000). One account is all cross, the other
all isolated. The path has three acts:

1. BTC falls 9.8% to 54,100 while ETH falls to 2,600: the isolated BTC leg reaches its LP
   (54,216.87 = (30,000 − 3,000) / (0.5 × 0.996)) and is liquidated; in cross the ETH short's
   profit holds the BTC long up and nothing is liquidated.
2. BTC recovers to 58,000, ETH stays at 2,600: the cross account gets the recovery, the isolated
   account's BTC loss is already final.
3. Both turn: BTC falls to 44,000 while ETH rallies to 3,800. Now the legs lose together: the
   isolated ETH short is liquidated at its own LP (3,585.66 = (15,000 + 3,000) / (5 × 1.004)),
   losing only its 3,000; the cross account is liquidated whole — the domino.

Runs on the venue profile (real trading and clearance fees).
"""

from __future__ import annotations

from exchange_sim.core.fixed import to_fixed

from .report import LessonReport, price_text, usd
from .scenario import AccountPlan, Phase, PositionPlan, Scenario, ScenarioRun, linear_path, run_scenario

NAME = "portfolio"
DEPOSIT = "10000"
START = {"BTCUSDT": "60000", "ETHUSDT": "3000"}
ACT_1 = {"BTCUSDT": "54100", "ETHUSDT": "2600"}
ACT_2 = {"BTCUSDT": "58000", "ETHUSDT": "2600"}
ACT_3 = {"BTCUSDT": "44000", "ETHUSDT": "3800"}
STEPS = (8, 6, 20)


def _legs(isolated: bool) -> tuple[PositionPlan, ...]:
    return (PositionPlan("BTCUSDT", "BUY", "0.5", 10, isolated),
            PositionPlan("ETHUSDT", "SELL", "5", 5, isolated))


def scenario(*, fees_off: bool = False) -> Scenario:
    path = (linear_path(START, ACT_1, STEPS[0]) + linear_path(ACT_1, ACT_2, STEPS[1])
            + linear_path(ACT_2, ACT_3, STEPS[2]))
    return Scenario(
        name=NAME,
        title="Portfolio: BTC long 10x + ETH short 5x, cross vs isolated",
        accounts=(AccountPlan("cross", DEPOSIT, _legs(False)), AccountPlan("isolated", DEPOSIT, _legs(True))),
        start_prices=dict(START),
        path=tuple(path),
        phases=(Phase(1, "BTC falls, ETH falls (short wins)"),
                Phase(STEPS[0] + 1, "BTC recovers"),
                Phase(STEPS[0] + STEPS[1] + 1, "both turn against")),
        fees_off=fees_off,
    )


def _liq_text(run: ScenarioRun, label: str, symbol: str) -> str:
    hits = [h for h in run.liquidations(label) if h.symbol == symbol]
    if not hits:
        return "open"
    return f"liquidated step {hits[0].step} @ {price_text(hits[0].price)}"


def build(*, fees_off: bool = False) -> LessonReport:
    run = run_scenario(scenario(fees_off=fees_off))
    act_ends = (STEPS[0], STEPS[0] + STEPS[1], sum(STEPS))
    rows: list[tuple[str, ...]] = [("deposit", usd(to_fixed(DEPOSIT)), usd(to_fixed(DEPOSIT)))]
    for symbol, what in (("BTCUSDT", "BTC long 0.5 @ 60,000, 10x"), ("ETHUSDT", "ETH short 5 @ 3,000, 5x")):
        cross = next(p for p in run.opened if p.label == "cross" and p.symbol == symbol)
        iso = next(p for p in run.opened if p.label == "isolated" and p.symbol == symbol)
        rows.append((what, "cross", "isolated"))
        rows.append(("… liquidation price at open", price_text(cross.liquidation_price), price_text(iso.liquidation_price)))
        rows.append(("… fate", _liq_text(run, "cross", symbol), _liq_text(run, "isolated", symbol)))
    rows.append(())
    names = ("end of act 1 (BTC −9.8%, ETH −13.3%)", "end of act 2 (BTC back to 58,000)", "end of act 3 (both against)")
    for name, step in zip(names, act_ends, strict=True):
        rows.append((f"equity, {name}", usd(run.equity["cross"][step]), usd(run.equity["isolated"][step])))
    rows.append(("wallet at the end", usd(run.final_wallet("cross")), usd(run.final_wallet("isolated"))))

    story = [
        ("Act 1: the isolated BTC leg hits its own liquidation price and is closed at a loss of its whole margin; "
         "in cross the ETH short's profit keeps the account healthy and both legs stay open."),
        (f"Act 2: BTC recovers. Cross equity {usd(run.equity['cross'][act_ends[1]])} vs isolated "
         f"{usd(run.equity['isolated'][act_ends[1]])}: the isolated loss was locked in."),
        (f"Act 3: both legs lose together. The isolated ETH short dies alone at its own price; the cross account "
         f"is one pool, so the domino takes all of it: cross ends with {usd(run.final_wallet('cross'))}, isolated "
         f"with {usd(run.final_wallet('isolated'))}."),
    ]
    notes = ["Venue profile: 0.05% taker fee and 1.25% clearance fee; liquidations fill at the mark of their step."
             if not fees_off else "Lesson profile with all fees set to 0."]
    facts: dict[str, object] = {"act_ends": act_ends}
    return LessonReport(NAME, run.scenario.title, ("", "cross", "isolated"), tuple(rows), tuple(story),
                        tuple(notes), run, facts)

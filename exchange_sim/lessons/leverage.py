"""Lesson: the same move against 5x, 20x, 50x and 100x.

Four isolated accounts of 1,000 USDT each put the same 600 USDT of margin on a BTC long at
60,000, at 5x, 20x, 50x and 100x (0.05, 0.2, 0.5 and 1 BTC). The mark dips 3% to 58,200 and then
recovers to 60,600. Isolated long LP = (Q·EP − W − cum) / (Q·(1 − MMR)):

| lev | Q | LP | move to LP |
|---|---|---|---|
| 5x | 0.05 | 48,192.77 | −19.7% |
| 20x | 0.2 | 57,228.92 | −4.6% |
| 50x | 0.5 | 59,036.14 | −1.6% |
| 100x | 1.0 | 59,648.24 (tier 2: 0.5%, cum 50) | −0.6% |

The 50x and 100x positions are liquidated on the dip and miss the recovery; 5x and 20x survive
and end in profit. Runs on the venue profile (real fees).
"""

from __future__ import annotations

from exchange_sim.core.fixed import to_fixed

from .report import LessonReport, pct, price_text, usd
from .scenario import AccountPlan, Phase, PositionPlan, Scenario, linear_path, run_scenario

NAME = "leverage"
DEPOSIT = "1000"
ENTRY = "60000"
LEVERAGES = ((5, "0.05"), (20, "0.2"), (50, "0.5"), (100, "1"))
DIP = "58200"
RECOVERY = "60600"


def scenario(*, fees_off: bool = False) -> Scenario:
    start = {"BTCUSDT": ENTRY}
    path = linear_path(start, {"BTCUSDT": DIP}, 12) + linear_path({"BTCUSDT": DIP}, {"BTCUSDT": RECOVERY}, 8)
    return Scenario(
        name=NAME,
        title="Leverage: the same 3% dip against 5x, 20x, 50x, 100x",
        accounts=tuple(AccountPlan(f"{lev}x", DEPOSIT, (PositionPlan("BTCUSDT", "BUY", qty, lev, True),))
                       for lev, qty in LEVERAGES),
        start_prices=start,
        path=tuple(path),
        phases=(Phase(1, "dip −3%"), Phase(13, "recovery +4.1%")),
        fees_off=fees_off,
    )


def build(*, fees_off: bool = False) -> LessonReport:
    run = run_scenario(scenario(fees_off=fees_off))
    labels = [f"{lev}x" for lev, _ in LEVERAGES]
    opened = {p.label: p for p in run.opened}
    entry = opened[labels[0]].entry_price
    rows: list[tuple[str, ...]] = [
        ("position (isolated)", *(f"long {qty} BTC" for _, qty in LEVERAGES)),
        ("initial margin", *(usd(opened[lb].initial_margin) for lb in labels)),
        ("maintenance margin", *(usd(opened[lb].maintenance_margin) for lb in labels)),
        ("liquidation price", *(price_text(opened[lb].liquidation_price) for lb in labels)),
        ("… move that liquidates", *(pct(opened[lb].liquidation_price - entry, entry) for lb in labels)),
        (),
    ]
    fates = []
    for lb in labels:
        liqs = run.liquidations(lb)
        fates.append(f"LIQUIDATED @ {price_text(liqs[0].price)}" if liqs else "survives")
    rows.append(("after the dip to 58,200 and back to 60,600", *fates))
    rows.append(("equity at the end", *(usd(run.equity[lb][-1]) for lb in labels)))
    rows.append(("profit / loss (fees included)", *(usd(run.equity[lb][-1] - to_fixed(DEPOSIT)) for lb in labels)))
    survivors = [lb for lb in labels if not run.liquidations(lb)]
    story = [(f"A 3% dip: {', '.join(lb for lb in labels if lb not in survivors) or 'nobody'} liquidated; "
              f"{', '.join(survivors) or 'nobody'} survive and are in profit after the recovery."),
             ("Same margin, same price path: only the leverage differs, and it decides how far the price may move "
              "before the position is gone. At 50x that is under 2%.")]
    notes = ["Venue profile: 0.05% taker fee and 1.25% clearance fee; a liquidated isolated position loses its "
             "whole margin because the clearance fee exceeds what is left at the liquidation price."
             if not fees_off else "Lesson profile with all fees set to 0."]
    facts: dict[str, object] = {"survivors": survivors,
                                "final_equity": {lb: run.equity[lb][-1] for lb in labels}}
    return LessonReport(NAME, run.scenario.title, ("", *labels), tuple(rows), tuple(story), tuple(notes), run, facts)

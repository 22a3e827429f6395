"""How a lesson is shown: a side-by-side rich table, a short story, and a PNG chart.

Every lesson builds a ``LessonReport`` from its ``ScenarioRun``; ``print_report`` writes it to a
rich console and ``plot_report`` draws the price path (with each opening position's liquidation
price) above both accounts' equity, each liquidation marked, with matplotlib's Agg backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from exchange_sim.core.fixed import to_decimal

from .scenario import ScenarioRun


@dataclass(frozen=True, slots=True)
class LessonReport:
    name: str
    title: str
    columns: tuple[str, ...]  # first is the row heading, then one per account
    rows: tuple[tuple[str, ...], ...]
    story: tuple[str, ...]
    notes: tuple[str, ...]
    run: ScenarioRun
    facts: dict[str, object] = field(default_factory=dict)  # machine-readable outcome (tests, --json)


def usd(units: int) -> str:
    """Fixed units as money text: 1,234.57."""
    return f"{to_decimal(units).quantize(Decimal('0.01')):,}"


def price_text(units: int) -> str:
    return "—" if units <= 0 else usd(units)


def qty_text(units: int) -> str:
    return format(to_decimal(abs(units)).normalize(), "f")


def pct(units_num: int, units_den: int) -> str:
    if units_den == 0:
        return "—"
    return f"{Decimal(units_num) * 100 / Decimal(units_den):+.2f}%"


def ratio_pct(ratio_units: int) -> str:
    """A fixed-point ratio (1.0 = 100%) as 12.34%."""
    return f"{to_decimal(ratio_units) * 100:.2f}%"


def print_report(report: LessonReport, console: object | None = None) -> None:
    """Title, story, the side-by-side table and the notes, on a rich console."""
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table

    out = console if isinstance(console, Console) else Console()
    out.print(Panel.fit(f"[bold]{report.title}[/bold]", subtitle=f"lesson {report.name}"))
    table = Table(show_lines=False, header_style="bold")
    for i, col in enumerate(report.columns):
        table.add_column(col, justify="left" if i == 0 else "right", min_width=14 if i == 0 else None, overflow="fold")
    for row in report.rows:
        if not row:
            table.add_section()
            continue
        table.add_row(*row)
    out.print(table)
    for line in report.story:
        out.print(f"• {line}")
    for line in report.notes:
        out.print(f"[dim]note: {line}[/dim]")


def plot_report(report: LessonReport, png: str | Path) -> Path:
    """Write the lesson chart (price path above equity per account, liquidations marked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = report.run
    steps = list(range(len(run.prices)))
    symbols = sorted(run.prices[0]) if run.prices else []
    fig, (ax_price, ax_eq) = plt.subplots(2, 1, figsize=(10, 7), sharex=True,
                                          gridspec_kw={"height_ratios": [2, 3]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    relative = len(symbols) > 1
    for i, symbol in enumerate(symbols):
        base = float(to_decimal(run.prices[0][symbol]))
        ys = [float(to_decimal(p[symbol])) for p in run.prices]
        if relative:
            ys = [(y / base - 1) * 100 for y in ys]
        ax_price.plot(steps, ys, color=colors[i % len(colors)], lw=2, label=f"{symbol} mark")
    for j, pos in enumerate(run.opened):
        if pos.liquidation_price <= 0:
            continue
        lp = float(to_decimal(pos.liquidation_price))
        if relative:
            lp = (lp / float(to_decimal(run.prices[0][pos.symbol])) - 1) * 100
        ax_price.axhline(lp, ls="--", lw=1, color=colors[(j + 2) % len(colors)],
                         label=f"{pos.label} {pos.symbol} liq {price_text(pos.liquidation_price)}"
                               + ("" if pos.isolated else " (at open; moves with the other marks)"))
    ax_price.set_ylabel("% from start" if relative else "price (USDT)")
    ax_price.legend(loc="best", fontsize=8)
    ax_price.grid(alpha=0.3)
    ax_price.set_title(report.title)

    for i, (label, series) in enumerate(run.equity.items()):
        color = colors[i % len(colors)]
        ax_eq.plot(steps, [float(to_decimal(v)) for v in series], lw=2, color=color,
                   label=f"{label} equity")
        by_step: dict[int, list[str]] = {}
        for h in run.liquidations(label):
            by_step.setdefault(h.step, []).append(f"{h.symbol} @ {price_text(h.price)}")
        for step, what in sorted(by_step.items()):
            y = float(to_decimal(series[step]))
            right_half = step > len(steps) / 2
            ax_eq.scatter([step], [y], marker="X", s=120, color="red", zorder=5)
            ax_eq.annotate(f"{label} liquidated: " + ", ".join(what), (step, y),
                           textcoords="offset points", xytext=(-8 if right_half else 8, 8), fontsize=8,
                           color="red", ha="right" if right_half else "left")
    for phase in run.scenario.phases:
        for ax in (ax_price, ax_eq):
            ax.axvline(phase.start, color="grey", lw=0.8, ls=":")
        ax_eq.text(phase.start, ax_eq.get_ylim()[1], f" {phase.text}", va="top", fontsize=8, color="grey")
    ax_eq.set_xlabel("step of the price path")
    ax_eq.set_ylabel("equity = margin balance (USDT)")
    ax_eq.legend(loc="lower left", fontsize=8)
    ax_eq.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(png)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

"""Scripted, deterministic, offline lessons run on the real core.

    report = build_lesson("cross-vs-isolated")   # a LessonReport
    print_report(report); plot_report(report, "cross-vs-isolated.png")

Each lesson is a ``Scenario`` (accounts, opening positions, a price path) played to a fresh
``Exchange``; the same scenario can be played live against a running simulator (``lessons.live``)
so a class watches it on the dashboard.
"""

from __future__ import annotations

from collections.abc import Callable

from . import cross_vs_isolated, leverage, portfolio
from .report import LessonReport, plot_report, print_report
from .scenario import LessonError, Scenario, ScenarioRun, run_scenario

LESSONS: dict[str, tuple[str, Callable[[], LessonReport], Callable[[], Scenario]]] = {
    cross_vs_isolated.NAME: ("the same BTC long in isolated and in cross; who is liquidated, who loses what",
                             cross_vs_isolated.build, cross_vs_isolated.scenario),
    portfolio.NAME: ("BTC long + ETH short in cross and in isolated: the winner holds up the loser, then the domino",
                     portfolio.build, portfolio.scenario),
    leverage.NAME: ("the same 3% dip against 5x, 20x, 50x, 100x: which survive", leverage.build, leverage.scenario),
}


def build_lesson(name: str) -> LessonReport:
    """Run lesson ``name`` offline (raises LessonError for an unknown name)."""
    if name not in LESSONS:
        raise LessonError(f"unknown lesson {name!r}; lessons: {', '.join(LESSONS)}")
    return LESSONS[name][1]()


def lesson_scenario(name: str) -> Scenario:
    if name not in LESSONS:
        raise LessonError(f"unknown lesson {name!r}; lessons: {', '.join(LESSONS)}")
    return LESSONS[name][2]()


__all__ = ["LESSONS", "LessonError", "LessonReport", "Scenario", "ScenarioRun", "build_lesson",
           "lesson_scenario", "plot_report", "print_report", "run_scenario"]

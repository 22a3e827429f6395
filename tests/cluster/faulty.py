"""A core with an injected bug, for the cluster's refusal tests (``--core tests.cluster.faulty:FaultyExchange``).

The real core, raising *after* it applied (so the core really is half-changed, the worst case) a
``Deposit`` of one of two marked amounts: ``ONCE`` raises the first time each process applies it
(a transient fault: a client's retry goes through), ``ALWAYS`` raises every time (a
deterministic bug: every member raises on it alike).
"""

from __future__ import annotations

from exchange_sim.core import messages as m
from exchange_sim.core.exchange import Exchange
from exchange_sim.core.fixed import to_fixed

ONCE = to_fixed("13.13")
ALWAYS = to_fixed("66.6")


class FaultyExchange(Exchange):
    raised_once = False  # per process

    def apply(self, msg: object) -> list:
        events = super().apply(msg)
        if isinstance(msg, m.Deposit):
            if msg.amount == ALWAYS or (msg.amount == ONCE and not FaultyExchange.raised_once):
                if msg.amount == ONCE:
                    FaultyExchange.raised_once = True
                raise RuntimeError(f"injected core fault on a deposit of {msg.amount}")
        return events

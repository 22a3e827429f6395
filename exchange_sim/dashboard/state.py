"""What the dashboard shows, as plain JSON: built from the core's read-only views.

``DashboardState`` follows the node's fan-out (``observe(msg, events)``): it keeps a short price
history per symbol (mark and last, one point per second of market time), a timeline of margin
calls, liquidations, ADL and auto-add-margin, and which accounts were just liquidated (their gauge
stays red until they open a new position or are reset). ``snapshot(exchange)`` turns the
exchange's views into the document the page renders; numbers are floats (display only).

Margin-call level of a one-way position: the price P where MM(P) / equity(P) = r, with
equity(P) = W′ + s·Q·(P − EP) and MM(P) = Q·P·MMR − cum; solving gives
P = (r·(W′ − s·Q·EP) + cum) / (Q·(MMR − r·s)), which at r = 1 is the liquidation price of
margin-rules.md. W′ is recovered from the core's own liquidation price, so cross positions use
the same "other marks frozen" assumption the venue's LP does.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from exchange_sim.core import messages as m
from exchange_sim.core.fixed import SCALE

HISTORY_POINTS = 1800  # per symbol, one per second of market time: 30 minutes
TIMELINE_ITEMS = 300


def num(units: int | None) -> float | None:
    """Fixed units as a float for display (None stays None)."""
    return None if units is None else units / SCALE


def _d(units: int) -> Decimal:
    return Decimal(units) / SCALE


def margin_call_price(qty: int, entry: int, liquidation_price: int, tiers: Any, ratio: float) -> float | None:
    """Price at which this position's margin ratio reaches ``ratio`` (None when it has no LP)."""
    if liquidation_price <= 0 or qty == 0:
        return None
    s = 1 if qty > 0 else -1
    q, ep, lp = _d(abs(qty)), _d(entry), _d(liquidation_price)
    tier = next((t for t in tiers if q * lp < _d(t.cap)), tiers[-1])
    w = lp * q * (_d(tier.mmr) - s) + s * q * ep - _d(tier.cum)  # W′ from the LP formula
    r = Decimal(str(ratio))
    for t in tiers:
        mmr, cum = _d(t.mmr), _d(t.cum)
        den = q * (mmr - r * s)
        if den == 0:
            continue
        p = (r * (w - s * q * ep) + cum) / den
        if p > 0 and _d(t.floor) <= q * p < _d(t.cap):
            return float(p)
    return None


@dataclass(slots=True)
class DashboardState:
    margin_call_ratio: float = 0.8
    warning_ratio: float = 0.6
    history: dict[str, deque] = field(default_factory=dict)  # symbol -> deque[[t_s, mark, last]]
    timeline: deque = field(default_factory=lambda: deque(maxlen=TIMELINE_ITEMS))
    liquidated: dict[int, dict[str, Any]] = field(default_factory=dict)  # account -> last liquidation
    liquidations: dict[int, int] = field(default_factory=dict)  # account -> liquidations so far (leaderboard)
    modes: dict[int, set[str]] = field(default_factory=dict)  # account -> margin modes it has traded in
    seq: int = 0  # bumps on every observed input: clients skip identical states

    def observe(self, msg: Any, events: list[Any]) -> None:
        """Follow one applied input and the events it caused."""
        self.seq += 1
        if isinstance(msg, (m.MarkPrice, m.Trade)):
            self._sample(msg)
        elif isinstance(msg, m.ResetAccount):
            self.liquidated.pop(msg.account, None)
        for e in events:
            item = self._timeline_item(e)
            if item is not None:
                self.timeline.append(item)
            if isinstance(e, m.Liquidation):
                self.liquidated[e.account] = {"ts": e.ts, "symbol": e.symbol, "price": num(e.price)}
                if not e.partial:
                    self.liquidations[e.account] = self.liquidations.get(e.account, 0) + 1
            elif isinstance(e, m.PositionUpdate) and e.qty != 0:
                self.modes.setdefault(e.account, set()).add("isolated" if e.isolated else "cross")
                if e.account in self.liquidated and e.ts > self.liquidated[e.account]["ts"]:
                    self.liquidated.pop(e.account, None)

    def _sample(self, msg: m.MarkPrice | m.Trade) -> None:
        t = msg.ts // 1000
        points = self.history.setdefault(msg.symbol, deque(maxlen=HISTORY_POINTS))
        if points and t < points[-1][0]:
            return  # market time went backwards (a replay restarted): keep the chart monotonic
        if not points or points[-1][0] != t:
            prev = points[-1] if points else [t, None, None]
            points.append([t, prev[1], prev[2]])
        if isinstance(msg, m.MarkPrice):
            points[-1][1] = num(msg.mark)
        else:
            points[-1][2] = num(msg.price)

    @staticmethod
    def _timeline_item(e: Any) -> dict[str, Any] | None:
        if isinstance(e, m.MarginCall):
            return {"ts": e.ts, "account": e.account, "kind": e.level, "symbol": e.symbol or "cross",
                    "text": f"margin ratio {e.margin_ratio / SCALE:.1%}"}
        if isinstance(e, m.Liquidation):
            what = "partially liquidated" if e.partial else "liquidated"
            return {"ts": e.ts, "account": e.account, "kind": "LIQUIDATION", "symbol": e.symbol,
                    "text": f"{what} {e.qty / SCALE:g} @ {e.price / SCALE:,.2f} (loss {abs(e.loss) / SCALE:,.2f}, "
                            f"fee {e.fee / SCALE:,.2f})"}
        if isinstance(e, m.Adl):
            return {"ts": e.ts, "account": e.account, "kind": "ADL", "symbol": e.symbol,
                    "text": f"auto-deleveraged {e.qty / SCALE:g} @ {e.price / SCALE:,.2f}"}
        if isinstance(e, m.AutoAddMargin):
            return {"ts": e.ts, "account": e.account, "kind": "AUTO_ADD_MARGIN", "symbol": e.symbol,
                    "text": f"auto-added {e.amount / SCALE:,.2f} margin"}
        return None

    # ------------------------------------------------------------------ the document

    def snapshot(self, exchange: Any, history_tail: int | None = None) -> dict[str, Any]:
        """The whole dashboard document for the current exchange state.

        ``history_tail``: send only the last N price points per symbol (live updates; the page
        keeps the history it got on connect); None sends all of it.
        """
        symbols = {}
        for symbol in sorted(exchange.instruments):
            mk = exchange.market(symbol)
            symbols[symbol] = {
                "mark": num(mk.mark) if mk.mark else None, "last": num(mk.last_price) if mk.last_price else None,
                "index": num(mk.index) if mk.index else None, "funding_rate": num(mk.funding_rate),
                "best_bid": num(mk.best_bid) if mk.best_bid else None,
                "best_ask": num(mk.best_ask) if mk.best_ask else None, "stale": mk.stale,
                "tick": num(exchange.instruments[symbol].tick_size),
                "history": [list(p) for p in self.history.get(symbol, ())][-history_tail if history_tail else 0:],
            }
        accounts = [self._account(exchange, aid) for aid in exchange.account_ids()]
        accounts = [a for a in accounts if a is not None]
        accounts.sort(key=lambda a: (-a["margin_balance"], a["id"]))
        return {
            "seq": self.seq,
            "full_history": history_tail is None,
            "margin_call_ratio": self.margin_call_ratio,
            "warning_ratio": self.warning_ratio,
            "symbols": symbols,
            "accounts": accounts,
            "classes": self._classes(exchange, accounts),
            "leaderboard": [{"id": a["id"], "name": a["name"], "equity": a["margin_balance"],
                             "liquidations": self.liquidations.get(a["id"], 0),
                             "mode": "/".join(sorted({p["mode"] for p in a["positions"]}
                                                     or self.modes.get(a["id"], set()))) or "—",
                             "open_positions": len(a["positions"])} for a in accounts],
            "timeline": list(self.timeline)[-100:],
            "insurance_fund": num(exchange.insurance_fund),
        }

    def _classes(self, exchange: Any, accounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for a in accounts:
            kids = exchange.children(a["id"])
            if kids:
                out.append({"id": a["id"], "name": a["name"], "members": sorted(kids)})
        return sorted(out, key=lambda c: c["id"])

    def _account(self, exchange: Any, aid: int) -> dict[str, Any] | None:
        view = exchange.account_view(aid)
        if view is None:
            return None
        positions = []
        worst = view.cross_margin_ratio
        for p in view.positions:
            if p.qty == 0:
                continue
            inst = exchange.instruments[p.symbol]
            if p.isolated:
                worst = max(worst, p.margin_ratio)
            positions.append({
                "symbol": p.symbol, "side": "LONG" if p.qty > 0 else "SHORT", "position_side": p.position_side,
                "qty": num(p.qty), "entry": num(p.entry_price), "mark": num(p.mark),
                "upnl": num(p.unrealized_pnl), "notional": num(p.notional), "leverage": p.leverage,
                "mode": "isolated" if p.isolated else "cross", "isolated_wallet": num(p.isolated_wallet),
                "initial_margin": num(p.initial_margin), "maintenance_margin": num(p.maintenance_margin),
                "liquidation_price": num(p.liquidation_price) if p.liquidation_price > 0 else None,
                "bankruptcy_price": num(p.bankruptcy_price) if p.bankruptcy_price > 0 else None,
                "margin_call_price": margin_call_price(p.qty, p.entry_price, p.liquidation_price, inst.tiers,
                                                       self.margin_call_ratio),
                "margin_ratio": num(p.margin_ratio), "adl": p.adl_quantile,
            })
        orders = [{"id": o.order_id, "symbol": o.symbol, "side": o.side, "type": o.order_type,
                   "price": num(o.price), "stop_price": num(o.stop_price), "qty": num(o.qty),
                   "filled": num(o.filled_qty), "status": o.status, "reduce_only": o.reduce_only,
                   "conditional": o.conditional}
                  for o in exchange.open_orders(aid)]
        liquidated = self.liquidated.get(aid)
        gauge = num(worst) or 0.0
        if liquidated is not None and not positions:
            gauge = max(gauge, 1.0)
        return {
            "id": aid, "name": view.name, "parent": view.parent, "hedge_mode": view.hedge_mode,
            "wallet": num(view.wallet_balance), "cross_wallet": num(view.cross_wallet),
            "margin_balance": num(view.margin_balance), "available": num(view.available_balance),
            "upnl": num(view.unrealized_pnl), "maintenance_margin": num(view.maintenance_margin),
            "cross_margin_ratio": num(view.cross_margin_ratio), "gauge_ratio": gauge,
            "liquidated": liquidated, "positions": positions, "orders": orders,
            "timeline": [t for t in self.timeline if t["account"] == aid][-8:],
        }

"""Margin formulas, as in margin-rules.md (Binance USDⓈ-M), in exact fixed-point integers.

A position leg is described by its signed quantity ``qty`` (+ long, − short) and its cost basis
``cost`` = Σ entry notional of the open quantity (so Q·EP = cost exactly, EP = cost / Q).

- initial margin     IM = notional / leverage                                (rounded up)
- maintenance margin MM = notional × MMR(tier) − cum(tier), tier by notional  (rounded up)
- unrealized PnL        = side × (Q × mark − Q × EP)
- margin ratio          = MM / margin balance                               (≥ 1 liquidates)
- liquidation price (Binance, margin-rules.md "Liquidation price"):

      LP = [W′ + Σcum − Σ dir·Q·EP] / [Σ Q·MMR − Σ dir·Q]

  with W′ = WB − TMM1 + UPNL1 (the other cross positions' maintenance and PnL at their marks;
  0 for isolated, where WB is the isolated wallet). MMR and cum are those of the tier holding
  Q·LP, found by trying each tier. A result ≤ 0 means no liquidation price.
- generalised to any margin-ratio threshold θ (margin call at 80%, warning at 60%):
  the price where MM = θ × margin balance, i.e. LP with W′ scaled by θ:
      P(θ) = [θ·W′ + Σcum − θ·Σ dir·Q·EP] / [Σ Q·MMR − θ·Σ dir·Q]
  The ratio curve can cross θ more than once (a cross hedge book): ``threshold_crossings`` gives
  the nearest crossing on each side of the mark, which the margin monitor watches.
- bankruptcy price: where the leg's equity reaches 0: long EP − W′/Q, short EP + W′/Q.
- cost to open (margin-rules.md "Orders"): IM + open loss,
  open loss = Q × |min(0, dir × (mark − order price))|.
"""

from __future__ import annotations

from bisect import bisect_right

from .fixed import SCALE
from .instruments import Instrument, Tier

Leg = tuple[int, int]  # (signed qty, cost basis)


def initial_margin(notional: int, leverage: int) -> int:
    """notional / leverage, rounded up."""
    return -(-abs(notional) // leverage)


def unrealized_pnl(qty: int, cost: int, mark: int) -> int:
    """side × (Q·mark − Q·EP) for a leg, floored to the unit."""
    if qty >= 0:
        return qty * mark // SCALE - cost
    return cost - (-qty) * mark // SCALE


def margin_ratio(maintenance: int, balance: int) -> int:
    """MM / margin balance as a fixed ratio (1.0 = SCALE); a balance ≤ 0 is an infinite ratio."""
    if maintenance <= 0:
        return 0
    if balance <= 0:
        return 1000 * SCALE
    return maintenance * SCALE // balance


def open_loss(qty: int, side_dir: int, mark: int, price: int) -> int:
    """Q × |min(0, dir × (mark − price))| for an order of |qty| at ``price``."""
    diff = side_dir * (mark - price)
    return 0 if diff >= 0 else abs(qty) * (-diff) // SCALE


def _solve(legs: list[tuple[int, int, Tier]], wallet: int, theta: int) -> tuple[int, int]:
    """Numerator (money units × SCALE) and denominator (qty units × SCALE) of P(θ)."""
    num = 0
    den = 0
    for qty, cost, tier in legs:
        d = 1 if qty > 0 else -1
        q = abs(qty)
        num += tier.cum * SCALE - theta * d * cost
        den += q * tier.mmr - theta * d * q
    num += theta * wallet
    return num, den


def threshold_price(inst: Instrument, legs: list[Leg], wallet: int, theta: int = SCALE,
                    round_up: bool = False) -> int:
    """Price of this symbol where the margin ratio reaches θ (θ = 1: the liquidation price).

    ``legs`` are this symbol's legs judged together (one leg, or both hedge legs in cross),
    ``wallet`` is W′. Tiers are chosen so each leg's tier holds Q·P. Returns 0 when there is no
    such price (≤ 0, or the legs cannot reach the threshold). Rounded down unless ``round_up``.
    """
    legs = [(q, c) for q, c in legs if q]
    if not legs:
        return 0
    if len(legs) == 1:
        qty, cost = legs[0]
        for tier in inst.tiers:
            price = _price(_solve([(qty, cost, tier)], wallet, theta), round_up)
            if price <= 0:
                continue
            notional = abs(qty) * price // SCALE
            if tier.floor <= notional < tier.cap or (tier is inst.tiers[-1] and notional >= tier.floor):
                return price
        return 0
    # several legs: fixed-point iteration on each leg's tier, from the tiers at entry
    tiers = [inst.tier_for_notional(c) for _, c in legs]
    price = 0
    for _ in range(len(inst.tiers) + 2):
        price = _price(_solve([(q, c, t) for (q, c), t in zip(legs, tiers, strict=True)], wallet, theta), round_up)
        if price <= 0:
            return 0
        new = [inst.tier_for_notional(abs(q) * price // SCALE) for q, _ in legs]
        if new == tiers:
            break
        tiers = new
    return price


def threshold_crossings(inst: Instrument, legs: list[Leg], wallet: int, theta: int, mark: int) -> tuple[int, int]:
    """The nearest prices below and above ``mark`` where this symbol's margin ratio reaches θ.

    The ratio curve MM(P) − θ·(W′ + uPnL(P)) is continuous and linear between the prices where a
    leg changes tier, so it can cross θ more than once: a cross hedge book (long 5,000, short
    4,000) reaches 100% both below and far above the mark, where the gross maintenance outgrows
    the net gain. Every root in (0, max price] is found segment by segment; the ones nearest to
    the mark on either side bound the region the mark can move in without reaching θ. Returns
    (below rounded down, above rounded up), 0 for no such price on that side.
    """
    legs = [(q, c) for q, c in legs if q]
    if not legs:
        return 0, 0
    tiers = inst.tiers
    breaks = {0}
    for qty, _ in legs:
        q = abs(qty)
        breaks.update(-(-tier.floor * SCALE // q) for tier in tiers[1:])
    edges = sorted(b for b in breaks if b <= inst.max_price) + [inst.max_price + 1]
    here = max(0, bisect_right(edges, mark) - 1)
    # on each piece the curve's slope is its denominator Σ Q·MMR − θ·net qty, bounded by the lowest
    # and highest MMR: a side where it cannot turn towards the other sign holds no crossing
    num, den = _piece(inst, legs, wallet, theta, edges[here])
    sign = den * mark - num * SCALE  # the curve's sign at the mark
    net = sum(q for q, _ in legs)
    gross = sum(abs(q) for q, _ in legs)
    slope_min = gross * tiers[0].mmr - theta * net
    slope_max = gross * tiers[-1].mmr - theta * net
    up = slope_max > 0 if sign < 0 else slope_min < 0 if sign > 0 else True
    down = slope_min < 0 if sign < 0 else slope_max > 0 if sign > 0 else True
    below = above = 0
    if down:
        for k in range(here, -1, -1):
            root = _root_in(inst, legs, wallet, theta, edges[k], edges[k + 1])
            if root is not None and root[0] * SCALE <= mark * root[1]:
                below = root[0] * SCALE // root[1]
                break
    if up:
        for k in range(here, len(edges) - 1):
            root = _root_in(inst, legs, wallet, theta, edges[k], edges[k + 1])
            if root is not None and root[0] * SCALE > mark * root[1]:
                above = -(-root[0] * SCALE // root[1])
                break
    return below, above


def _piece(inst: Instrument, legs: list[Leg], wallet: int, theta: int, lo: int) -> tuple[int, int]:
    """P(θ)'s numerator and denominator with each leg in the tier holding its notional at ``lo``."""
    return _solve([(q, c, inst.tier_for_notional(abs(q) * lo // SCALE)) for q, c in legs], wallet, theta)


def _root_in(inst: Instrument, legs: list[Leg], wallet: int, theta: int, lo: int,
             hi: int) -> tuple[int, int] | None:
    """The crossing on the piece [lo, hi) as an exact fraction (num, den > 0), or None."""
    if lo >= hi:
        return None
    num, den = _piece(inst, legs, wallet, theta, lo)
    if den == 0:
        return None
    if den < 0:
        num, den = -num, -den
    if num <= 0 or not (lo * den <= num * SCALE < hi * den):
        return None
    return num, den


def _price(frac: tuple[int, int], round_up: bool) -> int:
    num, den = frac
    if den == 0:
        return 0
    if den < 0:
        num, den = -num, -den
    if round_up:
        return -(-num * SCALE // den)
    return num * SCALE // den


def liquidation_price(inst: Instrument, legs: list[Leg], wallet: int) -> int:
    """Binance liquidation price of one symbol's legs given W′ (0 = none), rounded to the unit."""
    return threshold_price(inst, legs, wallet, SCALE)


def bankruptcy_price(qty: int, cost: int, wallet: int) -> int:
    """Price where the leg's equity (W′ + uPnL) is 0: long EP − W′/Q, short EP + W′/Q (0 = none)."""
    if qty == 0:
        return 0
    q = abs(qty)
    if qty > 0:
        price = (cost - wallet) * SCALE // q
    else:
        price = -(-(cost + wallet) * SCALE // q)
    return max(price, 0)

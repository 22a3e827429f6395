"""The field's reference for core_throughput.py: Nautilus Trader's backtest engine on the same workloads.

Optional: only used when ``nautilus_trader`` is importable (it is not a project dependency).
To measure it without touching the project's environment (the venv sees the system's packages,
so the project's own benchmarks run in it too; pip adds only nautilus_trader and what it needs):

    python3 -m venv --system-site-packages /work/nautilus-venv && /work/nautilus-venv/bin/pip install nautilus_trader
    PYTHON=/work/nautilus-venv/bin/python scripts/bench/run_all   # or: .../python core_throughput.py

- ``walk_one_account(n)``: core_throughput's ``walk_one_account`` workload, from walk_workload.py:
  the same seeded random walk of ``n`` trade ticks (p ← p·exp(N(0, 2·10⁻⁴)) from 60,000, the
  same sizes and aggressor sides, 1 ms apart), trade-only data (``trade_execution=True``, no
  quotes or book: trades drive the simulated book, so the last price is what orders match and
  stops trigger against). One venue with a margin account (NETTING, 20x, 1,000,000 USDT),
  BTCUSDT-PERP. The strategy does what core_throughput's does: at 60,000 (two priming trade
  ticks of 1 BTC before the walk, a sell then a buy: Nautilus's strategy acts on data, and the
  simulated venue needs a trade on each side before a market order can fill) it buys 1 BTC at market and
  places a reduce-only stop-market sell 3% below (last-price trigger), a reduce-only
  take-profit (market-if-touched) sell 3% above, a 0.05 limit buy 0.5% below and a reduce-only
  0.05 limit sell 0.5% above; after every 5,000th walk tick it cancels all its orders, tops the
  position up to 1 BTC at market and places the four orders again at the last price. Ticks/s of
  ``engine.run()`` (the strategy's commands included, as in the core's figure), the fills by
  order type and every event the strategy received, by type.
- ``order_commands_per_s(n)``: the same engine; on each of ``n`` ticks the strategy submits a
  resting limit buy and cancels the previous one (2 commands per tick). Commands/s of ``run()``
  (the ticks' own cost included, as in the core's figure the commands dominate).

Building the ticks is not timed; logging is bypassed.

    python nautilus_reference.py [n]      # prints both figures (JSON)
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from decimal import Decimal

import walk_workload as workload
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import AccountType, AggressorSide, OmsType, OrderSide, OrderType, TriggerType
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import TradeId, TraderId, Venue
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.test_kit.providers import TestInstrumentProvider
from nautilus_trader.trading.strategy import Strategy

START_NS = 1_700_000_000_000_000_000


class _Config(StrategyConfig, frozen=True):
    churn_orders: bool = False


class _Walk(Strategy):
    """walk_workload's strategy: a protected 1 BTC long, re-armed every RESET_EVERY walk ticks."""

    def __init__(self, config: _Config, instrument) -> None:
        super().__init__(config)
        self.instrument = instrument
        self.ticks_seen = 0
        self.commands = 0
        self.events: Counter = Counter()
        self.fills: Counter = Counter()
        self.orders_filled_on_ticks: set = set()

    def on_start(self) -> None:
        self.subscribe_trade_ticks(self.instrument.id)

    def on_trade_tick(self, tick: TradeTick) -> None:
        k = self.ticks_seen  # 0 and 1 are the priming ticks at 60,000; walk tick i is k = i + 2
        self.ticks_seen += 1
        if k == 0 or (k - 1) % workload.RESET_EVERY:
            return
        if k > 1:
            self.cancel_all_orders(self.instrument.id)
            self.commands += 1
        self._protect(tick.price.as_double())

    def _protect(self, last: float) -> None:
        iid, make_qty = self.instrument.id, self.instrument.make_qty
        have = self.portfolio.net_position(iid)
        position = Decimal(workload.POSITION_BTC)
        factory = self.order_factory
        orders = []
        if have < position:
            orders.append(factory.market(iid, OrderSide.BUY, make_qty(position - have)))
        at = {name: Price(tenths / 10, 1) for name, tenths in workload.levels(round(last * 10)).items()}
        limit_qty = make_qty(Decimal(workload.LIMIT_QTY_BTC))
        orders += [
            factory.stop_market(iid, OrderSide.SELL, make_qty(position), at["stop"],
                                trigger_type=TriggerType.LAST_PRICE, reduce_only=True),
            factory.market_if_touched(iid, OrderSide.SELL, make_qty(position), at["take"],
                                      trigger_type=TriggerType.LAST_PRICE, reduce_only=True),
            factory.limit(iid, OrderSide.BUY, limit_qty, at["buy_limit"]),
            factory.limit(iid, OrderSide.SELL, limit_qty, at["sell_limit"], reduce_only=True),
        ]
        for order in orders:
            self.submit_order(order)
        self.commands += len(orders)

    def on_event(self, event) -> None:
        self.events[type(event).__name__] += 1
        if type(event) is OrderFilled:
            kind = OrderType(event.order_type).name
            self.fills[kind] += 1
            if kind != "MARKET":  # the market orders are the strategy's own top-ups, not the ticks' doing
                self.orders_filled_on_ticks.add(event.client_order_id)


class _Churn(Strategy):
    """Opens one long on the first tick, then places a limit buy and cancels the previous one per tick."""

    def __init__(self, config: _Config, instrument) -> None:
        super().__init__(config)
        self.instrument = instrument
        self.opened = False
        self.previous = None
        self.commands = 0

    def on_start(self) -> None:
        self.subscribe_trade_ticks(self.instrument.id)

    def on_trade_tick(self, tick: TradeTick) -> None:
        if not self.opened:
            self.opened = True
            self.submit_order(self.order_factory.market(self.instrument.id, OrderSide.BUY,
                                                        self.instrument.make_qty(Decimal("1"))))
            return
        price = self.instrument.make_price(Decimal("59000") + Decimal(self.commands % 200) / 10)
        order = self.order_factory.limit(self.instrument.id, OrderSide.BUY,
                                         self.instrument.make_qty(Decimal("0.01")), price)
        self.submit_order(order)
        self.commands += 1
        if self.previous is not None and self.previous.is_open:
            self.cancel_order(self.previous)
            self.commands += 1
        self.previous = order


def _engine(instrument, ticks: list[TradeTick], strategy: Strategy) -> BacktestEngine:
    engine = BacktestEngine(BacktestEngineConfig(trader_id=TraderId("BENCH-001"),
                                                 logging=LoggingConfig(bypass_logging=True)))
    engine.add_venue(venue=Venue("BINANCE"), oms_type=OmsType.NETTING, account_type=AccountType.MARGIN,
                     starting_balances=[Money(workload.WALLET, USDT)], base_currency=None,
                     default_leverage=Decimal(workload.LEVERAGE), trade_execution=True)
    engine.add_instrument(instrument)
    engine.add_data(ticks)
    engine.add_strategy(strategy)
    return engine


def _tick(instrument, i: int, tenths: int, thousandths: int, buyer: bool, ts: int) -> TradeTick:
    return TradeTick(instrument.id, Price(tenths / 10, 1), Quantity(thousandths / 1000, 3),
                     AggressorSide.BUYER if buyer else AggressorSide.SELLER, TradeId(str(i)), ts, ts)


def _run(engine: BacktestEngine) -> float:
    t0 = time.perf_counter()
    engine.run()
    return time.perf_counter() - t0


def walk_one_account(n: int) -> dict:
    """core_throughput's walk_one_account on Nautilus: figures named like the core's, prefixed."""
    instrument = TestInstrumentProvider.btcusdt_perp_binance()
    ms = 1_000_000
    # a sell then a buy of 1 BTC at 60,000: both sides of the simulated book there, so the opening
    # market buy fills at 60,000 as core_throughput's does against its one-level book
    ticks = [_tick(instrument, k, round(workload.START * 10), 1_000, k == 1, START_NS + k * ms) for k in (0, 1)]
    ticks += [_tick(instrument, i + 2, price, qty, buyer, START_NS + (i + 2) * ms)
              for i, (price, qty, buyer) in enumerate(workload.ticks(n))]
    prices = [t.price.as_double() for t in ticks[2:]]
    strategy = _Walk(_Config(), instrument)
    engine = _engine(instrument, ticks, strategy)
    del ticks
    try:
        dt = _run(engine)
        open_positions = len(engine.cache.positions_open())
    finally:
        engine.dispose()
    fills = strategy.fills
    return {
        "nautilus_walk_one_account_trade_ticks_per_s": round((n + 2) / dt),
        "nautilus_walk_one_account_ticks": n + 2,  # the walk + the two priming ticks
        "nautilus_walk_one_account_strategy_commands": strategy.commands,
        "nautilus_walk_one_account_price_range": [round(min(prices), 1), round(max(prices), 1)],
        "nautilus_walk_one_account_positions_open_at_end": open_positions,
        "nautilus_walk_one_account_events": sum(strategy.events.values()),
        "nautilus_walk_one_account_events_by_type": dict(sorted(strategy.events.items())),
        "nautilus_walk_one_account_fills": sum(fills.values()),
        "nautilus_walk_one_account_fills_by_order_type": dict(sorted(fills.items())),
        # what the ticks filled (resting limits, triggered stop/take-profit): core_throughput's
        # walk_one_account_fills / _orders_filled count the same (its top-ups are commands, not counted)
        "nautilus_walk_one_account_fills_on_ticks": sum(v for k, v in fills.items() if k != "MARKET"),
        "nautilus_walk_one_account_orders_filled_on_ticks": len(strategy.orders_filled_on_ticks),
    }


def order_commands_per_s(n: int) -> float:
    instrument = TestInstrumentProvider.btcusdt_perp_binance()
    rng = random.Random(3)
    # ticks 1 s apart, under the risk engine's default 100 submits/s of simulated time
    ticks = [_tick(instrument, i + 1, 600_000 + rng.randint(-500, 500), 10 * rng.randint(1, 50),
                   rng.random() < 0.5, START_NS + i * 1_000_000_000) for i in range(n)]
    strategy = _Churn(_Config(churn_orders=True), instrument)
    engine = _engine(instrument, ticks, strategy)
    try:
        dt = _run(engine)
    finally:
        engine.dispose()
    return strategy.commands / dt


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(json.dumps({"nautilus_version": __import__("nautilus_trader").__version__,
                      **walk_one_account(size),
                      "nautilus_order_commands_per_s": round(order_commands_per_s(max(100, size // 10)))}))

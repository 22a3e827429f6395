"""The field's reference for core_throughput.py: Nautilus Trader's backtest engine, same workload.

Optional: only used when ``nautilus_trader`` is importable (it is not a project dependency).
To measure it without touching the project's environment:

    python -m venv --system-site-packages /tmp/nt-venv && /tmp/nt-venv/bin/pip install nautilus_trader
    PYTHON=/tmp/nt-venv/bin/python scripts/bench/run_all      # or: /tmp/nt-venv/bin/python core_throughput.py

- ``trade_ticks_per_s(n)``: one BacktestEngine, one venue with a margin account (NETTING, 20x,
  1,000,000 USDT), BTCUSDT-PERP; a strategy opens one long position on the first tick and then
  only watches; ``n`` synthetic trade ticks (the price wandering ±50 USDT around 60000, random
  sizes and aggressor sides, the same shape as core_throughput's events) drive the matching engine
  (``trade_execution=True``), the account and the position. Ticks/s of ``engine.run()``.
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
from decimal import Decimal

from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import AccountType, AggressorSide, OmsType, OrderSide
from nautilus_trader.model.identifiers import TradeId, TraderId, Venue
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.test_kit.providers import TestInstrumentProvider
from nautilus_trader.trading.strategy import Strategy

START_NS = 1_700_000_000_000_000_000


class _Config(StrategyConfig, frozen=True):
    churn_orders: bool = False


class _Bench(Strategy):
    """Opens one long on the first tick; with ``churn_orders`` also places/cancels a limit per tick."""

    def __init__(self, config: _Config, instrument) -> None:
        super().__init__(config)
        self.instrument = instrument
        self.churn = config.churn_orders
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
        if self.churn:
            price = self.instrument.make_price(Decimal("59000") + Decimal(self.commands % 200) / 10)
            order = self.order_factory.limit(self.instrument.id, OrderSide.BUY,
                                             self.instrument.make_qty(Decimal("0.01")), price)
            self.submit_order(order)
            self.commands += 1
            if self.previous is not None and self.previous.is_open:
                self.cancel_order(self.previous)
                self.commands += 1
            self.previous = order


def _engine(n: int, churn: bool) -> tuple[BacktestEngine, _Bench]:
    instrument = TestInstrumentProvider.btcusdt_perp_binance()
    engine = BacktestEngine(BacktestEngineConfig(trader_id=TraderId("BENCH-001"),
                                                 logging=LoggingConfig(bypass_logging=True)))
    engine.add_venue(venue=Venue("BINANCE"), oms_type=OmsType.NETTING, account_type=AccountType.MARGIN,
                     starting_balances=[Money(1_000_000, USDT)], base_currency=None,
                     default_leverage=Decimal(20), trade_execution=True)
    engine.add_instrument(instrument)
    rng = random.Random(3)
    # placing orders: ticks 1 s apart, under the risk engine's default 100 submits/s of simulated time
    spacing_ns = 1_000_000_000 if churn else 1_000_000
    ticks = []
    for i in range(n):
        price = Price(60000 + rng.randint(-500, 500) / 10, 1)
        size = Quantity(rng.randint(1, 50) / 100, 3)
        side = AggressorSide.BUYER if rng.random() < 0.5 else AggressorSide.SELLER
        ts = START_NS + i * spacing_ns
        ticks.append(TradeTick(instrument.id, price, size, side, TradeId(str(i + 1)), ts, ts))
    engine.add_data(ticks)
    strategy = _Bench(_Config(churn_orders=churn), instrument)
    engine.add_strategy(strategy)
    return engine, strategy


def _run(engine: BacktestEngine) -> float:
    t0 = time.perf_counter()
    engine.run()
    dt = time.perf_counter() - t0
    return dt


def trade_ticks_per_s(n: int) -> float:
    engine, _ = _engine(n, churn=False)
    try:
        dt = _run(engine)
        positions = engine.cache.positions_open()
        if len(positions) != 1:
            raise RuntimeError(f"nautilus reference: expected one open position, found {len(positions)}")
    finally:
        engine.dispose()
    return n / dt


def order_commands_per_s(n: int) -> float:
    engine, strategy = _engine(n, churn=True)
    try:
        dt = _run(engine)
        commands = strategy.commands
    finally:
        engine.dispose()
    return commands / dt


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(json.dumps({"nautilus_version": __import__("nautilus_trader").__version__,
                      "trade_ticks_per_s": round(trade_ticks_per_s(size)),
                      "order_commands_per_s": round(order_commands_per_s(size // 10))}))

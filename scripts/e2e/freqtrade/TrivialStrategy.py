"""A trivial freqtrade strategy for the end-to-end check (scripts/e2e/freqtrade/run.py).

It needs 200 startup candles (a 200-candle moving average must exist before it enters), enters
long at once, keeps a stop on the exchange (stoploss_on_exchange) and leaves after 3 minutes
through ROI (``{"3": -1}``: any result once the trade is 3 minutes old). One trade only.
"""

from pandas import DataFrame

from freqtrade.persistence import Trade
from freqtrade.strategy import IStrategy


class TrivialStrategy(IStrategy):
    INTERFACE_VERSION = 3
    timeframe = "1m"
    startup_candle_count = 200
    can_short = False
    minimal_roi = {"3": -1}
    stoploss = -0.05
    process_only_new_candles = False
    order_types = {"entry": "market", "exit": "market", "stoploss": "market",
                   "stoploss_on_exchange": True, "stoploss_on_exchange_interval": 30}

    def populate_indicators(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe["sma200"] = dataframe["close"].rolling(200).mean()
        return dataframe

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe["enter_long"] = dataframe["sma200"].notna().astype(int)
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe["exit_long"] = 0
        return dataframe

    def confirm_trade_entry(self, pair: str, order_type: str, amount: float, rate: float, time_in_force: str,
                            current_time, entry_tag, side: str, **kwargs) -> bool:
        return not Trade.get_trades_proxy()  # the first trade only

    def leverage(self, pair: str, current_time, current_rate: float, proposed_leverage: float,
                 max_leverage: float, entry_tag, side: str, **kwargs) -> float:
        return 2.0

"""Core views and events in Binance USDⓈ-M's JSON shapes (the fields ccxt's parsers read).

Numbers leave as decimal text formatted from fixed-point ints with ``fixed.fmt``: prices with the
instrument's ``price_precision``, quantities with its ``qty_precision``, money with 8 decimals.
Pure functions of their arguments; nothing here reads the clock or the exchange.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from exchange_sim.core import filters
from exchange_sim.core import messages as m
from exchange_sim.core.fixed import SCALE, fmt, fmt_trim
from exchange_sim.core.instruments import Instrument
from exchange_sim.core.views import AccountView, OrderView, PositionView, TradeRecord

ASSET = "USDT"
MONEY = 8

# Binance's algo statuses for a conditional order's life
ALGO_STATUS = {"NEW": "NEW", "CANCELED": "CANCELED", "EXPIRED": "EXPIRED", "TRIGGERED": "TRIGGERED",
                "FILLED": "FINISHED", "PARTIALLY_FILLED": "TRIGGERED", "REJECTED": "REJECTED"}


def price(inst: Instrument, units: int) -> str:
    return fmt(units, inst.price_precision)


def price_rounded(inst: Instrument, units: int) -> str:
    """A computed price (liquidation, bankruptcy) rounded half-up to the instrument's precision."""
    step = 10 ** max(0, MONEY - inst.price_precision)
    return fmt((units + step // 2) // step * step, inst.price_precision)


def qty(inst: Instrument, units: int) -> str:
    return fmt(units, inst.qty_precision)


def money(units: int) -> str:
    return fmt(units, MONEY)


def rate(units: int) -> str:
    """A fraction (fixed, 1.0 = 100%) as Binance prints rates: 8 decimals."""
    return fmt(units, MONEY)


def percent_text(units: int) -> str:
    """A callback rate in fixed percent units (1.0 = 1%) as ``"1.0"``-style text."""
    text = fmt_trim(units)
    return text if "." in text else text + ".0"


def levels(inst: Instrument, side: Iterable[tuple[int, int]]) -> list[list[str]]:
    return [[price(inst, p), qty(inst, q)] for p, q in side]


# ----------------------------------------------------------------------------- exchangeInfo


def symbol_info(inst: Instrument) -> dict[str, Any]:
    """One ``exchangeInfo.symbols[]`` entry."""
    return {
        "symbol": inst.symbol,
        "pair": inst.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": inst.base,
        "quoteAsset": inst.quote,
        "marginAsset": inst.quote,
        "pricePrecision": inst.price_precision,
        "quantityPrecision": inst.qty_precision,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": fmt_trim(inst.liquidation_fee),
        "marketTakeBound": fmt_trim(inst.market_take_bound),
        "maxMoveOrderLimit": 10000,
        "filters": [
            {"filterType": "PRICE_FILTER", "tickSize": fmt_trim(inst.tick_size),
             "minPrice": fmt_trim(inst.min_price), "maxPrice": fmt_trim(inst.max_price)},
            {"filterType": "LOT_SIZE", "stepSize": fmt_trim(inst.step_size),
             "minQty": fmt_trim(inst.min_qty), "maxQty": fmt_trim(inst.max_qty)},
            {"filterType": "MARKET_LOT_SIZE", "stepSize": fmt_trim(inst.step_size),
             "minQty": fmt_trim(inst.min_qty), "maxQty": fmt_trim(inst.market_max_qty)},
            {"filterType": "MAX_NUM_ORDERS", "limit": filters.MAX_NUM_ORDERS},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": filters.MAX_NUM_ALGO_ORDERS},
            {"filterType": "MIN_NOTIONAL", "notional": fmt_trim(inst.min_notional)},
            {"filterType": "PERCENT_PRICE",
             "multiplierUp": f"{filters.MULTIPLIER_UP / 10**filters.MULTIPLIER_DECIMAL:.4f}",
             "multiplierDown": f"{filters.MULTIPLIER_DOWN / 10**filters.MULTIPLIER_DECIMAL:.4f}",
             "multiplierDecimal": str(filters.MULTIPLIER_DECIMAL)},
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                       "TRAILING_STOP_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def leverage_brackets(inst: Instrument) -> dict[str, Any]:
    """One ``leverageBracket`` entry: the instrument's tiers with floor, cap, MMR and cum."""
    return {
        "symbol": inst.symbol,
        "notionalCoef": 1.0,
        "brackets": [
            {"bracket": t.bracket, "initialLeverage": t.max_leverage,
             "notionalCap": int(t.cap // SCALE) if t.cap % SCALE == 0 else float(fmt_trim(t.cap)),
             "notionalFloor": int(t.floor // SCALE) if t.floor % SCALE == 0 else float(fmt_trim(t.floor)),
             "maintMarginRatio": float(fmt_trim(t.mmr)), "cum": float(fmt_trim(t.cum))}
            for t in inst.tiers
        ],
    }


# ----------------------------------------------------------------------------- orders


def order(view: OrderView, inst: Instrument) -> dict[str, Any]:
    """A (non-conditional) order as ``GET /fapi/v1/order`` returns it."""
    out: dict[str, Any] = {
        "orderId": view.order_id,
        "symbol": view.symbol,
        "status": view.status,
        "clientOrderId": view.client_order_id,
        "price": price(inst, view.price),
        "avgPrice": price(inst, view.avg_price) if view.avg_price else "0",
        "origQty": qty(inst, view.qty),
        "executedQty": qty(inst, view.filled_qty),
        "cumQty": qty(inst, view.filled_qty),
        "cumQuote": money(view.cum_quote),
        "timeInForce": view.time_in_force,
        "type": view.order_type,
        "reduceOnly": view.reduce_only,
        "closePosition": view.close_position,
        "side": view.side,
        "positionSide": view.position_side,
        "stopPrice": price(inst, view.stop_price),
        "workingType": view.working_type,
        "priceProtect": view.price_protect,
        "origType": view.order_type,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "NONE",
        "goodTillDate": 0,
        "time": view.create_ts,
        "updateTime": view.update_ts or view.create_ts,
    }
    if view.order_type == m.TRAILING_STOP_MARKET:
        out["activatePrice"] = price(inst, view.activation_price)
        out["priceRate"] = percent_text(view.callback_rate)
    return out


def algo_status(view: OrderView) -> str:
    """Binance's algoStatus; a conditional that fired but placed nothing (refused, nothing to close) EXPIRED."""
    if view.status == "TRIGGERED" and not view.triggered_order_id:
        return "EXPIRED"
    return ALGO_STATUS.get(view.status, view.status)


def algo_order(view: OrderView, inst: Instrument) -> dict[str, Any]:
    """A conditional order as ``GET /fapi/v1/algoOrder`` returns it."""
    return {
        "algoId": view.order_id,
        "clientAlgoId": view.client_order_id,
        "algoType": "CONDITIONAL",
        "orderType": view.order_type,
        "symbol": view.symbol,
        "side": view.side,
        "positionSide": view.position_side,
        "timeInForce": view.time_in_force,
        "quantity": qty(inst, view.qty),
        "algoStatus": algo_status(view),
        "actualOrderId": str(view.triggered_order_id) if view.triggered_order_id else "",
        "actualPrice": price(inst, view.avg_price) if view.avg_price else "0",
        "triggerPrice": price(inst, view.stop_price),
        "price": price(inst, view.price),
        "icebergQuantity": None,
        "tpTriggerPrice": "0.000", "tpPrice": "0.000", "slTriggerPrice": "0.000", "slPrice": "0.000",
        "tpOrderType": "", "selfTradePreventionMode": "NONE",
        "workingType": view.working_type,
        "priceMatch": "NONE",
        "closePosition": view.close_position,
        "priceProtect": view.price_protect,
        "reduceOnly": view.reduce_only,
        "activatePrice": price(inst, view.activation_price) if view.activation_price else "",
        "callbackRate": percent_text(view.callback_rate) if view.callback_rate else "",
        "createTime": view.create_ts,
        "updateTime": view.update_ts or view.create_ts,
        "triggerTime": 0,
        "goodTillDate": 0,
    }


def user_trade(rec: TradeRecord, inst: Instrument) -> dict[str, Any]:
    """One ``GET /fapi/v1/userTrades`` row (``maker``, never ``isMaker``: that reads as spot)."""
    return {
        "buyer": rec.side == m.BUY,
        "commission": money(rec.commission),
        "commissionAsset": ASSET,
        "id": rec.trade_id,
        "maker": rec.maker,
        "orderId": rec.order_id,
        "price": price(inst, rec.price),
        "qty": qty(inst, rec.qty),
        "quoteQty": money(rec.quote_qty),
        "realizedPnl": money(rec.realized_pnl),
        "side": rec.side,
        "positionSide": rec.position_side,
        "symbol": rec.symbol,
        "time": rec.ts,
    }


# ----------------------------------------------------------------------------- account


def position_risk(pos: PositionView, inst: Instrument, *, v2: bool = False) -> dict[str, Any]:
    """One ``positionRisk`` row (v3; v2 adds leverage, marginType, maxNotionalValue)."""
    isolated_margin = pos.isolated_wallet + pos.unrealized_pnl if pos.isolated else 0
    out: dict[str, Any] = {
        "symbol": pos.symbol,
        "positionSide": pos.position_side,
        "positionAmt": qty(inst, pos.qty),
        "entryPrice": price(inst, pos.entry_price) if pos.entry_price else "0.0",
        "breakEvenPrice": price(inst, pos.entry_price) if pos.entry_price else "0.0",
        "markPrice": price(inst, pos.mark),
        "unRealizedProfit": money(pos.unrealized_pnl),
        "liquidationPrice": price_rounded(inst, pos.liquidation_price) if pos.liquidation_price > 0 else "0",
        "isolatedMargin": money(isolated_margin),
        "notional": money(pos.notional),
        "marginAsset": ASSET,
        "isolatedWallet": money(pos.isolated_wallet),
        "initialMargin": money(pos.initial_margin),
        "maintMargin": money(pos.maintenance_margin),
        "positionInitialMargin": money(pos.initial_margin),
        "openOrderInitialMargin": "0",
        "adl": pos.adl_quantile,
        "bidNotional": "0",
        "askNotional": "0",
        "updateTime": pos.update_ts,
    }
    if v2:
        out["leverage"] = str(pos.leverage)
        out["marginType"] = "isolated" if pos.isolated else "cross"
        out["isAutoAddMargin"] = "true" if pos.auto_add_margin else "false"
        out["maxNotionalValue"] = fmt_trim(inst.max_notional(pos.leverage))
    return out


def empty_position(inst: Instrument, position_side: str, leverage: int, isolated: bool,
                   mark: int) -> dict[str, Any]:
    """A zero row for ``positionRisk`` v2 (the venue lists every symbol there)."""
    return {
        "symbol": inst.symbol, "positionSide": position_side, "positionAmt": qty(inst, 0),
        "entryPrice": "0.0", "breakEvenPrice": "0.0", "markPrice": price(inst, mark),
        "unRealizedProfit": money(0), "liquidationPrice": "0", "isolatedMargin": money(0),
        "notional": "0", "marginAsset": ASSET, "isolatedWallet": money(0), "initialMargin": "0",
        "maintMargin": "0", "positionInitialMargin": "0", "openOrderInitialMargin": "0", "adl": 0,
        "bidNotional": "0", "askNotional": "0", "updateTime": 0, "leverage": str(leverage),
        "marginType": "isolated" if isolated else "cross", "isAutoAddMargin": "false",
        "maxNotionalValue": fmt_trim(inst.max_notional(leverage)),
    }


def account(view: AccountView, instruments: dict[str, Instrument], now_ms: int) -> dict[str, Any]:
    """``GET /fapi/v3/account`` (and v2): totals, the USDT asset row and the open positions."""
    update = view.update_ts or now_ms
    maint = sum(p.maintenance_margin for p in view.positions)
    initial = view.position_initial_margin + view.open_order_initial_margin
    asset = {
        "asset": ASSET,
        "walletBalance": money(view.wallet_balance),
        "unrealizedProfit": money(view.unrealized_pnl),
        "marginBalance": money(view.margin_balance),
        "maintMargin": money(maint),
        "initialMargin": money(initial),
        "positionInitialMargin": money(view.position_initial_margin),
        "openOrderInitialMargin": money(view.open_order_initial_margin),
        "crossWalletBalance": money(view.cross_wallet),
        "crossUnPnl": money(view.cross_unrealized_pnl),
        "availableBalance": money(view.available_balance),
        "maxWithdrawAmount": money(view.max_withdraw),
        "marginAvailable": True,
        "updateTime": update,
    }
    positions = []
    for p in view.positions:
        inst = instruments[p.symbol]
        positions.append({
            "symbol": p.symbol, "positionSide": p.position_side, "positionAmt": qty(inst, p.qty),
            "entryPrice": price(inst, p.entry_price), "breakEvenPrice": price(inst, p.entry_price),
            "leverage": str(p.leverage), "isolated": p.isolated,
            "maxNotional": fmt_trim(inst.max_notional(p.leverage)),
            "positionInitialMargin": money(p.initial_margin), "openOrderInitialMargin": "0",
            "unrealizedProfit": money(p.unrealized_pnl),
            "isolatedMargin": money(p.isolated_wallet + p.unrealized_pnl if p.isolated else 0),
            "notional": money(p.notional), "isolatedWallet": money(p.isolated_wallet),
            "initialMargin": money(p.initial_margin), "maintMargin": money(p.maintenance_margin),
            "updateTime": p.update_ts,
        })
    return {
        "totalInitialMargin": money(initial),
        "totalMaintMargin": money(maint),
        "totalWalletBalance": money(view.wallet_balance),
        "totalUnrealizedProfit": money(view.unrealized_pnl),
        "totalMarginBalance": money(view.margin_balance),
        "totalPositionInitialMargin": money(view.position_initial_margin),
        "totalOpenOrderInitialMargin": money(view.open_order_initial_margin),
        "totalCrossWalletBalance": money(view.cross_wallet),
        "totalCrossUnPnl": money(view.cross_unrealized_pnl),
        "availableBalance": money(view.available_balance),
        "maxWithdrawAmount": money(view.max_withdraw),
        "canTrade": True, "canDeposit": True, "canWithdraw": True, "feeTier": 0, "multiAssetsMargin": False,
        "updateTime": update,
        "assets": [asset],
        "positions": positions,
    }


def balance(view: AccountView, now_ms: int) -> list[dict[str, Any]]:
    """``GET /fapi/v2|v3/balance``."""
    return [{
        "accountAlias": f"SIM{view.account}",
        "asset": ASSET,
        "balance": money(view.wallet_balance),
        "crossWalletBalance": money(view.cross_wallet),
        "crossUnPnl": money(view.cross_unrealized_pnl),
        "availableBalance": money(view.available_balance),
        "maxWithdrawAmount": money(view.max_withdraw),
        "marginAvailable": True,
        "updateTime": view.update_ts or now_ms,
    }]


# ----------------------------------------------------------------------------- event log


_MONEY_FIELDS = frozenset({
    "price", "qty", "mark", "index", "bankruptcy_price", "fee", "loss", "change", "balance", "wallet",
    "amount", "rate", "margin_ratio", "cross_wallet", "isolated_wallet", "unrealized_pnl",
    "maintenance_margin", "entry_price", "stop_price", "filled_qty", "avg_price", "last_qty",
    "last_price", "commission", "realized_pnl", "funding_rate", "deposit", "spot_wallet",
})


def readable(encoded: Any) -> Any:
    """An ``messages.encode`` dict with money/price/qty fields as decimal text (for the event log)."""
    if isinstance(encoded, list):
        return [readable(v) for v in encoded]
    if not isinstance(encoded, dict):
        return encoded
    out = {}
    for key, value in encoded.items():
        if key in _MONEY_FIELDS and isinstance(value, int) and not isinstance(value, bool):
            out[key] = fmt_trim(value)
        else:
            out[key] = readable(value)
    return out

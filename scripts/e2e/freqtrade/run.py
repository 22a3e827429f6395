"""End-to-end: an unmodified freqtrade, live (``dry_run: false``), trading against exchange-sim.

    python3 scripts/e2e/freqtrade/run.py [--minutes 8] [--venv DIR] [--keep]

1. creates a venv (default ``~/.cache/exchange-sim/freqtrade-venv``) and installs freqtrade from
   PyPI in it (``FREQTRADE_VERSION``, default 2026.9) unless it is there already;
2. starts ``exchange-sim run`` on the synthetic feed stamped with the wall clock
   (``synthetic?start=now&speed=1``) on a free port, without a journal, and opens an account;
3. runs ``freqtrade trade`` with the README's configuration (only URLs overridden) and
   ``TrivialStrategy`` (200 startup candles on 1m, stop on the exchange, out after 3 minutes);
4. when freqtrade's first trade is closed (or after ``--minutes``), stops it and checks:
   it **entered** (a filled BUY of the account in the simulator's event log), it **placed its
   stop on the exchange** (a STOP_MARKET algo order of the account), it **exited** (the position
   is flat, no order is left open), and **both wallets agree** (the simulator's wallet equals the
   deposit plus freqtrade's own ``close_profit_abs``, and freqtrade's last balance reading).

Prints what it saw and exits 0 when every check holds, 1 otherwise (2: could not run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
TOKEN = "e2e-admin-token"
DEPOSIT = Decimal("10000")
DEFAULT_VENV = Path.home() / ".cache" / "exchange-sim" / "freqtrade-venv"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def admin(base: str, method: str, path: str, body: dict | None = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def ensure_venv(venv: Path) -> Path:
    exe = venv / "bin" / "freqtrade"
    if exe.exists():
        return exe
    version = os.environ.get("FREQTRADE_VERSION", "2026.9")
    print(f"creating {venv} and installing freqtrade=={version} from PyPI (a few minutes) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"freqtrade=={version}"], check=True)
    return exe


def freqtrade_config(base: str, key: str, secret: str, db: Path) -> dict:
    """The README's freqtrade configuration, verbatim but for the placeholders."""
    urls = {k: base + v for k, v in {
        "public": "/api/v3", "private": "/api/v3", "sapi": "/sapi/v1", "sapiV2": "/sapi/v2", "sapiV3": "/sapi/v3",
        "fapiPublic": "/fapi/v1", "fapiPublicV2": "/fapi/v2", "fapiPublicV3": "/fapi/v3",
        "fapiPrivate": "/fapi/v1", "fapiPrivateV2": "/fapi/v2", "fapiPrivateV3": "/fapi/v3",
        "fapiData": "/futures/data"}.items()}
    ccxt_config = {"urls": {"api": urls},
                   "options": {"defaultType": "swap", "fetchMarkets": {"types": ["linear"]},
                               "fetchMargins": False, "fetchCurrencies": False}}
    return {
        "max_open_trades": 1, "stake_currency": "USDT", "stake_amount": 200, "tradable_balance_ratio": 0.99,
        "dry_run": False, "trading_mode": "futures", "margin_mode": "isolated", "timeframe": "1m",
        "cancel_open_orders_on_exit": True, "db_url": f"sqlite:///{db}",
        "unfilledtimeout": {"entry": 1, "exit": 1, "unit": "minutes"},
        "entry_pricing": {"price_side": "other", "use_order_book": True, "order_book_top": 1},
        "exit_pricing": {"price_side": "other", "use_order_book": True, "order_book_top": 1},
        "exchange": {"name": "binance", "key": key, "secret": secret, "ccxt_config": ccxt_config,
                     "ccxt_async_config": ccxt_config, "pair_whitelist": ["BTC/USDT:USDT"]},
        "pairlists": [{"method": "StaticPairList"}],
        "internals": {"process_throttle_secs": 5},
        "bot_name": "exchange-sim-e2e", "initial_state": "running",
    }


def trades_of(db: Path) -> tuple[list[dict], list[dict]]:
    if not db.exists():
        return [], []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    con.row_factory = sqlite3.Row
    try:
        trades = [dict(r) for r in con.execute("SELECT * FROM trades")]
        orders = [dict(r) for r in con.execute("SELECT * FROM orders")]
    except sqlite3.Error:
        return [], []
    finally:
        con.close()
    return trades, orders


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=8.0, help="give up after this long (default 8)")
    ap.add_argument("--venv", type=Path, default=Path(os.environ.get("EXSIM_FREQTRADE_VENV", DEFAULT_VENV)))
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, config, database)")
    args = ap.parse_args()
    try:
        freqtrade = ensure_venv(args.venv)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"cannot install freqtrade: {exc}")
        return 2
    work = Path(tempfile.mkdtemp(prefix="exsim-freqtrade-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    sim_log = open(work / "simulator.log", "w")  # noqa: SIM115 - closed at the end
    sim = subprocess.Popen([sys.executable, "-m", "exchange_sim.cli", "run", "--feed", "synthetic?start=now&speed=1",
                            "--port", str(port), "--admin-token", TOKEN, "--no-journal"],
                           cwd=ROOT, env=env, stdout=sim_log, stderr=subprocess.STDOUT)
    bot = None
    try:
        for _ in range(100):
            try:
                admin(base, "GET", "/sim/v1/status")
                break
            except OSError:
                time.sleep(0.3)
        account = admin(base, "POST", "/sim/v1/accounts", {"name": "freqtrade", "deposit": str(DEPOSIT)})
        aid = account["accountId"]  # type: ignore[index]
        db = work / "trades.sqlite"
        cfg = freqtrade_config(base, account["apiKey"], account["apiSecret"], db)  # type: ignore[index]
        (work / "config.json").write_text(json.dumps(cfg, indent=2))
        userdir = work / "user_data"
        (userdir / "strategies").mkdir(parents=True)
        shutil.copy(HERE / "TrivialStrategy.py", userdir / "strategies")
        bot_log = open(work / "freqtrade.log", "w")  # noqa: SIM115
        print(f"simulator {base} (account {aid}); freqtrade {freqtrade}; work dir {work}", flush=True)
        bot = subprocess.Popen([str(freqtrade), "trade", "--config", str(work / "config.json"), "--userdir",
                                str(userdir), "--strategy", "TrivialStrategy"],
                               cwd=work, stdout=bot_log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + args.minutes * 60
        trades: list[dict] = []
        orders: list[dict] = []
        while time.monotonic() < deadline and bot.poll() is None:
            time.sleep(5)
            trades, orders = trades_of(db)
            if trades and not trades[0]["is_open"]:
                time.sleep(10)  # let it tidy up (stop order cancelled, wallet refreshed)
                break
        if bot.poll() is None:
            bot.send_signal(signal.SIGINT)
            try:
                bot.wait(60)
            except subprocess.TimeoutExpired:
                bot.kill()
        trades, orders = trades_of(db)
        return report(base, aid, trades, orders, work)
    finally:
        if bot is not None and bot.poll() is None:
            bot.kill()
        sim.send_signal(signal.SIGINT)
        try:
            sim.wait(30)
        except subprocess.TimeoutExpired:
            sim.kill()
        sim_log.close()
        if not args.keep:
            print(f"(logs in {work}; removed: pass --keep to keep them)")
            shutil.rmtree(work, ignore_errors=True)


def report(base: str, aid: int, trades: list[dict], orders: list[dict], work: Path) -> int:
    events = admin(base, "GET", f"/sim/v1/events?account={aid}&type=OrderUpdate&limit=1000")
    rows = events["events"] if isinstance(events, dict) else events  # type: ignore[index]
    updates = [e.get("event", e) for e in rows]
    acct = admin(base, "GET", f"/sim/v1/accounts/{aid}")
    fills = [u for u in updates if u.get("exec_type") == "TRADE" or u.get("execType") == "TRADE"]
    stops = [u for u in updates if (u.get("order_type") or u.get("orderType")) == "STOP_MARKET"]
    buys = [u for u in fills if u.get("side") == "BUY"]
    sells = [u for u in fills if u.get("side") == "SELL"]
    wallet = Decimal(str(acct["walletBalance"]))  # type: ignore[index]
    positions = [p for p in acct.get("positions", []) if Decimal(str(p.get("positionAmt", "0"))) != 0]  # type: ignore[union-attr]
    open_orders = acct.get("orders", [])  # type: ignore[union-attr]
    profit = sum((Decimal(str(t["close_profit_abs"] or 0)) for t in trades if not t["is_open"]), Decimal(0))
    ft_stops = [o for o in orders if o.get("ft_order_side") == "stoploss"]
    print("\nfreqtrade trades:")
    for t in trades:
        print(f"  #{t['id']} {t['pair']} open={bool(t['is_open'])} amount={t['amount']} open_rate={t['open_rate']} "
              f"close_rate={t['close_rate']} close_profit_abs={t['close_profit_abs']} exit_reason={t['exit_reason']} "
              f"leverage={t['leverage']} stop_loss={t['stop_loss']}")
    print("freqtrade orders:")
    for o in orders:
        print(f"  {o['ft_order_side']:9} {o['order_type']:12} {o['status']:10} id={o['order_id']} "
              f"amount={o['amount']} filled={o['filled']} average={o['average']} stop={o.get('stop_price')}")
    print(f"simulator: {len(buys)} BUY fill(s), {len(sells)} SELL fill(s), {len(stops)} STOP_MARKET update(s); "
          f"wallet {wallet}; open positions {len(positions)}; open orders {len(open_orders)}")
    expected = DEPOSIT + profit
    checks = {
        "freqtrade entered (BUY filled in the simulator)": bool(buys) and bool(trades),
        "stop placed on the exchange (STOP_MARKET algo order)": bool(stops) and bool(ft_stops),
        "exited (trade closed, position flat, nothing left open)": bool(trades) and not trades[0]["is_open"]
        and bool(sells) and not positions and not open_orders,
        f"wallets agree (simulator {wallet} = deposit + freqtrade profit {expected})": abs(wallet - expected)
        <= Decimal("0.00000001") * 10,
    }
    for name, ok in checks.items():
        print(f"  [{'ok' if ok else 'FAIL'}] {name}")
    if not all(checks.values()):
        tail = (work / "freqtrade.log").read_text(errors="replace").splitlines()[-40:]
        print("freqtrade log (last lines):\n  " + "\n  ".join(tail))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

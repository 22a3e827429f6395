"""The spot (funding) wallet and its transfer history survive a crash of the real server.

``exchange-sim run`` (journaled, manual feed) in a subprocess; a real ccxt client moves money
between the futures and spot wallets through ``/sapi/v1/asset/transfer``; the server gets
SIGKILL right after the last acknowledgement and is started again on the same file. The
restarted server shows the same two balances (ccxt ``fetch_balance`` for futures and for spot),
the same history (``fetch_transfers``, with the same ``tranId``s), refuses what the recovered
spot wallet cannot pay (−5002) and numbers the next transfer after the recovered ones.
"""

from __future__ import annotations

import ccxt
import pytest

from tests.support.api_ccxt import ccxt_config
from tests.support.journal_server import RestClient, SimServer

SPOT = {"type": "spot", "subType": "spot"}
TO_SPOT = {"fromAccount": "swap", "toAccount": "spot"}
TO_FUTURES = {"fromAccount": "spot", "toAccount": "swap"}


def _client(url: str, account: dict) -> ccxt.binanceusdm:
    template = ccxt.binanceusdm()
    cfg = ccxt_config(url, account["apiKey"], account["apiSecret"],
                      exceptions={"exact": {**template.exceptions["spot"]["exact"],
                                            **template.exceptions["linear"]["exact"]}})
    cfg["urls"]["api"].update(sapi=url + "/sapi/v1", private=url + "/api/v3")
    return ccxt.binanceusdm(cfg)


def _wallets(ex: ccxt.binanceusdm) -> tuple[float, float]:
    return ex.fetch_balance()["USDT"]["total"], ex.fetch_balance(SPOT)["USDT"]["total"]


def _history(ex: ccxt.binanceusdm) -> tuple[list, list]:
    def rows(params: dict) -> list:
        return [(t["id"], t["amount"], t["timestamp"]) for t in ex.fetch_transfers("USDT", params=params)]
    return rows(TO_SPOT), rows(TO_FUTURES)


def test_spot_wallet_and_transfer_history_survive_sigkill(tmp_path):
    server = SimServer(tmp_path / "session.db", "manual", tmp_path)
    server.start()
    try:
        admin = RestClient(server.wait_listening())
        account = admin.admin("POST", "/sim/v1/accounts", {"name": "bot", "deposit": "1000"})
        ex = _client(server.url, account)
        # two transfers: the call weighs 900 of the key's 2400 a minute (the limiter starts afresh after a restart)
        ids = [ex.transfer("USDT", 400, "swap", "spot")["id"], ex.transfer("USDT", 175, "spot", "swap")["id"]]
        assert _wallets(ex) == (775, 225)
        history = _history(ex)
        assert [[t[:2] for t in side] for side in history] == [[(ids[0], 400)], [(ids[1], 175)]]
        server.kill()  # SIGKILL: nothing flushed on the way out

        server.start()
        admin = RestClient(server.wait_listening())
        ex = _client(server.url, account)
        assert _wallets(ex) == (775, 225)
        assert _history(ex) == history
        summary = admin.admin("GET", f"/sim/v1/accounts/{account['accountId']}")
        assert summary["spotWallet"] == "225.00000000" and summary["walletBalance"] == "775.00000000"
        with pytest.raises(ccxt.InsufficientFunds, match="-5002"):
            ex.transfer("USDT", 225.01, "spot", "swap")  # the recovered spot wallet holds 225
        after = ex.transfer("USDT", 225, "spot", "swap")["id"]
        assert int(after) > max(int(i) for i in ids)  # the tranId sequence continues
        assert _wallets(ex) == (1000, 0)
        assert [t[0] for t in _history(ex)[1]] == [ids[1], after]
    finally:
        if server.proc is not None:
            server.terminate()

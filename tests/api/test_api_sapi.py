"""The wallet (``/sapi``) calls a futures bot makes, through a real ccxt client.

Universal transfers move money between the account's funding (spot) wallet and its futures
wallet; the futures side is the core's wallet (checked with ``fetch_balance`` and the core's
own view), a refused transfer changes nothing.
"""

from __future__ import annotations

import ccxt
import pytest

from tests.support.api_server import business_state


def _with_sapi(clients, sim, account):
    """The README's client: sapi URLs on the simulator, the wallet errors mapped with the futures ones."""
    template = ccxt.binanceusdm()
    ex = clients.async_(account, exceptions={"exact": {**template.exceptions["spot"]["exact"],
                                                       **template.exceptions["linear"]["exact"]}})
    for key in ("sapi", "sapiV2", "sapiV3", "sapiV4"):
        ex.urls["api"][key] = sim.url + "/sapi/" + ("v1" if key == "sapi" else key[-2:].lower())
    return ex


async def test_system_status_and_key_rights(sim, clients):
    alice = await sim.create_account("alice", deposit="1000")
    ex = _with_sapi(clients, sim, alice)
    assert (await ex.fetch_status())["status"] == "ok"
    rights = await ex.sapiGetAccountApiRestrictions()
    assert rights["enableFutures"] is True and rights["enableWithdrawals"] is False
    assert rights["permitsUniversalTransfer"] is True


async def test_universal_transfer_between_funding_and_futures_wallets(sim, clients):
    alice = await sim.create_account("alice", deposit="10000")
    aid = alice["accountId"]
    ex = _with_sapi(clients, sim, alice)
    out = await ex.transfer("USDT", 400, "swap", "spot")  # UMFUTURE_MAIN
    assert out["id"]
    assert (await ex.fetch_balance())["USDT"]["total"] == 9600
    assert sim.exchange.account_view(aid).wallet_balance == 9600 * 10**8
    await ex.transfer("USDT", 150, "spot", "swap")  # MAIN_UMFUTURE
    assert (await ex.fetch_balance())["USDT"]["total"] == 9750
    before = business_state(sim.exchange)
    with pytest.raises(ccxt.InsufficientFunds):
        await ex.transfer("USDT", 300, "spot", "swap")  # the funding wallet holds 250
    with pytest.raises(ccxt.InsufficientFunds):
        await ex.transfer("USDT", 20000, "swap", "spot")
    assert business_state(sim.exchange) == before
    history = await ex.sapiGetAssetTransfer({"type": "UMFUTURE_MAIN"})
    assert history["total"] == 1 and history["rows"][0]["amount"] == "400.00000000"
    assert history["rows"][0]["status"] == "CONFIRMED"
    rows = (await ex.sapiGetAssetTransfer({"type": "MAIN_UMFUTURE"}))["rows"]
    assert [r["amount"] for r in rows] == ["150.00000000"]


async def test_transfer_type_and_asset_are_checked(sim, clients):
    alice = await sim.create_account("alice", deposit="100")
    ex = _with_sapi(clients, sim, alice)
    with pytest.raises(ccxt.BadRequest):
        await ex.sapiPostAssetTransfer({"type": "MAIN_MARGIN", "asset": "USDT", "amount": "1"})
    with pytest.raises(ccxt.BadRequest):
        await ex.sapiPostAssetTransfer({"type": "UMFUTURE_MAIN", "asset": "DOGE", "amount": "1"})

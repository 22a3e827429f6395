"""The wallet (``/sapi``) calls a futures bot makes, through a real ccxt client.

Universal transfers move money between the account's funding (spot) wallet and its futures
wallet; both are the core's wallets (checked with ``fetch_balance`` for futures and for spot, and
the core's own view), a refused transfer changes nothing, and the transfer history is ccxt's
``fetch_transfers``. Surviving a restart: tests/journal/test_wallet_restart.py.
"""

from __future__ import annotations

import asyncio

import ccxt
import pytest

from tests.support.api_server import business_state

SPOT = {"type": "spot", "subType": "spot"}  # binanceusdm defaults the sub-type to linear: name the spot one


def _with_sapi(clients, sim, account):
    """The README's client: sapi URLs on the simulator, the wallet errors mapped with the futures ones."""
    template = ccxt.binanceusdm()
    ex = clients.async_(account, exceptions={"exact": {**template.exceptions["spot"]["exact"],
                                                       **template.exceptions["linear"]["exact"]}})
    for key in ("sapi", "sapiV2", "sapiV3", "sapiV4"):
        ex.urls["api"][key] = sim.url + "/sapi/" + ("v1" if key == "sapi" else key[-2:].lower())
    ex.urls["api"]["private"] = sim.url + "/api/v3"  # the spot account (fetch_balance type spot)
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
    assert (await ex.fetch_balance(SPOT))["USDT"]["total"] == 0  # the spot wallet starts empty
    out = await ex.transfer("USDT", 400, "swap", "spot")  # UMFUTURE_MAIN
    assert out["id"]
    assert (await ex.fetch_balance())["USDT"]["total"] == 9600
    assert sim.exchange.account_view(aid).wallet_balance == 9600 * 10**8
    assert sim.exchange.spot_wallet(aid) == 400 * 10**8
    back = await ex.transfer("USDT", 150, "spot", "swap")  # MAIN_UMFUTURE
    assert int(back["id"]) > int(out["id"])
    assert (await ex.fetch_balance())["USDT"]["total"] == 9750
    spot = await ex.fetch_balance(SPOT)
    assert spot["USDT"]["free"] == 250 and spot["USDT"]["used"] == 0
    income = await ex.fapiPrivateGetIncome({"incomeType": "TRANSFER"})
    assert [(i["tranId"], i["income"]) for i in income][-2:] == [
        (int(out["id"]), "-400.00000000"), (int(back["id"]), "150.00000000")]
    before = business_state(sim.exchange)
    with pytest.raises(ccxt.InsufficientFunds, match="-5002"):
        await ex.transfer("USDT", 300, "spot", "swap")  # the funding wallet holds 250
    with pytest.raises(ccxt.InsufficientFunds, match="-5002"):
        await ex.transfer("USDT", 20000, "swap", "spot")
    assert business_state(sim.exchange) == before
    history = await ex.sapiGetAssetTransfer({"type": "UMFUTURE_MAIN"})
    assert history["total"] == 1 and history["rows"][0]["amount"] == "400.00000000"
    assert history["rows"][0]["status"] == "CONFIRMED" and history["rows"][0]["tranId"] == int(out["id"])
    rows = (await ex.sapiGetAssetTransfer({"type": "MAIN_UMFUTURE"}))["rows"]
    assert [r["amount"] for r in rows] == ["150.00000000"]
    to_spot = await ex.fetch_transfers("USDT", params={"fromAccount": "swap", "toAccount": "spot"})
    assert [(t["id"], t["amount"], t["fromAccount"], t["toAccount"]) for t in to_spot] == [
        (out["id"], 400, "linear", "spot")]
    to_futures = await ex.fetch_transfers("USDT", params={"fromAccount": "spot", "toAccount": "swap"})
    assert [(t["id"], t["amount"]) for t in to_futures] == [(back["id"], 150)]


async def test_transfer_history_pages_newest_first_and_filters_by_time(sim, clients):
    alice = await sim.create_account("alice", deposit="1000")
    ex = _with_sapi(clients, sim, alice)
    ids = []
    for amount in range(1, 13):
        await asyncio.sleep(0.005)  # distinct timestamps (ms) for the time filter
        ids.append(int((await ex.transfer("USDT", amount, "swap", "spot"))["id"]))
    first = await ex.sapiGetAssetTransfer({"type": "UMFUTURE_MAIN", "size": 5})
    assert first["total"] == 12 and [r["tranId"] for r in first["rows"]] == ids[::-1][:5]
    third = await ex.sapiGetAssetTransfer({"type": "UMFUTURE_MAIN", "size": 5, "current": 3})
    assert [r["amount"] for r in third["rows"]] == ["2.00000000", "1.00000000"]
    stamps = [r["timestamp"] for r in first["rows"]]
    window = await ex.sapiGetAssetTransfer({"type": "UMFUTURE_MAIN", "startTime": stamps[2], "endTime": stamps[1]})
    assert window["total"] == 2 and [r["tranId"] for r in window["rows"]] == ids[::-1][1:3]
    assert (await ex.sapiGetAssetTransfer({"type": "MAIN_UMFUTURE"})) == {"total": 0, "rows": []}


async def test_transfer_type_and_asset_are_checked(sim, clients):
    alice = await sim.create_account("alice", deposit="100")
    ex = _with_sapi(clients, sim, alice)
    with pytest.raises(ccxt.BadRequest):
        await ex.sapiPostAssetTransfer({"type": "MAIN_MARGIN", "asset": "USDT", "amount": "1"})
    with pytest.raises(ccxt.BadRequest):
        await ex.sapiPostAssetTransfer({"type": "UMFUTURE_MAIN", "asset": "DOGE", "amount": "1"})

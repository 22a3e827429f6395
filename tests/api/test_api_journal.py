"""The admin API with a journal attached: the event log is the journal's, status reports its health,
and a refused write is logged with the journal's own words."""

from __future__ import annotations

import logging

import aiohttp

from exchange_sim.api import ApiConfig, ApiServer
from exchange_sim.api.context import EventLog, JournalEventLog
from exchange_sim.journal import Journal
from tests.support.api_server import running_sim
from tests.support.journal_faults import make_read_only
from tests.support.journal_session import start_journaled_node

TOKEN = "api-journal-test-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


async def _get(http: aiohttp.ClientSession, url: str) -> dict:
    async with http.get(url, headers=HEADERS) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def _post(http: aiohttp.ClientSession, url: str, body: dict) -> tuple[int, dict]:
    async with http.post(url, json=body, headers=HEADERS) as r:
        return r.status, await r.json()


async def test_the_event_log_status_and_a_failed_write_with_a_journal(tmp_path, caplog):
    journal = Journal(tmp_path / "s.db")
    exchange, node = await start_journaled_node(journal)
    server = ApiServer(node, ApiConfig(port=0, admin_token=TOKEN), announce=None)
    await server.start()
    try:
        assert isinstance(server.ctx.event_log, JournalEventLog)
        async with aiohttp.ClientSession() as http:
            base = server.url + "/sim/v1"
            status, alice = await _post(http, base + "/accounts", {"name": "alice", "deposit": "100"})
            assert status == 200
            status, _ = await _post(http, f"{base}/accounts/{alice['accountId']}/deposit", {"amount": "5"})
            assert status == 200
            log = (await _get(http, base + "/events"))["events"]
            assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
            assert [e["seq"] for e in log] == [seq for seq, _ in journal.events()]
            assert {e["type"] for e in log} >= {"AccountCreated", "BalanceUpdate"}
            assert (await _get(http, base + "/events?type=AccountCreated"))["events"] == log[:1]
            assert (await _get(http, base + "/events?type=account_created,nothing"))["events"] == log[:1]
            assert (await _get(http, base + "/events?type=nothing"))["events"] == []
            assert (await _get(http, base + f"/events?limit=1&account={alice['accountId']}"))["events"] == log[-1:]
            assert (await _get(http, base + f"/events?afterSeq={log[-1]['seq']}"))["events"] == []

            health = (await _get(http, base + "/status"))["journal"]
            assert health["enabled"] and health["failed"] is False and health["failure"] is None
            assert health["path"] == str(tmp_path / "s.db")
            assert health["stats"]["events"] == len(log) and health["stats"]["lastSeq"] == journal.last_seq
            assert set(health["stats"]) == {"inputs", "firstSeq", "lastSeq", "events", "snapshots", "snapshotBytes",
                                            "fileBytes", "walBytes", "pageBytes"}

            make_read_only(journal)
            caplog.clear()
            with caplog.at_level(logging.ERROR, logger="exchange_sim.api.context"):
                status, body = await _post(http, f"{base}/accounts/{alice['accountId']}/deposit", {"amount": "5"})
            assert (status, body["code"]) == (503, -1001)
            refused = [r.getMessage() for r in caplog.records if r.name == "exchange_sim.api.context"]
            assert len(refused) == 1 and "JournalWriteError" in refused[0]
            assert journal.failure is not None and journal.failure in refused[0]  # the journal's own words
            assert alice["apiSecret"] not in refused[0]

            health = (await _get(http, base + "/status"))["journal"]
            assert health["failed"] is True and health["failure"] == journal.failure
            assert (await _get(http, base + "/events"))["events"] == log  # reads keep working
    finally:
        await server.stop()
        await node.stop()
        journal.close()


async def test_without_a_journal_the_log_is_in_memory_and_status_says_so():
    async with running_sim() as sim:
        assert isinstance(sim.server.ctx.event_log, EventLog)
        await sim.create_account("bob", deposit="10")
        status, st = await sim.admin("GET", "/sim/v1/status")
        assert status == 200 and st["journal"] == {"enabled": False}
        status, log = await sim.admin("GET", "/sim/v1/events?type=nothing")
        assert status == 200 and log["events"] == []
        status, log = await sim.admin("GET", "/sim/v1/events?type=AccountCreated")
        assert [e["seq"] for e in log["events"]] == [1]

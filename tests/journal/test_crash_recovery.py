"""SIGKILL the whole simulator while a client trades and a replay feed drives prices; nothing is lost.

One session file, ``EXSIM_CRASH_TRIALS`` trials (default 20). Each trial starts ``exchange-sim
run --feed replay:<recording>?speed=1 --db <file>`` (restart = recovery of the previous trial's
kill), a client thread places and cancels orders through the signed REST API, and after a
seeded random delay the server gets SIGKILL (a few trials kill it while it is still starting,
i.e. recovering). After every kill the file is recovered and compared with an uninterrupted run
over the same inputs (snapshot 0 plus every stored input, applied in one go): accounts,
positions, open orders, every order, trades and income, and the event log byte for byte; and
every order the client saw acknowledged must exist (in the event log; in the core too unless it
is a closed order beyond the core's ``history_limit``, which the core forgets, as the venue does). The restarted server must report the same
next input and answer ``GET /fapi/v1/order`` for the orders acknowledged before the kill. At the
end a clean start and stop, and
``compare_session`` replays the whole session identically.
"""

from __future__ import annotations

import os
import random
import threading
import time

from exchange_sim.core.exchange import Exchange, ExchangeConfig
from exchange_sim.core.messages import OrderUpdate, dumps
from exchange_sim.journal import Journal, compare_session, recover
from tests.support.journal_server import ApiFailure, RestClient, SimServer, write_recording
from tests.support.journal_session import observable_state

TRIALS = int(os.environ.get("EXSIM_CRASH_TRIALS", "20"))


class Trader(threading.Thread):
    """Places (and sometimes cancels) orders until the server dies or it is told to stop."""

    def __init__(self, client: RestClient, account: int, rng: random.Random,
                 acked: dict[int, tuple[int, str]]) -> None:
        super().__init__(daemon=True)
        self.client, self.account, self.rng, self.acked = client, account, rng, acked
        self.stop = threading.Event()
        self.rejected = 0

    def run(self) -> None:
        rng = self.rng
        while not self.stop.is_set():
            side = rng.choice(("BUY", "SELL"))
            coid = f"t{rng.getrandbits(40):x}"
            params = {"symbol": "BTCUSDT", "side": side, "newClientOrderId": coid,
                      "quantity": f"0.00{rng.randint(1, 9)}"}
            if rng.random() < 0.7:
                offset = rng.randint(-300, 300) / 10
                params.update(type="LIMIT", timeInForce="GTC", price=f"{60000 + offset:.1f}")
            else:
                params.update(type="MARKET")
            try:
                if self.acked and rng.random() < 0.2:
                    order_id = rng.choice(sorted(self.acked))
                    self.client.signed("DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": order_id})
                    continue
                answer = self.client.signed("POST", "/fapi/v1/order", params)
                self.acked[int(answer["orderId"])] = (self.account, coid)
            except ApiFailure as exc:
                if exc.status >= 500:
                    return
                self.rejected += 1  # a venue rejection (e.g. unknown order): acknowledged, nothing to keep
            except OSError:
                return  # the server was killed


def check_against_uninterrupted_run(db, acked: dict[int, tuple[int, str]]) -> int:
    """Recover like a restart would; compare with one uninterrupted pass over the same inputs."""
    with Journal(db) as journal:
        recovered, next_seq = recover(journal)
        assert journal.snapshot_seqs()[0] == 0, "the test expects no compaction"
        reference = Exchange.restore(journal.snapshot_at(0))
        events = []
        for _seq, msg in journal.inputs():
            events.extend(reference.apply(msg))
        stored = list(journal.event_bodies())
    assert observable_state(recovered) == observable_state(reference)
    assert stored == [dumps(e) for e in events]
    updates = [e for e in events if isinstance(e, OrderUpdate)]
    logged = {(e.account, e.order_id): e.client_order_id for e in updates}
    closed_at = {(e.account, e.order_id): i for i, e in enumerate(updates)
                 if e.status not in ("NEW", "PARTIALLY_FILLED")}  # when each order was closed
    limit = ExchangeConfig().history_limit or 0
    for order_id, (account, coid) in acked.items():
        assert logged.get((account, order_id)) == coid, f"acknowledged order {order_id} ({coid}) was lost"
        order = recovered.order(account, order_id)
        if order is None:  # closed before the last history_limit closed orders: forgotten, as the venue does
            kept = [closed_at[(account, o.order_id)] for o in recovered.all_orders(account)
                    if (account, o.order_id) in closed_at]
            assert len(kept) >= limit and closed_at[(account, order_id)] < min(kept), \
                f"acknowledged order {order_id} ({coid}) was lost"
            continue
        assert order.client_order_id == coid
    return next_seq - 1


def check_orders_on_server(url: str, credentials, orders: dict[int, tuple[int, str]]) -> None:
    """The restarted server answers GET /fapi/v1/order for each of these acknowledged orders."""
    _account, key, secret = credentials
    client = RestClient(url, key, secret)
    for order_id, (_, coid) in orders.items():
        answer = client.signed("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": order_id})
        assert answer["orderId"] == order_id and answer["clientOrderId"] == coid


def test_sigkill_the_running_simulator_at_random_points(tmp_path):
    rng = random.Random(20_261_121)
    recording = write_recording(tmp_path / "btc.jsonl", seed=7)
    db = tmp_path / "session.db"
    server = SimServer(db, f"replay:{recording}?speed=1", tmp_path)
    acked: dict[int, tuple[int, str]] = {}
    credentials: tuple[int, str, str] | None = None
    stored_after_kill: list[int] = []
    checked = 0
    try:
        for _trial in range(TRIALS):
            server.start()
            if credentials is not None and rng.random() < 0.15:
                time.sleep(rng.uniform(0.0, 1.0))  # kill it while it starts (recovers)
                server.kill()
                stored_after_kill.append(check_against_uninterrupted_run(db, acked))
                continue
            url = server.wait_listening()
            if stored_after_kill:  # the restarted server recovered to the same point, and shows the orders
                assert server.next_input == stored_after_kill[-1] + 1
                check_orders_on_server(url, credentials, {k: acked[k] for k in sorted(acked)[checked:]})
                checked = len(acked)
            if credentials is None:
                created = RestClient(url).admin("POST", "/sim/v1/accounts", {"name": "bot", "deposit": "100000"})
                credentials = (created["accountId"], created["apiKey"], created["apiSecret"])
            account, key, secret = credentials
            trader = Trader(RestClient(url, key, secret), account, random.Random(rng.getrandbits(32)), acked)
            trader.start()
            time.sleep(rng.uniform(0.05, 0.8))
            server.kill()  # SIGKILL, wherever the server is
            trader.stop.set()
            trader.join(timeout=30)
            stored_after_kill.append(check_against_uninterrupted_run(db, acked))
        server.start()
        server.wait_listening()
        assert server.terminate() == 0
    finally:
        server.kill()
    assert acked  # the client really traded
    assert stored_after_kill == sorted(stored_after_kill)
    report = compare_session(db)
    assert report.identical and report.start_seq == 0

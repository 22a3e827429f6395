"""Fault soak: SIGKILL the whole simulator under a mixed client load; nothing acknowledged is lost.

``exchange-sim run --feed replay:<recording>?speed=1 --db <file>`` in a subprocess, driven by
real HTTP clients through the real API: two traders (signed REST: LIMIT and MARKET orders,
cancels) and a treasurer (admin API: deposits, and transfers between the master account and its
two sub-accounts, each
with an amount no other action uses, so every acknowledgement names exactly one event). The
server is SIGKILLed at a seeded random moment ``EXSIM_SOAK_KILLS`` times (default 12; some
while it is still starting, i.e. recovering) and restarted on the same file. It snapshots every
300 inputs (forked children) and compacts to two snapshots, so kills also land mid-snapshot.

After every kill the file is recovered as a restart would and checked:

- the recovered state equals one uninterrupted pass over the stored inputs;
- every acknowledged order is in the event log with its client order id, every acknowledged
  fill (the ``executedQty`` the client was told) and cancel is there, every acknowledged deposit
  and transfer is there once (both legs for a transfer);
- the ledger identity holds: each account's wallet equals the sum of every balance change the
  event log recorded for it, and the core's own ledger check (``wallet_invariant_holds``).

No answer may be a 5xx (a killed server gives connection errors, not answers). The test prints
kills, acknowledged actions, lost (0) and 5xx (0).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter, defaultdict
from decimal import Decimal

from exchange_sim.core.exchange import Exchange
from exchange_sim.core.fixed import to_fixed
from exchange_sim.core.messages import BalanceUpdate, OrderUpdate, loads
from exchange_sim.journal import Journal, recover
from tests.support.journal_server import ApiFailure, RestClient, SimServer, write_recording
from tests.support.journal_session import observable_state

KILLS = int(os.environ.get("EXSIM_SOAK_KILLS", "12"))
SNAPSHOT_EVERY = 300
F = to_fixed


class Acks:
    """Everything the clients were told succeeded, and every 5xx they saw (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.orders: dict[int, tuple[int, str, int]] = {}  # orderId -> (account, coid, executed qty)
        self.cancels: set[int] = set()
        self.deposits: list[tuple[int, int]] = []  # (account, amount)
        self.transfers: list[tuple[int, int, int]] = []  # (from, to, amount)
        self.server_errors: list[str] = []
        self.rejected = 0

    @property
    def actions(self) -> int:
        return len(self.orders) + len(self.cancels) + len(self.deposits) + len(self.transfers)


class Client(threading.Thread):
    """Calls ``step`` until told to stop or the server goes away; 5xx answers are recorded."""

    def __init__(self, acks: Acks, rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.acks, self.rng = acks, rng
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.step()
            except ApiFailure as exc:
                if exc.status >= 500:
                    with self.acks.lock:
                        self.acks.server_errors.append(exc.body[:200])
                    return
                with self.acks.lock:
                    self.acks.rejected += 1  # a venue rejection (unknown order, no margin): nothing to keep
            except OSError:
                return  # the server was killed

    def step(self) -> None:
        raise NotImplementedError


class Trader(Client):
    def __init__(self, acks: Acks, rng: random.Random, url: str, credentials: tuple[int, str, str]) -> None:
        super().__init__(acks, rng)
        self.account, key, secret = credentials
        self.client = RestClient(url, key, secret)

    def step(self) -> None:
        rng, acks = self.rng, self.acks
        with acks.lock:
            mine = [oid for oid, (acct, _, _) in acks.orders.items() if acct == self.account]
        if mine and rng.random() < 0.25:
            order_id = rng.choice(mine)
            self.client.signed("DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": order_id})
            with acks.lock:
                acks.cancels.add(order_id)
            return
        coid = f"s{rng.getrandbits(40):x}"
        params = {"symbol": "BTCUSDT", "side": rng.choice(("BUY", "SELL")), "newClientOrderId": coid,
                  "quantity": f"0.00{rng.randint(1, 9)}"}
        if rng.random() < 0.7:
            params.update(type="LIMIT", timeInForce="GTC", price=f"{60000 + rng.randint(-300, 300) / 10:.1f}")
        else:
            params.update(type="MARKET", newOrderRespType="RESULT")
        answer = self.client.signed("POST", "/fapi/v1/order", params)
        with acks.lock:
            acks.orders[int(answer["orderId"])] = (self.account, coid, F(answer.get("executedQty") or "0"))


class Treasurer(Client):
    """Deposits and transfers with amounts never used twice: 1.00000001, 1.00000002, ..."""

    counter = 0

    def __init__(self, acks: Acks, rng: random.Random, url: str, accounts: list[int]) -> None:
        super().__init__(acks, rng)
        self.client, self.accounts = RestClient(url), accounts

    def step(self) -> None:
        Treasurer.counter += 1
        amount = Decimal(1) + Decimal(Treasurer.counter) / 10**8
        if self.rng.random() < 0.5:
            account = self.rng.choice(self.accounts)
            self.client.admin("POST", f"/sim/v1/accounts/{account}/deposit", {"amount": str(amount)})
            with self.acks.lock:
                self.acks.deposits.append((account, F(str(amount))))
        else:
            master, sub = self.accounts[0], self.rng.choice(self.accounts[1:])  # master <-> sub only
            src, dst = (master, sub) if self.rng.random() < 0.5 else (sub, master)
            self.client.admin("POST", "/sim/v1/transfers", {"from": src, "to": dst, "amount": str(amount)})
            with self.acks.lock:
                self.acks.transfers.append((src, dst, F(str(amount))))
        time.sleep(0.005)


def check_after_kill(db, acks: Acks) -> tuple[int, int]:
    """Recover as a restart would; compare with an uninterrupted run; find every acknowledgement.

    Returns (stored inputs, acknowledged actions missing from the file)."""
    with Journal(db) as journal:
        recovered, next_seq = recover(journal)
        reference = Exchange.restore(journal.snapshot_at(journal.snapshot_seqs()[0]))
        for _seq, msg in journal.inputs(after=journal.snapshot_seqs()[0]):
            reference.apply(msg)
        events = [loads(body) for body in journal.event_bodies()]
    assert observable_state(recovered) == observable_state(reference)
    orders: dict[int, tuple[int, str]] = {}
    filled: dict[int, int] = {}
    canceled: set[int] = set()
    balance_changes: Counter[tuple[int, str, int]] = Counter()
    wallet_from_log: dict[int, int] = defaultdict(int)
    for e in events:
        if isinstance(e, OrderUpdate):
            orders[e.order_id] = (e.account, e.client_order_id)
            filled[e.order_id] = max(filled.get(e.order_id, 0), e.filled_qty)
            if e.status == "CANCELED":
                canceled.add(e.order_id)
        elif isinstance(e, BalanceUpdate):
            balance_changes[(e.account, e.reason, e.change)] += 1
            wallet_from_log[e.account] += e.change
    lost = 0
    with acks.lock:
        for order_id, (account, coid, executed) in acks.orders.items():
            lost += orders.get(order_id) != (account, coid) or filled.get(order_id, 0) < executed
        lost += sum(1 for order_id in acks.cancels if order_id not in canceled)
        lost += sum(1 for account, amount in acks.deposits if balance_changes[(account, "DEPOSIT", amount)] != 1)
        for src, dst, amount in acks.transfers:
            lost += (balance_changes[(src, "TRANSFER", -amount)] != 1
                     or balance_changes[(dst, "TRANSFER", amount)] != 1)
    # the ledger identity, from the log and from the core's own ledger
    assert recovered.wallet_invariant_holds()
    for account in recovered.account_ids():
        assert recovered.account_view(account).wallet_balance == wallet_from_log[account]
    return next_seq - 1, lost


def test_sigkill_under_mixed_load_loses_nothing_acknowledged(tmp_path):
    rng = random.Random(20_261_201)
    recording = write_recording(tmp_path / "btc.jsonl", seed=11)
    db = tmp_path / "session.db"
    # snapshots (forked children) and compaction every few hundred inputs: kills land during them too
    (tmp_path / "config.toml").write_text(f"[journal]\nsnapshot_every = {SNAPSHOT_EVERY}\nkeep_snapshots = 2\n")
    server = SimServer(db, f"replay:{recording}?speed=1", tmp_path)
    acks = Acks()
    credentials: list[tuple[int, str, str]] = []
    stored: list[int] = []
    kills = lost = 0
    try:
        while kills < KILLS:
            clients: list[Client] = []
            server.start()
            if credentials and rng.random() < 0.15:
                time.sleep(rng.uniform(0.0, 1.0))  # kill it while it starts (recovers)
            else:
                url = server.wait_listening()
                if not credentials:
                    admin = RestClient(url)
                    for name in ("ann", "ben", "cat"):  # ann is the master, ben and cat her sub-accounts
                        body = {"name": name, "deposit": "50000"}
                        if credentials:
                            body["parent"] = credentials[0][0]
                        created = admin.admin("POST", "/sim/v1/accounts", body)
                        credentials.append((created["accountId"], created["apiKey"], created["apiSecret"]))
                clients = [Trader(acks, random.Random(rng.getrandbits(32)), url, c) for c in credentials[:2]]
                clients.append(Treasurer(acks, random.Random(rng.getrandbits(32)), url,
                                         [c[0] for c in credentials]))
                for c in clients:
                    c.start()
                time.sleep(rng.uniform(0.2, 1.0))
            server.kill()  # SIGKILL, wherever the server is
            kills += 1
            for c in clients:
                c.stop.set()
                c.join(timeout=30)
            inputs, missing = check_after_kill(db, acks)
            stored.append(inputs)
            lost += missing
        server.start()
        server.wait_listening()
        assert server.terminate() == 0
    finally:
        server.kill()
    with Journal(db, read_only=True) as journal:
        snapshots = journal.snapshot_seqs()
    print(f"\nfault soak: {kills} SIGKILLs, {acks.actions} acknowledged actions "
          f"({len(acks.orders)} orders, {len(acks.cancels)} cancels, {len(acks.deposits)} deposits, "
          f"{len(acks.transfers)} transfers; {acks.rejected} venue rejections), {stored[-1]} inputs stored, "
          f"lost {lost}, 5xx {len(acks.server_errors)}; snapshots kept {snapshots}")
    assert kills >= 10 and acks.orders and acks.deposits and acks.transfers and acks.cancels
    assert snapshots and snapshots[-1] >= SNAPSHOT_EVERY  # forked snapshots were taken (and compacted)
    assert lost == 0
    assert acks.server_errors == []
    assert stored == sorted(stored)

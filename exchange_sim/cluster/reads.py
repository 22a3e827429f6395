"""A shard's read side: gateways ask it, by request/reply on ``exsim.read.<shard>``, what they show.

Every member of a shard (leader and standbys) answers, in the queue group ``read``, so reads
spread over the shard's members. It reads two read models of the shard's own accounts: the
history its replica keeps (replica.py: recorded as it applies, stored with each snapshot) and
the event log of ``GET /sim/v1/events`` (the API's ``EventLog``, fed by the replica's applied
inputs: the events since this member started).

A request is a JSON object ``{"op", "min_seq", ...}``. ``min_seq`` is the input sequence the
asking gateway last wrote for that account: a member answers only once its replica has applied
it (read-your-writes on a standby too), else it says ``behind`` and the gateway asks again.

- ``state`` ``{"accounts": [...], "order_id", "client_order_id", "history": bool, "orders": bool}``:
  the ``AccountState`` of each account (``account_state.py``), the first with the order named,
  with ``orders`` (the default) the open-order list, and with ``history`` the first account's
  history rows;
- ``all`` ``{"orders": bool}``: the state of every account of the shard (admin and venue-wide
  public reads; with ``orders`` false, without their open-order lists);
- ``fund`` ``{}``: the shard's insurance fund float and the fund service's transfer refs it has
  applied (the venue's fund: ``fund.venue_total``);
- ``events`` ``{"account", "kinds", "since", "after", "limit"}``: the event log's rows;
- ``market`` ``{"market_seq"}``: once that market event is applied, the events it caused here.

The answer is ``{"ok": ...}`` or ``{"error": kind, "text": ...}``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec

from exchange_sim.api.context import EventLog
from exchange_sim.core import messages as m

from . import account_state
from .history import account_rows
from .layout import PREFIX, Layout
from .replica import Applied, ShardReplica, drop

log = logging.getLogger(__name__)

READ_QUEUE = "read"
READ_WAIT_S = 2.0  # how long a member waits to reach a request's min_seq before saying "behind"
EVENTS_KEPT = 100_000  # the event log's size per shard member (the single node's default)


def read_subject(shard: str) -> str:
    return f"{PREFIX}.read.{shard}"


class ShardReads:
    """The read models of one shard member and the answers to gateways (see module doc)."""

    def __init__(self, replica: ShardReplica, layout: Layout) -> None:
        self.replica = replica
        self.layout = layout
        self.shard = replica.shard
        self.events = EventLog(EVENTS_KEPT)
        self._sub: Any = None
        self._tasks: set[asyncio.Task] = set()

    def owned(self, events: list) -> list:
        """Events of this shard's accounts and of no account (market status, fund changes)."""
        out = []
        for event in events:
            account = getattr(event, "account", None)
            if not isinstance(account, int) or self.layout.owns(self.shard, account):
                out.append(event)
        return out

    @property
    def history(self) -> Any:
        return self.replica.history

    def on_applied(self, applied: Applied) -> None:
        """The replica applied an input: the event log records what it caused here."""
        if applied.kind == "pad" or applied.refused:
            return
        events = [e for e in self.owned(applied.events) if isinstance(getattr(e, "account", None), int)]
        if events:
            self.events(applied.msg, events)

    # ------------------------------------------------------------------ serving

    async def serve(self, nc: Any) -> None:
        if self._sub is None:
            self._sub = await nc.subscribe(read_subject(self.shard), queue=READ_QUEUE, cb=self._on_request,
                                           pending_msgs_limit=100_000)

    async def close(self) -> None:
        sub, self._sub = self._sub, None
        await drop(sub)

    async def _on_request(self, msg: Any) -> None:
        try:
            request = msgspec.json.decode(msg.data)
            min_seq = int(request.get("min_seq", 0))
            market_seq = int(request.get("market_seq", 0)) if request.get("op") == "market" else 0
        except (msgspec.DecodeError, ValueError, TypeError, AttributeError):
            await _respond(msg, b'{"error":"bad-request","text":"not a read request"}')
            return
        if self.replica.applied_seq >= min_seq and self.replica.market_seq >= market_seq:
            await _respond(msg, self.answer(request))
            return
        task = asyncio.get_running_loop().create_task(self._answer_later(msg, request, min_seq, market_seq))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_later(self, msg: Any, request: dict, min_seq: int, market_seq: int) -> None:
        try:
            await self.replica.wait_applied(min_seq, READ_WAIT_S)
            if market_seq:
                await self.replica.wait_market(market_seq, READ_WAIT_S)
        except asyncio.TimeoutError:
            await _respond(msg, b'{"error":"behind","text":"this member has not applied the sequence yet"}')
            return
        await _respond(msg, self.answer(request))

    def answer(self, request: dict) -> bytes:
        """The answer to one read request, now (see module doc)."""
        try:
            body = self._answer(request)
        except Exception as exc:  # noqa: BLE001 - a bad request or a bug: said, never a dead member
            log.exception("%s: read %r failed", self.shard, request.get("op"))
            return msgspec.json.encode({"error": "failed", "text": f"{type(exc).__name__}"})
        return b'{"ok":' + body + b"}"

    def _answer(self, request: dict) -> bytes:
        op = request.get("op")
        replica = self.replica
        ex, seq = replica.ex, replica.applied_seq
        if op == "state":
            accounts = [int(a) for a in request.get("accounts", ())]
            order_id = int(request.get("order_id") or 0)
            client_order_id = str(request.get("client_order_id") or "")
            orders = None if request.get("orders", True) else ()  # () : without the open-order list
            states = [account_state.state_of(ex, self.history, account, self.shard, seq, touched=orders,
                                             order_id=0 if i else order_id, client_order_id="" if i else client_order_id)
                      for i, account in enumerate(accounts) if self.layout.owns(self.shard, account)]
            history = (account_rows(self.history, accounts[0])
                       if accounts and request.get("history") and self.history is not None else None)
            return msgspec.json.encode({"states": states, "rows": history})
        if op == "all":
            owned = [a for a in ex.account_ids() if self.layout.owns(self.shard, a)]
            orders = None if request.get("orders", True) else ()
            states = [account_state.state_of(ex, None, a, self.shard, seq, touched=orders) for a in owned]
            return msgspec.json.encode({"states": states, "insurance_fund": ex.insurance_fund})
        if op == "fund":
            return msgspec.json.encode({"float": ex.insurance_fund, "applied": sorted(ex.venue_fund.applied)})
        if op == "events":
            kinds = request.get("kinds")
            logged = self.events.query(request.get("account"), set(kinds) if kinds is not None else None,
                                       request.get("since"), request.get("after"), int(request.get("limit") or 1000))
            return b"[" + b",".join(b"[%d,%s]" % (r.seq, m.dumps(r.event).encode()) for r in logged) + b"]"
        if op == "market":
            market_seq = int(request["market_seq"])
            return b"[" + b",".join(m.dumps(e).encode()
                                    for e in self.owned(replica.market_events.get(market_seq, []))) + b"]"
        raise ValueError(f"unknown read {op!r}")


async def _respond(msg: Any, data: bytes) -> None:
    if msg.reply:
        try:
            await msg.respond(data)
        except Exception as exc:  # noqa: BLE001 - the asker is gone or NATS reconnects: it asks again
            log.debug("read answer not sent: %s", exc)

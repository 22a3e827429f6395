"""Names on the NATS cluster and the rule that puts an account on a shard.

Streams (JetStream, replicated ``replicas`` times):
- ``MARKET_<venue>`` on ``exsim.market.<venue>``: normalised market events, published once by
  the ingest (``Nats-Msg-Id`` = a digest of the event, so a restarted feed never doubles a tick);
- ``INPUT_<shard>`` on ``exsim.input.<shard>``: the shard's journal, every input it applied, in
  order, written by its leader only, each append with ``Nats-Expected-Last-Sequence``; a
  refusal marker (kind ``refusal``, header ``Exsim-Refuses: <seq>``) says the core raised on
  input ``seq``: every replica and recovery skips that input;
- ``FUND`` on ``exsim.fund.journal``: the venue's insurance fund service's journal (fund.py).

Core NATS subjects: ``exsim.cmd.<shard>`` (request/reply to the shard leader),
``exsim.read.<shard>`` (request/reply to any member: reads.py), ``exsim.events.<shard>.<account>``
(what the core said to the account, JSON per event), ``exsim.user.<shard>.<account>`` (its
user-data frames), ``exsim.public.<shard>`` (liquidations, for ``@forceOrder``),
``exsim.fund.float.<shard>`` (the shard leader's insurance fund float, for the fund service).

KV buckets: ``exsim-layout`` (key ``layout``: the shard names; written once by the first shard,
checked by everyone), ``exsim-leases`` (key = shard, or ``fund`` / ``adl`` for the venue's fund
service and ADL coordinator; the leader's lease, expiring after ``lease_ttl`` seconds without
renewal), ``exsim-keys`` (API key -> account and secret; secrets never enter an input stream),
``exsim-accounts`` (account -> shard: placement.py). Object store ``exsim-snapshots`` (object =
shard: the input sequence number and the core's snapshot).

Accounts: shard *i* of *S* numbers its accounts from the ids ``a`` with ``(a - 1) % S == i``
(the core numbers accounts itself, so a shard pads its core with placeholder accounts up to the
next id of its range, journaled like any input): ids are unique across the venue without any
coordination. Where an account lives is recorded in the ``exsim-accounts`` bucket, which is what
gateways route by (placement.py); the placement rule for a new master account is
``crc32(name) % S``, a sub-account goes to its master's shard, so master + subs are together.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass

import msgspec

PREFIX = "exsim"
LAYOUT_BUCKET = "exsim-layout"
LEASE_BUCKET = "exsim-leases"
KEY_BUCKET = "exsim-keys"
SNAPSHOT_STORE = "exsim-snapshots"

# headers of an input-stream message
KIND = "Exsim-Kind"          # "cmd", "mkt", "pad" or "refusal"
REQUEST = "Exsim-Request"    # the gateway's request id (commands)
MARKET_SEQ = "Exsim-Market-Seq"  # the market stream sequence (market events)
REFUSES = "Exsim-Refuses"    # a refusal marker's header: the input sequence it refuses
REFUSAL = "refusal"          # the kind of a refusal marker (the core raised on that input: it never happened)
MSG_ID = "Nats-Msg-Id"
EXPECTED_LAST_SEQ = "Nats-Expected-Last-Sequence"
WRONG_LAST_SEQUENCE = 10071  # JetStream err_code of a refused expected-last-sequence


class Layout(msgspec.Struct, frozen=True):
    """The cluster's shards and venue (stored in KV so every process agrees)."""

    shards: tuple[str, ...] = ("s0", "s1", "s2")
    venue: str = "binance"
    replicas: int = 3
    lease_ttl: float = 2.0  # seconds a shard lease lives without renewal (the lease bucket's max age)

    def shard_of(self, account: int) -> str:
        """The shard that owns ``account``."""
        return self.shards[(account - 1) % len(self.shards)]

    def index_of(self, shard: str) -> int:
        return self.shards.index(shard)

    def owns(self, shard: str, account: int) -> bool:
        return account >= 1 and self.shard_of(account) == shard

    def shard_for_new(self, name: str) -> str:
        """Where a new master account goes (sub-accounts go to their master's shard)."""
        return self.shards[zlib.crc32(name.encode()) % len(self.shards)]

    def next_owned_id(self, shard: str, last_id: int) -> int:
        """The smallest account id above ``last_id`` that ``shard`` owns."""
        i, n = self.index_of(shard), len(self.shards)
        a = last_id + 1
        return a + (i - (a - 1) % n) % n

    @property
    def market_stream(self) -> str:
        return f"MARKET_{self.venue.upper()}"

    @property
    def market_subject(self) -> str:
        return f"{PREFIX}.market.{self.venue}"


@dataclass(frozen=True, slots=True)
class ShardNames:
    shard: str

    @property
    def input_stream(self) -> str:
        return f"INPUT_{self.shard.upper()}"

    @property
    def input_subject(self) -> str:
        return f"{PREFIX}.input.{self.shard}"

    @property
    def command_subject(self) -> str:
        return f"{PREFIX}.cmd.{self.shard}"

    def events_subject(self, account: int) -> str:
        return f"{PREFIX}.events.{self.shard}.{account}"


def market_msg_id(payload: bytes) -> str:
    """The de-duplication id of a market event: a digest of its canonical JSON."""
    return hashlib.blake2b(payload, digest_size=16).hexdigest()

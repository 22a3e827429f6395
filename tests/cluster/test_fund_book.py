"""The fund service's book and the venue's total at every step of a transfer (pure: no NATS).

Each step is one journal entry or one shard applying the transfer; at every step the venue's
fund (service + floats + in transit) must be what it was: a transfer only moves money.
"""

from __future__ import annotations

from exchange_sim.cluster.fund import DONE, GRANT, OPEN, SWEEP, UNDO, FundBook, FundEntry, venue_total


class Venue:
    """A fund book and the floats of two shards, as their cores would hold them."""

    def __init__(self) -> None:
        self.book = FundBook()
        self.floats: dict[str, tuple[int, dict[str, int]]] = {"s0": (0, {}), "s1": (0, {})}

    def journal(self, op: str, ref: str = "", shard: str = "", amount: int = 0) -> None:
        self.book.apply(self.book.seq + 1, FundEntry(op, ref, shard, amount))

    def shard_applies(self, shard: str, ref: str, amount: int) -> None:
        balance, refs = self.floats[shard]
        self.floats[shard] = (balance + amount, {**refs, ref: amount})

    @property
    def total(self) -> int:
        return venue_total(self.book, self.floats)


def test_a_grant_and_a_sweep_keep_the_venue_total_at_every_step():
    v = Venue()
    v.journal(OPEN, amount=1000)
    v.journal(OPEN, amount=1000)  # a second open (two first leaders racing) counts once
    assert (v.book.balance, v.total) == (1000, 1000)
    v.journal(GRANT, "fund-3", "s0", 300)
    assert (v.book.balance, v.total) == (700, 1000)  # debited first, in transit
    v.shard_applies("s0", "fund-3", 300)
    assert v.total == 1000  # in the float now, still pending in the book: counted once
    v.journal(DONE, "fund-3")
    v.journal(DONE, "fund-3")  # a zombie's second "done" changes nothing
    assert (v.book.balance, v.book.pending, v.total, v.book.granted) == (700, {}, 1000, {"s0": 300})
    v.journal(SWEEP, "fund-6", "s0", 100)
    assert (v.book.balance, v.total) == (700, 1000)  # a sweep's intent moves nothing yet
    v.shard_applies("s0", "fund-6", -100)
    assert v.total == 1000  # left the float, not credited yet: in transit
    v.journal(DONE, "fund-6")
    assert (v.book.balance, v.floats["s0"][0], v.total, v.book.granted) == (800, 200, 1000, {"s0": 200})


def test_refused_transfers_are_undone():
    v = Venue()
    v.journal(OPEN, amount=500)
    v.journal(GRANT, "fund-2", "s1", 200)
    v.journal(UNDO, "fund-2")  # the shard refused it (say, an old core): the debit comes back
    v.journal(SWEEP, "fund-4", "s1", 50)
    v.journal(UNDO, "fund-4")  # the float no longer covered it: nothing moved
    assert (v.book.balance, v.book.pending, v.book.granted, v.total) == (500, {}, {}, 500)


def test_a_view_of_the_floats_lagging_behind_the_book_still_counts_each_transfer_once():
    v = Venue()
    v.journal(OPEN, amount=1000)
    v.journal(GRANT, "fund-2", "s0", 300)
    v.journal(DONE, "fund-2")  # the book says done; this view of s0 has not applied fund-2 yet
    assert v.total == 1000
    v.shard_applies("s0", "fund-2", 300)
    v.journal(SWEEP, "fund-5", "s0", 100)
    v.journal(DONE, "fund-5")  # credited to the service; the view of s0 still holds the 100
    assert (v.book.balance, v.floats["s0"][0], v.total) == (800, 300, 1000)
    v.shard_applies("s0", "fund-5", -100)
    assert v.total == 1000

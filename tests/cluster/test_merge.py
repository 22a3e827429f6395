"""The gateway's output order (exchange_sim/cluster/merge.py): per-shard order kept, a market
event released once, when every shard applied it, with what it caused everywhere."""

from exchange_sim.cluster.merge import InputMerger
from exchange_sim.cluster.replica import Applied

SHARDS = ("s0", "s1", "s2")


def applied(seq, msg, market_seq=0):
    return Applied(seq, "mkt" if market_seq else "cmd", msg, [], "", market_seq)


def test_market_event_waits_for_every_shard_and_keeps_each_shards_order():
    out = []
    merger = InputMerger(SHARDS, lambda msg, events: out.append((msg, events)))
    merger.add("s1", applied(1, "mark-1", 1), ["liq-s1"])
    merger.add("s1", applied(2, "cmd-s1"), ["order-s1"])  # after the mark on s1: must wait behind it
    merger.add("s0", applied(1, "cmd-s0"), ["order-s0"])  # nothing pending before it on s0: out now
    assert out == [("cmd-s0", ["order-s0"])]
    merger.add("s0", applied(2, "mark-1", 1), [])
    assert len(out) == 1  # s2 has not applied the mark yet
    merger.add("s2", applied(1, "mark-1", 1), ["liq-s2"])
    assert out == [("cmd-s0", ["order-s0"]), ("mark-1", ["liq-s1", "liq-s2"]), ("cmd-s1", ["order-s1"])]


def test_a_shard_that_started_past_a_market_event_does_not_hold_it_back():
    out = []
    merger = InputMerger(SHARDS, lambda msg, events: out.append(msg))
    merger.start("s2", 5)  # s2 restored a snapshot taken after market event 5
    merger.add("s0", applied(1, "mark-3", 3), [])
    merger.add("s1", applied(1, "mark-3", 3), [])
    assert out == ["mark-3"]
    merger.add("s0", applied(2, "mark-6", 6), [])
    merger.add("s1", applied(2, "mark-6", 6), [])
    assert out == ["mark-3"]  # s2 must apply 6 itself
    merger.add("s2", applied(9, "mark-6", 6), [])
    assert out == ["mark-3", "mark-6"]

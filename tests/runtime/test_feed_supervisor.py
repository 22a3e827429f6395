"""The feed supervisor with scripted feeds and a recording stand-in for the node (no network)."""

import random

from exchange_sim.core.fixed import to_fixed
from exchange_sim.core.messages import BookDelta, BookSnapshot, FeedStatus, MarkPrice, Trade
from exchange_sim.runtime.feeds import FeedNotice, FeedSupervisor, SupervisorConfig
from exchange_sim.runtime.market_guard import GuardConfig, MarketGuard
from feeds import FeedDisconnected, FeedSpecError
from feeds.base import FeedSignal
from tests.support.feeds_scripted import HANG, RecordingNode, Scripts, wait_until

F = to_fixed
S = "BTCUSDT"


def snap(ts, bid="59999.9", ask="60000.0", uid=1):
    return BookSnapshot(ts, S, ((F(bid), F("1")),), ((F(ask), F("1")),), uid)


def mark(ts, price):
    return MarkPrice(ts, S, F(price))


def trade(ts, price):
    return Trade(ts, S, F(price), F("0.01"), "BUY", ts)


def fast(**kw):
    return SupervisorConfig(**{"backoff_initial": 0.01, "backoff_max": 0.05, "stale_after": 5.0, **kw})


async def test_reconnect_loop_backs_off_with_seeded_jitter_and_resets_after_data():
    delays = []

    async def no_sleep(d):
        delays.append(d)

    scripts = Scripts([FeedDisconnected("refused")], [FeedDisconnected("refused")],
                      [snap(1), mark(2, "60000"), FeedDisconnected("lost")], [mark(3, "60000")])
    node = RecordingNode()
    cfg = SupervisorConfig(backoff_initial=1.0, backoff_factor=2.0, backoff_max=30.0, jitter=0.25,
                           stale_on_disconnect=False, stale_after=60)
    sup = FeedSupervisor(node, scripts, [S], cfg, rng=random.Random(7), sleep=no_sleep)
    sup.running = True
    await sup.run()
    rng = random.Random(7)
    expected = [b * (1 + 0.25 * (2 * rng.random() - 1)) for b in (1.0, 2.0, 1.0)]
    assert [d for d in delays if d] == expected  # attempt counter reset once data flowed
    assert sup.counters["disconnects"] == 3 and sup.counters["reconnects"] == 3
    assert [n.kind for n in sup.recent].count("reconnect") == 3
    assert sup.recent[-1].kind == "ended"
    assert node.submitted == [snap(1), mark(2, "60000"), mark(3, "60000")]
    assert all(f.closed for f in scripts.opened)


async def test_a_bad_spec_is_not_retried():
    sup = FeedSupervisor(RecordingNode(), Scripts([FeedSpecError("no such venue")]), [S], fast())
    sup.running = True
    await sup.run()
    assert isinstance(sup.error, FeedSpecError) and sup.counters["reconnects"] == 0
    assert sup.recent[-1].kind == "error"


async def test_disconnect_marks_stale_at_once_and_fresh_data_clears_it():
    scripts = Scripts([snap(1000), mark(1001, "60000"), FeedDisconnected("gone")],
                      [FeedSignal(2000, S, "connected"), snap(2000), mark(2001, "60010")])
    node = RecordingNode()
    sup = FeedSupervisor(node, scripts, [S], fast())
    sup.running = True
    await sup.run()
    kinds = [type(m).__name__ for m in node.submitted]
    assert kinds == ["BookSnapshot", "MarkPrice", "FeedStatus", "FeedStatus", "BookSnapshot", "MarkPrice"]
    stale, fresh = node.submitted[2], node.submitted[3]
    assert stale.stale and stale.reason == "feed disconnected" and stale.ts >= 1001
    assert not fresh.stale
    kinds = [n.kind for n in sup.recent]
    assert kinds == ["disconnected", "stale", "reconnect", "connected", "fresh", "ended"]


async def test_watchdog_marks_a_silent_symbol_stale_and_data_makes_it_fresh():
    node = RecordingNode()
    release = []

    async def wait_release():
        await wait_until(lambda: release, 10, "release")

    scripts = Scripts([snap(1), mark(2, "60000"), wait_release, mark(3, "60001"), HANG])
    sup = FeedSupervisor(node, scripts, [S], fast(stale_after=0.2))
    async with sup:
        await wait_until(lambda: any(isinstance(m, FeedStatus) for m in node.submitted), 10, "stale")
        st = next(m for m in node.submitted if isinstance(m, FeedStatus))
        assert st.stale and "no market data" in st.reason
        release.append(1)
        await wait_until(lambda: len(node.submitted) >= 5, 10, "fresh")
    assert [type(m).__name__ for m in node.submitted][2:5] == ["FeedStatus", "FeedStatus", "MarkPrice"]
    assert not node.submitted[3].stale
    assert sup.counters["stale"] >= 1 and sup.counters["fresh"] == 1
    assert not sup.running and sup.done.is_set()


async def test_outliers_are_dropped_counted_and_never_submitted():
    items = [snap(1), mark(2, "60000"), trade(3, "60010"), trade(4, "120000"), mark(5, "30000"),
             trade(6, "60020"), mark(7, "60030")]
    node = RecordingNode()
    notices = []
    sup = FeedSupervisor(node, Scripts(items), [S], fast(), on_notice=notices.append)
    sup.running = True
    await sup.run()
    prices = [getattr(m, "price", getattr(m, "mark", None)) for m in node.submitted[1:]]
    assert prices == [F("60000"), F("60010"), F("60020"), F("60030")]
    assert sup.counters["dropped"] == 2 and sup.guard.dropped_ticks == 2
    assert [n.kind for n in notices if n.kind == "dropped"] == ["dropped", "dropped"]
    assert all(isinstance(n, FeedNotice) for n in notices)


async def test_book_levels_outside_the_band_are_removed_from_deltas():
    d = BookDelta(3, S, ((F("59990"), F("2")), (F("90000"), F("5")), (F("1000"), F("1"))),
                  ((F("1000"), F("1")), (F("200000"), F("1"))), 2, 3, 1)
    node = RecordingNode()
    sup = FeedSupervisor(node, Scripts([snap(1), mark(2, "60000"), d]), [S], fast())
    sup.running = True
    await sup.run()
    sent = node.submitted[-1]
    assert sent.bids == ((F("59990"), F("2")), (F("1000"), F("1")))  # a far bid is normal
    assert sent.asks == ((F("200000"), F("1")),)  # an ask at 1000 would be the best ask: removed
    assert sent.final_update_id == 3 and sup.guard.dropped_levels == 2


async def test_a_book_that_stays_crossed_makes_the_supervisor_resync():
    crossing = [BookDelta(10 + i, S, ((F("60001"), F("1")),), (), i + 2, i + 2, i + 1) for i in range(4)]
    scripts = Scripts([snap(1), mark(2, "60000"), *crossing], [snap(100, uid=50)])
    node = RecordingNode()
    sup = FeedSupervisor(node, scripts, [S], fast(guard=GuardConfig(crossed_max_updates=2)))
    sup.running = True
    await sup.run()
    assert len(scripts.opened) == 2 and sup.counters["resyncs"] == 1
    assert sup.counters["crossed"] >= 1
    deltas = [m for m in node.submitted if isinstance(m, BookDelta)]
    assert len(deltas) == 2  # the third crossed update was dropped and the feed reopened
    assert node.submitted[-1] == snap(100, uid=50)


async def test_feed_signals_become_notices_and_counters():
    items = [FeedSignal(1, S, "connected", "x"), snap(2), FeedSignal(3, S, "gap", "pu 5 != 4"),
             FeedSignal(4, S, "resync", "snapshot 9"), snap(4, uid=9)]
    sup = FeedSupervisor(RecordingNode(), Scripts(items), [S], fast())
    q = sup.subscribe()
    sup.running = True
    await sup.run()
    got = []
    while not q.empty():
        got.append(q.get_nowait().kind)
    assert got == ["connected", "gap", "resync", "ended"]
    assert sup.counters["gaps"] == 1 and sup.counters["resyncs"] == 1 and sup.counters["connects"] == 1


async def test_stop_closes_a_hanging_feed():
    scripts = Scripts([snap(1), HANG])
    sup = FeedSupervisor(RecordingNode(), scripts, [S], fast())
    await sup.start()
    await wait_until(lambda: scripts.opened and scripts.opened[0].entered, 5, "feed open")
    await sup.stop()
    assert scripts.opened[0].closed and not sup.running


def test_guard_reanchors_after_agreeing_outliers():
    g = MarketGuard(GuardConfig(confirm_outliers=3))
    assert g.check(mark(1, "60000")).event is not None
    assert g.check(mark(2, "40000")).event is None
    assert g.check(mark(3, "40010")).event is None
    v = g.check(mark(4, "40020"))
    assert v.event is not None and v.notes[0][0] == "reanchor" and g.reference(S) == F("40020")
    assert g.check(trade(5, "40030")).event is not None


async def test_an_untranslated_feed_error_is_announced_and_retried(caplog):
    scripts = Scripts([snap(1), ValueError("parser bug")], [mark(2, "60000")])
    node = RecordingNode()
    sup = FeedSupervisor(node, scripts, [S], fast(stale_on_disconnect=False))
    sup.running = True
    with caplog.at_level("ERROR"):
        await sup.run()
    assert sup.counters["errors"] == 1 and sup.counters["reconnects"] == 1
    assert isinstance(sup.error, ValueError)
    assert [n.kind for n in sup.recent] == ["error", "reconnect", "ended"]
    assert node.submitted == [snap(1), mark(2, "60000")]
    assert "parser bug" in caplog.text

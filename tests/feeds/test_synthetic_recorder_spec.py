"""Synthetic markets, the recorder, and feed specs."""

import gzip
import itertools

import pytest

from exchange_sim.core.fixed import to_fixed
from exchange_sim.core.messages import BookSnapshot, MarkPrice, Trade
from feeds import FeedSpec, FeedSpecError, open_feed, parse_spec
from feeds.binance import BinanceFeed
from feeds.ccxt_pro import CcxtProFeed
from feeds.mqtt import MqttFeed
from feeds.recorder import Recorder, record
from feeds.replay import Replay
from feeds.synthetic import SyntheticConfig, SyntheticFeed, synthetic_events
from tests.support.shared_data import CRASH_KLINES, SHARED_DATA

F = to_fixed


def marks(events, symbol="BTCUSDT"):
    return [e.mark for e in events if isinstance(e, MarkPrice) and e.symbol == symbol]


def test_synthetic_is_deterministic_for_a_seed_and_covers_both_symbols():
    a = list(synthetic_events(["BTCUSDT", "ETHUSDT"], SyntheticConfig(seed=5, steps=100)))
    b = list(synthetic_events(["BTCUSDT", "ETHUSDT"], SyntheticConfig(seed=5, steps=100)))
    c = list(synthetic_events(["BTCUSDT", "ETHUSDT"], SyntheticConfig(seed=6, steps=100)))
    assert a == b and a != c
    assert {e.symbol for e in a} == {"BTCUSDT", "ETHUSDT"}
    assert len(a) == 100 * 2 * 3
    for e in a:
        if isinstance(e, BookSnapshot):
            assert e.bids[0][0] < e.asks[0][0]
    eth = [e for e in a if isinstance(e, Trade) and e.symbol == "ETHUSDT"]
    assert all(t.price % F("0.01") == 0 for t in eth)


@pytest.mark.parametrize("scenario,check", [
    ("flash_crash", lambda m: min(m) < m[0] * 0.85 and m[-1] > min(m) * 1.05),
    ("squeeze", lambda m: max(m) > m[0] * 1.15),
    ("slow_bleed", lambda m: m[-1] < m[0] * 0.88),
    ("walk", lambda m: m[0] * 0.9 < m[-1] < m[0] * 1.1),
])
def test_scenarios_have_their_shape(scenario, check):
    m = marks(synthetic_events(["BTCUSDT"], SyntheticConfig(scenario=scenario, seed=3, steps=600)))
    assert check(m)


def test_flash_crash_moves_gradually_enough_for_the_bad_tick_band():
    m = marks(synthetic_events(["BTCUSDT"], SyntheticConfig(scenario="flash_crash", seed=3, steps=600)))
    assert max(abs(b - a) / a for a, b in itertools.pairwise(m)) < 0.05


async def test_recorder_output_replays_as_the_same_events(tmp_path):
    cfg = SyntheticConfig(seed=9, steps=50)
    path = str(tmp_path / "rec" / "synthetic.jsonl.gz")
    n = await record(SyntheticFeed(["BTCUSDT", "ETHUSDT"], cfg), path)
    assert n == 50 * 2 * 3
    with gzip.open(path, "rt") as fh:
        assert fh.readline().startswith('{"type":"BookSnapshot",')  # canonical: the type first
    assert list(Replay(path).events()) == list(synthetic_events(["BTCUSDT", "ETHUSDT"], cfg))
    plain = str(tmp_path / "part.jsonl")
    assert await record(SyntheticFeed(["BTCUSDT"], cfg), plain, limit=7) == 7
    got = []
    async for ev in Replay(plain):
        got.append(ev)
    assert len(got) == 7


async def test_recorder_tee_passes_everything_through(tmp_path):
    path = str(tmp_path / "tee.jsonl")
    out = []
    async with Recorder(path) as rec:
        async for ev in rec.tee(SyntheticFeed(["BTCUSDT"], SyntheticConfig(steps=3))):
            out.append(ev)
    assert len(out) == 9 and rec.count == 9
    assert list(Replay(path).events()) == out


def test_specs():
    assert parse_spec("replay:a.csv,b.csv?speed=10") == FeedSpec("replay", "a.csv,b.csv", {"speed": "10"})
    assert parse_spec("synthetic:flash_crash?seed=3").target == "flash_crash"
    assert parse_spec("mqtt://h:1/t/#").kind == "mqtt"
    assert parse_spec("ccxt:okx").target == "okx"
    assert open_feed("manual", ["BTCUSDT"]) is None
    assert isinstance(open_feed("binance", ["BTCUSDT"], ws_url="ws://127.0.0.1:1",
                                rest_url="http://127.0.0.1:1"), BinanceFeed)
    assert isinstance(open_feed("ccxt:okx", ["BTCUSDT"]), CcxtProFeed)
    assert isinstance(open_feed("mqtt://127.0.0.1:1883/ticks/#", ["BTCUSDT"]), MqttFeed)
    syn = open_feed("synthetic:squeeze?seed=4&steps=10&speed=0", ["BTCUSDT"])
    assert isinstance(syn, SyntheticFeed) and syn.cfg.seed == 4 and syn.cfg.steps == 10 and syn.cfg.speed == 0
    rep = open_feed(f"replay:{CRASH_KLINES}?speed=60",
                    ["BTCUSDT"])
    assert isinstance(rep, Replay) and rep.pacer.speed == 60


@pytest.mark.parametrize("spec", ["", "kraken", "ccxt", "ccxt:", "replay:", "binance:x", "synthetic:meltdown",
                                  "replay:/nonexistent.csv",
                                  f"replay:{SHARED_DATA}/README.md?speed=fast-ish",
                                  "mqtt://", "synthetic?seed=x"])
def test_bad_specs_are_feed_spec_errors(spec):
    with pytest.raises(FeedSpecError):
        open_feed(spec, ["BTCUSDT"])


def test_no_instruments_is_a_spec_error():
    with pytest.raises(FeedSpecError):
        open_feed("synthetic", [])

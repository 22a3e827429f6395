"""Each golden session replays to its committed event log, byte for byte.

A failure prints a unified diff of the event logs and the input that caused the first
difference. If the change of behaviour is intended, regenerate with
``python -m tests.golden.regen <session>`` and commit the reviewed diff of ``events.jsonl``.
``known_defects`` records today's behaviour of issue 16's defects 1 and 2: it is expected to
change when they are fixed (and only that session).
"""

from __future__ import annotations

import difflib

import pytest

from tests.golden.replay import SESSIONS, expected, inputs, run, session_names


def test_there_are_golden_sessions():
    assert {"crash_isolated_cross", "cross_hedge_eth", "adl_empty_fund", "known_defects"} <= set(session_names())


@pytest.mark.parametrize("name", session_names())
def test_session_replays_to_its_event_log(name):
    session = SESSIONS / name
    lines = list(run(session))
    got = [line.text for line in lines]
    want = expected(session)
    if got == want:
        return
    first = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want)))
    cause = (f"input {lines[first].input_no} of {len(inputs(session))}: {lines[first].input_text}"
             if first < len(lines) else "(replay produced fewer events)")
    diff = "\n".join(difflib.unified_diff(want, got, "events.jsonl (committed)", "replayed", n=2, lineterm=""))
    pytest.fail(f"{name}: event {first} differs; caused by {cause}\n{diff[:20000]}\n"
                f"If intended: python -m tests.golden.regen {name}  (and commit the reviewed diff)", pytrace=False)


def test_inputs_are_in_the_recorder_format():
    """Market files are what feeds.replay reads back as the same messages (our own recording format)."""
    from feeds.replay import read_file

    for name in session_names():
        path = SESSIONS / name / "market.jsonl"
        text = path.read_text(encoding="utf-8").splitlines()
        assert len(list(read_file(str(path)))) == len([t for t in text if t.strip()])

"""Parameter parsing: the plain-text fast path gives exactly what the standard library's parser gives."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_sim.api.errors import ApiError
from exchange_sim.api.params import MAX_PARAMS, parse_pairs

PLAIN = st.text(alphabet=st.sampled_from("ab=&.-_9Zé\n "), max_size=80)  # no % or +: nothing to unquote


def reference(raw: str) -> list[tuple[str, str]] | str:
    try:
        return parse_qsl(raw, keep_blank_values=True, errors="strict", max_num_fields=MAX_PARAMS)
    except ValueError:
        return "refused"


def ours(raw: str) -> list[tuple[str, str]] | str:
    try:
        return parse_pairs(raw)
    except ApiError as exc:
        assert exc.code == -1100
        return "refused"


@settings(max_examples=300, deadline=None)
@given(PLAIN)
def test_plain_text_splits_as_parse_qsl_does(raw):
    assert ours(raw) == reference(raw)


@pytest.mark.parametrize("raw", ["a=1&&b=2", "=b", "a", "k==", "a=b=c", "&", "x=%41+b", "a=%zz", "&" * 63,
                                 "&" * 64, "a=1&" * 64, "symbol=BTCUSDT&side=BUY&quantity=0.001&timestamp=1"])
def test_edge_cases_match_parse_qsl(raw):
    assert ours(raw) == reference(raw)


def test_query_and_body_are_joined_in_order():
    assert parse_pairs("a=1&b=2", "", "c=%33") == [("a", "1"), ("b", "2"), ("c", "3")]

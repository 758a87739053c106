"""The lenient JSON reader on mangled judge output (property tests)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ropd.jsonparse import JsonExtractionError, json_object_candidates, parse_json_object

# Reasoning tags inside JSON strings *and* a reasoning block around them are out of scope.
plain = st.text(alphabet=st.characters(blacklist_characters="<>"), max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | plain,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(plain, inner, max_size=4),
    max_leaves=12,
)
objects = st.dictionaries(plain, json_values, min_size=1, max_size=5)
prose = st.text(alphabet=st.characters(blacklist_characters="{}<>"), max_size=60)


@settings(max_examples=200, deadline=None)
@given(obj=objects, before=prose, after=prose, fence=st.booleans(), think=st.booleans())
def test_object_is_recovered_from_wrapped_reply(obj, before, after, fence, think):
    body = json.dumps(obj, indent=2 if fence else None)
    if fence:
        body = f"```json\n{body}\n```"
    reasoning = '<think>Let me draft {"draft": true} first.</think>' if think else ""
    assert parse_json_object(f"{reasoning}{before}{body}{after}") == obj


@settings(max_examples=200, deadline=None)
@given(obj=objects, cut=st.integers(min_value=1, max_value=10))
def test_truncated_json_is_an_error_not_a_wrong_value(obj, cut):
    text = json.dumps(obj)
    truncated = text[: max(1, len(text) - cut)]
    try:
        value = parse_json_object(truncated)
    except JsonExtractionError:
        return
    # anything recovered from a cut reply must be a genuine sub-object of the original
    assert json.dumps(value) in text or value in _nested(obj)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes(text):
    try:
        assert isinstance(parse_json_object(text), dict)
    except JsonExtractionError:
        pass


def test_candidates_are_top_level_objects_in_order():
    text = 'a {"x": {"y": 1}} b {"z": 2} c [1] {"w": 3'
    assert json_object_candidates(text) == [{"x": {"y": 1}}, {"z": 2}]


def test_empty_reply_is_a_clear_error():
    with pytest.raises(JsonExtractionError, match="empty"):
        parse_json_object("   ")


def _nested(value):
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _nested(v)
    elif isinstance(value, list):
        for v in value:
            yield from _nested(v)


def test_raw_control_characters_inside_strings_are_accepted():
    assert parse_json_object('{"criterion": "line one\nline two\tend"}') == {
        "criterion": "line one\nline two\tend"
    }

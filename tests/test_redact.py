"""Secrets scrubbed from text: configured values of any shape, and well-known key shapes."""

from __future__ import annotations

import pytest

from ropd import redact
from ropd.redact import REDACTED


@pytest.fixture(autouse=True)
def _no_remembered_secrets():
    redact.forget_all()
    yield
    redact.forget_all()


@pytest.mark.parametrize(
    "text",
    [
        "key sk-abcdefghijklmnop1234 here",
        "SK-ABCDEFGHIJKLMNOPQRST",
        "Authorization: Bearer abcdefgh12345",
        "token HF_abcdefghijklmnopq",
    ],
)
def test_key_shaped_strings_are_scrubbed_whatever_their_case(text):
    assert REDACTED in redact.scrub(text)


def test_a_remembered_value_of_any_shape_is_scrubbed_and_short_ones_are_not_remembered():
    redact.remember("tok_3c9f1e7a")
    redact.remember("no")  # too short to be a key: would blank ordinary words
    assert redact.scrub("echo tok_3c9f1e7a, no more") == f"echo {REDACTED}, no more"


def test_long_text_without_any_key_comes_back_unchanged():
    text = "an answer " * 5000
    assert redact.scrub(text) == text

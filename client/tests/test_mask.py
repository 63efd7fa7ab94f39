"""--mask: values replaced in a stream, whatever the writes' boundaries."""

from __future__ import annotations

from coffer_cli.mask import Masker

VALUES = [
    "sk_live_abcdef123456",
    "sk_live_abc",
    "p@ss",
    "no",
    "-----BEGIN-----\nAAAABBBB\n-----END-----",
]


def masked(chunks: list[bytes]) -> bytes:
    masker = Masker(VALUES)
    return b"".join(masker.feed(chunk) for chunk in chunks) + masker.flush()


def test_each_value_is_masked_longest_first():
    assert masked([b"a sk_live_abcdef123456 b sk_live_abc c p@ss\n"]) == b"a *** b *** c ***\n"


def test_a_value_cut_across_writes_is_masked_at_every_cut():
    text = b"key=sk_live_abcdef123456 end\nagain:sk_live_abcdef123456"
    for cut in range(1, len(text)):
        assert masked([text[:cut], text[cut:]]) == b"key=*** end\nagain:***", cut
    assert masked([bytes([byte]) for byte in text]) == b"key=*** end\nagain:***"


def test_a_finished_line_is_passed_on_at_once():
    masker = Masker(VALUES)
    assert masker.feed(b"line one sk_live_abc\n") == b"line one ***\n"
    # An unfinished line keeps back only what could start a value.
    hold = max(len(value) for value in VALUES) - 1
    assert masker.feed(b"x" * 100) == b"x" * (100 - hold)


def test_short_values_are_not_masked():
    assert masked([b"no way\n"]) == b"no way\n"


def test_each_line_of_a_multiline_value_is_masked():
    assert masked([b"-----BEGIN-----\n", b"AAAABBBB\n", b"-----END-----\n"]) == b"***\n***\n***\n"


def test_without_values_nothing_changes():
    masker = Masker([])
    assert masker.feed(b"abc") == b"abc" and masker.flush() == b""

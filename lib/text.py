"""Text safe to print to a terminal or store in a log or an audit row."""

from __future__ import annotations

import re


def printable(text: str) -> str:
    """`text` safe to print or store: every character that is not printable (control
    characters such as ESC, which could drive a terminal, format characters, line breaks)
    shown as `\\xNN`, `\\uNNNN` or `\\UNNNNNNNN`; undecodable bytes (kept as surrogates)
    as `\\xNN`."""
    if text.isprintable():
        return text
    return _NOT_PRINTABLE_RE.sub(_escaped, text)


_NOT_PRINTABLE_RE = re.compile(r"[^ -~]")  # candidates: all but printable ASCII


def _escaped(match: re.Match) -> str:
    character = match.group()
    if character.isprintable():
        return character
    code = ord(character)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, kept by "surrogateescape"
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"

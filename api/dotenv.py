"""Values as shell assignments, for `set -a; . ./values.env` or `eval "$(curl ...)"`.

Each line is `KEY='value'`: inside single quotes a POSIX shell takes every byte literally
(newlines, `"`, `$`, backticks, backslashes), so the only character to write specially is the
quote itself, as `'\\''` (close the quote, an escaped quote, reopen). Token Keys are valid shell
names by their grammar. A NUL byte cannot be held by a shell variable at all: such values are
refused rather than silently cut (format=json carries them).
"""

from __future__ import annotations

from collections.abc import Mapping


def quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def encode(values: Mapping[str, str]) -> str:
    return "".join(f"{key}={quote(value)}\n" for key, value in values.items())


def unshellable_keys(values: Mapping[str, str]) -> list[str]:
    return [key for key, value in values.items() if "\x00" in value]

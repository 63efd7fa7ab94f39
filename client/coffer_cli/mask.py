"""`--mask`: every value in a stream replaced with `***`, line by line as it is written.

Matched as bytes (UTF-8). A value shorter than MIN_LENGTH is not masked (masking "1" or "yes"
would garble the output without hiding anything). A value of several lines is masked whole,
and each of its lines (of MIN_LENGTH or more) on its own too, since a stream is passed on at
each newline and a whole multi-line value may never be in view at once.

A value may be cut across two writes: the masker holds back the last (longest value - 1) bytes
of an unfinished line, never a finished one, so a line is passed on as soon as it ends and no
cut value slips through.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = b"***"
MIN_LENGTH = 4


def patterns(values: Iterable[str]) -> list[bytes]:
    found = set()
    for value in values:
        for piece in [value, *value.splitlines()]:
            if len(piece) >= MIN_LENGTH:
                found.add(piece.encode())
    return sorted(found, key=lambda piece: (-len(piece), piece))  # longest first


class Masker:
    def __init__(self, values: Iterable[str]) -> None:
        pieces = patterns(values)
        self.regex: re.Pattern[bytes] | None = (
            re.compile(b"|".join(re.escape(piece) for piece in pieces)) if pieces else None
        )
        self.hold = max((len(piece) for piece in pieces), default=1) - 1
        self.pending = b""

    def feed(self, chunk: bytes) -> bytes:
        """The masked bytes that can be passed on now."""
        data = self.pending + chunk
        if self.regex is None:
            self.pending = b""
            return data
        end = data.rfind(b"\n") + 1
        out, rest = [self.regex.sub(MASK, data[:end])], data[end:]
        # In the unfinished line, a match starting before `safe` is decided: every value that
        # could start there is wholly in view. The rest waits for more bytes.
        safe, position = len(rest) - self.hold, 0
        for match in self.regex.finditer(rest):
            if match.start() >= safe:
                break
            out += [rest[position : match.start()], MASK]
            position = match.end()
        cut = max(position, safe, 0)
        out.append(rest[position:cut])
        self.pending = rest[cut:]
        return b"".join(out)

    def flush(self) -> bytes:
        """The rest, at the end of the stream."""
        data, self.pending = self.pending, b""
        return self.regex.sub(MASK, data) if self.regex is not None else data

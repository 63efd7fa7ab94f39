"""The `$Secret{KEY}` grammar: finding references in a text, and filling them in. Pure Python:
no Django, no database (tests/test_layering.py holds it so), so its property tests need nothing.

- `$Secret{KEY}` is a reference; KEY is a Token Key (`[A-Za-z_][A-Za-z0-9_]*`, at most 128
  characters).
- `$$Secret{` is the escape for a literal `$Secret{`: `$$Secret{X}` outputs `$Secret{X}` and is
  not resolved.
- Any other `$Secret{` (empty, bad or over-long key, no closing brace) is a malformed reference:
  an error with its line and column, never passed through.
- Everything else passes through unchanged.

Substitution is single-pass: a value is inserted once and never scanned again, and no character
in a value (`$`, `\\`, `{`) is ever interpreted. Text without escapes or malformed references
is split and joined by the regex engine in C, without a Python call per reference.

Memory: a `Template(text, keep=False)` (what `manage.py resolve` uses) takes a file's bytes as
they are, parses them a segment of about 1 MiB at a time and renders segment by segment, so a
large template costs about its own size, not several copies. The grammar's patterns are compiled
once for `str` and once for bytes, from `KEY_PATTERN`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter

# The Token Key grammar, written once: a first character, then more characters, 1-128 in all.
# KEY_PATTERN (the form, the model, this parser), KEY_DB_PATTERN (PostgreSQL's CHECK) and the
# SQLite GLOBs of tokens/models.py are all built from these two classes.
KEY_FIRST_CHARS = "A-Za-z_"
KEY_CHARS = "A-Za-z0-9_"
KEY_MAX_LENGTH = 128
KEY_PATTERN = rf"[{KEY_FIRST_CHARS}][{KEY_CHARS}]*"

OPENER = "$Secret{"
ESCAPED_OPENER = "$$Secret{"
MALFORMED = "malformed reference"
UNKNOWN = "unknown token"
SNIPPET_MAX_KEY = 40  # characters of a malformed reference's text shown after `$Secret{`
# A ResolveError keeps this many problems (and counts the others): a template of a million bad
# references must not cost a million objects.
PROBLEMS_KEPT = 1_000

# A key as the model defines it. The group is atomic so that a key never backtracks; its length
# is checked after (an unbounded key is faster to match, and over-long keys are rare).
_KEY = rf"(?>{KEY_PATTERN})"
# The common case: only well-formed references. `split` keeps the keys (one group). The pattern
# starts with its literal, which the regex engine searches fast.
_VALID = rf"\$Secret\{{({_KEY})\}}"
# Everything: group 1 is "$" for an escape; group 2 is the key of a well-formed reference.
_ANY = rf"\$(\$?)Secret\{{(?:({_KEY})\}})?"
_SNIPPET_END = r"[}\r\n]"
# Parsing goes a segment at a time (about this many characters, cut after a newline: no
# reference or escape spans a line), so a large text is never copied whole into pieces.
SEGMENT_SIZE = 1 << 20

# A text to resolve: a `str`, or the bytes of a file (never decoded whole).
type Text = str | bytes | bytearray | memoryview


@dataclass(frozen=True)
class _Syntax:
    """The grammar's literals and patterns for one kind of text: `str`, or bytes-like (the
    UTF-8 or other ASCII-compatible bytes of a file, never decoded whole)."""

    opener: str | bytes
    escaped_opener: str | bytes
    dollar: str | bytes
    newline: str | bytes
    empty: str | bytes
    close: str | bytes
    valid_re: re.Pattern
    any_re: re.Pattern
    snippet_end_re: re.Pattern

    @classmethod
    def of(cls, kind: type) -> _Syntax:
        literal = (lambda text: text) if kind is str else str.encode
        return cls(
            *map(literal, (OPENER, ESCAPED_OPENER, "$", "\n", "", "}")),
            *(re.compile(literal(pattern)) for pattern in (_VALID, _ANY, _SNIPPET_END)),
        )


_TEXT = _Syntax.of(str)
_BINARY = _Syntax.of(bytes)


def _decoded(text) -> str:
    return text if isinstance(text, str) else bytes(text).decode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class Reference:
    """One occurrence of `$Secret{...}` in a text. `key` is None when it is malformed."""

    key: str | None
    text: str  # the reference as written, shortened when a malformed one runs on
    line: int  # 1-based
    column: int  # 1-based, in characters


@dataclass(frozen=True)
class Problem:
    """Why one occurrence of a reference cannot be resolved. Never carries a value."""

    source: str
    line: int
    column: int
    reference: str  # `$Secret{KEY}`, or the raw text of a malformed reference
    key: str | None
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}: {self.reference}: {self.reason}"


class ResolveError(Exception):
    """A resolve that did not complete; nothing may be output.

    `problems` lists the reference problems in text order, the first PROBLEMS_KEPT of them
    (`problem_count` counts them all); it is empty when the failure is not about a reference (a
    value that cannot be decrypted, an audit event that cannot be written).
    """

    def __init__(
        self, message: str, problems: Iterable[Problem] = (), *, count: int | None = None
    ) -> None:
        self.problems = list(problems)
        self.problem_count = len(self.problems) if count is None else count
        super().__init__(message)

    def __str__(self) -> str:
        return "\n".join([super().__str__(), *map(str, self.problems)])


class OutputTooLarge(ResolveError):
    """The resolved text would be longer than the output limit; nothing was decrypted, marked
    used or output."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"The resolved output would be {size:,} bytes; the limit is {limit:,} bytes. "
            "Nothing was resolved: reference fewer or smaller tokens, or split the template."
        )
        self.size, self.limit = size, limit


@dataclass(frozen=True)
class ReferenceStatus:
    """A distinct reference in a check report: where it first appears and whether it resolves."""

    key: str | None
    reference: str
    line: int
    column: int
    occurrences: int
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.reason is None

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "reference": self.reference,
            "line": self.line,
            "column": self.column,
            "occurrences": self.occurrences,
            "status": "ok" if self.ok else "error",
            "reason": self.reason,
        }


@dataclass(frozen=True)
class CheckReport:
    """Each distinct reference's status, and the failing occurrences: the first PROBLEMS_KEPT
    of them in text order (`problem_count` counts them all; a template of a million failing
    references must not cost a million objects)."""

    source: str
    references: list[ReferenceStatus]
    problems: list[Problem]
    problem_count: int

    @property
    def ok(self) -> bool:
        return not self.problem_count


def _snippet(text, start: int, syntax: _Syntax) -> str:
    """The raw text of a malformed reference: to its `}` or the end of its line, shortened."""
    body_start = start + len(syntax.opener)
    end = syntax.snippet_end_re.search(text, body_start, body_start + SNIPPET_MAX_KEY + 1)
    if end is not None:
        stop = end.end() if end.group() == syntax.close else end.start()
        return _decoded(text[start:stop])
    snippet = _decoded(text[start : body_start + SNIPPET_MAX_KEY])
    return snippet + "..." if len(text) > body_start + SNIPPET_MAX_KEY else snippet


def _split_well_formed(text, syntax: _Syntax) -> list | None:
    """[text, key, text, ..., key, text] with escapes turned into literal `$Secret{`, or None
    when some `$Secret{` has no well-formed key (keys' lengths are the caller's to check). The
    regex engine does the splitting, in C."""
    if syntax.escaped_opener not in text:
        return _split_unescaped(text, syntax)
    # An escape never overlaps a reference, so the pieces between escapes parse on their own.
    parts: list = []
    for segment in text.split(syntax.escaped_opener):
        pieces = _split_unescaped(segment, syntax)
        if pieces is None:
            return None
        if parts:
            parts[-1] = parts[-1] + syntax.opener + pieces[0]
            parts.extend(pieces[1:])
        else:
            parts = pieces
    return parts


def _split_unescaped(text, syntax: _Syntax) -> list | None:
    openers = text.count(syntax.opener)
    if not openers:
        return [text]
    parts = syntax.valid_re.split(text)
    return parts if len(parts) // 2 == openers else None


def _parse_slowly(text, syntax: _Syntax) -> tuple[list, int]:
    """Match by match: the parts (malformed references, never rendered, kept as literal text)
    and how many references were malformed."""
    parts: list = []
    literal: list = []
    position = malformed = 0
    for match in syntax.any_re.finditer(text):
        escape, key = match.groups()
        if escape:
            literal.append(text[position : match.start()])
            literal.append(match.group()[1:])
        elif key is None or len(key) > KEY_MAX_LENGTH:
            malformed += 1
            literal.append(text[position : match.end()])  # never rendered
        else:
            literal.append(text[position : match.start()])
            parts.append(syntax.empty.join(literal))
            parts.append(key)
            literal = []
        position = match.end()
    literal.append(text[position:])
    parts.append(syntax.empty.join(literal))
    return parts, malformed


# A segment that first shows at most this many keys is searched once per key; one that shows
# more is walked match by match (each search may read the whole segment).
FIND_EACH_KEY = 16


def _find_reference(text, key, start: int, end: int, syntax: _Syntax) -> int:
    """Where the first well-formed reference to `key` is in text[start:end] (the caller knows
    there is one): `$Secret{KEY}` not preceded by a `$` (then it would be an escape's; no
    match of the grammar ends with a `$`, so a `$` before it always belongs to an escape)."""
    needle = syntax.opener + key + syntax.close
    position = text.find(needle, start, end)
    while position > 0 and text[position - 1 : position] == syntax.dollar:
        position = text.find(needle, position + 1, end)
    assert position >= 0, "the parse saw this reference in this segment"
    return position


class _Positions:
    """Line and column (1-based; columns in characters, also in a file's bytes) of positions
    in a text, asked for in increasing order: each call reads only the text since the last."""

    __slots__ = (
        "binary",
        "column",
        "column_at",
        "line",
        "line_start",
        "newline",
        "scanned",
        "text",
    )

    def __init__(self, text, syntax: _Syntax) -> None:
        self.text, self.newline, self.binary = text, syntax.newline, syntax is _BINARY
        self.line, self.line_start, self.scanned = 1, 0, 0
        self.column, self.column_at = 1, 0  # the column of byte column_at, for bytes

    def of(self, start: int) -> tuple[int, int]:
        text, newline = self.text, self.newline
        if newlines := text.count(newline, self.scanned, start):
            self.line += newlines
            self.line_start = text.rfind(newline, self.scanned, start) + 1
            self.column, self.column_at = 1, self.line_start
        self.scanned = start
        if self.binary:
            self.column += len(_decoded(text[self.column_at : start]))
            self.column_at = start
            return self.line, self.column
        return self.line, start - self.line_start + 1


class Template:
    """A text parsed into literal pieces and references; `render(values)` fills them in.

    The text is a `str`, or bytes-like (a file's bytes, which are then never decoded whole and
    render to bytes). It is parsed a segment at a time; each segment's parts alternate literal
    text and keys, [text, key, text, key, ..., text], with escapes already turned into literal
    `$Secret{`. `keep=False` keeps no parts (each segment is parsed again when rendered), so a
    large text costs no second copy: see `pieces`. Positions (lines, columns) are only worked
    out when asked for, since a successful resolve never needs them.
    """

    def __init__(self, text, *, keep: bool = True) -> None:
        self.text = text
        self._syntax = _TEXT if isinstance(text, str) else _BINARY
        self.malformed_count = 0
        kept: list[list] | None = [] if keep else None
        self._kept = kept
        occurrences: Counter = Counter()
        # Where each key first appears: (start, end, the keys first seen there) per segment
        # that brings new keys, so that a check report can find a key's first occurrence in
        # that segment alone instead of walking every occurrence (see `first_references`).
        self._introduced: list[tuple[int, int, set]] = []
        seen: set = set()
        for start, end, parts, keys in self._parse(check=True):
            occurrences.update(parts[1::2])  # counted in C
            if kept is not None:
                kept.append(parts)
            if new := keys - seen:  # set arithmetic in C, once per segment
                seen |= new
                self._introduced.append((start, end, new))
        self._count = occurrences.total()
        self._occurrences = {_decoded(key): n for key, n in occurrences.items()}
        self._distinct = set(self._occurrences)

    def _segments(self):
        text, size = self.text, len(self.text)
        if self._kept is not None:  # the parts are kept whole anyway: one segment is fastest
            yield 0, text
            return
        start = 0
        while True:
            end = text.find(self._syntax.newline, start + SEGMENT_SIZE) + 1
            if end <= 0 or start + SEGMENT_SIZE >= size:
                end = size
            if isinstance(text, str | bytes):
                yield start, text[start:end]
            else:  # one copy of the segment, not of the text
                yield start, bytes(memoryview(text)[start:end])
            if end >= size:
                return
            start = end

    def _parse(self, *, check: bool):
        """(start, end, parts, keys) per segment; `keys`, the set of its well-formed keys, only
        with `check` (which also counts the malformed references)."""
        syntax = self._syntax
        for start, segment in self._segments():
            parts = _split_well_formed(segment, syntax)
            keys = set(parts[1::2]) if check and parts is not None else None
            if check and (keys is None or any(len(key) > KEY_MAX_LENGTH for key in keys)):
                # Some `$Secret{` is malformed: take the careful path.
                parts, malformed = _parse_slowly(segment, syntax)
                self.malformed_count += malformed
                keys = set(parts[1::2])
            yield start, start + len(segment), parts, keys

    @property
    def reference_count(self) -> int:
        """How many well-formed references the text holds."""
        return self._count

    def distinct_keys(self) -> set[str]:
        return self._distinct

    def output_size(self, value_sizes: Mapping[str, int]) -> int:
        """How long the rendered text will be when each key's value is value_sizes[key]
        long: the template's length, less its references, plus their values (in the
        template's units: characters of a `str`, bytes of a file)."""
        reference = len(OPENER) + len("}")
        return len(self.text) + sum(
            count * (value_sizes[key] - reference - len(key))
            for key, count in self._occurrences.items()
        )

    def occurrences(self, key: str) -> int:
        """How many times the well-formed reference to `key` occurs."""
        return self._occurrences.get(key, 0)

    def references(self) -> Iterator[Reference]:
        """Every `$Secret{...}` occurrence (malformed ones included) with its line and column,
        in text order, one at a time."""
        if not self._count and not self.malformed_count:
            return
        text, syntax = self.text, self._syntax
        position = _Positions(text, syntax)
        names: dict = {}  # a key as found -> (the key, its reference), decoded once
        for match in syntax.any_re.finditer(text):
            escape, key = match.groups()
            if escape:
                continue
            start = match.start()
            line, column = position.of(start)
            if key is not None and len(key) > KEY_MAX_LENGTH:
                key = None
            if key is None:
                raw = _snippet(text, start, syntax)
            elif (named := names.get(key)) is not None:
                key, raw = named
            else:
                found = key
                key, raw = names[found] = _decoded(key), _decoded(match.group())
            yield Reference(key=key, text=raw, line=line, column=column)

    def first_references(self) -> list[Reference]:
        """The first occurrence of each distinct well-formed key, with its line and column, in
        text order (malformed references are left out).

        Found without walking every occurrence: a key's first occurrence is in the segment where
        the parse first saw it, and the regex engine finds it there (`str.find`, in C); only a
        segment that brings many new keys is walked, match by match, until it has shown them
        all. A large template that references a few keys many times costs a few searches.
        """
        text, syntax = self.text, self._syntax
        found: list[tuple[int, str | bytes]] = []
        for start, end, keys in self._introduced:
            if len(keys) <= FIND_EACH_KEY:
                found.extend((_find_reference(text, key, start, end, syntax), key) for key in keys)
                continue
            remaining = set(keys)
            for match in syntax.any_re.finditer(text, start, end):
                escape, key = match.groups()
                if not escape and key in remaining:
                    found.append((match.start(), key))
                    remaining.discard(key)
                    if not remaining:
                        break
        found.sort()
        position = _Positions(text, syntax)
        references = []
        for start, key in found:
            line, column = position.of(start)
            name = _decoded(key)
            references.append(Reference(name, f"{OPENER}{name}}}", line, column))
        return references

    def pieces(self, values: Mapping[str, str], *, reuse: bool = False) -> Iterator:
        """The rendered text a segment at a time (`str`, or bytes for a bytes-like text): each
        reference replaced by values[key], verbatim and in one pass.

        `reuse=True` fills kept parts in place (no copy) when the template is not needed again.
        """
        if self.malformed_count:
            raise ValueError("a text with malformed references cannot be rendered")
        fills: Mapping[str, str] | dict[bytes, bytes] = values
        if self._syntax is _BINARY:
            fills = {
                key.encode("ascii"): value.encode("utf-8", "surrogateescape")
                for key, value in values.items()
            }
        empty = self._syntax.empty
        segments: Iterable[list]
        if self._kept is None:
            segments = (parts for _, _, parts, _ in self._parse(check=False))
        else:
            segments = self._kept if reuse else (parts.copy() for parts in self._kept)
        for parts in segments:
            if len(parts) == 1:
                yield parts[0]
                continue
            keys = parts[1::2]
            # itemgetter looks every key up in C; with one key it returns the value itself.
            parts[1::2] = itemgetter(*keys)(fills) if len(keys) > 1 else [fills[keys[0]]]
            yield empty.join(parts)
        if reuse:
            self._kept = []

    def render(self, values: Mapping[str, str], *, reuse: bool = False):
        """The whole rendered text (see `pieces`)."""
        return self._syntax.empty.join(self.pieces(values, reuse=reuse))


def problems_in(
    template: Template, reasons: Mapping[str, str | None], *, source: str
) -> Iterator[Problem]:
    """Every occurrence that cannot be resolved (malformed, or whose key has a reason), one at
    a time, in text order."""
    keys = template.distinct_keys()
    if not template.malformed_count and not any(reasons.get(key, UNKNOWN) for key in keys):
        return
    for ref in template.references():
        reason = MALFORMED if ref.key is None else reasons.get(ref.key, UNKNOWN)
        if reason:
            yield Problem(source, ref.line, ref.column, ref.text, key=ref.key, reason=reason)


def substitute(text: str, values: Mapping[str, str], *, source: str = "<string>") -> str:
    """Resolve `text` against plain values, with no database: a key missing from `values` is an
    unknown token. Raises ResolveError listing every problem."""
    template = Template(text)
    reasons = {key: None if key in values else UNKNOWN for key in template.distinct_keys()}
    if error := unresolvable(problems_in(template, reasons, source=source)):
        raise error
    return template.render(values)


def _kept_and_counted(problems: Iterator[Problem]) -> tuple[list[Problem], int]:
    """The first PROBLEMS_KEPT problems, and how many there are in all."""
    kept = list(islice(problems, PROBLEMS_KEPT))
    return kept, len(kept) + sum(1 for _ in problems)


def unresolvable(problems: Iterator[Problem]) -> ResolveError | None:
    """The error for these problems (the first PROBLEMS_KEPT kept, all counted), or None when
    there are none."""
    kept, count = _kept_and_counted(problems)
    if not count:
        return None
    noun = "reference" if count == 1 else "references"
    message = f"{count} {noun} cannot be resolved; nothing was output."
    return ResolveError(message, kept, count=count)


def check_report(
    template: Template, reasons: Mapping[str, str | None], *, source: str
) -> CheckReport:
    """One status per distinct reference (each malformed occurrence its own), with the reason
    of each key in `reasons` (None: it resolves), and the failing occurrences (see CheckReport).

    Without malformed references, the statuses come from each key's first occurrence alone
    (`Template.first_references`) and the occurrences from the parse's counts; only failing
    occurrences are walked, as a resolve walks them. With malformed ones (each its own status,
    in text order among the keys), every occurrence is walked."""
    if template.malformed_count:
        return _check_report_by_occurrence(template, reasons, source=source)
    references = []
    for ref in template.first_references():
        key = ref.key
        assert key is not None  # a first reference is well-formed
        reason = reasons.get(key, UNKNOWN)
        references.append(
            ReferenceStatus(key, ref.text, ref.line, ref.column, template.occurrences(key), reason)
        )
    kept, count = _kept_and_counted(problems_in(template, reasons, source=source))
    return CheckReport(source, references, kept, count)


def _check_report_by_occurrence(
    template: Template, reasons: Mapping[str, str | None], *, source: str
) -> CheckReport:
    statuses: dict[str | tuple[int, int], list] = {}
    problems: list[Problem] = []
    count = 0
    for ref in template.references():
        reason = MALFORMED if ref.key is None else reasons.get(ref.key, UNKNOWN)
        if reason:
            count += 1
            if count <= PROBLEMS_KEPT:
                problems.append(Problem(source, ref.line, ref.column, ref.text, ref.key, reason))
        # Each malformed occurrence is its own entry; a well-formed key is one entry.
        slot = ref.key if ref.key is not None else (ref.line, ref.column)
        if slot in statuses:
            statuses[slot][4] += 1
        else:
            statuses[slot] = [ref.key, ref.text, ref.line, ref.column, 1, reason]
    references = [ReferenceStatus(*entry) for entry in statuses.values()]
    return CheckReport(source, references, problems, count)


def values_text(keys: Iterable[str]) -> str:
    """A text referencing each key once per line: how `resolve_values` and its check report
    see a list of Token Keys (the caller has checked each is one: `KEY_RE`)."""
    return "\n".join(f"{OPENER}{key}}}" for key in keys)

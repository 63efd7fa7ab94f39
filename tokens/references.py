"""`$Secret{KEY}` references: finding them in text and resolving them to token values.

The grammar:

- `$Secret{KEY}` is a reference; KEY is a Token Key (`[A-Za-z_][A-Za-z0-9_]*`, at most 128
  characters).
- `$$Secret{` is the escape for a literal `$Secret{`: `$$Secret{X}` outputs `$Secret{X}` and is
  not resolved.
- Any other `$Secret{` (empty, bad or over-long key, no closing brace) is a malformed reference:
  an error with its line and column, never passed through.
- Everything else passes through unchanged.

Resolution fails closed: every problem in the text is collected (malformed references, unknown,
revoked, expired, wrong-environment and out-of-scope tokens, every occurrence) and
`ResolveError` is raised with all of them; no value leaves this module then. On success the
tokens' `last_used_at` is set and one audit event is written *before* the resolved text is
returned; if that write fails the resolve fails.

A resolve is one transaction from the lookup to the audit event, and the lookup locks the
referenced tokens' rows (`SELECT ... FOR UPDATE`, on PostgreSQL; SQLite serialises writers
anyway): a concurrent `Token.revoke()`, which locks the token's row too, either commits first and
the resolve reports "token revoked", or waits until the resolve has committed.

Substitution is single-pass: a value is inserted once and never scanned again, and no character
in a value (`$`, `\\`, `{`) is ever interpreted.

Speed: a successful run costs a constant number of queries whatever the number of references,
all plain SQL built once per shape (building and compiling ORM queries cost most of a resolve's
CPU): the usable referenced tokens with their workspace's wrapped data key, in one statement
(the rules of `Token.objects.usable_in`, which the tests keep it equal to), then in a savepoint
of their own the UPDATE of `last_used_at` and the audit INSERT (one statement on PostgreSQL);
the rest in a transaction that needs no savepoint. Only when some reference fails are those
tokens loaded with their products, apps and environments so that `Token.unusable_reason` can
say why. Each distinct token is decrypted once. Text without escapes or malformed references
is split and joined by the regex engine in C, without a Python call per reference.

Memory: `resolve_pieces` (used by `manage.py resolve`) takes a file's bytes as they are, parses
them a segment of about 1 MiB at a time, checks and audits everything first and then yields the
output segment by segment, so a large template costs about its own size, not several copies.
The grammar's patterns are compiled once for `str` and once for bytes, from `KEY_PATTERN`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from itertools import islice
from operator import itemgetter
from typing import TYPE_CHECKING, NamedTuple, cast

from django.conf import settings
from django.db import DatabaseError, connection, models, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from audit.models import AuditAction, AuditEvent
from keys.crypto import CryptoError, MasterKeyError, plaintext_length
from keys.models import WorkspaceKey
from lib.text import printable
from tokens.models import (
    KEY_MAX_LENGTH,
    KEY_PATTERN,
    NOT_AVAILABLE,
    Token,
    TokenStatus,
    TokenUsage,
    UseContext,
)
from workspaces.models import Workspace

if TYPE_CHECKING:
    from django.contrib.auth.models import User

OPENER = "$Secret{"
ESCAPED_OPENER = "$$Secret{"
MALFORMED = "malformed reference"
UNKNOWN = "unknown token"
SNIPPET_MAX_KEY = 40  # characters of a malformed reference's text shown after `$Secret{`
# A ResolveError keeps this many problems (and counts the others): a template of a million bad
# references must not cost a million objects.
PROBLEMS_KEPT = 1_000
# Above this many distinct keys, load the workspace's tokens instead of a long `key IN (...)`.
KEY_LOOKUP_LIMIT = 900

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
            *map(literal, (OPENER, ESCAPED_OPENER, "\n", "", "}")),
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
    source: str
    references: list[ReferenceStatus]
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems


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
        for parts, _ in self._parse(check=True):
            occurrences.update(parts[1::2])  # counted in C
            if kept is not None:
                kept.append(parts)
        self._count = occurrences.total()
        self._occurrences = {_decoded(key): n for key, n in occurrences.items()}
        self._distinct = set(self._occurrences)

    def _segments(self):
        text, size = self.text, len(self.text)
        if self._kept is not None:  # the parts are kept whole anyway: one segment is fastest
            yield text
            return
        start = 0
        while True:
            end = text.find(self._syntax.newline, start + SEGMENT_SIZE) + 1
            if end <= 0 or start + SEGMENT_SIZE >= size:
                end = size
            if isinstance(text, str | bytes):
                yield text[start:end]
            else:  # one copy of the segment, not of the text
                yield bytes(memoryview(text)[start:end])
            if end >= size:
                return
            start = end

    def _parse(self, *, check: bool):
        syntax = self._syntax
        for segment in self._segments():
            parts = _split_well_formed(segment, syntax)
            keys = set(parts[1::2]) if check and parts is not None else None
            if check and (keys is None or any(len(key) > KEY_MAX_LENGTH for key in keys)):
                # Some `$Secret{` is malformed: take the careful path.
                parts, malformed = _parse_slowly(segment, syntax)
                self.malformed_count += malformed
                keys = set(parts[1::2])
            yield parts, keys

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

    def references(self) -> Iterator[Reference]:
        """Every `$Secret{...}` occurrence (malformed ones included) with its line and column,
        in text order, one at a time."""
        if not self._count and not self.malformed_count:
            return
        text, syntax = self.text, self._syntax
        newline, binary = syntax.newline, syntax is _BINARY
        line, line_start, scanned = 1, 0, 0
        column, column_at = 1, 0  # the column (in characters) of byte column_at, for bytes
        for match in syntax.any_re.finditer(text):
            escape, key = match.groups()
            if escape:
                continue
            start = match.start()
            if newlines := text.count(newline, scanned, start):
                line += newlines
                line_start = text.rfind(newline, scanned, start) + 1
                column, column_at = 1, line_start
            scanned = start
            if binary:
                column += len(_decoded(text[column_at:start]))
                column_at = start
            else:
                column = start - line_start + 1
            if key is not None and len(key) > KEY_MAX_LENGTH:
                key = None
            if key is None:
                raw = _snippet(text, start, syntax)
            else:
                key, raw = _decoded(key), _decoded(match.group())
            yield Reference(key=key, text=raw, line=line, column=column)

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
            segments = (parts for parts, _ in self._parse(check=False))
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
    if not template.malformed_count and not any(reasons.values()):
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
    if error := _unresolvable(problems_in(template, reasons, source=source)):
        raise error
    return template.render(values)


def _unresolvable(problems: Iterator[Problem]) -> ResolveError | None:
    """The error for these problems (the first PROBLEMS_KEPT kept, all counted), or None when
    there are none."""
    kept = list(islice(problems, PROBLEMS_KEPT))
    count = len(kept) + sum(1 for _ in problems)
    if not count:
        return None
    noun = "reference" if count == 1 else "references"
    message = f"{count} {noun} cannot be resolved; nothing was output."
    return ResolveError(message, kept, count=count)


# --- against the database ----------------------------------------------------------------------


class _Sealed(NamedTuple):
    """What decrypting reads of a token (for `Token.objects.reveal_values`), fetched
    as a plain row: building 1,000 Token instances costs as much as the whole rest of a large
    resolve."""

    pk: uuid.UUID
    key: str
    ciphertext: bytes
    value_version: int
    workspace: Workspace
    workspace_id: int


@dataclass
class _Lookup:
    usable: dict[str, _Sealed]  # key -> its token, for the keys that resolve
    reasons: dict[str, str | None]  # key -> why it cannot resolve (None when it can)
    data_key: WorkspaceKey | None = None  # the workspace's wrapped data key, read with them


def _look_up(
    template: Template, context: UseContext, at: dt.datetime, *, lock: bool = False
) -> _Lookup:
    """The referenced tokens usable in `context`, with their workspace's wrapped data key, in
    one plain-SQL statement (`_usable_sql`: the rules of `Token.objects.usable_in`, which
    tests/test_references.py keeps it equal to); the others' reasons only when there are others.

    `lock=True` (inside a transaction) locks the usable tokens' rows until it ends.
    """
    workspace = context.environment.workspace
    for item in (context.product, context.app):
        if item is not None and item.workspace_id != workspace.pk:
            raise ValueError(f"{item} is not in workspace {workspace.slug}")
    keys = template.distinct_keys()
    if not keys:
        return _Lookup({}, {})
    rows = _usable_rows(workspace.pk, keys, context, at, lock=lock)
    workspace_id = workspace.pk
    to_uuid = Token._meta.pk.to_python  # a UUID on PostgreSQL, its hex on SQLite
    usable = {
        key: _Sealed(to_uuid(pk), key, ciphertext, version, workspace, workspace_id)
        for pk, key, ciphertext, version, _, _ in rows
        if key in keys
    }
    data_key = None
    if rows and rows[0][4] is not None:  # every row carries the same (wrapped) data key
        kek_id, wrapped = rows[0][4:]
        data_key = WorkspaceKey(workspace_id=workspace_id, kek_id=kek_id, wrapped_dek=wrapped)
    reasons: dict[str, str | None] = dict.fromkeys(usable)
    if missing := keys - usable.keys():
        # The failure path: ask each token why (the rules as written on the model).
        found = {
            token.key: token
            for token in _in_workspace(workspace, missing).with_relations()
            if token.key in missing
        }
        for key in missing:
            token = found.get(key)
            reason = NOT_AVAILABLE if token is None else token.unusable_reason(context, at)
            # Fail closed even if the database and the model ever disagreed.
            reasons[key] = reason or "token not usable here"
    return _Lookup(usable, reasons, data_key)


def _usable_rows(
    workspace_id: int, keys: set[str], context: UseContext, at: dt.datetime, *, lock: bool
) -> list[tuple]:
    """(id, key, ciphertext, value_version, kek_id, wrapped_dek) of the usable tokens among
    `keys` (all the workspace's usable tokens above KEY_LOOKUP_LIMIT keys)."""
    listed = sorted(keys) if len(keys) <= KEY_LOOKUP_LIMIT else []
    lock = lock and connection.features.has_select_for_update
    shape = (len(listed), context.product is not None, context.app is not None)
    sql = _usable_sql(connection.vendor, *shape, lock=lock)
    params: list = [workspace_id, connection.ops.adapt_datetimefield_value(at), *listed]
    params.append(context.environment.pk)
    params.extend(item.pk for item in (context.product, context.app) if item is not None)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _column(model: type[models.Model], name: str) -> str:
    """The quoted database column of `model`'s field `name` (for the hand-built SQL below)."""
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field) and field.column
    return connection.ops.quote_name(field.column)


@lru_cache(maxsize=256)  # one per shape: the number of keys, product, app, lock
def _usable_sql(vendor: str, listed: int, product: bool, app: bool, *, lock: bool) -> str:
    """`Token.objects.usable_in(context, at)` (active, unexpired, in the workspace, valid in
    the environment, in scope) as plain SQL, built once per shape: a request then costs no
    ORM query building or compiling. Parameters: workspace id, `at`, the `listed` keys, the
    environment id, then the product id and the app id when given."""
    q = connection.ops.quote_name
    token, key = Token._meta, WorkspaceKey._meta

    def through(field: str) -> tuple[str, str, str]:
        model = getattr(Token, field).through
        relation = Token._meta.get_field(field)
        assert isinstance(relation, models.ManyToManyField)
        return q(model._meta.db_table), _column(model, "token"), q(relation.m2m_reverse_name())

    def col(name: str) -> str:
        return f"t.{_column(Token, name)}"

    def linked(field: str, *, one: bool = False) -> str:
        table, token_column, target_column = through(field)
        match = f" AND x.{target_column} = %s" if one else ""
        return f"EXISTS (SELECT 1 FROM {table} x WHERE x.{token_column} = {col('id')}{match})"

    scope = [f"(NOT {linked('products')} AND NOT {linked('apps')})"]
    if product:
        scope.append(linked("products", one=True))
    if app:
        scope.append(linked("apps", one=True))
    keys = f" AND {col('key')} IN ({', '.join(['%s'] * listed)})" if listed else ""
    sql = (
        f"SELECT {col('id')}, {col('key')}, {col('ciphertext')}, {col('value_version')}, "
        f"k.{_column(WorkspaceKey, 'kek_id')}, k.{_column(WorkspaceKey, 'wrapped_dek')} "
        f"FROM {q(token.db_table)} t LEFT JOIN {q(key.db_table)} k "
        f"ON k.{_column(WorkspaceKey, 'workspace')} = {col('workspace')} "
        f"WHERE {col('workspace')} = %s AND {col('status')} = '{TokenStatus.ACTIVE.value}' "
        f"AND ({col('expires_at')} IS NULL OR {col('expires_at')} > %s){keys} "
        f"AND {linked('environments', one=True)} AND ({' OR '.join(scope)})"
    )
    return sql + " FOR UPDATE OF t" if lock else sql


def _in_workspace(workspace: Workspace, keys: set[str]):
    tokens = Token.objects.for_workspace(workspace)
    return tokens.filter(key__in=keys) if len(keys) <= KEY_LOOKUP_LIMIT else tokens


def check_text(
    text: Text, context: UseContext, *, source: str = "<string>", at: dt.datetime | None = None
) -> CheckReport:
    """Whether every reference in `text` would resolve in `context`, without decrypting,
    auditing or marking anything used: one status per distinct reference. `text` may be
    bytes-like (see `Template`)."""
    template = Template(text, keep=False)
    lookup = _look_up(template, context, at or timezone.now())
    statuses: dict[str | tuple[int, int], list] = {}
    problems: list[Problem] = []
    for ref in template.references():
        reason = MALFORMED if ref.key is None else lookup.reasons[ref.key]
        if reason:
            problems.append(Problem(source, ref.line, ref.column, ref.text, ref.key, reason))
        # Each malformed occurrence is its own entry; a well-formed key is one entry.
        slot = ref.key if ref.key is not None else (ref.line, ref.column)
        if slot in statuses:
            statuses[slot][4] += 1
        else:
            statuses[slot] = [ref.key, ref.text, ref.line, ref.column, 1, reason]
    references = [ReferenceStatus(*entry) for entry in statuses.values()]
    return CheckReport(source=source, references=references, problems=problems)


def resolve_text[T: (str, bytes)](
    text: T,
    context: UseContext,
    *,
    source: str = "<string>",
    actor: User | str | None = None,
    at: dt.datetime | None = None,
    detail: Mapping[str, object] | None = None,
    max_output: int | None = None,
) -> T:
    """`text` with every `$Secret{KEY}` replaced by its token's value in `context` (bytes,
    in their own encoding, for bytes).

    `actor` is the user or the name the audit event records ("system" when None); `detail`
    adds fields to that event (e.g. the API's access key and client address). Raises
    ResolveError (with every problem) when any reference cannot be resolved, a value cannot be
    decrypted or the audit event cannot be written; then nothing was marked used or audited
    (or, for the audit, the write was rolled back). Raises OutputTooLarge, before decrypting
    anything, when the output would be longer than `max_output` bytes
    (COFFER_RESOLVE_MAX_OUTPUT_BYTES when None).
    """
    template = Template(text)
    values = _resolve(template, context, at=at, source=source, actor=actor, detail=detail,
                      max_output=max_output)  # fmt: skip
    return template.render(values, reuse=True)


def resolve_pieces(
    text: Text,
    context: UseContext,
    *,
    source: str = "<string>",
    actor: User | str | None = None,
    at: dt.datetime | None = None,
    detail: Mapping[str, object] | None = None,
    max_output: int | None = None,
) -> Iterator:
    """`resolve_text` for large texts: resolves, marks used and audits first (raising
    ResolveError exactly like it, before anything is output), then returns the resolved text a
    segment at a time, never holding a second copy of it. A bytes-like `text` (a file's bytes)
    gives bytes pieces."""
    template = Template(text, keep=False)
    values = _resolve(template, context, at=at, source=source, actor=actor, detail=detail,
                      max_output=max_output)  # fmt: skip
    return template.pieces(values)


def _resolve(
    template: Template,
    context: UseContext,
    *,
    at: dt.datetime | None,
    source: str,
    actor: User | str | None,
    detail: Mapping[str, object] | None = None,
    max_output: int | None = None,
) -> dict[str, str]:
    at = at or timezone.now()
    if max_output is None:
        max_output = settings.COFFER_RESOLVE_MAX_OUTPUT_BYTES
    failure = None
    # The lookup's row locks last until the audit event is written. No savepoint for this block
    # (the query counts stay those of a plain run): a run that fails leaves it normally, having
    # written nothing (the writes have their own savepoint), and raises after it.
    with transaction.atomic(savepoint=False):
        try:
            values = _values_marked_used(
                template, context, at=at, source=source, actor=actor, detail=detail,
                max_output=max_output,
            )  # fmt: skip
        except ResolveError as error:
            failure = error
    if failure is not None:
        raise failure
    return values


def _values_marked_used(
    template: Template,
    context: UseContext,
    *,
    at: dt.datetime,
    source: str,
    actor: User | str | None,
    detail: Mapping[str, object] | None = None,
    max_output: int,
) -> dict[str, str]:
    """The referenced tokens' values, locked, decrypted and marked used; or ResolveError
    (OutputTooLarge when the output would be over `max_output`)."""
    lookup = _look_up(template, context, at, lock=True)
    if error := _unresolvable(problems_in(template, lookup.reasons, source=source)):
        raise error
    if not lookup.usable:
        return {}
    tokens = list(lookup.usable.values())
    # A value's length is its ciphertext's, less the nonce and tag: the limit is checked
    # before a single value is decrypted or a single byte of output is made.
    size = template.output_size({t.key: plaintext_length(t.ciphertext) for t in tokens})
    if size > max_output:
        raise OutputTooLarge(size, max_output)
    try:
        known = {lookup.data_key.workspace_id: lookup.data_key} if lookup.data_key else {}
        by_pk = Token.objects.reveal_values(tokens, known)
    except (CryptoError, MasterKeyError) as error:  # messages name keys and tokens, never values
        raise ResolveError(f"{error} Nothing was output.") from None
    values = {token.key: by_pk[token.pk] for token in tokens}
    del by_pk
    _record_use(
        tokens,
        context,
        at=at,
        source=source,
        actor=actor,
        count=template.reference_count,
        extra=detail,
    )
    return values


@sensitive_variables()
def _record_use(
    tokens: list[_Sealed],
    context: UseContext,
    *,
    at: dt.datetime,
    source: str,
    actor: User | str | None,
    count: int,
    extra: Mapping[str, object] | None = None,
) -> None:
    """Mark the tokens used, count the use in each token's usage for this context and write
    the run's audit event, or raise ResolveError: in a savepoint, the UPDATE the queryset would
    make, one upsert for every token's usage row and the event `AuditEvent.record` would
    insert, as plain SQL (one statement on PostgreSQL, three elsewhere), whatever the number
    of tokens."""
    user = actor if not isinstance(actor, str) and getattr(actor, "pk", None) else None
    name = actor if isinstance(actor, str) else ""
    workspace = context.environment.workspace
    detail_source = printable(source)
    detail = {
        **(extra or {}),
        "keys": sorted(token.key for token in tokens),
        "references": count,
        "environment": context.environment.slug,
        "product": context.product.slug if context.product else None,
        "app": context.app.slug if context.app else None,
        "source": detail_source,
    }
    event = AuditEvent(
        workspace=workspace,
        action=AuditAction.RESOLVED,
        actor=user,
        actor_name=name or (user.get_username() if user is not None else "system"),  # as record
        detail=detail,
    )
    when = connection.ops.adapt_datetimefield_value(at)
    keys = [token.key for token in tokens]
    mark = [when, workspace.pk, *keys]
    usage = _usage_params(context, source=detail_source, actor=event.actor_name,
                          access_key=str(detail.get("access_key") or ""), when=when,
                          workspace_id=workspace.pk, keys=keys)  # fmt: skip
    columns, values = _insert_values(event)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":  # one statement: all or nothing
                sql = _mark_and_insert_sql(len(tokens), columns)
                cursor.execute(sql, [*mark, *usage, *values])
            else:
                cursor.execute(_mark_used_sql(connection.vendor, len(tokens)), mark)
                cursor.execute(_usage_upsert_sql(connection.vendor, len(tokens)), usage)
                cursor.execute(_insert_sql(connection.vendor, columns), values)
    except DatabaseError as error:
        raise ResolveError(
            f"the audit event could not be written ({type(error).__name__}); "
            "nothing was resolved or output."
        ) from None


@lru_cache(maxsize=256)
def _mark_used_sql(vendor: str, count: int) -> str:
    table = connection.ops.quote_name(Token._meta.db_table)
    return (
        f"UPDATE {table} SET {_column(Token, 'last_used_at')} = %s "
        f"WHERE {_column(Token, 'workspace')} = %s "
        f"AND {_column(Token, 'key')} IN ({', '.join(['%s'] * count)})"
    )


@lru_cache(maxsize=256)
def _mark_and_insert_sql(count: int, columns: tuple[str, ...]) -> str:
    """PostgreSQL: the UPDATE and the usage upsert as data-modifying WITHs of the INSERT, one
    round trip."""
    return (
        f"WITH used AS ({_mark_used_sql('postgresql', count)}), "
        f"counted AS ({_usage_upsert_sql('postgresql', count)}) "
        f"{_insert_sql('postgresql', columns)}"
    )


# The columns of a usage row the upsert writes, after its token: the context's digest and
# names, the count and the times.
_USAGE_COLUMNS = ("context", "environment", "product", "app", "access_key", "actor", "source",
                  "use_count", "first_used_at", "last_used_at")  # fmt: skip


# Past COFFER_USAGE_SOURCES distinct source names for one token in one context (environment,
# product, app, who), a new name is counted under this one: a caller sending endless names
# cannot grow the usage table without bound.
OTHER_SOURCES = "(other)"


def _context_digest(context: UseContext, actor: str, source: str) -> str:
    """The usage row's key: the whole context, with the environment, product and app by id (a
    rename keeps the row and updates its names)."""
    product, app = context.product, context.app
    ids = (context.environment.pk, product.pk if product else "", app.pk if app else "")
    return hashlib.sha256("\x1f".join(map(str, (*ids, actor, source))).encode()).hexdigest()


def _usage_params(
    context: UseContext,
    *,
    source: str,
    actor: str,
    access_key: str,
    when: object,
    workspace_id: int,
    keys: list[str],
) -> list:
    """The parameters of `_usage_upsert_sql` for one resolve, in its order (each name cut to
    its column's length)."""
    product, app = context.product, context.app
    names = [context.environment.name, product.name if product else "", app.name if app else ""]
    texts = [*names, access_key, actor, source]
    env, prod, app_name, key_name, who, cut_source = (
        text[:limit] for text, limit in zip(texts, _usage_text_lengths(), strict=True)
    )
    digest = _context_digest(context, actor, source)
    other = _context_digest(context, actor, OTHER_SOURCES)
    same_context = [env, prod, app_name, key_name, who]
    return [
        other, digest, *same_context, OTHER_SOURCES, cut_source, 1, when, when,  # the row
        digest, *same_context, OTHER_SOURCES, settings.COFFER_USAGE_SOURCES - 1,  # capped?
        workspace_id, *keys,
    ]  # fmt: skip


@cache
def _usage_text_lengths() -> list[int]:
    """The lengths of the usage row's text columns (environment to source)."""
    fields = (TokenUsage._meta.get_field(name) for name in _USAGE_COLUMNS[1:7])
    return [cast(models.CharField, field).max_length or 0 for field in fields]


@lru_cache(maxsize=256)
def _usage_upsert_sql(vendor: str, count: int) -> str:
    """One statement for every token of a resolve: insert its usage row for the context, or
    count one more use and move its last use (`INSERT ... SELECT ... ON CONFLICT DO UPDATE`,
    on SQLite and PostgreSQL alike). A new source name past COFFER_USAGE_SOURCES for that token
    and context goes to the OTHER_SOURCES row instead. Parameters: `_usage_params`."""
    q = connection.ops.quote_name
    table = q(TokenUsage._meta.db_table)
    columns = ", ".join(q(name) for name in _USAGE_COLUMNS)
    t = lambda name: f"t.{_column(Token, name)}"  # noqa: E731
    u = lambda name: f"u.{q(name)}"  # noqa: E731
    token_column = _column(TokenUsage, "token")
    count_column, last = q("use_count"), q("last_used_at")
    updated = [f"{count_column} = {table}.{count_column} + 1", f"{last} = excluded.{last}"]
    updated += [f"{q(name)} = excluded.{q(name)}" for name in ("environment", "product", "app")]
    same_context = " AND ".join(
        f"{u(name)} = %s" for name in ("environment", "product", "app", "access_key", "actor")
    )
    # 1 when this source is new for the token and the context already has the most names:
    # a known row answers at once (CASE stops there); otherwise "is there an Nth other name"
    # reads at most N rows (LIMIT 1 OFFSET N-1), never counts them all.
    capped = (
        f"CASE WHEN EXISTS (SELECT 1 FROM {table} u WHERE u.{token_column} = {t('id')} "
        f"AND {u('context')} = %s) THEN 0 "
        f"WHEN EXISTS (SELECT 1 FROM {table} u WHERE u.{token_column} = {t('id')} "
        f"AND {same_context} AND {u('source')} <> %s LIMIT 1 OFFSET %s) THEN 1 ELSE 0 END"
    )
    return (
        f"INSERT INTO {table} ({token_column}, {columns}) "
        f"SELECT s.id, CASE WHEN s.capped = 1 THEN %s ELSE %s END, %s, %s, %s, %s, %s, "
        f"CASE WHEN s.capped = 1 THEN %s ELSE %s END, %s, %s, %s "
        f"FROM (SELECT {t('id')} AS id, {capped} AS capped "
        f"FROM {q(Token._meta.db_table)} t WHERE {t('workspace')} = %s "
        f"AND {t('key')} IN ({', '.join(['%s'] * count)})) s "
        "WHERE 1 = 1 "  # SQLite: an INSERT ... SELECT with an upsert needs a WHERE
        f"ON CONFLICT ({token_column}, {q('context')}) "
        f"DO UPDATE SET {', '.join(updated)}"
    )


def _insert_values(event: AuditEvent) -> tuple[tuple[str, ...], list]:
    """The columns and values the ORM would insert for `event` (defaults and conversions by
    each field, as `Model.save` does them), without compiling an INSERT."""
    fields = [field for field in AuditEvent._meta.concrete_fields if not field.primary_key]
    return (
        tuple(str(field.column) for field in fields),
        [field.get_db_prep_save(field.pre_save(event, True), connection) for field in fields],
    )


@cache
def _insert_sql(vendor: str, columns: tuple[str, ...]) -> str:
    q = connection.ops.quote_name
    return (
        f"INSERT INTO {q(AuditEvent._meta.db_table)} ({', '.join(map(q, columns))}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )


# --- shared by `manage.py resolve` and the HTTP API ------------------------------------------

# Encodings that are not ASCII-compatible: their references could not be seen, so refuse them.
WIDE_BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}


def wide_encoding(data: bytes | bytearray) -> str | None:
    """The wide encoding ("UTF-16" or "UTF-32") `data`'s byte-order mark names, or None."""
    for bom, encoding in WIDE_BOMS.items():
        if data.startswith(bom):
            return encoding
    return None


def report_payload(report: CheckReport, context: UseContext) -> dict:
    """A check report as `resolve --format json` prints it (and the API returns it)."""
    return {
        "ok": report.ok,
        "source": printable(report.source),
        "workspace": context.environment.workspace.slug,
        "environment": context.environment.slug,
        "product": context.product.slug if context.product else None,
        "app": context.app.slug if context.app else None,
        "references": [
            {**status.as_dict(), "reference": printable(status.reference)}
            for status in report.references
        ],
    }


def values_text(keys: Iterable[str]) -> str:
    """A text referencing each key once per line: how `resolve_values` and its check report
    see a list of Token Keys (the caller has checked each is one: `KEY_RE`)."""
    return "\n".join(f"{OPENER}{key}}}" for key in keys)


def resolve_values(
    context: UseContext,
    keys: Iterable[str] | None = None,
    *,
    source: str = "<values>",
    actor=None,
    at: dt.datetime | None = None,
    detail: Mapping[str, object] | None = None,
    max_output: int | None = None,
) -> dict[str, str]:
    """{key: value} for environment injection: the given Token Keys, or every token usable in
    `context` when `keys` is None. The same lookup, locks, decryption and audit event as
    `resolve_text`, and it fails closed the same way (ResolveError listing every key that
    cannot be resolved; `check_text(values_text(keys), ...)` gives the report)."""
    at = at or timezone.now()
    if keys is None:
        usable = Token.objects.for_workspace(context.environment.workspace).usable_in(context, at)
        keys = usable.order_by("key").values_list("key", flat=True)
    keys = list(dict.fromkeys(keys))
    template = Template(values_text(keys))
    values = _resolve(template, context, at=at, source=source, actor=actor, detail=detail,
                      max_output=max_output)  # fmt: skip
    return {key: values[key] for key in keys}

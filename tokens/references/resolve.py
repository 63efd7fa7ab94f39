"""The resolve transaction: `$Secret{KEY}` references against the database, the one path every
consumer takes (`manage.py resolve`, the API's resolve and values endpoints, the checks).

`run(template, request)` goes down once and comes back once with an `Outcome`: the values, or
why not (every failing reference with its reason, the check report made from the same lookup,
an output over the limit, values a requested encoding cannot carry, a credential revoked
meanwhile). `resolve_text`, `resolve_pieces`, `resolve_values` and `check_text` are its short
forms, raising ResolveError when it fails.

Fail closed: every problem in the text is collected (malformed references, unknown, revoked,
expired, wrong-environment and out-of-scope tokens, every occurrence); then no value leaves this
module, no token is marked used and no "Resolved" event is written. On success the tokens'
`last_used_at` and usage rows are written and one audit event is recorded (through
`AuditEvent.record`, so its listeners hear of it) *before* the values are returned; if that
write fails, or a value cannot be decrypted, ResolveError is raised and the whole transaction
rolls back.

One transaction, from counting the API credential's use (`record_use`, which re-checks and locks
its row) to the audit event; the lookup locks the usable tokens' rows (`SELECT ... FOR UPDATE`
on PostgreSQL; SQLite serialises writers anyway): a concurrent `Token.revoke()`, which locks the
token's row too, either commits first and the resolve reports "token revoked", or waits until
the resolve has committed.

A Token Key may name several tokens of a workspace (one per environment, or per scope that
cannot meet): for each referenced key the lookup fetches the candidates and keeps the one usable
in the context, by the one rule, `Token.objects.usable_in`. Its SQL is the ORM's, compiled once
per shape (`lib/compiled.py`): building and compiling the queryset on every request cost more
CPU than the rest of a resolve. Two usable tokens of one key (which the overlap rule forbids)
resolve nothing: fail closed. When a key has no usable token, its candidates are loaded with
their environments, products and apps and `Token.unusable_reason` says why, worded for the
audience: the server's operator may learn every environment and scope of the workspace
("token revoked in production", "not valid in environment sandbox (valid in production)"); a
context (an API credential) learns only what it may know of its own environment and scope.

Speed: a constant number of queries whatever the number of references and of tokens sharing a
key. Each distinct token is decrypted once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, cast

from django.conf import settings
from django.db import DatabaseError, connection, models, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from audit.models import AuditAction, AuditEvent
from keys.crypto import CryptoError, MasterKeyError, plaintext_length
from keys.models import WorkspaceKey
from lib.compiled import CompiledQuery
from lib.text import printable
from tokens.models import NOT_AVAILABLE, Token, TokenUsage, UseContext
from tokens.references import output
from tokens.references.grammar import (
    UNKNOWN,
    CheckReport,
    OutputTooLarge,
    ResolveError,
    Template,
    Text,
    check_report,
    problems_in,
    unresolvable,
    values_text,
)
from workspaces.models import App, Environment, Product, Workspace

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Above this many distinct keys, load the context's usable tokens instead of a long key list.
KEY_LOOKUP_LIMIT = 900
# Past COFFER_USAGE_SOURCES distinct source names for one token in one context (environment,
# product, app, who), a new name is counted under this one: a caller sending endless names
# cannot grow the usage table without bound.
OTHER_SOURCES = "(other)"
# Why a key resolves nothing when two of its tokens are usable in the context (the overlap rule
# forbids it; if the data ever broke it, fail closed rather than pick one).
AMBIGUOUS = "{count} tokens with this key are valid here; nothing was resolved"


class Audience(Enum):
    """Who reads the reasons of a failure."""

    # A use context (an API credential): of a token outside its environment it learns nothing
    # (the same words as for a key no token has), of one out of its scope only that.
    CONTEXT = "context"
    # The server's operator (`manage.py resolve`): every environment and scope of the workspace.
    OPERATOR = "operator"


class Credential(Protocol):
    """An API credential as the resolve sees it: an access key or a workload identity's
    credential (both answer these)."""

    @property
    def actor_name(self) -> str: ...

    @property
    def audit_names(self) -> dict[str, str]: ...

    @property
    def usage_name(self) -> str: ...

    def record_use(self, *, at: dt.datetime, address: str | None) -> bool: ...


@dataclass(frozen=True)
class Client:
    """The API caller: its credential, counted used in the resolve's transaction, and the
    address it called from."""

    credential: Credential
    address: str | None
    # What else the "Resolved" event says of the call (e.g. the client's User-Agent).
    facts: Mapping[str, object] = field(default_factory=dict)

    def audit_detail(self) -> dict[str, object]:
        return {**self.credential.audit_names, "client_address": self.address, **self.facts}


@dataclass(frozen=True)
class Request:
    """What to resolve against and who asks.

    `actor` names an operator's run in the audit trail (a user, or a name; "system" when None);
    `client` is the API caller instead. `encoding` ("dotenv", "shell") refuses, before anything
    is marked used, values that encoding cannot carry.
    """

    context: UseContext
    source: str = "<string>"
    actor: User | str | None = None
    client: Client | None = None
    audience: Audience = Audience.CONTEXT
    at: dt.datetime | None = None
    max_output: int | None = None
    encoding: str | None = None


@dataclass
class Outcome:
    """What a resolve or a check comes back with. Never raises for a reference: `error` holds
    the problems (or the OutputTooLarge), `report` the check report made from the same lookup."""

    template: Template
    source: str
    reasons: dict[str, str | None] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict, repr=False)
    error: ResolveError | None = None
    refusal: str | None = None  # values the requested encoding cannot carry, and why
    credential_refused: bool = False  # revoked or expired since authentication

    @property
    def ok(self) -> bool:
        return self.error is None and self.refusal is None and not self.credential_refused

    @property
    def report(self) -> CheckReport:
        """Each distinct reference's status, worked out from the lookup's reasons."""
        return check_report(self.template, self.reasons, source=self.source)

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def render(self):
        """The resolved text (bytes for a bytes-like template), once."""
        self.raise_error()
        return self.template.render(self.values, reuse=True)

    def pieces(self) -> Iterator:
        self.raise_error()
        return self.template.pieces(self.values)


# --- the transaction ----------------------------------------------------------------------------


def run(template: Template, request: Request, *, check: bool = False) -> Outcome:
    """Resolve (or, with `check`, only look up) `template`'s references in `request.context`,
    in one transaction; see the module's docstring. Raises ResolveError (without problems) only
    when a value cannot be decrypted or the audit event cannot be written: then the whole
    transaction, the credential's use included, is rolled back."""
    return _run(template, request, check=check)


def run_values(keys: Iterable[str] | None, request: Request) -> Outcome:
    """`run` for a list of Token Keys (each a reference, in its order), or for every token
    usable in the context when `keys` is None: `outcome.values` is {key: value}."""
    return _run(None if keys is None else list(dict.fromkeys(keys)), request)


def _run(subject: Template | list[str] | None, request: Request, *, check: bool = False):
    at = request.at or timezone.now()
    max_output = request.max_output
    if max_output is None:
        max_output = settings.COFFER_RESOLVE_MAX_OUTPUT_BYTES
    with transaction.atomic():
        client = request.client
        if client is not None and not client.credential.record_use(at=at, address=client.address):
            template = subject if isinstance(subject, Template) else Template("")
            return Outcome(template, request.source, credential_refused=True)
        order: list[str] = []
        if isinstance(subject, Template):
            template = subject
            lookup = _look_up(template.distinct_keys(), request, at, lock=not check)
        else:  # values: the keys asked for, or every usable one (found by the same lookup)
            lookup = _look_up(None if subject is None else set(subject), request, at, lock=True)
            order = sorted(lookup.reasons) if subject is None else subject
            template = Template(values_text(order))
        outcome = Outcome(template, request.source, reasons=lookup.reasons)
        if check:
            return outcome
        if error := unresolvable(problems_in(template, lookup.reasons, source=request.source)):
            outcome.error = error
            return outcome
        if not lookup.usable:
            return outcome
        tokens = list(lookup.usable.values())
        # A value's length is its ciphertext's, less the nonce and tag: the limit is checked
        # before a single value is decrypted or a single byte of output is made.
        size = template.output_size({t.key: plaintext_length(t.ciphertext) for t in tokens})
        if size > max_output:
            outcome.error = OutputTooLarge(size, max_output)
            return outcome
        values = _reveal(tokens, lookup.data_key)
        # A values call's keys in the order it asked for them.
        outcome.values = {key: values[key] for key in order} if order else values
        if request.encoding and (refused := output.problems(outcome.values, request.encoding)):
            outcome.values = {}
            outcome.refusal = output.refusal(refused, request.encoding)
            return outcome
        _record_use(tokens, request, at=at, count=template.reference_count)
    return outcome


@sensitive_variables("by_pk")
def _reveal(tokens: list[_Sealed], data_key: WorkspaceKey | None) -> dict[str, str]:
    try:
        known = {data_key.workspace_id: data_key} if data_key else {}
        by_pk = Token.objects.reveal_values(tokens, known)
    except (CryptoError, MasterKeyError) as error:  # messages name keys and tokens, never values
        raise ResolveError(f"{error} Nothing was output.") from None
    return {token.key: by_pk[token.pk] for token in tokens}


# --- short forms --------------------------------------------------------------------------------


def resolve_text[T: (str, bytes)](
    text: T,
    context: UseContext,
    *,
    source: str = "<string>",
    actor: User | str | None = None,
    at: dt.datetime | None = None,
    max_output: int | None = None,
    audience: Audience = Audience.CONTEXT,
) -> T:
    """`text` with every `$Secret{KEY}` replaced by its token's value in `context` (bytes,
    in their own encoding, for bytes).

    `actor` is the user or the name the audit event records ("system" when None). Raises
    ResolveError (with every problem) when any reference cannot be resolved, a value cannot be
    decrypted or the audit event cannot be written; then nothing was marked used or audited.
    Raises OutputTooLarge, before decrypting anything, when the output would be longer than
    `max_output` bytes (COFFER_RESOLVE_MAX_OUTPUT_BYTES when None).
    """
    request = Request(context, source, actor, at=at, max_output=max_output, audience=audience)
    return run(Template(text), request).render()


def resolve_pieces(text: Text, request: Request) -> Iterator:
    """`resolve_text` for large texts: resolves, marks used and audits first (raising
    ResolveError exactly like it, before anything is output), then returns the resolved text a
    segment at a time, never holding a second copy of it. A bytes-like `text` (a file's bytes)
    gives bytes pieces."""
    return run(Template(text, keep=False), request).pieces()


def resolve_values(
    context: UseContext,
    keys: Iterable[str] | None = None,
    *,
    source: str = "<values>",
    actor: User | str | None = None,
    at: dt.datetime | None = None,
    max_output: int | None = None,
) -> dict[str, str]:
    """{key: value} for environment injection: the given Token Keys, or every token usable in
    `context` when `keys` is None; fails closed like `resolve_text`."""
    outcome = run_values(keys, Request(context, source, actor, at=at, max_output=max_output))
    outcome.raise_error()
    return outcome.values


def check_text(
    text: Text,
    context: UseContext,
    *,
    source: str = "<string>",
    at: dt.datetime | None = None,
    audience: Audience = Audience.CONTEXT,
) -> CheckReport:
    """Whether every reference in `text` would resolve in `context`, without decrypting,
    auditing or marking anything used: one status per distinct reference. `text` may be
    bytes-like (see `Template`)."""
    request = Request(context, source, at=at, audience=audience)
    return run(Template(text, keep=False), request, check=True).report


# --- the lookup ---------------------------------------------------------------------------------


class _Sealed(NamedTuple):
    """What decrypting reads of a token (for `Token.objects.reveal_values`), fetched as a plain
    row: building 1,000 Token instances costs as much as the whole rest of a large resolve."""

    pk: uuid.UUID
    key: str
    ciphertext: bytes
    value_version: int
    workspace: Workspace
    workspace_id: int
    row_id: Any  # the id as the database gave it, for the writes


@dataclass
class _Lookup:
    usable: dict[str, _Sealed]  # key -> its one usable token, for the keys that resolve
    reasons: dict[str, str | None]  # key -> why it cannot resolve (None when it can)
    data_key: WorkspaceKey | None = None  # the workspace's wrapped data key, read with them


def _look_up(keys: set[str] | None, request: Request, at: dt.datetime, *, lock: bool) -> _Lookup:
    """The tokens of `keys` usable in the context (every usable token when None), with their
    workspace's wrapped data key, in one statement; the others' reasons only when there are
    others (their candidates in one more query and their relations' prefetches).

    `lock=True` (inside a transaction) locks the usable tokens' rows until it ends."""
    context = request.context
    workspace = context.environment.workspace
    for item in (context.product, context.app):
        if item is not None and item.workspace_id != workspace.pk:
            raise ValueError(f"{item} is not in workspace {workspace.slug}")
    if keys is not None and not keys:
        return _Lookup({}, {})
    rows = _usable_rows(keys, context, at, lock=lock)
    workspace_id = workspace.pk
    to_uuid = Token._meta.pk.to_python  # a UUID on PostgreSQL, its hex on SQLite
    found: dict[str, list[_Sealed]] = {}
    for pk, key, ciphertext, version, _, _ in rows:
        if keys is None or key in keys:
            sealed = _Sealed(to_uuid(pk), key, ciphertext, version, workspace, workspace_id, pk)
            found.setdefault(key, []).append(sealed)
    data_key = None
    if rows and rows[0][4] is not None:  # every row carries the same (wrapped) data key
        kek_id, wrapped = rows[0][4:]
        data_key = WorkspaceKey(workspace_id=workspace_id, kek_id=kek_id, wrapped_dek=wrapped)
    usable = {key: tokens[0] for key, tokens in found.items() if len(tokens) == 1}
    reasons: dict[str, str | None] = dict.fromkeys(usable)
    for key, of_key in found.items():
        if len(of_key) > 1:
            reasons[key] = AMBIGUOUS.format(count=len(of_key))
    if keys is not None and (missing := keys - found.keys()):
        # The failure path: ask each candidate why (the rules as written on the model).
        candidates: dict[str, list[Token]] = {key: [] for key in missing}
        for token in _candidates(workspace, missing):
            if token.key in candidates:
                candidates[token.key].append(token)
        for key, tokens in candidates.items():
            reasons[key] = _why_not(tokens, context, at, request.audience)
    return _Lookup(usable, reasons, data_key)


def _candidates(workspace: Workspace, keys: set[str]) -> Iterable[Token]:
    tokens = Token.objects.for_workspace(workspace)
    if len(keys) <= KEY_LOOKUP_LIMIT:
        tokens = tokens.filter(key__in=keys)
    return tokens.with_relations().order_by("created_at", "pk")


def _why_not(tokens: list[Token], context: UseContext, at: dt.datetime, audience: Audience) -> str:
    """The most useful reason why none of a key's `tokens` can be used in `context`: of a
    token the context could use, that it is revoked or expired; else of one in its environment,
    that it is out of scope; else that the key is unknown or not available here."""
    operator = audience is Audience.OPERATOR
    if not tokens:
        return UNKNOWN if operator else NOT_AVAILABLE
    best: tuple[int, Token, str] | None = None
    for token in tokens:
        reason = token.unusable_reason(context, at)
        if reason is None:  # the database and the model disagree: fail closed all the same
            return "token not usable here"
        rank = 0 if reason == NOT_AVAILABLE else 1 if reason.startswith("not in scope") else 2
        if best is None or rank > best[0]:
            best = (rank, token, reason)
    assert best is not None
    rank, token, reason = best
    if not operator:
        return reason
    environment = context.environment.slug
    if rank == 2:  # revoked or expired
        return f"{reason} in {environment}"
    if rank == 1:
        scope = [item.slug for item in (*token.products.all(), *token.apps.all())]
        return f"{reason} (scoped to {', '.join(sorted(scope))})"
    valid = sorted({env.slug for t in tokens if not t.is_revoked for env in t.environments.all()})
    revoked = sorted({env.slug for t in tokens if t.is_revoked for env in t.environments.all()})
    where = [f"valid in {', '.join(valid)}"] if valid else []
    where += [f"revoked in {', '.join(revoked)}"] if revoked else []
    return f"not valid in environment {environment} ({'; '.join(where)})"


# The markers the usable-tokens query is compiled with (no row has these ids, keys or date).
_WORKSPACE, _ENVIRONMENT, _PRODUCT, _APP = -7_301_001, -7_301_002, -7_301_003, -7_301_004
_AT = dt.datetime(1901, 2, 3, 4, 5, 6, 789, tzinfo=dt.UTC)


def _key_marker(n: int) -> str:
    return f"\x1fkey{n}"


def _usable_rows(
    keys: set[str] | None, context: UseContext, at: dt.datetime, *, lock: bool
) -> list[tuple]:
    """(id, key, ciphertext, value_version, kek_id, wrapped_dek) of the tokens of `keys` usable
    in `context` (all the context's usable tokens when None or above KEY_LOOKUP_LIMIT keys)."""
    listed = sorted(keys) if keys is not None and len(keys) <= KEY_LOOKUP_LIMIT else []
    lock = lock and connection.features.has_select_for_update
    product, app = context.product, context.app
    compiled = _usable_query(
        connection.alias, len(listed), product is not None, app is not None, lock=lock
    )
    values: dict[str, Any] = {
        "workspace": context.environment.workspace_id,
        "environment": context.environment.pk,
        "at": at,
        **{f"key{n}": key for n, key in enumerate(listed)},
    }
    if product is not None:
        values["product"] = product.pk
    if app is not None:
        values["app"] = app.pk
    with connection.cursor() as cursor:
        cursor.execute(compiled.sql, compiled.params(values))
        return cursor.fetchall()


@lru_cache(maxsize=256)  # one per shape: the number of keys, product, app, lock
def _usable_query(alias: str, listed: int, product: bool, app: bool, *, lock: bool):
    """`Token.objects.usable_in(context, at)` (with `key__in` when `listed`), as the ORM
    compiles it, once per shape."""
    environment = Environment(pk=_ENVIRONMENT, workspace_id=_WORKSPACE)
    markers: dict[str, Any] = {"workspace": _WORKSPACE, "environment": _ENVIRONMENT, "at": _AT}
    context = UseContext(environment)
    if product:
        context = UseContext(environment, Product(pk=_PRODUCT, workspace_id=_WORKSPACE), None)
        markers["product"] = _PRODUCT
    if app:
        context = UseContext(environment, context.product, App(pk=_APP, workspace_id=_WORKSPACE))
        markers["app"] = _APP
    tokens = Token.objects.usable_in(context, _AT)
    if listed:
        keys = [_key_marker(n) for n in range(listed)]
        tokens = tokens.filter(key__in=keys)
        markers |= {f"key{n}": key for n, key in enumerate(keys)}
    if lock:
        tokens = tokens.select_for_update(of=("self",))
    rows = tokens.order_by().values_list(
        "id",
        "key",
        "ciphertext",
        "value_version",
        "workspace__data_key__kek_id",
        "workspace__data_key__wrapped_dek",
    )
    return CompiledQuery.of(rows, markers, using=alias)


# --- the writes ---------------------------------------------------------------------------------


@sensitive_variables()
def _record_use(tokens: list[_Sealed], request: Request, *, at: dt.datetime, count: int) -> None:
    """Mark the tokens used, count the use in each token's usage for this context and record
    the run's audit event, or raise ResolveError: the UPDATE and one upsert for every token's
    usage row as plain SQL (one statement on PostgreSQL, two elsewhere), whatever the number of
    tokens, then `AuditEvent.record`."""
    context, client, actor = request.context, request.client, request.actor
    if client is not None:
        user, name = None, client.credential.actor_name
        access_key = client.credential.usage_name
        extra = client.audit_detail()
    else:
        user = actor if not isinstance(actor, str) and getattr(actor, "pk", None) else None
        name = actor if isinstance(actor, str) else ""
        access_key, extra = "", {}
    workspace = context.environment.workspace
    source = printable(request.source)
    detail = {
        **extra,
        "keys": sorted(token.key for token in tokens),
        "references": count,
        "environment": context.environment.slug,
        "product": context.product.slug if context.product else None,
        "app": context.app.slug if context.app else None,
        "source": source,
    }
    actor_name = name or (user.get_username() if user is not None else "system")
    when = connection.ops.adapt_datetimefield_value(at)
    ids = [token.row_id for token in tokens]
    usage = _usage_params(
        context, source=source, actor=actor_name, access_key=access_key, when=when, ids=ids
    )
    try:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":  # one statement: all or nothing
                cursor.execute(_mark_and_count_sql(len(ids)), [when, *ids, *usage])
            else:
                cursor.execute(_mark_used_sql(len(ids)), [when, *ids])
                cursor.execute(_usage_upsert_sql(connection.vendor, len(ids)), usage)
        AuditEvent.record(
            workspace, AuditAction.RESOLVED, by=user, actor_name=actor_name, detail=detail
        )
    except DatabaseError as error:
        raise ResolveError(
            f"the audit event could not be written ({type(error).__name__}); "
            "nothing was resolved or output."
        ) from None


def _column(model: type[models.Model], name: str) -> str:
    """The quoted database column of `model`'s field `name` (for the writes' SQL below)."""
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field) and field.column
    return connection.ops.quote_name(field.column)


def _placeholders(count: int) -> str:
    return ", ".join(["%s"] * count)


@lru_cache(maxsize=256)
def _mark_used_sql(count: int) -> str:
    table = connection.ops.quote_name(Token._meta.db_table)
    return (
        f"UPDATE {table} SET {_column(Token, 'last_used_at')} = %s "
        f"WHERE {_column(Token, 'id')} IN ({_placeholders(count)})"
    )


@lru_cache(maxsize=256)
def _mark_and_count_sql(count: int) -> str:
    """PostgreSQL: the UPDATE as a data-modifying WITH of the usage upsert, one round trip."""
    return f"WITH used AS ({_mark_used_sql(count)}) {_usage_upsert_sql('postgresql', count)}"


# The columns of a usage row the upsert writes, after its token: the context's digest and
# names, the count and the times.
_USAGE_COLUMNS = (
    "context",
    "environment",
    "product",
    "app",
    "access_key",
    "actor",
    "source",
    "use_count",
    "first_used_at",
    "last_used_at",
)


def _context_digest(context: UseContext, actor: str, source: str) -> str:
    """The usage row's key: the whole context, with the environment, product and app by id (a
    rename keeps the row and updates its names)."""
    product, app = context.product, context.app
    ids = (context.environment.pk, product.pk if product else "", app.pk if app else "")
    return hashlib.sha256("\x1f".join(map(str, (*ids, actor, source))).encode()).hexdigest()


def _usage_params(
    context: UseContext, *, source: str, actor: str, access_key: str, when: object, ids: list
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
        other,
        digest,
        *same_context,
        OTHER_SOURCES,
        cut_source,
        1,
        when,
        when,  # the row
        digest,
        *same_context,
        OTHER_SOURCES,
        settings.COFFER_USAGE_SOURCES - 1,  # capped?
        *ids,
    ]


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
        f"FROM {q(Token._meta.db_table)} t WHERE {t('id')} IN ({_placeholders(count)})) s "
        "WHERE 1 = 1 "  # SQLite: an INSERT ... SELECT with an upsert needs a WHERE
        f"ON CONFLICT ({token_column}, {q('context')}) "
        f"DO UPDATE SET {', '.join(updated)}"
    )

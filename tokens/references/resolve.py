"""The resolve transaction: `$Secret{KEY}` references against the database, the one path every
consumer takes (`manage.py resolve`, the API's resolve and values endpoints, the checks).

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
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, NamedTuple, cast

from django.conf import settings
from django.db import DatabaseError, connection, models, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from lib.text import printable
from tokens.crypto import CryptoError, MasterKeyError, plaintext_length
from tokens.models import (
    NOT_AVAILABLE,
    AuditAction,
    AuditEvent,
    Token,
    TokenStatus,
    TokenUsage,
    UseContext,
    WorkspaceKey,
)
from tokens.references.grammar import (
    MALFORMED,
    CheckReport,
    OutputTooLarge,
    Problem,
    ReferenceStatus,
    ResolveError,
    Template,
    Text,
    problems_in,
    unresolvable,
    values_text,
)
from workspaces.models import Workspace

if TYPE_CHECKING:
    from django.contrib.auth.models import User

KEY_LOOKUP_LIMIT = 900


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
    if error := unresolvable(problems_in(template, lookup.reasons, source=source)):
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

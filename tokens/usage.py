"""Usage: who read which token, where and how often, written so that readers never wait for
each other.

**A read appends one row** (`append`, a `UseRecord`) in its own transaction, beside its audit
event: the tokens it read (ids), the context (environment, product, app), who (an access key,
a workload identity, an operator), the source, and the API credential with its address. Two
readers of the same tokens with the same key write two new rows; neither updates a shared row,
so neither waits for the other's commit.

**`roll_up` folds the rows** into what the pages show: one `TokenUsage` row per token and
context (its count, first and last use), each token's `last_used_at`, and the credential's use
count, last use and address (through `credentials_used`, which the access and identities apps
receive), then deletes them, in one transaction. It runs:

- after a read, in the reading process, at most once every COFFER_USAGE_ROLLUP_SECONDS (1 s by
  default; 0: after every read): a fleet's thousand reads a second are a handful of roll-ups;
- before a page or command shows usage (`settle`), so what a person sees is exact.

So the database's usage tables are exact within COFFER_USAGE_ROLLUP_SECONDS of a read while
reads go on, and every page is exact when it is shown. A roll-up holds an advisory lock on
PostgreSQL (one at a time across processes; `roll_up_if_due` skips rather than waits), and
takes at most BATCH rows at a time.

Sources per context stay capped: past COFFER_USAGE_SOURCES distinct source names for one token
in one context, a new name is counted under OTHER_SOURCES (a caller sending endless names
cannot grow the table without bound).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, cast

import django.dispatch
from django.conf import settings
from django.db import DatabaseError, connection, models, transaction
from django.http import HttpRequest, HttpResponse

from lib import prepared
from tokens.models import Token, TokenUsage, UseContext, UseRecord

logger = logging.getLogger("coffer.usage")

OTHER_SOURCES = "(other)"
BATCH = 5000  # records per roll-up transaction
LOCK_WAIT = "200ms"  # the longest a roll-up waits for a row another transaction holds
_LOCK_ID = 0x43_4F_46_55  # PostgreSQL advisory lock of the roll-up ("COFU")

# Sent by `roll_up` inside its transaction: {credential ref: CredentialUse} for the API
# credentials whose uses it folded (access keys, workload credentials: their apps receive it).
credentials_used = django.dispatch.Signal()


@dataclass
class CredentialUse:
    count: int
    last_at: dt.datetime
    address: str | None  # of the last use


def credential_ref(kind: str, pk: object) -> str:
    """How a record names an API credential: "access_key:42"."""
    return f"{kind}:{pk}"


# --- the append ---------------------------------------------------------------------------------

_APPENDED = (
    "at",
    "token_ids",
    "environment_id",
    "product_id",
    "app_id",
    "environment",
    "product",
    "app",
    "access_key",
    "actor",
    "source",
    "credential",
    "address",
)


@dataclass(frozen=True)
class Use:
    """One read's record, as `append` writes it."""

    at: dt.datetime
    token_ids: Iterable[uuid.UUID]
    environment: tuple[int, str]  # (id, name)
    product: tuple[int, str] | None
    app: tuple[int, str] | None
    actor: str
    source: str
    access_key: str = ""  # the usage name of an API credential
    credential: str = ""  # `credential_ref`
    address: str | None = None

    @classmethod
    def in_context(cls, context: UseContext, **fields) -> Use:
        """A record of a read in `context` (environment, product and app by id and name)."""
        environment, product, app = context.environment, context.product, context.app
        return cls(
            environment=(environment.pk, environment.name),
            product=(product.pk, product.name) if product else None,
            app=(app.pk, app.name) if app else None,
            **fields,
        )


def append(use: Use, *, without_waiting: bool = False) -> None:
    """Append one record (one INSERT of plain SQL, built once). `without_waiting` (PostgreSQL):
    the transaction this record is part of will commit without waiting for the disk (set in the
    same statement: for a transaction whose only writes are a read's bookkeeping)."""
    lengths = _text_lengths()
    product, app = use.product or (None, ""), use.app or (None, "")
    texts = [use.environment[1], product[1], app[1], use.access_key, use.actor, use.source]
    env_name, product_name, app_name, key, actor, source = (
        text[:limit] for text, limit in zip(texts, lengths, strict=True)
    )
    address = _address_field().get_db_prep_value(use.address, connection)
    params = [
        connection.ops.adapt_datetimefield_value(use.at),
        ",".join(token_id.hex for token_id in use.token_ids),
        use.environment[0],
        product[0],
        app[0],
        env_name,
        product_name,
        app_name,
        key,
        actor,
        source,
        use.credential,
        address,
    ]
    with prepared.cursor() as cursor:
        cursor.execute(_append_sql(connection.vendor, without_waiting), params)


@cache
def _append_sql(vendor: str, without_waiting: bool) -> str:
    q = connection.ops.quote_name
    table = q(UseRecord._meta.db_table)
    columns = ", ".join(_column(UseRecord, name) for name in _APPENDED)
    values = _placeholders(len(_APPENDED))
    if without_waiting and vendor == "postgresql":
        # Each value cast to its column's type: a prepared statement's parameters in a SELECT
        # list would otherwise be typed text (lib/prepared.py binds them on the server).
        values = ", ".join(
            f"CAST(%s AS {UseRecord._meta.get_field(name).db_type(connection)})"
            for name in _APPENDED
        )
        return (
            f"INSERT INTO {table} ({columns}) SELECT {values} "
            "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS without_waiting"
        )
    return f"INSERT INTO {table} ({columns}) VALUES ({values})"


@cache
def _text_lengths() -> list[int]:
    names = ("environment", "product", "app", "access_key", "actor", "source")
    return [cast(models.CharField, UseRecord._meta.get_field(n)).max_length or 0 for n in names]


@cache
def _address_field() -> models.GenericIPAddressField:
    return cast(models.GenericIPAddressField, UseRecord._meta.get_field("address"))


# --- when to roll up ----------------------------------------------------------------------------


_due_lock = threading.Lock()
_last_roll_up = 0.0


def roll_up_if_due() -> None:
    """After a read has appended its record (and its transaction has ended): roll up if this
    process has not done so in the last COFFER_USAGE_ROLLUP_SECONDS; if another thread or
    process is rolling up, leave it to that one."""
    global _last_roll_up
    interval = settings.COFFER_USAGE_ROLLUP_SECONDS
    now = time.monotonic()
    if interval and now - _last_roll_up < interval:
        return
    if not _due_lock.acquire(blocking=False):
        return
    try:
        _last_roll_up = now
        _roll_up_or_leave_it(wait=False)
    finally:
        _due_lock.release()


def _roll_up_or_leave_it(*, wait: bool) -> None:
    """`roll_up`, except that a failure (a lock held too long, the database gone) is logged and
    leaves the records pending for the next roll-up: it never fails the read or the page that
    asked (the read has committed; the page shows usage as last folded)."""
    try:
        roll_up(wait=wait)
    except DatabaseError as error:
        logger.warning("Usage roll-up left for later: %s", type(error).__name__)


def settle() -> None:
    """Before showing usage: fold whatever is pending (waiting for a roll-up in progress), so
    the page is exact. One cheap query when nothing is."""
    if connection.in_atomic_block and connection.needs_rollback:
        return
    if UseRecord.objects.exists():
        _roll_up_or_leave_it(wait=True)


# --- the roll-up --------------------------------------------------------------------------------


def roll_up(*, wait: bool = True, batch: int = BATCH) -> int:
    """Fold the pending records into usage (see the module docstring); the number folded.
    `wait=False`: give up at once when another roll-up holds the lock."""
    total = 0
    while True:
        folded = _roll_up_batch(wait=wait, batch=batch)
        if folded is None:
            return total
        total += folded
        if folded < batch:
            return total


@dataclass
class _Group:
    """The uses of one token in one context (environment, product, app, who, source)."""

    count: int
    first: dt.datetime
    last: dt.datetime


def _roll_up_batch(*, wait: bool, batch: int) -> int | None:
    # Inside a caller's transaction the roll-up is part of it (and commits or rolls back with
    # it); only its own transaction commits without waiting for the disk.
    own_transaction = not connection.in_atomic_block
    with transaction.atomic():
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                if wait:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_ID])
                else:
                    cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_LOCK_ID])
                    if not cursor.fetchone()[0]:
                        return None
                # A roll-up never holds up a person's change: past LOCK_WAIT on a row lock
                # (a revoke or a bulk change holding a token), it gives up and the records
                # wait for the next one (and it is never the one a deadlock costs the change).
                cursor.execute("SELECT set_config('lock_timeout', %s, true)", [LOCK_WAIT])
                if own_transaction:  # usage is bookkeeping: no need to wait for the disk
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
            cursor.execute(_take_sql(), [batch])
            rows = cursor.fetchall()
        if not rows:
            return 0
        _fold(rows)
    return len(rows)


def _fold(rows: list[tuple]) -> None:
    to_datetime = UseRecord._meta.get_field("at").to_python
    names: dict[tuple, tuple] = {}
    credentials: dict[str, CredentialUse] = {}
    # Records of one context with the same tokens (a fleet's reads of one configuration) are
    # counted together first: each distinct list of ids is read once.
    bundles: dict[tuple[tuple, str], _Group] = {}
    for at, ids, env_id, prod_id, app_id, env, prod, app, key, actor, source, cred, addr in sorted(
        rows, key=lambda row: row[0]
    ):
        at = to_datetime(at)
        if isinstance(at, dt.datetime) and at.tzinfo is None:
            at = at.replace(tzinfo=dt.UTC)
        context = (env_id, prod_id, app_id, key, actor, source)
        names[context] = (env, prod, app)  # the latest names
        if ids:
            bundle = bundles.get((context, ids))
            if bundle is None:
                bundles[(context, ids)] = _Group(1, at, at)
            else:
                bundle.count, bundle.last = bundle.count + 1, at
        if cred:
            use = credentials.get(cred)
            if use is None:
                credentials[cred] = CredentialUse(1, at, addr)
            else:
                use.count, use.last_at, use.address = use.count + 1, at, addr
    contexts: dict[tuple, dict[uuid.UUID, _Group]] = {}
    tokens: dict[uuid.UUID, dt.datetime] = {}
    for (context, ids), bundle in bundles.items():
        groups = contexts.setdefault(context, {})
        for hex_id in ids.split(","):
            token_id = uuid.UUID(hex_id)
            group = groups.get(token_id)
            if group is None:
                groups[token_id] = _Group(bundle.count, bundle.first, bundle.last)
            else:
                group.count += bundle.count
                group.first, group.last = (
                    min(group.first, bundle.first),
                    max(group.last, bundle.last),
                )
            if token_id not in tokens or tokens[token_id] < bundle.last:
                tokens[token_id] = bundle.last
    with connection.cursor() as cursor:
        # The tokens' rows first (their last use), then their usage rows: the order a change
        # takes them in (a delete locks the token, then deletes its usage rows), so the two
        # never wait for each other in turn; and past LOCK_WAIT the roll-up gives up.
        by_moment: dict[dt.datetime, list[uuid.UUID]] = {}
        for token_id, last in tokens.items():
            by_moment.setdefault(last, []).append(token_id)
        for last, ids in by_moment.items():
            when = connection.ops.adapt_datetimefield_value(last)
            marked: list[Any] = [when, *(_db_id(token_id) for token_id in ids), when]
            cursor.execute(_mark_used_sql(len(ids)), marked)
        for context, groups in contexts.items():
            env_id, prod_id, app_id, key, actor, source = context
            env, prod, app = names[context]
            # Tokens with the same count and times share one statement (a fleet's reads).
            same: dict[tuple, list[uuid.UUID]] = {}
            for token_id, group in groups.items():
                same.setdefault((group.count, group.first, group.last), []).append(token_id)
            for (count, first, last), ids in same.items():
                params = _usage_params(
                    (env_id, prod_id, app_id),
                    (env, prod, app),
                    access_key=key,
                    actor=actor,
                    source=source,
                    count=count,
                    first=first,
                    last=last,
                    ids=[_db_id(token_id) for token_id in ids],
                )
                cursor.execute(_usage_upsert_sql(connection.vendor, len(ids)), params)
    if credentials:
        credentials_used.send(sender=UseRecord, uses=credentials)


def _db_id(token_id: uuid.UUID) -> object:
    return Token._meta.pk.get_db_prep_value(token_id, connection)


@cache
def _take_sql() -> str:
    """Take (delete and return) the oldest pending records, BATCH at most."""
    q = connection.ops.quote_name
    table = q(UseRecord._meta.db_table)
    columns = ", ".join(_column(UseRecord, name) for name in _APPENDED)
    pk = _column(UseRecord, "id")
    return (
        f"DELETE FROM {table} WHERE {pk} IN (SELECT {pk} FROM {table} ORDER BY {pk} LIMIT %s) "
        f"RETURNING {columns}"
    )


def _column(model: type[models.Model], name: str) -> str:
    """The quoted database column of `model`'s field `name`."""
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field) and field.column
    return connection.ops.quote_name(field.column)


def _placeholders(count: int) -> str:
    return ", ".join(["%s"] * count)


@lru_cache(maxsize=256)
def _mark_used_sql(count: int) -> str:
    """Move the tokens' last use forward (never back: roll-ups may fold out of order)."""
    table = connection.ops.quote_name(Token._meta.db_table)
    last = _column(Token, "last_used_at")
    return (
        f"UPDATE {table} SET {last} = %s "
        f"WHERE {_column(Token, 'id')} IN ({_placeholders(count)}) "
        f"AND ({last} IS NULL OR {last} < %s)"
    )


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


def context_digest(ids: tuple, actor: str, source: str) -> str:
    """The usage row's key: the whole context, with the environment, product and app by id (a
    rename keeps the row and updates its names)."""
    ids = tuple("" if item is None else item for item in ids)
    return hashlib.sha256("\x1f".join(map(str, (*ids, actor, source))).encode()).hexdigest()


def _usage_params(
    context_ids: tuple,
    names: tuple,
    *,
    access_key: str,
    actor: str,
    source: str,
    count: int,
    first: dt.datetime,
    last: dt.datetime,
    ids: list,
) -> list:
    """The parameters of `_usage_upsert_sql`, in its order (each name cut to its column's
    length)."""
    texts = [*names, access_key, actor, source]
    env, prod, app_name, key_name, who, cut_source = (
        text[:limit] for text, limit in zip(texts, _usage_text_lengths(), strict=True)
    )
    digest = context_digest(context_ids, actor, source)
    other = context_digest(context_ids, actor, OTHER_SOURCES)
    same_context = [env, prod, app_name, key_name, who]
    adapt = connection.ops.adapt_datetimefield_value
    return [
        other,
        digest,
        *same_context,
        OTHER_SOURCES,
        cut_source,
        count,
        adapt(first),
        adapt(last),  # the row
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
    """One statement for the tokens of one context with the same counts: insert each token's
    usage row for the context, or add the uses and move its last use (`INSERT ... SELECT ...
    ON CONFLICT DO UPDATE`, on SQLite and PostgreSQL alike). A new source name past
    COFFER_USAGE_SOURCES for that token and context goes to the OTHER_SOURCES row instead.
    Parameters: `_usage_params`."""
    q = connection.ops.quote_name
    table = q(TokenUsage._meta.db_table)
    columns = ", ".join(q(name) for name in _USAGE_COLUMNS)
    t = lambda name: f"t.{_column(Token, name)}"  # noqa: E731
    u = lambda name: f"u.{q(name)}"  # noqa: E731
    token_column = _column(TokenUsage, "token")
    count_column, last = q("use_count"), q("last_used_at")
    latest = "GREATEST" if vendor == "postgresql" else "MAX"
    updated = [
        f"{count_column} = {table}.{count_column} + excluded.{count_column}",
        f"{last} = {latest}({table}.{last}, excluded.{last})",
    ]
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


def shows_usage(view: Callable) -> Callable:
    """For a page that shows usage (a token's contexts, last uses, a key's use count): on GET,
    fold what is pending first (`settle`), so the page is exact."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "GET":
            settle()
        return view(request, *args, **kwargs)

    return wrapper


class ShowsUsageAdmin:
    """A ModelAdmin mixin: its list and change pages fold what is pending first."""

    def changelist_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        settle()
        return super().changelist_view(request, *args, **kwargs)  # type: ignore[misc]

    def change_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        settle()
        return super().change_view(request, *args, **kwargs)  # type: ignore[misc]

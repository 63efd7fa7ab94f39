"""The resolve transaction: `$Secret{KEY}` references against the database, the one path every
consumer takes (`manage.py resolve`, the API's resolve and values endpoints, the checks).

`run(template, request)` goes down once and comes back once with an `Outcome`: the values, or
why not (every failing reference with its reason, the check report made from the same lookup,
an output over the limit, values a requested encoding cannot carry, a credential revoked
meanwhile). `resolve_text`, `resolve_pieces`, `resolve_values` and `check_text` are its short
forms, raising ResolveError when it fails.

Fail closed: every problem in the text is collected (malformed references, unknown, revoked,
expired, wrong-environment and out-of-scope tokens, every occurrence); then no value leaves this
module, no token is marked used and no "Resolved" event is written. On success one usage
record is appended (tokens/usage.py, which folds the records into usage later) and one audit
event is recorded (through `AuditEvent.record`, so its listeners hear of it) *before* the
values are returned; if that write fails, or a value cannot be decrypted, ResolveError is raised
and the whole transaction rolls back.

One transaction, from re-checking the API credential (`hold`) to the audit event, and no row
in it updated: the credential's row and the usable tokens' rows are locked `FOR KEY SHARE` on
PostgreSQL (SQLite serialises writers anyway), so reads never wait for each other, while a
concurrent `Token.revoke()` (or an edit, a delete: each locks the token's row `FOR UPDATE`
first) either commits first and the resolve reports "token revoked", or waits until the
resolve has committed. A read's transaction that is its own commits without waiting for the
disk (`Request.without_waiting`).

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

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from audit.models import AuditAction, AuditEvent
from keys.crypto import CryptoError, MasterKeyError, plaintext_length
from keys.models import WorkspaceKey
from lib import prepared
from lib.compiled import CompiledQuery
from lib.text import printable
from tokens import usage
from tokens.models import NOT_AVAILABLE, Token, UseContext
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
    credential (both answer these). `hold` re-checks it in the database and share-locks its
    row until the transaction ends (a revoke waits for the reads in flight, readers do not
    wait for each other); `usage_ref` names it in the read's usage record, which counts the
    use."""

    @property
    def actor_name(self) -> str: ...

    @property
    def audit_names(self) -> dict[str, str]: ...

    @property
    def usage_name(self) -> str: ...

    @property
    def usage_ref(self) -> str: ...

    def hold(self, *, at: dt.datetime) -> bool: ...


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
    # The read's transaction (its audit event and usage record) commits without waiting for
    # PostgreSQL's write-ahead log to reach the disk: the WAL writer flushes it within 3 x
    # wal_writer_delay (0.6 s by default). Visibility and ordering are unchanged (a revoke that
    # commits after the read still comes after it); only a crash of the database server inside
    # that window can lose the last reads' events. Set by `run` when the read's transaction is
    # its own and COFFER_DURABLE_READS is off (README: the read path).
    without_waiting: bool = False


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
    # (id, key, value_version) of each token read, for the change feed's ETag.
    versions: list[tuple[uuid.UUID, str, int]] = field(default_factory=list)
    recorded: bool = False  # a usage record was written (and for a read, its audit event)

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
    # Only a transaction of its own commits without waiting for the disk (a caller's may hold
    # other writes): see `Request.without_waiting`.
    request = dataclasses.replace(
        request,
        without_waiting=not connection.in_atomic_block and not settings.COFFER_DURABLE_READS,
    )
    with transaction.atomic():
        client = request.client
        if client is not None and not client.credential.hold(at=at):
            template = subject if isinstance(subject, Template) else Template("")
            return Outcome(template, request.source, credential_refused=True)
        outcome = _resolve_within(subject, request, at, check=check, max_output=max_output)
        if client is not None and not outcome.recorded:
            # A failed call, a check or a read of nothing is still a use of the credential.
            usage.append(_use(request, at, tokens=()), without_waiting=request.without_waiting)
            outcome.recorded = True
    if outcome.recorded:
        usage.roll_up_if_due()
    return outcome


def _resolve_within(
    subject: Template | list[str] | None,
    request: Request,
    at: dt.datetime,
    *,
    check: bool,
    max_output: int,
) -> Outcome:
    """The resolve inside `_run`'s transaction, after the credential's check."""
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
    outcome.versions = [(token.pk, token.key, token.value_version) for token in tokens]
    # A values call's keys in the order it asked for them.
    outcome.values = {key: values[key] for key in order} if order else values
    if request.encoding and (refused := output.problems(outcome.values, request.encoding)):
        outcome.values = {}
        outcome.refusal = output.refusal(refused, request.encoding)
        return outcome
    _record_use(tokens, request, at=at, count=template.reference_count)
    outcome.recorded = True
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


@dataclass
class _Lookup:
    usable: dict[str, _Sealed]  # key -> its one usable token, for the keys that resolve
    reasons: dict[str, str | None]  # key -> why it cannot resolve (None when it can)
    data_key: WorkspaceKey | None = None  # the workspace's wrapped data key, read with them


def _look_up(keys: set[str] | None, request: Request, at: dt.datetime, *, lock: bool) -> _Lookup:
    """The tokens of `keys` usable in the context (every usable token when None), with their
    workspace's wrapped data key, in one statement; the others' reasons only when there are
    others (their candidates in one more query and their relations' prefetches).

    `lock=True` (inside a transaction) key-share-locks the usable tokens' rows until it ends."""
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
            sealed = _Sealed(to_uuid(pk), key, ciphertext, version, workspace, workspace_id)
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
    with prepared.cursor() as cursor:
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
    compiled = CompiledQuery.of(rows, markers, using=alias)
    if lock:
        # FOR KEY SHARE, which Django does not spell: readers of the same tokens do not wait
        # for each other, nor for the usage roll-up's update of `last_used_at`; every change
        # that can make a token unusable (a revoke, an edit, a restore, a delete) locks its
        # row FOR UPDATE first (`Token.objects.locked`), so it waits for the reads in flight,
        # and a read after its commit sees the change.
        locking = f" FOR UPDATE OF {connection.ops.quote_name(Token._meta.db_table)}"
        assert compiled.sql.endswith(locking), compiled.sql
        compiled = dataclasses.replace(
            compiled,
            sql=compiled.sql.removesuffix(locking) + locking.replace("UPDATE", "KEY SHARE"),
        )
    return compiled


# --- the writes ---------------------------------------------------------------------------------


@sensitive_variables()
def _record_use(tokens: list[_Sealed], request: Request, *, at: dt.datetime, count: int) -> None:
    """Record the read, or raise ResolveError: one appended usage record (tokens/usage.py: no
    shared row is updated, so readers never wait for each other) and the run's audit event
    (`AuditEvent.record`)."""
    context, client = request.context, request.client
    user, actor_name = _who(request)
    environment, product, app = context.environment, context.product, context.app
    detail = {
        **(client.audit_detail() if client is not None else {}),
        "keys": sorted(token.key for token in tokens),
        "references": count,
        "environment": environment.slug,
        "product": product.slug if product else None,
        "app": app.slug if app else None,
        "source": printable(request.source),
    }
    try:
        usage.append(_use(request, at, tokens=tokens), without_waiting=request.without_waiting)
        AuditEvent.record(
            environment.workspace,
            AuditAction.RESOLVED,
            by=user,
            actor_name=actor_name,
            detail=detail,
        )
    except DatabaseError as error:
        raise ResolveError(
            f"the audit event could not be written ({type(error).__name__}); "
            "nothing was resolved or output."
        ) from None


def _who(request: Request) -> tuple[User | None, str]:
    """The user who read (None for an API credential or a named run) and the name the audit
    trail and the usage give: the credential's, the run's name, the user's, or "system"."""
    client, actor = request.client, request.actor
    if client is not None:
        return None, client.credential.actor_name
    if isinstance(actor, str):
        return None, actor or "system"
    user = actor if getattr(actor, "pk", None) else None
    return user, user.get_username() if user is not None else "system"


def _use(request: Request, at: dt.datetime, *, tokens: Iterable[_Sealed]) -> usage.Use:
    """The read's usage record: its tokens, its context, who read them, and for an API call the
    credential (whose use it counts) and its address."""
    client = request.client
    credential = client.credential if client is not None else None
    return usage.Use.in_context(
        request.context,
        at=at,
        token_ids=[token.pk for token in tokens],
        actor=_who(request)[1],
        source=printable(request.source),
        access_key=credential.usage_name if credential is not None else "",
        credential=credential.usage_ref if credential is not None else "",
        address=client.address if client is not None else None,
    )

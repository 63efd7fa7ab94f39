"""Access keys: machine credentials for the HTTP API, one workspace each.

An access key *is* a use context: it is bound at creation to one environment and optionally one
product and/or one app of its workspace (`key.context`, the `UseContext` the CLI builds from
--environment/--product/--app), so whoever holds it can never widen what it resolves.

Every rule is written once here: `AccessKey.objects.create_key` (validation, the key shown once),
`AccessKey.objects.authenticate` (format and checksum before any query, then one lookup by
hash), `key.allows_address`, `key.hold` (re-checks the key inside the caller's transaction;
its use is counted from the read's usage record), `key.revoke`, `key.delete_key`. Only the
key's SHA-256 is stored. What a key shares with a workload identity (its context, expiry,
allowed networks, a name unique in the workspace) is `BoundContext`'s, in access/context.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connection, connections, models, transaction
from django.db.models import Q
from django.utils import timezone

from access import keys
from access.context import NAME_MAX_LENGTH, BoundContext, limit_errors
from audit.models import AuditAction, AuditEvent
from lib import prepared
from tokens.models import (
    DESCRIPTION_MAX_LENGTH,
    description_errors,
    expiry_state_of,
    status_label_of,
)
from tokens.usage import CredentialUse, credential_ref
from workspaces.models import App, Environment, Product, Workspace

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.db.backends.base.base import BaseDatabaseWrapper

EXPIRY_PRESETS = (7, 30, 90, 365)  # days, the web form's choices
DEFAULT_EXPIRY_DAYS = 90


class AccessKeyQuerySet(models.QuerySet):
    def for_workspace(self, workspace: Workspace) -> AccessKeyQuerySet:
        return self.filter(workspace=workspace)

    def active(self, at: dt.datetime | None = None) -> AccessKeyQuerySet:
        """Not revoked and not expired at `at` (now by default)."""
        at = at or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=at)
        )

    def for_table(self) -> AccessKeyQuerySet:
        """With what the Access keys tab shows of each key, in one query."""
        return self.select_related("environment", "product", "app", "created_by").order_by(
            "name", "pk"
        )


_AccessKeyManagerBase = models.Manager.from_queryset(AccessKeyQuerySet)


class AccessKeyManager(_AccessKeyManagerBase):
    def create_key(
        self,
        *,
        workspace: Workspace,
        name: str,
        environment: Environment,
        product: Product | None = None,
        app: App | None = None,
        expires: int | dt.date | None = DEFAULT_EXPIRY_DAYS,
        allowed_networks: Iterable[str] = (),
        description: str = "",
        by: User | None = None,
    ) -> tuple[AccessKey, str]:
        """Validate and store a new key; record who made it. Returns (the key's row, the key
        itself): the only time the whole key exists outside its holder. Raises
        ValidationError with a message per broken rule, storing nothing."""
        now = timezone.now()
        expires_at, networks, limit_messages = limit_errors(expires, allowed_networks, now)
        key = keys.generate()
        access_key = AccessKey(
            workspace=workspace,
            name=name.strip() if isinstance(name, str) else name,
            description=description,
            environment=environment,
            product=product,
            app=app,
            identifier=keys.identifier(key),
            key_hash=keys.hash_key(key),
            allowed_networks=networks,
            created_at=now,
            created_by=by if getattr(by, "pk", None) else None,
            expires_at=expires_at,
        )
        errors = access_key.rule_errors() | limit_messages
        if errors:
            raise ValidationError(errors)
        access_key.insert(AuditAction.ACCESS_KEY_CREATED, by=by)
        return access_key, key

    def authenticate(self, key: str) -> AccessKey | None:
        """The usable key whose SHA-256 matches `key`, with its workspace, environment, product
        and app, or None. A malformed key or a bad checksum costs no query; an unknown, revoked
        and expired key all give None after the same single lookup (plain SQL built once: this
        runs on every API request)."""
        if not keys.is_well_formed(key):
            return None
        return self.authenticate_reading(key)[0]

    def authenticate_reading(
        self,
        key: str,
        scalar: str = "NULL",
        params: tuple[Any, ...] = (),
        *,
        prefix: str = "",
        prefix_params: tuple[Any, ...] = (),
    ) -> tuple[AccessKey | None, Any]:
        """`authenticate` for a well-formed key, reading the scalar subquery `scalar` (with
        `params`) in the same statement: (the usable key or None, the scalar's value). `prefix`
        (with `prefix_params`) is a WITH clause the statement starts with, which `scalar` may
        read (the API counts the key's request in it: api/ratelimit.py)."""
        sql = _key_lookup_sql(connection.vendor, scalar, prefix)
        with prepared.cursor() as cursor:
            cursor.execute(sql, [*prefix_params, *params, keys.hash_key(key)])
            value, *row = cursor.fetchone()
        if row[0] is None:  # no such key
            return None, value
        found, workspace, environment, product, app = _instances(row)
        if environment.workspace_id != workspace.pk:
            return None, value  # never resolve in another workspace's environment
        environment.workspace = workspace
        found.workspace, found.environment, found.product, found.app = (
            workspace,
            environment,
            product,
            app,
        )
        return (found if found.is_usable() else None), value


# The tables `authenticate` reads in one row, with their aliases in `_key_lookup_sql`.
_ALIASES = ("k", "w", "e", "p", "a")


@cache
def _key_lookup_sql(vendor: str, scalar: str = "NULL", prefix: str = "") -> str:
    """One row whatever the key: `scalar`, then the key's columns and its workspace's,
    environment's, product's and app's (NULLs when there is no such key); after `prefix`."""
    q = connection.ops.quote_name
    models_ = _row_models()
    columns = ", ".join(
        f"{alias}.{_column(model, field.name)}"
        for alias, model in zip(_ALIASES, models_, strict=True)
        for field in model._meta.concrete_fields
    )
    key = AccessKey._meta

    def join(alias: str, model: type[models.Model], field: str) -> str:
        return (
            f"LEFT OUTER JOIN {q(model._meta.db_table)} {alias} "
            f"ON {alias}.{_column(model)} = k.{_column(AccessKey, field)}"
        )

    return (
        f"{prefix} SELECT {scalar}, {columns} FROM (SELECT 1 AS one) one "
        f"LEFT OUTER JOIN {q(key.db_table)} k ON k.{_column(AccessKey, 'key_hash')} = %s "
        f"{join('w', Workspace, 'workspace')} {join('e', Environment, 'environment')} "
        f"{join('p', Product, 'product')} {join('a', App, 'app')}"
    )


def _column(model: type[models.Model], name: str | None = None) -> str:
    """The quoted database column of `model`'s field `name`, or of its primary key."""
    field = model._meta.get_field(name) if name else model._meta.pk
    assert isinstance(field, models.Field) and field.column
    return connection.ops.quote_name(field.column)


def _row_models() -> tuple[type[models.Model], ...]:
    """The models of `_key_lookup_sql`'s row, in order (the product and the app LEFT JOINed:
    None when the key has none)."""
    return (AccessKey, Workspace, Environment, Product, App)


def _instances(row: Sequence[Any]) -> list[Any]:
    """The row of `_key_lookup_sql` as model instances, each value converted by its field as
    the ORM does (e.g. SQLite's datetimes and JSON, PostgreSQL's JSON)."""
    db = connections[DEFAULT_DB_ALIAS]
    instances: list[Any] = []  # of _row_models()'s models, each one or None
    start = 0
    for model, names, converters in _row_readers(db):
        values = list(row[start : start + len(names)])
        start += len(names)
        if values[0] is None:  # a LEFT JOIN that found nothing
            instances.append(None)
            continue
        for index, column, convert in converters:
            values[index] = convert(values[index], column, db)
        instances.append(model.from_db(db.alias, names, values))
    return instances


# A model of the row, its fields' attribute names (its columns, in order) and the converters
# of its columns: (index, column, converter).
_Reader = tuple[type[models.Model], list[str], list[tuple[int, Any, Any]]]
_READERS: WeakKeyDictionary[BaseDatabaseWrapper, list[_Reader]] = WeakKeyDictionary()


def _row_readers(db: BaseDatabaseWrapper) -> list[_Reader]:
    """For each model of the row, its field names and the converters the ORM applies to its
    columns: (index, column, converter), worked out once per connection (they are bound to its
    operations)."""
    if (readers := _READERS.get(db)) is None:
        readers = []
        for model in _row_models():
            names = [field.attname for field in model._meta.concrete_fields]
            converters = []
            for index, field in enumerate(model._meta.concrete_fields):
                column = field.get_col(model._meta.db_table)
                for convert in db.ops.get_db_converters(column) + column.get_db_converters(db):
                    converters.append((index, column, convert))
            readers.append((model, names, converters))
        _READERS[db] = readers
    return readers


@cache
def _hold_sql(vendor: str) -> str:
    """The key's row if it is still usable at a moment (the rule of `AccessKeyQuerySet.active`),
    locked FOR KEY SHARE on PostgreSQL (see `AccessKey.hold`)."""
    q, meta = connection.ops.quote_name, AccessKey._meta
    names = ("id", "revoked_at", "expires_at")
    column = {name: _column(AccessKey, name) for name in names}
    lock = " FOR KEY SHARE" if vendor == "postgresql" else ""
    return (
        f"SELECT 1 FROM {q(meta.db_table)} "
        f"WHERE {column['id']} = %s AND {column['revoked_at']} IS NULL "
        f"AND ({column['expires_at']} IS NULL OR {column['expires_at']} > %s){lock}"
    )


class AccessKey(BoundContext):
    noun, kind, a_kind = "key", "access key", "An access key"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="access_keys")
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    description = models.CharField(max_length=DESCRIPTION_MAX_LENGTH, blank=True)
    # The use context. An environment, product or app with keys bound to it cannot be deleted
    # from the pages or the admin (`deletion_blocker`); deleting it otherwise (its workspace, a
    # shell) deletes the keys: a key that lost its product must never fall back to the whole
    # environment.
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="access_keys"
    )
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.CASCADE, related_name="access_keys"
    )
    app = models.ForeignKey(
        App, null=True, blank=True, on_delete=models.CASCADE, related_name="access_keys"
    )

    identifier = models.CharField(max_length=keys.IDENTIFIER_LENGTH, editable=False)
    key_hash = models.CharField("SHA-256 of the key", max_length=64, unique=True, editable=False)
    allowed_networks = models.JSONField(
        "allowed source addresses",
        default=list,
        blank=True,
        help_text="IPv4/IPv6 networks the key may be used from; empty: anywhere.",
    )

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_from = models.GenericIPAddressField(null=True, blank=True, editable=False)
    use_count = models.PositiveBigIntegerField(default=0, editable=False)

    objects = AccessKeyManager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="unique_access_key_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.identifier}…)"

    # --- what it is -----------------------------------------------------------------------

    @property
    def actor_name(self) -> str:
        """How the audit trail names this key as an actor."""
        return f"access key {self.name} ({self.identifier}…)"[:150]

    @property
    def rate_limit_bucket(self) -> str:
        return f"key:{self.pk}"

    @property
    def usage_name(self) -> str:
        """How a token's usage rows name the key that used it."""
        return self.name

    @property
    def audit_names(self) -> dict[str, str]:
        """How a resolve's audit event and usage name the key."""
        return {"access_key": self.name, "identifier": f"{self.identifier}…"}

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def is_usable(self, at: dt.datetime | None = None) -> bool:
        return not self.is_revoked and not self.is_expired(at)

    @property
    def display_status(self) -> str:
        return status_label_of(revoked=self.is_revoked, expired=self.is_expired())

    @property
    def expiry_badge(self) -> str:
        """ "expired", "soon" (as a token's) or "" for a key not revoked."""
        return expiry_state_of(self.expires_at, revoked=self.is_revoked)

    # --- rules ----------------------------------------------------------------------------

    def rule_errors(self) -> dict[str, list[str]]:
        """Every broken rule as {field: [message]}; empty when all hold."""
        errors: dict[str, list[str]] = {}
        if not isinstance(self.name, str) or not self.name:
            errors["name"] = ["Enter a name for the access key."]
        elif len(self.name) > NAME_MAX_LENGTH:
            errors["name"] = [f"The name has at most {NAME_MAX_LENGTH} characters."]
        elif not self.name.isprintable():
            errors["name"] = ["The name must be printable text (no control characters)."]
        elif self.name_is_taken():
            errors["name"] = [self.duplicate_name_message()]
        if messages := description_errors(self.description):
            errors["description"] = messages
        return errors | self.context_errors()

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def usage_ref(self) -> str:
        """How a read's usage record names this key (its use is counted from the record)."""
        return credential_ref("access_key", self.pk)

    def hold(self, *, at: dt.datetime) -> bool:
        """Whether the key is still usable at `at`, asked of the database (plain SQL with the
        rule of `AccessKeyQuerySet.active`). Inside a transaction on PostgreSQL it locks the
        key's row FOR KEY SHARE until the end: requests with the key do not wait for each other
        (nor for the roll-up of its use count), `revoke()` (which locks the row FOR UPDATE)
        waits for them to finish, and a request after a committed revoke finds nothing
        (False). The use itself is counted from the request's usage record
        (tokens/usage.py), not here: no request updates the key's row."""
        when = connection.ops.adapt_datetimefield_value(at)
        with prepared.cursor() as cursor:
            cursor.execute(_hold_sql(connection.vendor), [self.pk, when])
            return cursor.fetchone() is not None

    def revoke(self, *, by: User | None = None) -> None:
        """Revoke for good, at once: the next request with the key is refused."""
        with transaction.atomic():
            current = AccessKey.objects.select_for_update().filter(pk=self.pk).first()
            if current is None:
                raise ValidationError("This access key was deleted.")
            if current.is_revoked:
                raise ValidationError("This access key is already revoked.")
            current.revoked_at = timezone.now()
            current.revoked_by = by if getattr(by, "pk", None) else None
            current.save(update_fields=["revoked_at", "revoked_by"])
            current.record(AuditAction.ACCESS_KEY_REVOKED, by=by)
        self.refresh_from_db()

    def delete_key(self, *, by: User | None = None) -> None:
        """Delete the key for good; the audit trail keeps its name and identifier."""
        self.delete_recorded(AuditAction.ACCESS_KEY_DELETED, by=by)

    def record(self, action: str, *, by: User | None = None) -> AuditEvent:
        detail = {"access_key": self.name, "identifier": f"{self.identifier}…"}
        detail |= self.context_detail()
        if action == AuditAction.ACCESS_KEY_CREATED:
            expires = self.expires_at
            when = f"{expires.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC" if expires else "never"
            detail["expires"] = when
        return AuditEvent.record(self.workspace, action, by=by, detail=detail)


def count_uses(uses: dict[str, CredentialUse]) -> None:
    """Fold the access keys' uses rolled up from the reads' usage records (a receiver of
    `tokens.usage.credentials_used`): one UPDATE per key, its count added, its last use and
    address moved forward only."""
    for pk, use in uses_of_kind(uses, "access_key"):
        add_uses(AccessKey, pk, use)


def uses_of_kind(uses: dict[str, CredentialUse], kind: str) -> Iterable[tuple[str, CredentialUse]]:
    for ref, use in uses.items():
        ref_kind, _, pk = ref.partition(":")
        if ref_kind == kind:
            yield pk, use


def add_uses(model: type[models.Model], pk: str, use: CredentialUse) -> None:
    """Add `use` to a credential row (an access key's or a workload credential's)."""
    rows = model._default_manager.filter(pk=pk)
    rows.update(use_count=models.F("use_count") + use.count)
    later = Q(last_used_at__isnull=True) | Q(last_used_at__lt=use.last_at)
    rows.filter(later).update(last_used_at=use.last_at, last_used_from=use.address)

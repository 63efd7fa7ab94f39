"""Tokens, their encrypted values, their lifecycle rules and the audit trail.

Every rule about a token is written once here and used by the Tokens page, the Django admin and
the resolver: `Token.objects.create_token`, `token.update`, `token.revoke`, `token.delete_token`,
`token.unusable_reason` and `Token.objects.reveal_values`.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Exists, OuterRef, Q
from django.db.models.expressions import Combinable
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from audit.models import AuditAction, AuditEvent, source_label
from keys import crypto
from keys.models import WorkspaceKey
from tokens.references.grammar import KEY_CHARS, KEY_FIRST_CHARS, KEY_MAX_LENGTH, KEY_PATTERN
from workspaces.models import App, Environment, Product, Workspace

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# The Token Key grammar is written once, in the resolver's pure grammar module; KEY_DB_PATTERN
# (PostgreSQL's CHECK) and the SQLite GLOBs below are built from its two classes.
KEY_RE = re.compile(rf"^{KEY_PATTERN}\Z")
KEY_DB_PATTERN = rf"^[{KEY_FIRST_CHARS}][{KEY_CHARS}]{{0,{KEY_MAX_LENGTH - 1}}}\Z"
VALUE_MAX_BYTES = 64 * 1024
# The resolver's reason for a key no token in the workspace has, and for a token outside the
# context's environment: the same words, so a context cannot tell them apart.
NOT_AVAILABLE = "unknown token, or not available in this context"
DESCRIPTION_MAX_LENGTH = 500
PERIOD_MAX_DAYS = 3650
EXPIRING_SOON_DAYS = 7  # "Expires soon" on the table, "Expiring soon" in its status filter
HINT_MIN_LENGTH = 16
HINT_LENGTH = 4
EDITABLE_FIELDS = frozenset({"key", "description", "type", "expiry_date", "period_days"})
RELATION_FIELDS = ("products", "apps", "environments")


@models.CharField.register_lookup
class TokenKeyGrammar(models.Lookup):
    """`key__is_token_key=True`: the Token Key grammar and 1-128 length, in SQL each database's
    own tools understand. On SQLite, GLOB and length() instead of REGEXP, which only Django's
    connections define: the stock `sqlite3` tool could not check or query the file otherwise.
    GLOB classes match whole characters, so a non-ASCII letter or a newline is refused."""

    lookup_name = "is_token_key"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        if self.rhs is not True:
            raise ValueError("is_token_key only takes True")
        lhs, params = self.process_lhs(compiler, connection)
        if connection.vendor == "sqlite":
            sql = (
                f"(length({lhs}) BETWEEN 1 AND {KEY_MAX_LENGTH}"
                f" AND {lhs} GLOB '[{KEY_FIRST_CHARS}]*' AND {lhs} NOT GLOB '*[^{KEY_CHARS}]*')"
            )
            return sql, (*params, *params, *params)
        # PostgreSQL and others: the regular expression (\Z: no trailing newline).
        return compiler.compile(self.lhs.get_lookup("regex")(self.lhs, KEY_DB_PATTERN))


class TokenType(models.TextChoices):
    CREDENTIAL = "credential", "Credential"
    API_KEY = "api_key", "API Key"
    BEARER_TOKEN = "bearer_token", "Bearer Token"
    OAUTH_TOKEN = "oauth_token", "OAuth Token"


class TokenStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    REVOKED = "revoked", "Revoked"


class ExpiryState(StrEnum):
    """Where a token stands against its expiry, as `Token.expiry_state` works it out (and the
    queryset's `expired`/`expiring` select in SQL). A revoked token has none: revoked is final."""

    NONE = ""
    SOON = "soon"  # within EXPIRING_SOON_DAYS
    EXPIRED = "expired"


def description_errors(description: object) -> list[str]:
    """Messages for a description (a token's, an access key's, a workload identity's): text of
    at most DESCRIPTION_MAX_LENGTH characters, without NUL (which PostgreSQL cannot store)."""
    if not isinstance(description, str):
        return ["The description must be text."]
    if len(description) > DESCRIPTION_MAX_LENGTH:
        return [f"The description has at most {DESCRIPTION_MAX_LENGTH} characters."]
    if "\x00" in description:
        return ["The description cannot contain NUL characters."]
    return []


def expiry_state_of(
    expires_at: dt.datetime | None, *, revoked: bool, at: dt.datetime | None = None
) -> ExpiryState:
    """Expired, expiring soon (within EXPIRING_SOON_DAYS) or neither at `at` (now by default),
    for anything that expires at `expires_at` (None: never) and may be revoked: revoked is
    final, it has no expiry state."""
    if expires_at is None or revoked:
        return ExpiryState.NONE
    at = at or timezone.now()
    if expires_at <= at:
        return ExpiryState.EXPIRED
    if expires_at <= at + dt.timedelta(days=EXPIRING_SOON_DAYS):
        return ExpiryState.SOON
    return ExpiryState.NONE


def status_label_of(*, revoked: bool, expired: bool) -> str:
    """Active, Revoked or Expired, as tables, the admin and the dialogs say it."""
    if revoked:
        return "Revoked"
    return "Expired" if expired else "Active"


def midnight_utc(day: dt.date) -> dt.datetime:
    """When something given an expiry date expires: 00:00 UTC that day (a token's Expiry Date,
    an access key's or a workload identity's expiry date). A date whose midnight has come is
    not a valid new expiry date."""
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def expiry_moment(
    expiry_date: dt.date | None, period_days: int | None, value_set_at: dt.datetime
) -> dt.datetime | None:
    """The effective expiry: the earlier of 00:00 UTC on the Expiry Date and set time + Period."""
    moments = []
    if expiry_date is not None:
        moments.append(midnight_utc(expiry_date))
    if period_days:
        moments.append(value_set_at + dt.timedelta(days=period_days))
    return min(moments) if moments else None


@dataclass(frozen=True)
class UseContext:
    """Where a token is about to be used: required environment, optional product and app."""

    environment: Environment
    product: Product | None = None
    app: App | None = None


class TokenQuerySet(models.QuerySet):
    def for_workspace(self, workspace: Workspace) -> TokenQuerySet:
        return self.filter(workspace=workspace)

    def active(self, at: dt.datetime | None = None) -> TokenQuerySet:
        """Not revoked and not expired at `at` (now by default)."""
        at = at or timezone.now()
        return self.filter(status=TokenStatus.ACTIVE).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=at)
        )

    def expired(self, at: dt.datetime | None = None) -> TokenQuerySet:
        """`expiry_state(at)` is EXPIRED: not revoked, and the expiry has passed."""
        at = at or timezone.now()
        return self.filter(status=TokenStatus.ACTIVE, expires_at__lte=at)

    def expiring(self, at: dt.datetime | None = None) -> TokenQuerySet:
        """`expiry_state(at)` is SOON: still active, expiring within EXPIRING_SOON_DAYS."""
        at = at or timezone.now()
        return self.active(at).filter(expires_at__lte=at + dt.timedelta(days=EXPIRING_SOON_DAYS))

    def revoked(self) -> TokenQuerySet:
        return self.filter(status=TokenStatus.REVOKED)

    def unrevoked(self) -> TokenQuerySet:
        """Active or expired: what the Tokens table lists unless Show revoked is on."""
        return self.exclude(status=TokenStatus.REVOKED)

    def unused_since(self, moment: dt.datetime) -> TokenQuerySet:
        """Not resolved since `moment`, and already there then (a token made yesterday has
        not been "unused for 30 days")."""
        return self.filter(created_at__lt=moment).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=moment)
        )

    def locked(self) -> TokenQuerySet:
        """Rows locked (FOR UPDATE) for a change, with their workspace read but not locked. Every
        change that can make a token unusable takes this lock first: it waits for the reads in
        flight (which hold FOR KEY SHARE, tokens/references/resolve.py) and the reads after it
        wait for the change. Only `lock_token_changes` locks the workspace's row, always before a
        token's, so a change and an edit never wait for each other in opposite orders."""
        return self.select_for_update(of=("self",)).select_related("workspace")

    def with_relations(self) -> TokenQuerySet:
        return self.prefetch_related("products", "apps", "environments")

    def usable_in(self, context: UseContext, at: dt.datetime | None = None) -> TokenQuerySet:
        """The tokens `unusable_reason(context, at)` lets through, as SQL (for the resolver's
        fast path; tests/test_references.py keeps the two in step)."""
        workspace_id = context.environment.workspace_id
        if any(
            obj is not None and obj.workspace_id != workspace_id
            for obj in (context.product, context.app)
        ):
            return self.none()
        environment = Token.environments.through.objects.filter(
            token=OuterRef("pk"), environment=context.environment
        )
        return (
            self.active(at)
            .filter(workspace_id=workspace_id)
            .filter(Exists(environment))
            .in_scope_of(product=context.product, app=context.app)
        )

    def overlapping(
        self,
        *,
        workspace: Workspace | int,
        key: str | Iterable[str],
        environments: Iterable[Environment] | None,
        products: Iterable[Product] = (),
        apps: Iterable[App] = (),
        exclude: object = None,
    ) -> TokenQuerySet:
        """The unrevoked tokens of `key` that some use context could use together with a token
        valid in `environments` and scoped to `products` and `apps`: the tokens a new or changed
        token with these would overlap (`exclude`: its own pk; `environments` None: any; `key`
        may be several keys, for an import: each token is then of one of them). One key
        may have several tokens; no context may ever have two of them to choose from (see
        `Token.overlap_errors`). An expired token still counts: it can be given a new value and
        be usable again."""
        keys = [key] if isinstance(key, str) else list(key)
        found = (
            self.filter(workspace=workspace, key__in=keys)
            .exclude(status=TokenStatus.REVOKED)
            .scope_meets(products=list(products), apps=list(apps))
        )
        if environments is not None:
            linked = Token.environments.through.objects.filter(
                token=OuterRef("pk"), environment__in=list(environments)
            )
            found = found.filter(Exists(linked))
        return found.exclude(pk=exclude) if exclude is not None else found

    def valid_with_key(self, workspace: Workspace, key: str) -> TokenQuerySet:
        """The unrevoked tokens of `key` (where the key is already valid, as the Create Token
        modal says it), with their environments and scope."""
        return (
            self.filter(workspace=workspace, key=key)
            .exclude(status=TokenStatus.REVOKED)
            .with_relations()
            .order_by("created_at", "pk")
        )

    def scope_meets(self, *, products: list[Product], apps: list[App]) -> TokenQuerySet:
        """The tokens whose scope meets this one (products, apps): some context (a product or
        none, an app or none) is in both scopes by `in_scope_of`. The SQL form of `shared_scope`
        (tests/test_token_overlap.py proves the two equal to `in_scope_of` on every context).

        A scope is in reach of a context with no product and no app, of one of its products,
        or of one of its apps; an empty scope of every context. So an empty scope meets every
        scope; two others meet when they share a product or an app, or when one names
        products and the other apps (the context of that product with that app)."""
        if not products and not apps:
            return self
        token = OuterRef("pk")
        their_products = Token.products.through.objects.filter(token=token)
        their_apps = Token.apps.through.objects.filter(token=token)
        meets: Q | Combinable = ~Exists(their_products) & ~Exists(their_apps)
        if products:
            meets |= Exists(their_products.filter(product__in=products)) | Exists(their_apps)
        if apps:
            meets |= Exists(their_apps.filter(app__in=apps)) | Exists(their_products)
        return self.filter(meets)

    def in_scope_of(
        self, *, product: Product | int | None = None, app: App | int | None = None
    ) -> TokenQuerySet:
        """The tokens a product and/or app may use by their scope (as `unusable_reason` says
        it): scoped to no product and no app, or to this product, or to this app."""
        token = OuterRef("pk")
        products = Token.products.through.objects.filter(token=token)
        apps = Token.apps.through.objects.filter(token=token)
        # Exists & Exists gives a Q, Q | Exists a Combinable: hence the wide type.
        in_scope: Q | Combinable = ~Exists(products) & ~Exists(apps)
        if product is not None:
            in_scope |= Exists(products.filter(product=product))
        if app is not None:
            in_scope |= Exists(apps.filter(app=app))
        return self.filter(in_scope)


class SealedValue(Protocol):
    """What `reveal_values` reads of a token: a Token, or a plain row with these fields."""

    @property
    def pk(self) -> uuid.UUID: ...
    @property
    def key(self) -> str: ...
    @property
    def ciphertext(self) -> bytes | memoryview: ...
    @property
    def value_version(self) -> int: ...
    @property
    def workspace(self) -> Workspace: ...
    @property
    def workspace_id(self) -> int: ...


_TokenManagerBase = models.Manager.from_queryset(TokenQuerySet)


class TokenManager(_TokenManagerBase):
    @sensitive_variables("value")
    def create_token(
        self,
        *,
        workspace: Workspace,
        key: str,
        value: str,
        by: User | None = None,
        type: str = TokenType.CREDENTIAL,
        description: str = "",
        expiry_date: dt.date | None = None,
        period_days: int | None = None,
        products: Iterable[Product] = (),
        apps: Iterable[App] = (),
        environments: Iterable[Environment] = (),
    ) -> Token:
        """Validate, encrypt and store a new token; record who did it. Raises ValidationError."""
        products, apps, environments = list(products), list(apps), list(environments)
        token = Token(
            workspace=workspace,
            key=key,
            type=type,
            description=description,
            expiry_date=expiry_date,
            period_days=period_days,
            created_by=by,
            updated_by=by,
        )
        with transaction.atomic():
            # Checked under the workspace's token lock, so no overlapping token can be made
            # between this check and this insert.
            lock_token_changes(workspace)
            errors = token.rule_errors(products=products, apps=apps, environments=environments)
            errors.update(value_errors(value, required=True))
            errors.update(new_expiry_date_errors(expiry_date))
            if errors:
                raise ValidationError(errors)
            token._encrypt(value)
            token.save(force_insert=True)
            token.products.set(products)
            token.apps.set(apps)
            token.environments.set(environments)
            token._keep_version(by=by)
            AuditEvent.record(workspace, AuditAction.CREATED, by=by, token=token)
        return token

    @sensitive_variables("values")
    def reveal_values(
        self,
        tokens: Iterable[SealedValue],
        data_keys: Mapping[int, WorkspaceKey] | None = None,
    ) -> dict[uuid.UUID, str]:
        """Decrypt several tokens' values, unwrapping each workspace's data key once.

        `data_keys` (workspace id -> record) are data key records the caller already read with
        the tokens; any other workspace's is looked up. For the resolver only: the result must
        live no longer than the run that needs it.
        """
        return {token.pk: value for token, value in reveal_each(tokens, data_keys)}


@sensitive_variables("dek", "keys", "revealed")
def reveal_each[S: SealedValue](
    sealed: Iterable[S], data_keys: Mapping[int, WorkspaceKey] | None = None
) -> list[tuple[S, str]]:
    """(item, its plaintext) for each sealed value (a token's current value, or an old version
    through `TokenVersion.sealed`), unwrapping each workspace's data key once: the one
    decryption path. Raises crypto.CryptoError naming the token, its workspace and the master
    key id."""
    keys: dict[int, tuple[bytes, str]] = {}  # workspace id -> (data key, master key id)
    revealed: list[tuple[S, str]] = []
    for token in sealed:
        label = f"token {token.key} in workspace {token.workspace.slug}"
        if token.workspace_id not in keys:
            record = (data_keys or {}).get(token.workspace_id) or WorkspaceKey.existing_for(
                token.workspace, label=label
            )
            keys[token.workspace_id] = (record.unwrap(label=label), record.kek_id)
        dek, kek_id = keys[token.workspace_id]
        value = crypto.decrypt(
            dek,
            bytes(token.ciphertext),
            aad=crypto.value_aad(token.workspace_id, token.pk, token.value_version),
            label=f"{label} (master key {kek_id!r})",
        )
        revealed.append((token, value))
    return revealed


PAST_EXPIRY_MESSAGE = "The Expiry Date must be in the future (tokens expire at 00:00 UTC that day)."
REVOKED_MESSAGE = "This token is revoked; revoked tokens cannot be edited."


def lock_token_changes(workspace: Workspace | int) -> None:
    """Serialise the changes to one workspace's tokens that could make two of them overlap
    (create, edit, import, bulk environments) until this transaction ends: call it inside
    `transaction.atomic()` before checking `overlap_errors`, so the check and the write see
    the same tokens. A lock on the workspace's row (FOR NO KEY UPDATE: rows that merely refer
    to the workspace, an audit event or a usage row, are still written meanwhile). Without a
    transaction it does nothing; SQLite serialises all writers anyway."""
    pk = workspace.pk if isinstance(workspace, Workspace) else workspace
    list(Workspace.objects.select_for_update(no_key=True).filter(pk=pk).values_list("pk"))


def _names(items: Iterable[Any]) -> str:
    """ "Production", "Production and Sandbox", "Dev, Production and Sandbox"."""
    names = sorted(item.name for item in items)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


@dataclass(frozen=True)
class Scope:
    """The products and apps a token is scoped to; both empty: every product and app."""

    products: frozenset[Product] = frozenset()
    apps: frozenset[App] = frozenset()

    @property
    def is_everything(self) -> bool:
        return not self.products and not self.apps

    def describe(self) -> str:
        """ "every product and app", "product Checkout", "products A and B or app Web"."""
        if self.is_everything:
            return "every product and app"
        parts = []
        for word, items in (("product", self.products), ("app", self.apps)):
            if items:
                parts.append(f"{word}{'s' if len(items) > 1 else ''} {_names(items)}")
        return " or ".join(parts)


def shared_scope(mine: Scope, theirs: Scope) -> str | None:
    """Where two scopes meet, in words, or None when no context is in both (the rule of
    `TokenQuerySet.scope_meets`). Names the products and apps in both when there are some,
    else one product and app whose context is in both."""
    if mine.is_everything:
        return theirs.describe()
    if theirs.is_everything:
        return mine.describe()
    both = Scope(mine.products & theirs.products, mine.apps & theirs.apps)
    if not both.is_everything:
        return both.describe()
    for products, apps in ((mine.products, theirs.apps), (theirs.products, mine.apps)):
        if products and apps:
            product = min(products, key=lambda item: item.name)
            app = min(apps, key=lambda item: item.name)
            return f"product {product.name} with app {app.name}"
    return None


def token_label(key: str, environments: Iterable[Any], shared: bool) -> str:
    """How a token is named where another token of its key could be confused with it:
    `STRIPE_SECRET (Sandbox)`; just the key when it has no other token."""
    if not shared:
        return key
    names = ", ".join(env.name for env in environments) or "no environment"
    return f"{key} ({names})"


def free_environments(
    workspace: Workspace, key: str, *, products: Iterable[Product], apps: Iterable[App]
) -> models.QuerySet[Environment]:
    """The environments of `workspace` where a new token of `key` with this scope would overlap
    no token (what "Add for another environment" offers): two queries at most."""
    taken = Token.environments.through.objects.filter(
        token__in=Token.objects.overlapping(
            workspace=workspace, key=key, environments=None, products=products, apps=apps
        )
    ).values("environment_id")
    return workspace.environments.exclude(pk__in=taken)


def overlap_message(key: str, environments: Iterable[Environment], scope: str) -> str:
    return (
        f"{key} is already valid in {_names(environments)} ({scope}); choose other "
        "environments or narrow the scope."
    )


def new_expiry_date_errors(expiry_date: dt.date | None) -> dict[str, list[str]]:
    """A newly set Expiry Date must be a date after today (UTC): the token dies at its 00:00."""
    if expiry_date is None:
        return {}
    if not isinstance(expiry_date, dt.date) or isinstance(expiry_date, dt.datetime):
        return {"expiry_date": ["Enter the Expiry Date as a date."]}
    if midnight_utc(expiry_date) <= timezone.now():
        return {"expiry_date": [PAST_EXPIRY_MESSAGE]}
    return {}


def key_grammar_error(key: str) -> str:
    """Why `key` is not a Token Key by its grammar and length (the form's words), or ""."""
    if not key:
        return "Enter a Token Key."
    if len(key) > KEY_MAX_LENGTH:
        return f"A Token Key has at most {KEY_MAX_LENGTH} characters."
    if not KEY_RE.match(key):
        return (
            "A Token Key starts with a letter or underscore and contains only letters, "
            "digits and underscores (e.g. PAYMENT_API_KEY)."
        )
    return ""


def value_size_message(size: int) -> str:
    """Why a value of `size` bytes is refused (a form checking an uploaded file says it too)."""
    return f"The value is {size:,} bytes; the limit is 64 KiB ({VALUE_MAX_BYTES:,} bytes)."


def value_errors(value: str | None, *, required: bool) -> dict[str, list[str]]:
    """The value is 1 byte to 64 KiB of UTF-8 text, kept exactly as given."""
    if value is None or value == "":
        return {"value": ["Enter the token value."]} if required else {}
    if not isinstance(value, str):
        return {"value": ["The value must be text."]}
    size = len(value.encode("utf-8", errors="surrogatepass"))
    if size > VALUE_MAX_BYTES:
        return {"value": [value_size_message(size)]}
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return {"value": ["The value must be valid UTF-8 text."]}
    return {}


def value_hint(value: str) -> str:
    """The last 4 characters of a long value, shown as ••••abcd; none for short values.

    A tail with whitespace or control characters (a PEM key's "---\n", a NUL byte that
    PostgreSQL cannot store in text) gives no hint either.
    """
    tail = value[-HINT_LENGTH:]
    if len(value) < HINT_MIN_LENGTH or not tail.isprintable() or any(c.isspace() for c in tail):
        return ""
    return tail


class Token(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="tokens")
    key = models.CharField("Token Key", max_length=KEY_MAX_LENGTH)
    description = models.CharField(max_length=DESCRIPTION_MAX_LENGTH, blank=True)
    type = models.CharField(max_length=20, choices=TokenType.choices, default=TokenType.CREDENTIAL)

    # The value: only ever ciphertext (nonce + AES-256-GCM output) and a short non-secret hint.
    ciphertext = models.BinaryField(editable=False)
    value_version = models.PositiveIntegerField(default=0, editable=False)
    value_hint = models.CharField(max_length=4, blank=True, editable=False)
    value_set_at = models.DateTimeField(default=timezone.now, editable=False)

    expiry_date = models.DateField("Expiry Date", null=True, blank=True)
    period_days = models.PositiveSmallIntegerField("Period (days)", null=True, blank=True)
    expires_at = models.DateTimeField(
        "expires",
        null=True,
        blank=True,
        editable=False,
        db_index=True,
        help_text="The effective expiry, derived from Expiry Date and Period.",
    )

    products = models.ManyToManyField(Product, blank=True, related_name="tokens")
    apps = models.ManyToManyField(App, blank=True, related_name="tokens")
    environments = models.ManyToManyField(Environment, related_name="tokens")

    status = models.CharField(
        max_length=10, choices=TokenStatus.choices, default=TokenStatus.ACTIVE, db_index=True
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False, db_index=True)

    objects = TokenManager()

    class Meta:
        ordering = ["key"]
        constraints = [
            # The grammar and the 1-128 length, in the database too (see TokenKeyGrammar).
            models.CheckConstraint(
                condition=Q(key__is_token_key=True), name="token_key_grammar_and_length"
            ),
            models.CheckConstraint(
                condition=Q(status__in=TokenStatus.values), name="token_status_valid"
            ),
            models.CheckConstraint(condition=Q(type__in=TokenType.values), name="token_type_valid"),
            models.CheckConstraint(
                condition=Q(period_days__isnull=True)
                | Q(period_days__gte=1, period_days__lte=PERIOD_MAX_DAYS),
                name="token_period_range",
            ),
        ]
        # One key may have several tokens (one per environment, say): no unique constraint
        # on (workspace, key), `overlap_errors` keeps them apart; this index finds them.
        indexes = [
            models.Index(fields=["workspace", "status", "key"]),
            models.Index(fields=["workspace", "key"], name="token_workspace_key"),
        ]

    def __str__(self) -> str:
        return self.key

    # --- what the table shows -------------------------------------------------------------

    @property
    def reference(self) -> str:
        return f"$Secret{{{self.key}}}"

    @property
    def hint(self) -> str:
        return f"••••{self.value_hint}" if self.value_hint else ""

    @property
    def is_revoked(self) -> bool:
        return self.status == TokenStatus.REVOKED

    def expiry_state(self, at: dt.datetime | None = None) -> ExpiryState:
        """Expired, expiring soon or neither at `at` (now by default); revoked tokens: neither."""
        return expiry_state_of(self.expires_at, revoked=self.is_revoked, at=at)

    def is_expired(self, at: dt.datetime | None = None) -> bool:
        return self.expiry_state(at) is ExpiryState.EXPIRED

    def status_label(self, at: dt.datetime | None = None) -> str:
        """Active, Revoked or Expired, as the table, the admin and the dialogs say it."""
        return status_label_of(revoked=self.is_revoked, expired=self.is_expired(at))

    @property
    def display_status(self) -> str:
        return self.status_label()

    # --- rules ----------------------------------------------------------------------------

    def rule_errors(
        self,
        *,
        products: list[Product],
        apps: list[App],
        environments: list[Environment],
    ) -> dict[str, list[str]]:
        """Every broken rule except the value's, as {field: [message]}; empty when all hold."""
        errors: dict[str, list[str]] = {}
        if grammar := key_grammar_error(self.key):
            errors["key"] = [grammar]
        if messages := description_errors(self.description):
            errors["description"] = messages
        if self.type not in TokenType.values:
            errors["type"] = ["Choose a type: Credential, API Key, Bearer Token or OAuth Token."]
        if self.period_days is not None and (
            not isinstance(self.period_days, int)
            or isinstance(self.period_days, bool)
            or not 1 <= self.period_days <= PERIOD_MAX_DAYS
        ):
            errors["period_days"] = [
                f"The Period is a whole number of days, 1 to {PERIOD_MAX_DAYS}."
            ]
        for field, objects in (("products", products), ("apps", apps)):
            if any(obj.workspace_id != self.workspace_id for obj in objects):
                errors[field] = [f"Choose {field} of this workspace."]
        if not environments:
            errors["environments"] = ["Choose at least one environment."]
        elif any(env.workspace_id != self.workspace_id for env in environments):
            errors["environments"] = ["Choose environments of this workspace."]
        checkable = not errors.keys() & {"key", "products", "apps", "environments"}
        if checkable and (
            overlaps := self.overlap_errors(products=products, apps=apps, environments=environments)
        ):
            errors["environments"] = overlaps
        return errors

    def overlap_errors(
        self,
        *,
        products: Iterable[Product],
        apps: Iterable[App],
        environments: Iterable[Environment],
    ) -> list[str]:
        """Why this token, valid in `environments` and scoped to `products` and `apps`, would
        share a use context with another unrevoked token of its key: one message per such
        token, naming the environments and the scope they would share (empty: none would).

        The one rule for tokens sharing a key, used by create, edit, import, bulk environments
        and the admin (through `rule_errors`): a context must never have two tokens of one key
        to choose from. Call it under `lock_token_changes` when about to write."""
        if self.is_revoked:
            return []
        environments, mine = list(environments), Scope(frozenset(products), frozenset(apps))
        wanted = {env.pk for env in environments}
        others = Token.objects.overlapping(
            workspace=self.workspace_id,
            key=self.key,
            environments=environments,
            products=mine.products,
            apps=mine.apps,
            exclude=self.pk,
        ).with_relations()
        messages = []
        for other in others:
            scope = shared_scope(mine, other.scope)
            assert scope is not None, "scope_meets and shared_scope disagree"
            shared = [env for env in other.environments.all() if env.pk in wanted]
            messages.append(overlap_message(self.key, shared, scope))
        return messages

    @property
    def label(self) -> str:
        """How dialogs, messages and the admin name it: `STRIPE_SECRET (Sandbox)` when another
        token has its key, else the key (two queries at most)."""
        others = Token.objects.filter(workspace_id=self.workspace_id, key=self.key)
        return token_label(self.key, self.environments.all(), others.exclude(pk=self.pk).exists())

    @property
    def scope(self) -> Scope:
        """Its products and apps (prefetch them for many tokens: `with_relations`)."""
        return Scope(frozenset(self.products.all()), frozenset(self.apps.all()))

    def unusable_reason(self, context: UseContext, at: dt.datetime | None = None) -> str | None:
        """Why this token may not be used in `context` (the resolver's wording), or None.

        A context learns only what it may know: of a token outside its environment, nothing
        (the same words as for a key no token has: not its status, expiry or environments);
        of a token in its environment but out of its scope, that it is out of scope; only of
        a token it could use, that it is revoked or expired, and when."""
        for obj in (context.environment, context.product, context.app):
            if obj is not None and obj.workspace_id != self.workspace_id:
                return f"{obj.slug} is not in this token's workspace"
        if context.environment.pk not in {env.pk for env in self.environments.all()}:
            return NOT_AVAILABLE
        products = {product.pk for product in self.products.all()}
        apps = {app.pk for app in self.apps.all()}
        in_scope = (not products and not apps) or bool(
            (context.product and context.product.pk in products)
            or (context.app and context.app.pk in apps)
        )
        if not in_scope:
            given = [obj.slug for obj in (context.product, context.app) if obj is not None]
            if not given:
                return "not in scope: no product or app given"
            return f"not in scope for {', '.join(given)}"
        if self.is_revoked:
            return "token revoked"
        if self.expires_at is not None and self.is_expired(at):
            return f"token expired on {self.expires_at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
        return None

    def is_usable_by(self, context: UseContext, at: dt.datetime | None = None) -> bool:
        return self.unusable_reason(context, at) is None

    # --- lifecycle ------------------------------------------------------------------------
    # Each change locks the token's row, applies itself to that fresh copy (so a concurrent
    # resolve's last_used_at or another edit is never overwritten by stale fields), writes one
    # audit event, and then refreshes `self`.

    @sensitive_variables("value")
    def update(
        self,
        *,
        by: User | None = None,
        value: str | None = None,
        products: Iterable[Product] | None = None,
        apps: Iterable[App] | None = None,
        environments: Iterable[Environment] | None = None,
        **fields: Any,
    ) -> list[str]:
        """Change fields (key, description, type, expiry_date, period_days), relations and,
        when `value` is given and not blank, the value (a new version; the Period restarts).

        Returns the names of what changed (empty: nothing did, and nothing is recorded).
        Raises ValidationError for a broken rule or a revoked token, changing nothing.
        """
        if unknown := set(fields) - EDITABLE_FIELDS:
            raise TypeError(f"unknown token fields: {', '.join(sorted(unknown))}")
        given = {"products": products, "apps": apps, "environments": environments}
        with transaction.atomic():
            lock_token_changes(self.workspace_id)  # first, as every token change locks
            current = Token.objects.locked().get(pk=self.pk)
            if current.is_revoked:
                raise ValidationError(REVOKED_MESSAGE)
            relations = {
                name: list(new if new is not None else getattr(current, name).all())
                for name, new in given.items()
            }
            changed = [name for name, new in fields.items() if getattr(current, name) != new]
            for name, objects in relations.items():
                before = set(getattr(current, name).values_list("pk", flat=True))
                if before != {obj.pk for obj in objects}:
                    changed.append(name)
            previous_key = current.key
            for name, new in fields.items():
                setattr(current, name, new)
            errors = current.rule_errors(**relations)
            errors.update(value_errors(value, required=False))
            if "expiry_date" in changed:
                errors.update(new_expiry_date_errors(current.expiry_date))
            if errors:
                raise ValidationError(errors)
            if value:
                current.value_version += 1
                current._encrypt(value)
                changed.append("value")
            if not changed:
                return []
            current.updated_by = by
            current.updated_at = timezone.now()
            current._set_expiry()
            current.save()
            for name in RELATION_FIELDS:
                if name in changed:
                    getattr(current, name).set(relations[name])
            if value:
                current._keep_version(by=by)
            detail: dict[str, object] = {"changed": changed}
            if "key" in changed:
                detail["previous_key"] = previous_key
            AuditEvent.record(
                current.workspace, AuditAction.UPDATED, by=by, token=current, detail=detail
            )
        self.refresh_from_db()
        return changed

    @sensitive_variables("value")
    def set_value(self, value: str, *, by: User | None = None) -> None:
        """Replace the value (a new version, a new expiry Period start)."""
        if not value:
            raise ValidationError({"value": ["Enter the token value."]})
        self.update(by=by, value=value)

    def restore_version(self, version: int, *, by: User | None = None) -> int:
        """Make an old version's value current again, as a new version (re-encrypted, so its
        associated data names the new version; the Period restarts, as for any new value).
        Returns the new version's number. Raises ValidationError for a revoked token, the
        current version, or a version destroyed or no longer kept, changing nothing."""
        with transaction.atomic():
            current = Token.objects.locked().get(pk=self.pk)
            if current.is_revoked:
                raise ValidationError(REVOKED_MESSAGE)
            if version == current.value_version:
                raise ValidationError(
                    f"Version {version_number(version)} is already the current value."
                )
            old = current.versions.filter(version=version, destroyed_at__isnull=True).first()
            if old is None:
                raise ValidationError(
                    f"Version {version_number(version)} cannot be restored: it was destroyed or "
                    "is no longer kept."
                )
            old.token = current
            current.value_version += 1
            current._encrypt(old.reveal())
            current.updated_by = by
            current.updated_at = timezone.now()
            current.save()
            current._keep_version(by=by, restored_from=version)
            AuditEvent.record(
                current.workspace,
                AuditAction.VERSION_RESTORED,
                by=by,
                token=current,
                detail={"restored_version": version, "new_version": current.value_version},
            )
        self.refresh_from_db()
        return self.value_version

    def destroy_version(self, version: int, *, by: User | None = None) -> None:
        """Erase one old version's ciphertext for good; History keeps that it existed, and who
        destroyed it. The current version cannot be destroyed (delete the token, or restore
        another version first)."""
        with transaction.atomic():
            current = Token.objects.locked().get(pk=self.pk)
            if version == current.value_version:
                raise ValidationError(
                    f"Version {version_number(version)} is the current value and cannot be "
                    "destroyed: restore another version first, or delete the token."
                )
            destroyed = current.versions.filter(version=version, destroyed_at__isnull=True).update(
                ciphertext=b"",
                value_hint="",
                destroyed_at=timezone.now(),
                destroyed_by=by if getattr(by, "pk", None) else None,
            )
            if not destroyed:
                raise ValidationError(
                    f"Version {version_number(version)} was already destroyed or is no longer kept."
                )
            AuditEvent.record(
                current.workspace,
                AuditAction.VERSION_DESTROYED,
                by=by,
                token=current,
                detail={"destroyed_version": version},
            )

    def revoke(self, *, by: User | None = None) -> None:
        """Revoke for good: the token stays listed, can no longer be resolved or edited."""
        with transaction.atomic():
            current = Token.objects.locked().get(pk=self.pk)
            if current.is_revoked:
                raise ValidationError("This token is already revoked.")
            current.status = TokenStatus.REVOKED
            current.revoked_at = current.updated_at = timezone.now()
            current.revoked_by = current.updated_by = by
            current.save(
                update_fields=["status", "revoked_at", "revoked_by", "updated_at", "updated_by"]
            )
            AuditEvent.record(current.workspace, AuditAction.REVOKED, by=by, token=current)
        self.refresh_from_db()

    def delete_token(self, *, by: User | None = None) -> None:
        """Delete the token and its ciphertext for good; the audit trail keeps its key."""
        with transaction.atomic():
            current = (Token.objects.locked().filter(pk=self.pk)).first()
            if current is None:
                raise ValidationError("This token was already deleted.")
            AuditEvent.record(current.workspace, AuditAction.DELETED, by=by, token=current)
            current.delete()

    # --- encryption (through keys/ only) ---------------------------------------

    @sensitive_variables("value", "dek")
    def _encrypt(self, value: str, *, dek: bytes | None = None) -> None:
        """Encrypt `value` as this token's current version; set the hint, set time and expiry.
        `dek`: the workspace's data key, when the caller already unwrapped it (many tokens)."""
        dek = dek or WorkspaceKey.dek_for(
            self.workspace, label=f"token {self.key} in workspace {self.workspace.slug}"
        )
        self.ciphertext = crypto.encrypt(
            dek, value, aad=crypto.value_aad(self.workspace_id, self.pk, self.value_version)
        )
        self.value_hint = value_hint(value)
        self.value_set_at = timezone.now()
        self._set_expiry()

    def recent_use(self, at: dt.datetime | None = None) -> RecentUse:
        """The contexts that resolved this token in the last RECENT_USE_DAYS (one query; two
        when there are more than RECENT_CONTEXTS_SHOWN)."""
        at = at or timezone.now()
        recent = self.usages.recent(at)
        contexts = list(recent[: RECENT_CONTEXTS_SHOWN + 1])
        more = 0
        if len(contexts) > RECENT_CONTEXTS_SHOWN:
            more = recent.count() - RECENT_CONTEXTS_SHOWN
        return RecentUse.of(self, contexts, more, at)

    @staticmethod
    def recent_use_of(
        tokens: Iterable[Token], at: dt.datetime | None = None
    ) -> dict[Any, RecentUse]:
        """`recent_use` of each of `tokens`, by pk, in one query (the bulk Revoke and Delete
        dialogs say it for every selected token)."""
        at = at or timezone.now()
        tokens = list(tokens)
        found: dict[Any, list[TokenUsage]] = {token.pk: [] for token in tokens}
        for usage in TokenUsage.objects.filter(token__in=tokens).recent(at):
            found[usage.token_id].append(usage)
        return {
            token.pk: RecentUse.of(
                token,
                found[token.pk][:RECENT_CONTEXTS_SHOWN],
                max(0, len(found[token.pk]) - RECENT_CONTEXTS_SHOWN),
                at,
            )
            for token in tokens
        }

    def _keep_version(self, *, by: User | None, restored_from: int | None = None) -> None:
        """Record the value just saved as a version in History, and destroy the versions
        older than the last COFFER_TOKEN_VERSIONS (the current one included)."""
        TokenVersion.objects.create(
            token=self,
            version=self.value_version,
            ciphertext=self.ciphertext,
            value_hint=self.value_hint,
            set_at=self.value_set_at,
            set_by=by if getattr(by, "pk", None) else None,
            restored_from=restored_from,
        )
        kept = settings.COFFER_TOKEN_VERSIONS
        self.versions.filter(version__lte=self.value_version - kept).delete()

    @property
    def version_number(self) -> int:
        """The current version as people count it (from 1; see `version_number`)."""
        return version_number(self.value_version)

    def reveal(self) -> str:
        """The plaintext value. Only the resolver calls this; never render or log it.

        Raises crypto.CryptoError naming the token, its workspace and the master key id.
        """
        return Token.objects.reveal_values([self])[self.pk]

    def _set_expiry(self) -> None:
        self.expires_at = expiry_moment(self.expiry_date, self.period_days, self.value_set_at)


# --- history: the versions of a value --------------------------------------------------------


def version_number(version: int) -> int:
    """The number people see for a stored version. Stored numbers start at 0 and are bound into
    each ciphertext's associated data, so they stay as they are; people count from 1."""
    return version + 1


@dataclass(frozen=True)
class _SealedVersion:
    """An old version as `reveal_each` reads it: bound to its token (`pk`) and version."""

    pk: uuid.UUID
    key: str
    ciphertext: bytes | memoryview
    value_version: int
    workspace: Workspace
    workspace_id: int


class TokenVersionQuerySet(models.QuerySet):
    def sealed(self) -> TokenVersionQuerySet:
        """The versions that still hold a ciphertext (not destroyed)."""
        return self.filter(destroyed_at__isnull=True)

    def newest_first(self) -> TokenVersionQuerySet:
        return self.order_by("-version")


class TokenVersion(models.Model):
    """One value a token has had: its ciphertext, still bound (AES-GCM associated data) to its
    token and version number, so it decrypts only as that version of that token. The current
    version's ciphertext is the token's own; a token keeps the last COFFER_TOKEN_VERSIONS.

    Never shows a value: History lists number, who set it and when, the hint, what it restored.
    """

    token = models.ForeignKey(Token, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    ciphertext = models.BinaryField(editable=False)
    value_hint = models.CharField(max_length=4, blank=True, editable=False)
    set_at = models.DateTimeField(default=timezone.now)
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    restored_from = models.PositiveIntegerField(
        null=True, blank=True, help_text="The version whose value this one restored."
    )
    destroyed_at = models.DateTimeField(null=True, blank=True)
    destroyed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = TokenVersionQuerySet.as_manager()

    class Meta:
        ordering = ["token", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["token", "version"], name="unique_token_version"),
        ]

    def __str__(self) -> str:
        return f"version {self.number} of {self.token.key}"

    @property
    def number(self) -> int:
        """This version as people count it (from 1)."""
        return version_number(self.version)

    @property
    def restored_from_number(self) -> int | None:
        return None if self.restored_from is None else version_number(self.restored_from)

    @property
    def hint(self) -> str:
        return f"••••{self.value_hint}" if self.value_hint else ""

    @property
    def is_destroyed(self) -> bool:
        return self.destroyed_at is not None

    def sealed(self) -> _SealedVersion:
        """This version as the one decryption path (`reveal_each`) takes it."""
        return _SealedVersion(
            pk=self.token_id,
            key=self.token.key,
            ciphertext=self.ciphertext,
            value_version=self.version,
            workspace=self.token.workspace,
            workspace_id=self.token.workspace_id,
        )

    def reveal(self) -> str:
        """The plaintext of this version (restoring it, or checking a backup decrypts). Never
        render or log it. Raises crypto.CryptoError naming the token, its workspace and the
        master key id; a destroyed version has nothing left to decrypt."""
        if self.is_destroyed:
            raise crypto.CryptoError(
                f"version {self.number} of token {self.token.key} was destroyed."
            )
        ((_, value),) = reveal_each([self.sealed()])
        return value


# --- usage: where each token is resolved ----------------------------------------------------

RECENT_USE_DAYS = 30  # "Used in the last 30 days by" in the Revoke and Delete dialogs
RECENT_CONTEXTS_SHOWN = 10
UNUSED_FILTER_DAYS = (30, 90)  # the Tokens table's "Unused for N days" filter


@dataclass(frozen=True)
class RecentUse:
    """What the Revoke and Delete dialogs say about where a token is used (`token.recent_use`)."""

    contexts: list[TokenUsage]  # the first RECENT_CONTEXTS_SHOWN, most recent first
    more: int  # how many more contexts used it in that time
    ever_used: bool
    unrecorded: bool = False  # used lately, but before Coffer recorded where
    days: int = RECENT_USE_DAYS

    @classmethod
    def of(cls, token: Token, contexts: list[TokenUsage], more: int, at: dt.datetime) -> RecentUse:
        """From the first contexts that used `token` lately (and how many more there are)."""
        since = at - dt.timedelta(days=RECENT_USE_DAYS)
        return cls(
            contexts=contexts,
            more=more,
            ever_used=token.last_used_at is not None or bool(contexts),
            unrecorded=not contexts and (token.last_used_at or since) > since,
        )

    @property
    def lately(self) -> bool:
        """Resolved in the last `days`: revoking or deleting it breaks something now."""
        return bool(self.contexts) or self.unrecorded


class TokenUsageQuerySet(models.QuerySet):
    def since(self, moment: dt.datetime) -> TokenUsageQuerySet:
        return self.filter(last_used_at__gte=moment)

    def recent(self, at: dt.datetime | None = None) -> TokenUsageQuerySet:
        """Used in the last RECENT_USE_DAYS, most recent first."""
        at = at or timezone.now()
        return self.since(at - dt.timedelta(days=RECENT_USE_DAYS)).latest_first()

    def latest_first(self) -> TokenUsageQuerySet:
        return self.order_by("-last_used_at", "-pk")


class TokenUsage(models.Model):
    """How often, and when first and last, one token was resolved in one context: environment,
    product, app, who resolved it (an access key, or the OS user or `--actor` of
    `manage.py resolve`) and the source's name. Written by the resolver in the same transaction
    as its audit event, one upsert per resolve (tokens/references/resolve.py); `context` is a digest
    of those fields, so each context is one row per token. Names are kept as they were when
    used (as the audit trail keeps them): a context outlives a deleted access key or app."""

    token = models.ForeignKey(Token, on_delete=models.CASCADE, related_name="usages")
    context = models.CharField(max_length=64, editable=False)
    environment = models.CharField(max_length=100)
    product = models.CharField(max_length=100, blank=True)
    app = models.CharField(max_length=100, blank=True)
    access_key = models.CharField(max_length=100, blank=True)
    actor = models.CharField(max_length=150)
    source = models.CharField(max_length=255)
    use_count = models.PositiveBigIntegerField(default=1)
    first_used_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = TokenUsageQuerySet.as_manager()

    class Meta:
        ordering = ["-last_used_at"]
        constraints = [
            models.UniqueConstraint(fields=["token", "context"], name="unique_token_usage"),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def who(self) -> str:
        """An access key, a workload identity (its credential resolves under the identity's
        name), or the OS user or `--actor` of `manage.py resolve`."""
        if self.access_key:
            return f"access key {self.access_key}"
        return self.actor

    @property
    def source_label(self) -> str:
        """The source as a person says it: "API values request", "resolve of deploy.yaml"."""
        return source_label(self.source)

    @property
    def label(self) -> str:
        """`Checkout · Production · access key ci-deploy · API values request`: product and app
        (when given), environment, who, source."""
        parts = [self.product, self.app, self.environment, self.who, self.source_label]
        return " · ".join(part for part in parts if part)


class UseRecord(models.Model):
    """One read, appended in the read's own transaction (with its audit event): which tokens it
    read, in which context, by whom, from which source, and the API credential and address
    that read them. The read path writes only this row; `tokens.usage.roll_up` folds the rows
    into `TokenUsage`, each token's `last_used_at` and the credential's use count, then deletes
    them (see tokens/usage.py for when). Holds no value: ids and names only."""

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField()
    # The tokens read, their ids as hex, comma-separated (empty for a 304: only the credential
    # was used).
    token_ids = models.TextField(blank=True)
    environment_id = models.BigIntegerField()
    product_id = models.BigIntegerField(null=True)
    app_id = models.BigIntegerField(null=True)
    environment = models.CharField(max_length=100)
    product = models.CharField(max_length=100, blank=True)
    app = models.CharField(max_length=100, blank=True)
    access_key = models.CharField(max_length=100, blank=True)
    actor = models.CharField(max_length=150)
    source = models.CharField(max_length=255)
    # The API credential, as "<kind>:<id>" (`tokens.usage.credential_ref`), or "" for an
    # operator's run; with the address it called from.
    credential = models.CharField(max_length=64, blank=True)
    address = models.GenericIPAddressField(null=True)

    def __str__(self) -> str:
        return f"read at {self.at:%Y-%m-%d %H:%M:%S} UTC in {self.environment}"

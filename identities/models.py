"""Workload identities: a CI job signs in with its own OIDC token instead of a stored key.

A `WorkloadIdentity` trusts one OIDC issuer for one audience when the token's claims meet its
conditions, and is bound to a use context exactly like an access key (an environment and
optionally a product and/or an app, an optional expiry, optional allowed networks). A job
exchanges a token that passes every check (identities/oidc.py) for a `WorkloadCredential`: a
random `cfw_` secret shown once in the exchange's answer, stored as its SHA-256, usable as
`Authorization: Bearer` on the API for COFFER_OIDC_CREDENTIAL_MINUTES. The credential answers
what the API asks of an access key (`context`, `allows_address`, `hold`, ...), so every
rule of the API is applied once. Deleting the identity deletes its credentials; each use also
re-checks the credential and its identity in the database (`hold`).

Claim conditions: (claim, pattern) pairs, all of which must hold. A pattern without `*` or `?`
is an exact, case-sensitive match; `*` matches any run of characters except `/`, `**` any run
including `/`, `?` one character except `/` (so `refs/heads/*` matches `refs/heads/main`, not
`refs/heads/feature/x`). Only string claims match.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.db.models import F, Q
from django.utils import timezone

from access import keys
from access.context import NAME_MAX_LENGTH, BoundContext, limit_errors
from access.models import add_uses, uses_of_kind
from audit.models import AuditAction, AuditEvent
from lib import prepared
from lib.safe_fetch import UnsafeURL, check_url
from tokens.models import DESCRIPTION_MAX_LENGTH, UseContext, description_errors
from tokens.usage import CredentialUse, credential_ref
from workspaces.models import App, Environment, Product, Workspace

if TYPE_CHECKING:
    from django.contrib.auth.models import User

CREDENTIAL_PREFIX = "cfw_"
ISSUER_MAX_LENGTH = 255
AUDIENCE_MAX_LENGTH = 255
MAX_CONDITIONS = 10
PATTERN_MAX_LENGTH = 200
CLAIM_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")
ACTOR_PREFIX = "workload identity "  # how the audit trail and usage name an identity


@dataclass(frozen=True)
class Preset:
    label: str
    issuer: str
    claims: tuple[str, ...]


PRESETS = {
    "github": Preset(
        "GitHub Actions",
        "https://token.actions.githubusercontent.com",
        ("repository", "ref", "environment", "sub"),
    ),
    "gitlab": Preset(
        "GitLab CI", "https://gitlab.com", ("project_path", "ref", "environment", "sub")
    ),
}


# --- rules -----------------------------------------------------------------------------------


@cache
def _glob(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*|\*|\?)", pattern)
    wild = {"**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wild.get(part, re.escape(part)) for part in parts), re.DOTALL)


def pattern_matches(pattern: str, value: object) -> bool:
    """Whether claim `value` meets `pattern` (see the module docstring)."""
    if not isinstance(value, str):
        return False
    if not any(mark in pattern for mark in "*?"):
        return value == pattern
    return _glob(pattern).fullmatch(value) is not None


def condition_errors(conditions: object) -> tuple[list[dict[str, str]], list[str]]:
    """(normalised conditions, messages): 1 to MAX_CONDITIONS {"claim", "pattern"} pairs, at
    least one that is more than wildcards (a condition-free identity would trust every job the
    issuer signs for, anyone's)."""
    if not isinstance(conditions, list | tuple):
        return [], ["The conditions are a list of claim and pattern pairs."]
    normalised: list[dict[str, str]] = []
    errors: list[str] = []
    for item in conditions:
        claim = item.get("claim") if isinstance(item, dict) else None
        pattern = item.get("pattern") if isinstance(item, dict) else None
        if not isinstance(claim, str) or not CLAIM_RE.match(claim.strip()):
            errors.append("A claim name is 1-64 letters, digits, _ . : or -, e.g. repository.")
            continue
        if (
            not isinstance(pattern, str)
            or not pattern.strip()
            or len(pattern) > PATTERN_MAX_LENGTH
            or not pattern.isprintable()
        ):
            errors.append(
                f"The pattern for {claim.strip()} is 1 to {PATTERN_MAX_LENGTH} "
                "printable characters."
            )
            continue
        normalised.append({"claim": claim.strip(), "pattern": pattern.strip()})
    if not errors and not normalised:
        errors.append("Add at least one claim condition (e.g. repository = my-org/my-repo).")
    if len(normalised) > MAX_CONDITIONS:
        errors.append(f"At most {MAX_CONDITIONS} claim conditions.")
    if normalised and all(set(c["pattern"]) <= set("*?/") for c in normalised):
        errors.append("At least one condition must name something (not only wildcards).")
    return normalised, errors


def issuer_errors(issuer: object) -> list[str]:
    """Messages for an issuer URL: https (webhook rules, checked again at each fetch), no query,
    fragment or trailing slash; http only with COFFER_OIDC_ALLOW_INSECURE_ISSUERS."""
    if not isinstance(issuer, str) or not issuer or len(issuer) > ISSUER_MAX_LENGTH:
        return [f"The issuer is a URL of at most {ISSUER_MAX_LENGTH} characters."]
    parts = urlsplit(issuer)
    if parts.query or parts.fragment or issuer.endswith("/"):
        return ["The issuer URL has no query, fragment or trailing slash (as the token's iss)."]
    if parts.scheme == "http" and settings.COFFER_OIDC_ALLOW_INSECURE_ISSUERS and parts.hostname:
        return []
    try:
        check_url(issuer)
    except UnsafeURL as refused:
        return [f"Issuer: {refused}"]
    return []


# --- identities ------------------------------------------------------------------------------


class WorkloadIdentityQuerySet(models.QuerySet):
    def for_workspace(self, workspace: Workspace) -> WorkloadIdentityQuerySet:
        return self.filter(workspace=workspace)

    def usable(self, at: dt.datetime | None = None) -> WorkloadIdentityQuerySet:
        at = at or timezone.now()
        return self.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=at))

    def for_table(self) -> WorkloadIdentityQuerySet:
        return self.select_related("environment", "product", "app").order_by("name", "pk")

    def named(self, reference: object) -> WorkloadIdentity | None:
        """The identity `workspace-slug/name` names, with its context, or None."""
        if not isinstance(reference, str) or len(reference) > 200:
            return None
        slug, _, name = reference.partition("/")
        return cast(
            "WorkloadIdentity | None",
            self.select_related("workspace", "environment", "product", "app")
            .filter(workspace__slug=slug, name=name)
            .first(),
        )


class WorkloadIdentityManager(models.Manager.from_queryset(WorkloadIdentityQuerySet)):  # type: ignore[misc]
    def create_identity(
        self,
        *,
        workspace: Workspace,
        name: str,
        issuer: str,
        audience: str,
        conditions: list[dict[str, str]],
        environment: Environment,
        product: Product | None = None,
        app: App | None = None,
        expires: int | dt.date | None = None,
        allowed_networks: list[str] | tuple[str, ...] = (),
        description: str = "",
        by: User | None = None,
    ) -> WorkloadIdentity:
        """Validate and store a new identity and record who made it; ValidationError with a
        message per broken rule, storing nothing."""
        now = timezone.now()
        expires_at, networks, limit_messages = limit_errors(expires, allowed_networks, now)
        normalised, condition_messages = condition_errors(conditions)
        identity = WorkloadIdentity(
            workspace=workspace,
            name=name.strip() if isinstance(name, str) else name,
            description=description,
            issuer=issuer.strip() if isinstance(issuer, str) else issuer,
            audience=audience.strip() if isinstance(audience, str) else audience,
            conditions=normalised,
            environment=environment,
            product=product,
            app=app,
            allowed_networks=networks,
            created_at=now,
            created_by=by if getattr(by, "pk", None) else None,
            expires_at=expires_at,
        )
        errors = identity.rule_errors() | limit_messages
        if condition_messages:
            errors["conditions"] = condition_messages
        if errors:
            raise ValidationError(errors)
        identity.insert(AuditAction.WORKLOAD_IDENTITY_CREATED, by=by)
        return identity


class WorkloadIdentity(BoundContext):
    noun, kind, a_kind = "identity", "workload identity", "A workload identity"

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="workload_identities"
    )
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    description = models.CharField(max_length=DESCRIPTION_MAX_LENGTH, blank=True)
    issuer = models.CharField("issuer URL", max_length=ISSUER_MAX_LENGTH)
    audience = models.CharField(max_length=AUDIENCE_MAX_LENGTH)
    conditions = models.JSONField(
        "claim conditions",
        default=list,
        help_text='[{"claim": "repository", "pattern": "my-org/my-repo"}, ...]: all must match.',
    )
    # The use context, as an access key's (and, like it, blocking the deletion of its items).
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="workload_identities"
    )
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.CASCADE, related_name="workload_identities"
    )
    app = models.ForeignKey(
        App, null=True, blank=True, on_delete=models.CASCADE, related_name="workload_identities"
    )
    allowed_networks = models.JSONField("allowed source addresses", default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_exchanged_at = models.DateTimeField(null=True, blank=True, editable=False)
    exchange_count = models.PositiveBigIntegerField(default=0, editable=False)

    objects = WorkloadIdentityManager()

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "workload identities"
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "name"], name="unique_workload_identity_name"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def reference(self) -> str:
        """How the exchange names it: `workspace-slug/name`."""
        return f"{self.workspace.slug}/{self.name}"

    @property
    def actor_name(self) -> str:
        return f"{ACTOR_PREFIX}{self.name}"[:150]

    def unmet_condition(self, claims: dict[str, Any]) -> str | None:
        """The first condition's claim the token's `claims` do not meet, or None."""
        for condition in self.conditions:
            if not pattern_matches(condition["pattern"], claims.get(condition["claim"])):
                return condition["claim"]
        return None

    def rule_errors(self) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        if not isinstance(self.name, str) or not self.name:
            errors["name"] = ["Enter a name for the workload identity."]
        elif len(self.name) > NAME_MAX_LENGTH or "/" in self.name or not self.name.isprintable():
            errors["name"] = [
                f"The name is at most {NAME_MAX_LENGTH} printable characters, without “/”."
            ]
        elif self.name_is_taken():
            errors["name"] = [self.duplicate_name_message()]
        if messages := description_errors(self.description):
            errors["description"] = messages
        if messages := issuer_errors(self.issuer):
            errors["issuer"] = messages
        audience = self.audience
        if not isinstance(audience, str) or not audience or len(audience) > AUDIENCE_MAX_LENGTH:
            errors["audience"] = [f"The audience is 1 to {AUDIENCE_MAX_LENGTH} characters."]
        elif not audience.isprintable():
            errors["audience"] = ["The audience must be printable text."]
        return errors | self.context_errors()

    def delete_identity(self, *, by: User | None = None) -> None:
        """Delete it and, with it, every credential it issued: the next request with one is
        refused. The audit trail keeps its name."""
        self.delete_recorded(AuditAction.WORKLOAD_IDENTITY_DELETED, by=by)

    def record(
        self, action: str, *, by: User | None = None, extra: dict | None = None
    ) -> AuditEvent:
        detail: dict[str, Any] = {"workload_identity": self.name, "issuer": self.issuer}
        detail |= self.context_detail()
        detail.update(extra or {})
        actor_name = self.actor_name if by is None else ""
        return AuditEvent.record(
            self.workspace, action, by=by, actor_name=actor_name, detail=detail
        )


# --- short-lived credentials -----------------------------------------------------------------


class WorkloadCredentialManager(models.Manager["WorkloadCredential"]):
    def issue(
        self, identity: WorkloadIdentity, claims: dict[str, Any], *, address: str | None
    ) -> tuple[WorkloadCredential, str]:
        """A new credential for `identity` (whose token passed every check), its exchange
        audited and counted: (its row, the credential itself, shown once)."""
        now = timezone.now()
        expires_at = now + dt.timedelta(minutes=settings.COFFER_OIDC_CREDENTIAL_MINUTES)
        if identity.expires_at is not None:
            expires_at = min(expires_at, identity.expires_at)
        secret = keys.generate(CREDENTIAL_PREFIX)
        subject = claims.get("sub")
        credential = WorkloadCredential(
            identity=identity,
            identifier=keys.identifier(secret),
            key_hash=keys.hash_key(secret),
            subject=subject[:255] if isinstance(subject, str) else "",
            created_at=now,
            expires_at=expires_at,
        )
        with transaction.atomic():
            # Expired credentials of the identity are only clutter: drop them as we go.
            self.filter(identity=identity, expires_at__lt=now - dt.timedelta(days=1)).delete()
            credential.save(force_insert=True)
            WorkloadIdentity.objects.filter(pk=identity.pk).update(
                exchange_count=F("exchange_count") + 1, last_exchanged_at=now
            )
            identity.record(
                AuditAction.WORKLOAD_IDENTITY_EXCHANGED,
                extra={
                    "credential": f"{credential.identifier}…",
                    "subject": credential.subject,
                    "client_address": address,
                    "expires": f"{expires_at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC",
                },
            )
        return credential, secret

    def authenticate(self, key: str) -> WorkloadCredential | None:
        return self.authenticate_reading(key)[0]

    def authenticate_reading(
        self, key: str, scalar: str = "NULL", params: tuple[Any, ...] = ()
    ) -> tuple[WorkloadCredential | None, Any]:
        """As `AccessKey.objects.authenticate_reading`: (the usable credential with its
        identity and context, or None; the scalar subquery's value)."""
        value = None
        if scalar != "NULL":
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT {scalar}", list(params))
                value = cursor.fetchone()[0]
        if not keys.is_well_formed(key, CREDENTIAL_PREFIX):
            return None, value
        found = (
            self.select_related(
                "identity__workspace",
                "identity__environment",
                "identity__product",
                "identity__app",
            )
            .filter(key_hash=keys.hash_key(key))
            .first()
        )
        if found is None or not found.is_usable():
            return None, value
        if found.identity.environment.workspace_id != found.identity.workspace_id:
            return None, value
        return found, value


class WorkloadCredential(models.Model):
    """A short-lived API credential an identity issued in exchange for a verified token."""

    identity = models.ForeignKey(
        WorkloadIdentity, on_delete=models.CASCADE, related_name="credentials"
    )
    identifier = models.CharField(max_length=keys.IDENTIFIER_LENGTH, editable=False)
    key_hash = models.CharField("SHA-256 of the credential", max_length=64, unique=True)
    subject = models.CharField("the token's sub", max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_from = models.GenericIPAddressField(null=True, blank=True)
    use_count = models.PositiveBigIntegerField(default=0)

    objects = WorkloadCredentialManager()

    def __str__(self) -> str:
        return f"{self.identifier}… of {self.identity_id}"

    def is_usable(self, at: dt.datetime | None = None) -> bool:
        at = at or timezone.now()
        return self.expires_at > at and not self.identity.is_expired(at)

    # --- what the API asks of a credential (as of an access key) -------------------------

    @property
    def name(self) -> str:
        return self.identity.name

    @property
    def workspace(self):
        return self.identity.workspace

    @property
    def context(self) -> UseContext:
        return self.identity.context

    @property
    def actor_name(self) -> str:
        return self.identity.actor_name

    @property
    def rate_limit_bucket(self) -> str:
        """One budget per identity, however many credentials it issued."""
        return f"identity:{self.identity_id}"

    @property
    def usage_name(self) -> str:
        """A token's usage rows name access keys only; the actor names the identity."""
        return ""

    @property
    def audit_names(self) -> dict[str, str]:
        return {"workload_identity": self.name, "credential": f"{self.identifier}…"}

    def allows_address(self, address: str | None) -> bool:
        return self.identity.allows_address(address)

    @property
    def usage_ref(self) -> str:
        return credential_ref("workload_credential", self.pk)

    def hold(self, *, at: dt.datetime) -> bool:
        """Whether the credential and its identity still hold at `at`, asked of the database;
        inside a transaction on PostgreSQL the credential's row is locked FOR KEY SHARE until the
        end (deleting the identity deletes that row, so it waits for the requests in flight;
        they do not wait for each other). The use is counted from the request's usage record."""
        found = WorkloadCredential.objects.filter(
            pk=self.pk,
            expires_at__gt=at,
            identity__in=WorkloadIdentity.objects.usable(at).filter(pk=self.identity_id),
        ).values_list("pk")
        sql, params = found.query.sql_with_params()
        if connection.vendor == "postgresql":
            sql += " FOR KEY SHARE"
        with prepared.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone() is not None


def count_uses(uses: dict[str, CredentialUse]) -> None:
    """The workload credentials' share of `tokens.usage.credentials_used` (see
    `access.models.count_uses`)."""
    for pk, use in uses_of_kind(uses, "workload_credential"):
        add_uses(WorkloadCredential, pk, use)

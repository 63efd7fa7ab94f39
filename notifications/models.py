"""Notifications: which expiry reminders went out, webhooks, their deliveries and attempts.

Reminders are claimed one row per token, threshold and expiry (`ReminderClaim`): the unique
constraint makes a second run, or a second worker at the same moment, skip what was sent.
A webhook's signing secret is stored only encrypted under its workspace's data key (it must be
read back to sign), and shown once, when it is made or rotated.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from keys import crypto
from keys.models import WorkspaceKey
from keys.sealed import Sealed
from tokens.models import Token
from workspaces.models import Workspace

if TYPE_CHECKING:
    from django.contrib.auth.models import User

RESPONSE_EXCERPT_BYTES = 1024
URL_MAX_LENGTH = 2000
SECRET_PREFIX = "whsec_"


def new_signing_secret() -> str:
    """A webhook signing secret: `whsec_` and 32 random bytes, URL-safe base64."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


class EventType(models.TextChoices):
    TOKEN_CREATED = "token.created", "Token created"
    TOKEN_UPDATED = "token.updated", "Token updated"
    TOKEN_VALUE_CHANGED = "token.value_changed", "Token value changed"
    TOKEN_REVOKED = "token.revoked", "Token revoked"
    TOKEN_DELETED = "token.deleted", "Token deleted"
    TOKEN_EXPIRING = "token.expiring", "Token expiring"
    TOKEN_EXPIRED = "token.expired", "Token expired"
    ACCESS_KEY_CREATED = "access_key.created", "Access key created"
    ACCESS_KEY_REVOKED = "access_key.revoked", "Access key revoked"


class ReminderClaim(models.Model):
    """A reminder (threshold days before `expires_at`; -1: "expired") that was handled once."""

    EXPIRED = -1

    token = models.ForeignKey(Token, on_delete=models.CASCADE, related_name="+")
    threshold = models.SmallIntegerField()
    expires_at = models.DateTimeField()
    claimed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["token", "threshold", "expires_at"], name="one_reminder_per_threshold"
            )
        ]

    def __str__(self) -> str:
        return f"{self.token_id} {self.threshold} days before {self.expires_at:%Y-%m-%d}"


class WebhookQuerySet(models.QuerySet["Webhook"]):
    def for_workspace(self, workspace: Workspace) -> WebhookQuerySet:
        return self.filter(workspace=workspace)

    def listening_to(self, workspace_id: int, event_type: str) -> list[Webhook]:
        """The workspace's active webhooks subscribed to `event_type`. The events are a JSON
        list, matched here rather than in SQL: SQLite has no JSON containment lookup."""
        hooks = self.filter(workspace_id=workspace_id, active=True)
        return [hook for hook in hooks if event_type in hook.events]


class Webhook(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField("Payload URL", max_length=URL_MAX_LENGTH)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list)
    active = models.BooleanField(default=True)
    paused_reason = models.CharField(max_length=200, blank=True)
    secret_ciphertext = models.BinaryField(editable=False)
    secret_prefix = models.CharField(max_length=12, editable=False)  # "whsec_AbCd", for people
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = WebhookQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.url

    @property
    def event_labels(self) -> list[str]:
        return [EventType(event).label for event in self.events if event in EventType.values]

    def listens_to(self, event_type: str) -> bool:
        return self.active and event_type in self.events

    @sensitive_variables("secret", "dek")
    def set_secret(self, secret: str) -> None:
        dek = WorkspaceKey.dek_for(
            self.workspace, label=f"webhook in workspace {self.workspace.slug}"
        )
        self.secret_ciphertext = crypto.encrypt(
            dek, secret, aad=crypto.webhook_secret_aad(self.workspace_id, self.pk)
        )
        self.secret_prefix = secret[: len(SECRET_PREFIX) + 4]

    @sensitive_variables("secret")
    def rotate_secret(self) -> str:
        """Give the webhook a new signing secret and return it (shown this once). It signs
        every attempt from now on, retries of earlier events included: the old one is gone."""
        secret = new_signing_secret()
        self.set_secret(secret)
        self.save(update_fields=["secret_ciphertext", "secret_prefix"])
        return secret

    @sensitive_variables("dek")
    def signing_secret(self) -> str:
        """The plaintext secret, to sign one delivery; never render or log it."""
        label = f"webhook {self.pk} in workspace {self.workspace.slug}"
        record = WorkspaceKey.existing_for(self.workspace, label=label)
        dek = record.unwrap(label=label)
        return crypto.decrypt(
            dek,
            bytes(self.secret_ciphertext),
            aad=crypto.webhook_secret_aad(self.workspace_id, self.pk),
            label=f"{label} (master key {record.kek_id!r})",
        )

    def owners(self) -> list[User]:
        from workspaces.models import Role

        return [
            membership.user
            for membership in self.workspace.memberships.filter(role=Role.OWNER).select_related(
                "user"
            )
        ]


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RETRYING = "retrying", "Retrying"
    SUCCEEDED = "succeeded", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """One event for one webhook: its signed body, and where its attempts stand."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.UUIDField()
    event_type = models.CharField(max_length=32, choices=EventType.choices)
    body = models.TextField()  # the JSON payload exactly as signed and sent
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempt_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    redelivery_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["webhook", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.event_type} to {self.webhook_id}"

    @property
    def is_final(self) -> bool:
        return self.status in (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED)

    def retry_deadline(self) -> dt.datetime | None:
        if self.first_attempt_at is None:
            return None
        return self.first_attempt_at + dt.timedelta(seconds=settings.COFFER_WEBHOOK_RETRY_SECONDS)


class WebhookAttempt(models.Model):
    """One try: when, the answer's status (None: no answer), how long, its first 1 KB."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    attempted_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    response_excerpt = models.TextField(blank=True)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-attempted_at", "-id"]

    def __str__(self) -> str:
        return f"{self.status_code or self.error} at {self.attempted_at:%Y-%m-%d %H:%M:%S}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def sealed_webhook_secrets(using: str) -> Iterator[Sealed]:
    """Each webhook's signing secret (it must be read back to sign deliveries): a source of
    keys/sealed.py, registered by NotificationsConfig.ready."""
    hooks = Webhook.objects.using(using).only("id", "workspace_id", "url", "secret_ciphertext")
    for hook in hooks.order_by("workspace_id", "created_at", "id").iterator(chunk_size=500):
        yield Sealed(
            f"signing secret of webhook {hook.url}",
            partial(
                crypto.decrypt,
                blob=bytes(hook.secret_ciphertext),
                aad=crypto.webhook_secret_aad(hook.workspace_id, hook.pk),
            ),
            workspace_id=hook.workspace_id,
        )

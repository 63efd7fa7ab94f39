"""Invitations: how a person joins a workspace (nobody is added without accepting).

An owner invites an email address with a role. Coffer mails a link holding a random key; only
the SHA-256 of the key is stored (the key has 256 bits, so a fast hash is enough), so a database
copy opens no invitation. A link is valid COFFER_INVITATION_DAYS (7) days and works once; an
owner can resend it (a new key: the old link stops working) or revoke it. Opening it, a person
without an account creates one and joins; a signed-in person accepts and joins.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from workspaces.models import Membership, Role, Workspace

if TYPE_CHECKING:
    from django.contrib.auth.models import User

KEY_BYTES = 32


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class InvitationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"


class InvitationQuerySet(models.QuerySet):
    def for_workspace(self, workspace: Workspace) -> InvitationQuerySet:
        return self.filter(workspace=workspace)

    def pending(self) -> InvitationQuerySet:
        """Neither accepted nor revoked, and not expired."""
        return self.filter(
            accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
        )


class Invitation(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField("Email", max_length=254)
    role = models.CharField("Role", max_length=10, choices=Role.choices, default=Role.VIEWER)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-sent_at", "-id"]

    def __str__(self) -> str:
        return f"Invitation of {self.email} to {self.workspace} ({self.get_role_display()})"

    # --- state ------------------------------------------------------------------------------

    @property
    def status(self) -> InvitationStatus:
        if self.accepted_at:
            return InvitationStatus.ACCEPTED
        if self.revoked_at:
            return InvitationStatus.REVOKED
        if self.expires_at <= timezone.now():
            return InvitationStatus.EXPIRED
        return InvitationStatus.PENDING

    @property
    def is_pending(self) -> bool:
        return self.status == InvitationStatus.PENDING

    def unusable_reason(self) -> str | None:
        """Why this link cannot be used any more (the page says so), or None."""
        return {
            InvitationStatus.ACCEPTED: "This invitation has already been used.",
            InvitationStatus.REVOKED: "This invitation was revoked by an owner of the workspace.",
            InvitationStatus.EXPIRED: "This invitation has expired.",
        }.get(self.status)

    # --- lifecycle --------------------------------------------------------------------------

    @classmethod
    def find(cls, key: str) -> Invitation | None:
        """The invitation a link's key opens, whatever its state, or None."""
        if not isinstance(key, str) or not 20 <= len(key) <= 100:
            return None
        return cls.objects.select_related("workspace").filter(key_hash=hash_key(key)).first()

    @classmethod
    def find_by_hash(cls, key_hash: str) -> Invitation | None:
        if not isinstance(key_hash, str) or len(key_hash) != 64:
            return None
        return cls.objects.select_related("workspace").filter(key_hash=key_hash).first()

    def _new_key(self) -> str:
        key = secrets.token_urlsafe(KEY_BYTES)
        self.key_hash = hash_key(key)
        self.sent_at = timezone.now()
        self.expires_at = self.sent_at + timedelta(days=settings.COFFER_INVITATION_DAYS)
        return key

    @classmethod
    def create(
        cls, workspace: Workspace, *, email: str, role: str, by: User
    ) -> tuple[Invitation, str]:
        """A new invitation and its key (shown once, mailed, never stored), audited."""
        invitation = cls(workspace=workspace, email=email.strip(), role=Role(role), invited_by=by)
        key = invitation._new_key()
        with transaction.atomic():
            invitation.save(force_insert=True)
            invitation._record(AuditAction.MEMBER_INVITED, by)
        return invitation, key

    def resend(self, *, by: User) -> str:
        """A new key and 7 more days; the old link stops working. Only a pending or expired one."""
        if self.accepted_at or self.revoked_at:
            raise ValidationError(self.unusable_reason() or "This invitation cannot be resent.")
        key = self._new_key()
        with transaction.atomic():
            self.save(update_fields=["key_hash", "sent_at", "expires_at"])
            self._record(AuditAction.MEMBER_INVITED, by, resent=True)
        return key

    def revoke(self, *, by: User) -> None:
        with transaction.atomic():
            updated = Invitation.objects.filter(
                pk=self.pk, accepted_at__isnull=True, revoked_at__isnull=True
            ).update(revoked_at=timezone.now())
            if not updated:
                raise ValidationError("This invitation was already used or revoked.")
            self.revoked_at = timezone.now()
            self._record(AuditAction.INVITATION_REVOKED, by)

    def accept(self, user: User) -> Membership:
        """Make `user` a member with the invited role; the link is used up.

        ValidationError if the link cannot be used (used, revoked, expired: checked again under
        the update, so two tabs cannot both accept) or the user is a member already.
        """
        with transaction.atomic():
            now = timezone.now()
            claimed = Invitation.objects.filter(
                pk=self.pk, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
            ).update(accepted_at=now, accepted_by=user)
            if not claimed:
                self.refresh_from_db()
                raise ValidationError(self.unusable_reason() or "This invitation cannot be used.")
            if Membership.objects.filter(workspace=self.workspace, user=user).exists():
                raise ValidationError(f"You are already a member of {self.workspace.name}.")
            try:
                with transaction.atomic():
                    membership = Membership.objects.create(
                        workspace=self.workspace, user=user, role=self.role
                    )
            except IntegrityError:
                raise ValidationError(
                    f"You are already a member of {self.workspace.name}."
                ) from None
            self.accepted_at, self.accepted_by = now, user
            AuditEvent.record(
                self.workspace,
                AuditAction.INVITATION_ACCEPTED,
                by=user,
                detail={"member": user.get_username(), "email": self.email, "role": self.role},
            )
        return membership

    def _record(self, action: str, by: User | None, **extra: object) -> None:
        AuditEvent.record(
            self.workspace, action, by=by, detail={"email": self.email, "role": self.role, **extra}
        )


class SharedCacheEntry(models.Model):
    """The table of Django's database cache (CACHES in config/settings.py), made by migrate so a
    fresh install needs no `createcachetable`. allauth keeps there what every app process must
    see: used two-factor codes (a code works once, whichever process checks it) and its rate
    limits (password-reset mails, sign-ups, re-authentication). Read and written only by
    Django's DatabaseCache, never through this model; unused when COFFER_RATELIMIT_REDIS_URL
    puts the cache on Redis. The columns are the ones `createcachetable` makes."""

    cache_key = models.CharField(max_length=255, primary_key=True)
    value = models.TextField()
    expires = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "coffer_cache"

    def __str__(self) -> str:
        return self.cache_key

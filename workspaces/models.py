"""Workspaces and what lives in them: members, environments, products and apps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils.text import slugify

from audit.models import AuditAction, AuditEvent

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User
    from django.db.models.fields.related_descriptors import RelatedManager

DEFAULT_ENVIRONMENTS = [("Production", "production"), ("Sandbox", "sandbox")]
LAST_OWNER_MESSAGE = "A workspace needs at least one owner. Make someone else an owner first."


class WorkspaceQuerySet(models.QuerySet):
    def for_user(self, user: User | AnonymousUser) -> WorkspaceQuerySet:
        if not user.is_authenticated:
            return self.none()
        return self.filter(memberships__user=user)


class Workspace(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=50, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Expiry reminder mails (notifications/reminders.py); an owner turns them off on Reminders.
    reminders_enabled = models.BooleanField("Send expiry reminders", default=True)
    # Members without two-factor authentication are sent to set it up before any page of this
    # workspace (workspaces/access.py); its API access keys keep working.
    require_two_factor = models.BooleanField("Require two-factor authentication", default=False)
    # Members whose session did not sign in through single sign-on are asked to, before any
    # page of this workspace; owners may still enter with password and two-factor (break-glass,
    # workspaces/access.py). Access keys keep working.
    require_sso = models.BooleanField("Require single sign-on", default=False)

    objects = WorkspaceQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        """Every new workspace starts with the Production and Sandbox environments."""
        adding = self._state.adding
        with transaction.atomic():
            super().save(*args, **kwargs)
            if adding:
                Environment.objects.bulk_create(
                    Environment(workspace=self, name=name, slug=slug)
                    for name, slug in DEFAULT_ENVIRONMENTS
                )

    @classmethod
    def create_with_owner(cls, *, name: str, slug: str, owner: User) -> Workspace:
        with transaction.atomic():
            workspace = cls(name=name, slug=slug)
            workspace.save_audited(by=owner)
            Membership.objects.create(workspace=workspace, user=owner, role=Role.OWNER)
        return workspace

    def save_audited(self, *, by: User | None = None) -> None:
        """Save, recording "Workspace created" or, for a new name or slug, "Workspace renamed".

        A workspace's deletion cannot be recorded in its own trail (the trail goes with it): the
        Django admin, the only place it is deleted, records it in its own log.
        """
        with transaction.atomic():
            before = _stored_names(self)
            self.save()
            if before is None:
                AuditEvent.record(self, AuditAction.WORKSPACE_CREATED, by=by, detail=_names(self))
            elif changes := _name_changes(before, self):
                AuditEvent.record(self, AuditAction.WORKSPACE_RENAMED, by=by, detail=changes)

    REQUIREMENTS = {
        "require_two_factor": AuditAction.TWO_FACTOR_REQUIREMENT_CHANGED,
        "require_sso": AuditAction.SSO_REQUIREMENT_CHANGED,
    }

    def set_two_factor_requirement(self, required: bool, *, by: User) -> bool:
        """Require (or stop requiring) two-factor authentication; False if nothing changed."""
        return self.set_requirement("require_two_factor", required, by=by)

    def set_sso_requirement(self, required: bool, *, by: User) -> bool:
        """Require (or stop requiring) single sign-on; False if nothing changed."""
        return self.set_requirement("require_sso", required, by=by)

    def set_requirement(self, field: str, required: bool, *, by: User) -> bool:
        """Set one of REQUIREMENTS (a sign-in requirement) with its audit event; False if
        nothing changed."""
        action = self.REQUIREMENTS[field]
        with transaction.atomic():
            changed = (
                Workspace.objects.filter(pk=self.pk)
                .exclude(**{field: required})
                .update(**{field: required})
            )
            setattr(self, field, required)
            if changed:
                AuditEvent.record(
                    self, action, by=by, detail={"name": self.name, "required": required}
                )
        return bool(changed)


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    EDITOR = "editor", "Editor"
    VIEWER = "viewer", "Viewer"

    @property
    def rank(self) -> int:
        return {"viewer": 1, "editor": 2, "owner": 3}[self.value]

    def at_least(self, other: Role) -> bool:
        return self.rank >= Role(other).rank


class Membership(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)
    # This member's own choice: expiry reminder mails for this workspace (owners and editors).
    expiry_reminders = models.BooleanField("Email me expiry reminders", default=True)

    class Meta:
        ordering = ["workspace", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "user"], name="unique_membership"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.get_role_display()})"

    def can(self, role: Role) -> bool:
        return Role(self.role).at_least(role)

    @classmethod
    def add(
        cls, workspace: Workspace, user: User, role: str, *, by: User | None = None
    ) -> Membership:
        """Make `user` a member with `role`, recorded as "Member added"."""
        membership = cls(workspace=workspace, user=user, role=role)
        membership.create_audited(by=by)
        return membership

    def create_audited(self, *, by: User | None = None) -> None:
        """Save this new membership, recorded as "Member added"."""
        with transaction.atomic():
            self.save(force_insert=True)
            self._record(AuditAction.MEMBER_ADDED, by, role=Role(self.role).value)

    def _record(self, action: str, by: User | None, **detail: object) -> None:
        AuditEvent.record(
            self.workspace, action, by=by, detail={"member": self.user.get_username(), **detail}
        )

    def is_last_owner(self) -> bool:
        if self.role != Role.OWNER:
            return False
        owners = Membership.objects.filter(workspace_id=self.workspace_id, role=Role.OWNER)
        return not owners.exclude(pk=self.pk).exists()

    def removal_blocker(self) -> str | None:
        """Why this member cannot be removed now, or None (the confirmation dialog shows it)."""
        return LAST_OWNER_MESSAGE if self.is_last_owner() else None

    def role_change_blocker(self, role: str) -> str | None:
        """Why this member cannot get `role` now, or None (forms show it before saving)."""
        return LAST_OWNER_MESSAGE if role != Role.OWNER and self.is_last_owner() else None

    def change_role(self, role: str, *, by: User | None = None) -> bool:
        """Give this member `role`; False if they already had it.

        Raises ValidationError if that would leave the workspace without an owner, or if the
        member was removed meanwhile. Safe against concurrent changes: see _lock_for_change.
        """
        role = Role(role)
        with transaction.atomic():
            current, owners = self._lock_for_change()
            if current.role == role:
                self.role = role
                return False
            if role != Role.OWNER and current.role == Role.OWNER and owners == 1:
                raise ValidationError(LAST_OWNER_MESSAGE, code="last_owner")
            previous, current.role = current.role, role
            current.save(update_fields=["role"])
            self._record(AuditAction.MEMBER_ROLE_CHANGED, by, to=role.value, **{"from": previous})
        self.role = role
        return True

    def remove(self, *, by: User | None = None) -> None:
        """Remove this member; ValidationError if they are the workspace's last owner."""
        self._delete(AuditAction.MEMBER_REMOVED, by=by)

    def leave(self) -> None:
        """The member leaves of their own accord ("Member left"); never the last owner."""
        self._delete(AuditAction.MEMBER_LEFT, by=self.user)

    def _delete(self, action: str, *, by: User | None) -> None:
        with transaction.atomic():
            current, owners = self._lock_for_change()
            if current.role == Role.OWNER and owners == 1:
                raise ValidationError(LAST_OWNER_MESSAGE, code="last_owner")
            current.delete()
            self._record(action, by, role=current.role)

    def _lock_for_change(self) -> tuple[Membership, int]:
        """Lock the workspace's owner rows, then this row; this row as stored, and the owners.

        Two owners demoting or removing each other at the same moment both read "two owners"
        unless the owner rows are locked before the count: the second waits for the first to
        commit, then counts again and is refused. Every change locks the owner rows first and in
        one order (by id), so two changes cannot deadlock. On SQLite, which has no row locks,
        the database lock serialises writers instead.
        """
        owners = list(
            Membership.objects.select_for_update()
            .filter(workspace_id=self.workspace_id, role=Role.OWNER)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        try:
            return Membership.objects.select_for_update().get(pk=self.pk), len(owners)
        except Membership.DoesNotExist:
            raise ValidationError(
                f"{self.user.get_username()} is no longer a member of this workspace.",
                code="gone",
            ) from None

    @property
    def can_manage_tokens(self) -> bool:
        return self.can(Role.EDITOR)

    @property
    def can_manage_workspace(self) -> bool:
        return self.can(Role.OWNER)


class CatalogQuerySet(models.QuerySet):
    def with_token_counts(self) -> CatalogQuerySet:
        """Each item with `token_count`, by name (Meta.ordering is dropped once a query groups)."""
        return self.annotate(token_count=models.Count("tokens")).order_by("name")


class WorkspaceCatalogItem(models.Model):
    """A named thing that belongs to one workspace: an environment, a product or an app."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE)
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=50)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CatalogQuerySet.as_manager()

    if TYPE_CHECKING:
        # The reverse of Token.environments, .products and .apps (related_name="tokens"); of
        # Any, as this app imports nothing from tokens.
        tokens: RelatedManager[Any]
        # The reverse of AccessKey.environment, .product and .app (related_name="access_keys").
        access_keys: RelatedManager[Any]
        # ... and of WorkloadIdentity's (related_name="workload_identities").
        workload_identities: RelatedManager[Any]

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if not self.slug:
            self.slug = slugify(self.name)[:50]
        super().save(*args, **kwargs)

    def save_audited(self, *, by: User | None = None) -> None:
        """Save, recording "<Item> added" or, for a new name or slug, "<Item> renamed"."""
        with transaction.atomic():
            before = _stored_names(self)
            self.save()
            if before is None:
                self._record("created", by, _names(self))
            elif changes := _name_changes(before, self):
                self._record("renamed", by, changes)

    def delete_audited(self, *, by: User | None = None) -> None:
        """Delete, recording "<Item> deleted" (check deletion_blocker first)."""
        with transaction.atomic():
            self._record("deleted", by, _names(self))
            self.delete()

    def _record(self, change: str, by: User | None, detail: dict) -> None:
        action = AuditAction.catalog(str(self._meta.model_name), change)
        AuditEvent.record(self.workspace, action, by=by, detail=detail)

    def deletion_blocker(self) -> str | None:
        """Why this item cannot be deleted, or None.

        Tokens name it in their scope or environments; deleting it would silently widen or break
        them (a token scoped to one deleted product would become usable by every product).
        Access keys and workload identities are bound to it; deleting it would delete them and
        cut off whoever uses them.
        """
        noun = str(self._meta.verbose_name).capitalize()
        bound = (
            (self.tokens, "token", "tokens"),
            (self.access_keys, "access key", "access keys"),
            (self.workload_identities, "workload identity", "workload identities"),
        )
        for related, what, whats in bound:
            field = "key" if what == "token" else "name"
            names = list(related.order_by(field).values_list(field, flat=True)[:4])
            if not names:
                continue
            in_use = len(names) if len(names) < 4 else related.count()
            named = ", ".join(names[:3]) + (f" and {in_use - 3} more" if in_use > 3 else "")
            plural = what if in_use == 1 else whats
            if what == "token":
                remedy = f"Remove it from {'that token' if in_use == 1 else 'those tokens'}"
            else:
                remedy = f"Delete {f'that {what}' if in_use == 1 else f'those {whats}'}"
            return (
                f"{noun} “{self.name}” is used by {in_use} {plural} ({named}). "
                f"{remedy} before deleting it."
            )
        return None


def _names(item: Workspace | WorkspaceCatalogItem) -> dict:
    return {"name": item.name, "slug": item.slug}


class _StoredNames(TypedDict):
    name: str
    slug: str


def _stored_names(item: Workspace | WorkspaceCatalogItem) -> _StoredNames | None:
    """The name and slug `item` has in the database; None for a new one."""
    if item._state.adding:
        return None
    return type(item).objects.filter(pk=item.pk).values("name", "slug").first()


def _name_changes(before: _StoredNames, item: Workspace | WorkspaceCatalogItem) -> dict:
    """What a rename changed, for the audit trail ({} when nothing did)."""
    changes = {}
    if before["name"] != item.name:
        changes["renamed"] = [before["name"], item.name]
    if before["slug"] != item.slug:
        changes["slug_changed"] = [before["slug"], item.slug]
    return {"name": item.name, **changes} if changes else {}


def _unique_per_workspace(model_name: str) -> list[models.BaseConstraint]:
    return [
        models.UniqueConstraint(fields=["workspace", "slug"], name=f"unique_{model_name}_slug"),
        models.UniqueConstraint(fields=["workspace", "name"], name=f"unique_{model_name}_name"),
    ]


class Environment(WorkspaceCatalogItem):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="environments")

    class Meta(WorkspaceCatalogItem.Meta):
        constraints = _unique_per_workspace("environment")


class Product(WorkspaceCatalogItem):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="products")

    class Meta(WorkspaceCatalogItem.Meta):
        constraints = _unique_per_workspace("product")


class App(WorkspaceCatalogItem):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="apps")

    class Meta(WorkspaceCatalogItem.Meta):
        constraints = _unique_per_workspace("app")

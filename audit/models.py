"""The audit trail: every change in a workspace, who made it and when.

A base app: tokens and workspaces both record here, and it imports neither (its foreign keys name
their models as strings). An event keeps names, roles and which fields changed; never a value,
hint or ciphertext. Events are written through `AuditEvent.record` / `record_many` only, which
send `audit.signals.event_recorded`; how an event reads is in `audit/wording.py`; the Activity
page, its export and the admin (`views.py`, `admin.py`) are the app's pages.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, models
from django.utils import timezone

from audit.signals import event_recorded
from lib import prepared

if TYPE_CHECKING:
    from django.contrib.auth.models import User

KEY_MAX_LENGTH = 128  # a Token Key's longest length (tokens/models.py holds the rule)

# What the "changed" detail of a token edit may name, as the Tokens page labels it.
# Detail fields naming a token version (Restore, Destroy): their summary counts from 1.
VERSION_FIELDS = frozenset({"restored_version", "new_version", "destroyed_version"})
FIELD_LABELS = {
    "key": "Token Key",
    "value": "Token Value",
    "description": "Description",
    "type": "Type",
    "expiry_date": "Expiry Date",
    "period_days": "Period",
    "products": "Products",
    "apps": "Apps",
    "environments": "Environments",
}


# A use's source, as the resolver and the API record it, in words (the names in angle brackets
# are the API's and the resolver's defaults when no file name was given).
SOURCE_NAMES = {
    "<values>": "API values request",
    "<request>": "API resolve request",
    "<stdin>": "resolve of standard input",
    "<string>": "resolve of a text",
    "(other)": "other sources",  # usage past its cap of sources per context (OTHER_SOURCES)
}


def source_label(source: object) -> str:
    """ "API values request", "resolve of deploy.yaml": a use's source as a person says it."""
    text = str(source or "").strip()
    if not text:
        return ""
    return SOURCE_NAMES.get(text, f"resolve of {text}")


class AuditAction(models.TextChoices):
    CREATED = "token.created", "Created"
    UPDATED = "token.updated", "Edited"
    REVOKED = "token.revoked", "Revoked"
    DELETED = "token.deleted", "Deleted"
    RESOLVED = "tokens.resolved", "Resolved"
    KEY_ROTATED = "master_key.rotated", "Master key rotated"
    MEMBER_ADDED = "member.added", "Member added"
    MEMBER_ROLE_CHANGED = "member.role_changed", "Role changed"
    MEMBER_REMOVED = "member.removed", "Member removed"
    PRODUCT_CREATED = "product.created", "Product added"
    PRODUCT_RENAMED = "product.renamed", "Product renamed"
    PRODUCT_DELETED = "product.deleted", "Product deleted"
    APP_CREATED = "app.created", "App added"
    APP_RENAMED = "app.renamed", "App renamed"
    APP_DELETED = "app.deleted", "App deleted"
    ENVIRONMENT_CREATED = "environment.created", "Environment added"
    ENVIRONMENT_RENAMED = "environment.renamed", "Environment renamed"
    ENVIRONMENT_DELETED = "environment.deleted", "Environment deleted"
    WORKSPACE_CREATED = "workspace.created", "Workspace created"
    WORKSPACE_RENAMED = "workspace.renamed", "Workspace renamed"
    ACCESS_KEY_CREATED = "access_key.created", "Access key created"
    ACCESS_KEY_REVOKED = "access_key.revoked", "Access key revoked"
    ACCESS_KEY_DELETED = "access_key.deleted", "Access key deleted"
    WORKLOAD_IDENTITY_CREATED = "workload_identity.created", "Workload identity added"
    WORKLOAD_IDENTITY_DELETED = "workload_identity.deleted", "Workload identity deleted"
    WORKLOAD_IDENTITY_EXCHANGED = "workload_identity.exchanged", "Workload identity signed in"
    ACCESS_KEY_CHECKED = "access_key.checked", "Checked through the API"
    ACCESS_KEY_CALL_FAILED = "access_key.call_failed", "API call failed"
    VERSION_RESTORED = "token.version_restored", "Version restored"
    VERSION_DESTROYED = "token.version_destroyed", "Version destroyed"
    MEMBER_INVITED = "member.invited", "Member invited"
    INVITATION_ACCEPTED = "member.invitation_accepted", "Invitation accepted"
    INVITATION_REVOKED = "member.invitation_revoked", "Invitation revoked"
    MEMBER_LEFT = "member.left", "Member left"
    TWO_FACTOR_REQUIREMENT_CHANGED = (
        "workspace.two_factor_changed",
        "Two-factor requirement changed",
    )
    SSO_REQUIREMENT_CHANGED = "workspace.sso_changed", "Single sign-on requirement changed"
    ACTIVITY_EXPORTED = "audit.exported", "Activity exported"

    @classmethod
    def catalog(cls, noun: str, change: str) -> AuditAction:
        """The action for an environment, product or app (`noun`) `created`/`renamed`/`deleted`."""
        return cls(f"{noun}.{change}")


class AuditKind(models.TextChoices):
    """The Activity tab's filter: what an event is about, from its action's prefix."""

    TOKENS = "tokens", "Tokens"
    MEMBERS = "members", "Members"
    CATALOG = "catalog", "Catalog and settings"
    KEYS = "keys", "Key rotation"
    ACCESS_KEYS = "access_keys", "Access keys"
    EXPORTS = "exports", "Activity exports"


KIND_PREFIXES = {
    AuditKind.TOKENS: ("token.", "tokens."),
    AuditKind.MEMBERS: ("member.",),
    AuditKind.CATALOG: ("product.", "app.", "environment.", "workspace."),
    AuditKind.KEYS: ("master_key.",),
    AuditKind.ACCESS_KEYS: ("access_key.", "workload_identity."),
    AuditKind.EXPORTS: ("audit.",),
}
# Events an access key or a workload identity makes through the API: named by the key's or
# the identity's own name rather than the longer name the trail records.
API_ACTIONS = frozenset(
    {
        AuditAction.RESOLVED,
        AuditAction.ACCESS_KEY_CHECKED,
        AuditAction.ACCESS_KEY_CALL_FAILED,
    }
)
ACTIONS_OF_KIND = {
    kind: [action for action in AuditAction if action.value.startswith(prefixes)]
    for kind, prefixes in KIND_PREFIXES.items()
}


class AuditEventQuerySet(models.QuerySet):
    def for_workspace(self, workspace) -> AuditEventQuerySet:
        return self.filter(workspace=workspace)

    def of_kind(self, kind: str | None) -> AuditEventQuerySet:
        """Events of one AuditKind; every event for None or ""."""
        return self.filter(action__in=ACTIONS_OF_KIND[AuditKind(kind)]) if kind else self

    def by_actor(self, name: str | None) -> AuditEventQuerySet:
        """Events recorded with this actor name; every event for None or ""."""
        return self.filter(actor_name=name) if name else self

    def about_token(self, key: str | None) -> AuditEventQuerySet:
        """Events about the token `key`: its own (created, edited, ...) and the resolves that
        read it (a resolve lists its keys in its detail). Every event for None or ""."""
        if not key:
            return self
        # The keys are a JSON list of strings: "KEY" with its quotes is one whole element.
        in_resolve = models.Q(detail__keys__regex=f'"{re.escape(key)}"')
        return self.filter(models.Q(token_key=key) | in_resolve)

    def between(self, first: dt.date | None, last: dt.date | None) -> AuditEventQuerySet:
        """Events from the day `first` to the day `last`, both included, in UTC."""
        events = self
        if first is not None:
            events = events.filter(created_at__gte=_utc_midnight(first))
        if last is not None:
            events = events.filter(created_at__lt=_utc_midnight(last + dt.timedelta(days=1)))
        return events

    def actor_names(self) -> list[str]:
        """The names these events were recorded under, once each, in order."""
        names = self.order_by("actor_name").values_list("actor_name", flat=True).distinct()
        return [name for name in names if name]

    def newest_first(self) -> AuditEventQuerySet:
        return self.order_by("-created_at", "-id")


def _utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


class AuditEvent(models.Model):
    """Who did what in which workspace, when. Never a value, hint or ciphertext."""

    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="audit_events"
    )
    action = models.CharField(max_length=32, choices=AuditAction.choices, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    token = models.ForeignKey(
        "tokens.Token",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_events",
    )
    token_key = models.CharField(max_length=KEY_MAX_LENGTH, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = AuditEventQuerySet.as_manager()

    # The token an unsaved event is about, set by `build` (not a field): the signal names it
    # even for a deletion, whose row no longer points at the token.
    _about: Any = None

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "-created_at"], name="audit_event_recent_idx")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.subject} by {self.actor_name}".replace("  ", " ")

    # --- the one way to write an event --------------------------------------------------------
    #
    # Every event goes through `record` (one) or `record_many` (several in one INSERT); both
    # send `audit.signals.event_recorded` once per event, in the caller's transaction. No other
    # path should insert into this table, or the signal's receivers miss those events.

    @classmethod
    def build(
        cls,
        workspace,  # a Workspace, and `token` a Token: this base app imports neither
        action: str,
        *,
        by: User | None = None,
        actor_name: str = "",
        token=None,
        detail: dict | None = None,
        at: dt.datetime | None = None,
    ) -> AuditEvent:
        """An unsaved event with the trail's defaults, for `record_many`.

        `by` is the user who acted (an unsaved user counts as none); `actor_name` the name to
        show instead (an access key's, a workload identity's), else `by`'s username, else
        "system". `token` is what the event is about: its key is kept in `token_key` (so a
        deleted token's events still name it), and the row points at it unless the event is
        its deletion. `detail` names fields, roles, counts; never a value, hint or ciphertext.
        `at` defaults to now.
        """
        actor = by if by is not None and by.pk else None
        event = cls(
            workspace=workspace,
            action=action,
            actor=actor,
            actor_name=actor_name or (actor.get_username() if actor is not None else "system"),
            token=token
            if token is not None and token.pk and action != AuditAction.DELETED
            else None,
            token_key=token.key if token is not None else "",
            detail=detail or {},
            created_at=at or timezone.now(),
        )
        event._about = token  # what the signal names, even when the row cannot point at it
        return event

    @classmethod
    def record(
        cls,
        workspace,
        action: str,
        *,
        by: User | None = None,
        actor_name: str = "",
        token=None,
        detail: dict | None = None,
        at: dt.datetime | None = None,
    ) -> AuditEvent:
        """Write one event and send `event_recorded` for it; returns the saved event.

        Call it inside the transaction that makes the change: the row, and whatever the
        signal's receivers write, commit or roll back with it. Arguments as for `build`.
        """
        event = cls.build(
            workspace, action, by=by, actor_name=actor_name, token=token, detail=detail, at=at
        )
        event._insert()
        event._announce()
        return event

    def _insert(self) -> None:
        """Write this new event: what `save(force_insert=True)` sends, one INSERT whose SQL is
        made once from the model's fields and prepared once per connection (lib/prepared.py),
        instead of compiled for each event (every API read writes one)."""
        params = [  # each value as save() takes it (pre_save: a default, an auto_now)
            field.get_db_prep_save(field.pre_save(self, True), connection)
            for field in _inserted_fields()
        ]
        with prepared.cursor() as cursor:
            cursor.execute(_insert_sql(connection.vendor), params)
            self.pk = cursor.fetchone()[0]
        self._state.adding = False
        self._state.db = DEFAULT_DB_ALIAS

    @classmethod
    def record_many(cls, events: Iterable[AuditEvent]) -> list[AuditEvent]:
        """Write several events made by `build` in one INSERT, then send `event_recorded` once
        per event, in their order, as `record` would have; returns them saved (with their ids).

        For a path that writes many events at once (a resolve, a bulk revoke). Same
        transaction rule as `record`. A database error raises before any signal is sent.
        """
        events = list(events)
        if not events:
            return []
        for event in events:
            if event.pk is not None:
                raise ValueError("record_many writes new events only (build them with build())")
        AuditEvent.objects.bulk_create(events)
        for event in events:
            event._announce()
        return events

    def _announce(self) -> None:
        token = self._about if self._about is not None else (self.token if self.token_id else None)
        event_recorded.send(sender=type(self), event=self, token=token)

    # --- what Activity shows ------------------------------------------------------------------

    @property
    def actor_label(self) -> str:
        """Who acted, as a sentence starts: a person's username, "system", or for an API call
        the access key's own name ("ci-deploy"; the details keep the name the trail recorded)."""
        detail = self.detail or {}
        if self.actor_id is None and self.action in API_ACTIONS and detail.get("access_key"):
            return str(detail["access_key"])
        return self.actor_name or "system"

    @property
    def kind(self) -> str:
        for kind, prefixes in KIND_PREFIXES.items():
            if self.action.startswith(prefixes):
                return kind
        return ""

    @property
    def subject(self) -> str:
        """What the event is about: a Token Key, a member's username, an item's name."""
        detail = self.detail or {}
        return self.token_key or str(
            detail.get("member")
            or detail.get("name")
            or detail.get("access_key")
            or detail.get("workload_identity")
            or detail.get("email")
            or ""
        )

    @property
    def summary(self) -> str:
        """A readable line for the detail: names of what changed, roles, counts; never values,
        never "None" (an empty field is left out). Activity shows `audit.wording.detail_lines`."""
        detail = dict(self.detail or {})
        if self.kind == AuditKind.MEMBERS:
            return self._member_summary(detail)
        if self.kind == AuditKind.CATALOG:
            return self._catalog_summary(detail)
        parts = []
        for name, value in detail.items():
            if name == "changed":
                labels = (FIELD_LABELS.get(str(v), str(v)) for v in value)
                parts.append("Changed " + ", ".join(labels))
                continue
            if value is None or value == "" or value == [] or value == {}:
                continue
            if name == "source":
                value = source_label(value)
            if isinstance(value, list | tuple):
                value = ", ".join(str(item) for item in value)
            if name in VERSION_FIELDS and isinstance(value, int):
                value += 1  # stored from 0 (as in the ciphertexts), shown from 1 as on History
            parts.append(f"{str(name).replace('_', ' ').capitalize()}: {value}")
        return "; ".join(parts)

    @staticmethod
    def _role(value: object) -> str:
        return str(value or "").capitalize()

    def _member_summary(self, detail: dict) -> str:
        if "from" in detail:
            return f"{self._role(detail['from'])} → {self._role(detail.get('to'))}"
        return f"As {self._role(detail['role'])}" if detail.get("role") else ""

    def _catalog_summary(self, detail: dict) -> str:
        parts = []
        if renamed := detail.get("renamed"):
            parts.append(f"Renamed “{renamed[0]}” to “{renamed[1]}”")
        if slug := detail.get("slug_changed"):
            parts.append(f"Slug {slug[0]} → {slug[1]}")
        if "required" in detail:
            parts.append("Two-factor required" if detail["required"] else "Two-factor optional")
        if not parts and detail.get("slug"):
            parts.append(f"Slug {detail['slug']}")
        return "; ".join(parts)


@cache
def _inserted_fields() -> tuple[models.Field, ...]:
    return tuple(field for field in AuditEvent._meta.concrete_fields if not field.primary_key)


@cache
def _insert_sql(vendor: str) -> str:
    q = connection.ops.quote_name
    columns = ", ".join(q(field.get_attname_column()[1] or "") for field in _inserted_fields())
    placeholders = ", ".join(["%s"] * len(_inserted_fields()))
    pk = q(AuditEvent._meta.pk.get_attname_column()[1] or "id")
    return (
        f"INSERT INTO {q(AuditEvent._meta.db_table)} ({columns}) VALUES ({placeholders}) "
        f"RETURNING {pk}"
    )

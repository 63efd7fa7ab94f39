"""Webhook events: what happened, as the JSON a webhook receives, turned into deliveries.

Token and access key events come from one place, the audit trail: `AuditEvent.record` (and
`record_many`) send `audit.signals.event_recorded`, received by `audit_event_recorded` inside
the transaction that records the change, which writes one
`WebhookDelivery` per subscribed webhook in that same transaction and enqueues its delivery
once it commits (a rolled-back change sends nothing). Expiring and expired events come from
the reminder pass (notifications/reminders.py). A payload names keys, ids, people and slugs;
never a value, hint or ciphertext.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from functools import partial
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from notifications.models import EventType, Webhook, WebhookDelivery
from notifications.tasks import deliver_webhook

if TYPE_CHECKING:
    from tokens.models import Token
    from workspaces.models import Workspace

SIMPLE_ACTIONS = {
    AuditAction.CREATED: EventType.TOKEN_CREATED,
    AuditAction.REVOKED: EventType.TOKEN_REVOKED,
    AuditAction.DELETED: EventType.TOKEN_DELETED,
    AuditAction.ACCESS_KEY_CREATED: EventType.ACCESS_KEY_CREATED,
    AuditAction.ACCESS_KEY_REVOKED: EventType.ACCESS_KEY_REVOKED,
}
ACCESS_KEY_FIELDS = ("access_key", "identifier", "environment", "product", "app")


def event_types_for(event: AuditEvent) -> list[EventType]:
    """The webhook events an audit event is (an edit of the value and of other fields: two)."""
    if event.action in SIMPLE_ACTIONS:
        return [SIMPLE_ACTIONS[AuditAction(event.action)]]
    if event.action == AuditAction.UPDATED:
        changed = list((event.detail or {}).get("changed", []))
        types = []
        if [name for name in changed if name != "value"]:
            types.append(EventType.TOKEN_UPDATED)
        if "value" in changed:
            types.append(EventType.TOKEN_VALUE_CHANGED)
        return types
    return []


def token_context(token: Token) -> dict[str, list[str]]:
    """Where a token may be used: its environments, products and apps (slugs)."""
    return {
        "environments": sorted(token.environments.values_list("slug", flat=True)),
        "products": sorted(token.products.values_list("slug", flat=True)),
        "apps": sorted(token.apps.values_list("slug", flat=True)),
    }


def payload(
    event_type: str,
    *,
    workspace: Workspace,
    at: dt.datetime,
    actor: str,
    token: Token | None = None,
    token_key: str = "",
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "type": str(event_type),
        "time": at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "workspace": workspace.slug,
        "actor": actor,
    }
    if token is not None:
        body["token"] = {"id": str(token.pk), "key": token_key or token.key}
        body["context"] = token_context(token)
    body.update(data or {})
    return body


def enqueue_deliveries(webhooks: list[Webhook], body: dict[str, Any]) -> list[WebhookDelivery]:
    """One delivery per webhook of the same event (same id), sent once the transaction commits."""
    text = json.dumps(body, separators=(",", ":"), sort_keys=True)
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(webhook=webhook, event_id=body["id"], event_type=body["type"], body=text)
        for webhook in webhooks
    )
    for delivery in deliveries:
        transaction.on_commit(partial(deliver_webhook.enqueue, str(delivery.pk)))
    return deliveries


def audit_event_recorded(
    sender: type[AuditEvent], *, event: AuditEvent, token: Token | None, **kwargs: Any
) -> None:
    """The audit trail's receiver: deliveries for the webhooks that want this event."""
    for event_type in event_types_for(event):
        webhooks = Webhook.objects.listening_to(event.workspace_id, event_type)
        if not webhooks:
            continue
        detail = dict(event.detail or {})
        data: dict[str, Any] = {}
        if event_type == EventType.TOKEN_UPDATED:
            data["changed"] = [name for name in detail.get("changed", []) if name != "value"]
            if "previous_key" in detail:
                data["previous_key"] = detail["previous_key"]
        if event_type in (EventType.ACCESS_KEY_CREATED, EventType.ACCESS_KEY_REVOKED):
            data["access_key"] = {
                "name": detail.get("access_key", ""),
                "identifier": str(detail.get("identifier", "")).rstrip("…"),
            }
            data["context"] = {
                name: detail[name] for name in ("environment", "product", "app") if name in detail
            }
        body = payload(
            event_type,
            workspace=event.workspace,
            at=event.created_at,
            actor=event.actor_name,
            token=token,
            token_key=event.token_key,
            data=data,
        )
        enqueue_deliveries(webhooks, body)


def expiry_event(token: Token, event_type: EventType, *, days_left: int | None = None) -> None:
    """A token.expiring or token.expired event for the workspace's webhooks that want it."""
    webhooks = Webhook.objects.listening_to(token.workspace_id, event_type)
    if not webhooks:
        return
    assert token.expires_at is not None
    data: dict[str, Any] = {
        "expires_at": token.expires_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    }
    if days_left is not None:
        data["days_left"] = days_left
    body = payload(
        event_type,
        workspace=token.workspace,
        at=timezone.now(),
        actor="system",
        token=token,
        data=data,
    )
    enqueue_deliveries(webhooks, body)

"""The audit trail hears what the floor below it says happened (it imports keys; keys imports
no app above it)."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from audit.models import AuditAction, AuditEvent
from keys.signals import data_key_rotated


@receiver(data_key_rotated, dispatch_uid="audit-data-key-rotated")
def record_data_key_rotated(
    sender: Any,
    *,
    workspace: Any,
    from_master_key: str,
    to_master_key: str,
    actor_name: str,
    **kwargs: Any,
) -> None:
    """In the re-wrap's transaction: if this fails, the re-wrap rolls back with it."""
    AuditEvent.record(
        workspace,
        AuditAction.KEY_ROTATED,
        actor_name=actor_name,
        detail={"from_master_key": from_master_key, "to_master_key": to_master_key},
    )

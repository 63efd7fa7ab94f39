"""A workspace's data key, stored only wrapped by a master key (keys/crypto.py).

The keys app is the bottom floor: it names the workspace by string ("workspaces.Workspace"), as
audit does, and imports no app above it. Re-wrapping a data key sends `data_key_rotated`
(keys/signals.py), in the re-wrap's transaction; the audit app records it.
"""

from __future__ import annotations

from typing import Any, Protocol

from django.db import IntegrityError, models, transaction
from django.utils import timezone

from keys import crypto
from keys.signals import data_key_rotated


class KeyedWorkspace(Protocol):
    """What a data key needs of its workspace: its id, and its slug for messages."""

    @property
    def pk(self) -> Any: ...

    @property
    def slug(self) -> str: ...


class WorkspaceKey(models.Model):
    """A workspace's data key, stored only wrapped by a master key. Deleted with its workspace."""

    workspace = models.OneToOneField(
        "workspaces.Workspace", on_delete=models.CASCADE, primary_key=True, related_name="data_key"
    )
    kek_id = models.CharField("master key id", max_length=32, db_index=True)
    wrapped_dek = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"data key of {self.workspace_id} (wrapped by {self.kek_id})"

    @classmethod
    def dek_for(cls, workspace: KeyedWorkspace, *, label: str = "") -> bytes:
        """The workspace's plaintext data key for encrypting, made on first use."""
        record = cls.objects.filter(workspace_id=workspace.pk).first()
        if record is None:
            kek_id, wrapped = crypto.new_data_key(workspace.pk)
            try:
                with transaction.atomic():
                    record = cls.objects.create(
                        workspace_id=workspace.pk, kek_id=kek_id, wrapped_dek=wrapped
                    )
            except IntegrityError:  # another request made it first: use theirs
                record = cls.objects.get(workspace_id=workspace.pk)
        return record.unwrap(label=label or f"workspace {workspace.slug}")

    @classmethod
    def one_per_master_key(cls) -> models.QuerySet[WorkspaceKey]:
        """One data key for each master key id in use (one query), to check the ring reads it."""
        firsts = cls.objects.values("kek_id").annotate(first=models.Min("workspace_id"))
        return cls.objects.filter(workspace_id__in=firsts.values("first")).select_related(
            "workspace"
        )

    @classmethod
    def master_key_ids(cls) -> list[str]:
        """The master key ids that wrap data keys in the database ([] before `migrate`)."""
        from django.db import DatabaseError

        try:
            with transaction.atomic():
                return sorted(cls.objects.order_by().values_list("kek_id", flat=True).distinct())
        except DatabaseError:
            return []

    @classmethod
    def existing_for(cls, workspace: KeyedWorkspace, *, label: str) -> WorkspaceKey:
        """The workspace's data key record for decrypting; never makes a new one."""
        record = cls.objects.filter(workspace_id=workspace.pk).first()
        if record is None:
            raise crypto.CryptoError(
                f"{label}: the workspace has no data key (it was destroyed), so its values "
                "cannot be decrypted."
            )
        return record

    def unwrap(self, *, label: str) -> bytes:
        """The plaintext data key; a CryptoError naming `label` and the master key id."""
        return crypto.unwrap_data_key(
            self.workspace_id, self.kek_id, bytes(self.wrapped_dek), label=label
        )

    @classmethod
    def rotate(cls, workspace_id: int, *, actor_name: str = "rotate_master_key") -> str | None:
        """Re-wrap one workspace's data key under the active master key, in one transaction,
        and say so (`data_key_rotated`, recorded by the audit app in the same transaction).
        Returns the master key id it was wrapped by before, or None when it was already on the
        active key (so an interrupted rotation can simply run again)."""
        with transaction.atomic():
            record = (
                cls.objects.select_for_update()
                .select_related("workspace")
                .get(workspace_id=workspace_id)
            )
            active_id = crypto.key_ring().active_id
            if record.kek_id == active_id:
                return None
            previous = record.kek_id
            record.kek_id, record.wrapped_dek = crypto.rewrap_data_key(
                workspace_id,
                previous,
                bytes(record.wrapped_dek),
                label=f"workspace {record.workspace.slug}",
            )
            record.rotated_at = timezone.now()
            record.save(update_fields=["kek_id", "wrapped_dek", "rotated_at"])
            data_key_rotated.send(
                cls,
                workspace=record.workspace,
                from_master_key=previous,
                to_master_key=active_id,
                actor_name=actor_name,
            )
        return previous

"""A .env file between its preview and its import.

The preview never echoes a value, not even in a hidden field, so the file stays on the server:
one `PendingImport` row holding the text encrypted under the workspace's data key (bound to the
workspace and the row's id, keys/crypto.py), addressed by its random UUID. It lives
PENDING_IMPORT_MINUTES at most and is deleted once imported or cancelled; making a new one
sweeps away the stale ones.
"""

from __future__ import annotations

import datetime as dt
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
from workspaces.models import Workspace

if TYPE_CHECKING:
    from django.contrib.auth.models import User

PENDING_IMPORT_MINUTES = 30


class PendingImportQuerySet(models.QuerySet):
    def fresh(self, at: dt.datetime | None = None) -> PendingImportQuerySet:
        at = at or timezone.now()
        return self.filter(created_at__gt=at - dt.timedelta(minutes=PENDING_IMPORT_MINUTES))

    def stale(self, at: dt.datetime | None = None) -> PendingImportQuerySet:
        at = at or timezone.now()
        return self.filter(created_at__lte=at - dt.timedelta(minutes=PENDING_IMPORT_MINUTES))

    def made_by(self, user: User) -> PendingImportQuerySet:
        """A preview lists the file's keys and its lines' fate: only its maker sees it."""
        return self.filter(created_by=user)


class PendingImport(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="pending_imports"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    ciphertext = models.BinaryField(editable=False)

    objects = PendingImportQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"pending import {self.pk} in {self.workspace_id}"

    @property
    def expires_at(self) -> dt.datetime:
        """When the preview closes: its page says so, so a tab left open is no surprise."""
        return self.created_at + dt.timedelta(minutes=PENDING_IMPORT_MINUTES)

    @classmethod
    @sensitive_variables("text", "dek")
    def seal(cls, workspace: Workspace, text: str, *, by: User) -> PendingImport:
        """Keep `text` encrypted for the preview; drop every stale pending import (an index on
        created_at makes that cheap, and no abandoned file outlives the next import)."""
        cls.objects.stale().delete()
        pending = cls(workspace=workspace, created_by=by)
        dek = WorkspaceKey.dek_for(workspace, label=f"import in workspace {workspace.slug}")
        pending.ciphertext = crypto.encrypt(
            dek, text, aad=crypto.pending_import_aad(workspace.pk, pending.pk)
        )
        pending.save(force_insert=True)
        return pending

    @sensitive_variables("dek")
    def text(self) -> str:
        """The file's text, to parse again; never render or log it."""
        label = f"import in workspace {self.workspace.slug}"
        record = WorkspaceKey.existing_for(self.workspace, label=label)
        return crypto.decrypt(
            record.unwrap(label=label),
            bytes(self.ciphertext),
            aad=crypto.pending_import_aad(self.workspace_id, self.pk),
            label=f"{label} (master key {record.kek_id!r})",
        )


def sealed_pending_imports(using: str) -> Iterator[Sealed]:
    """Each pending import's file (kept between its preview and its import): a source of
    keys/sealed.py, registered by ImportsConfig.ready."""
    pending = PendingImport.objects.using(using).only("id", "workspace_id", "ciphertext")
    for item in pending.order_by("workspace_id", "created_at").iterator(chunk_size=500):
        yield Sealed(
            f"pending import {item.pk}",
            partial(
                crypto.decrypt,
                blob=bytes(item.ciphertext),
                aad=crypto.pending_import_aad(item.workspace_id, item.pk),
            ),
            workspace_id=item.workspace_id,
        )

"""The database's rate-limit counters (used unless COFFER_RATELIMIT_REDIS_URL names Redis)."""

from __future__ import annotations

from django.db import models


class RateLimitWindow(models.Model):
    """How many hits one bucket (an access key, a client address) had in one fixed window."""

    bucket = models.CharField(max_length=100)
    window_start = models.BigIntegerField(help_text="Seconds since the epoch.")
    expires = models.BigIntegerField(db_index=True, help_text="When the window ends.")
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["bucket", "window_start"], name="unique_rate_limit_window"
            )
        ]

    def __str__(self) -> str:
        return f"{self.bucket} @ {self.window_start}: {self.count}"


class WorkspaceChange(models.Model):
    """How many times something an API context may read changed in a workspace: a token
    created, edited, revoked, restored or deleted, a scope or catalog change, an access key
    revoked or deleted. Bumped in the transaction of the change itself (api/feed.py hears of
    every change through the audit trail), so a long-polling `GET /api/v1/values?wait=` sees
    it as soon as it commits. Holds no names and no values: a number per workspace."""

    workspace = models.OneToOneField(
        "workspaces.Workspace", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    counter = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"workspace {self.workspace_id}: change {self.counter}"

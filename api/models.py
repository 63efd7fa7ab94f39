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

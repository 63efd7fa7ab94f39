from __future__ import annotations

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "HTTP API"

    def ready(self) -> None:
        from api.feed import bump_on_change
        from audit.models import RECORD_LISTENERS

        # The change feed hears of every change through the audit trail, in its transaction.
        if bump_on_change not in RECORD_LISTENERS:
            RECORD_LISTENERS.append(bump_on_change)

from __future__ import annotations

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "HTTP API"

    def ready(self) -> None:
        from api.feed import bump_on_change
        from audit.signals import event_recorded

        # The change feed hears of every change through the audit trail, in its transaction.
        event_recorded.connect(bump_on_change, dispatch_uid="api.feed")

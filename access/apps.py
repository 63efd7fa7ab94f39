from __future__ import annotations

from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "access"
    verbose_name = "Access keys"

    def ready(self) -> None:
        from access.models import count_uses
        from tokens.usage import credentials_used

        credentials_used.connect(
            lambda sender, uses, **kwargs: count_uses(uses), weak=False, dispatch_uid="access"
        )

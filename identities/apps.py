from __future__ import annotations

from django.apps import AppConfig


class IdentitiesConfig(AppConfig):
    name = "identities"
    verbose_name = "Workload identities"

    def ready(self) -> None:
        from identities.models import count_uses
        from tokens.usage import credentials_used

        credentials_used.connect(
            lambda sender, uses, **kwargs: count_uses(uses), weak=False, dispatch_uid="identities"
        )

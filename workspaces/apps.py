from __future__ import annotations

from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "workspaces"

    def ready(self) -> None:
        from workspaces import reauth  # noqa: F401  (connects the sign-in signal)

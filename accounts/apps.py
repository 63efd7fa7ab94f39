from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
    verbose_name = "Team accounts"

    def ready(self) -> None:
        from accounts import signals  # noqa: F401  (every account's email in allauth's book)

from __future__ import annotations

from django.apps import AppConfig


class TokensConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tokens"

    def ready(self) -> None:
        from config import database_files  # noqa: F401  (keeps the SQLite files 0600)
        from tokens import (
            checks,  # noqa: F401  (registers the master key check)
            sealed,  # noqa: F401  (registers the tokens' sealed values first)
        )

from __future__ import annotations

from django.apps import AppConfig


class TokensConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tokens"

    def ready(self) -> None:
        from keys.sealed import Source, register
        from tokens.sealed_values import token_values, token_versions

        register(Source("token values", token_values))
        register(Source("token versions", token_versions))

from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
    verbose_name = "Team accounts"

    def ready(self) -> None:
        from accounts import signals  # noqa: F401  (every account's email in allauth's book)
        from accounts.adapters import (
            reseal_two_factor_secrets,
            sealed_two_factor_secrets,
            two_factor_secrets_per_master_key,
        )
        from keys.sealed import Source, register

        register(
            Source(
                "two-factor secrets",
                sealed_two_factor_secrets,
                by_master_key=True,
                reseal=reseal_two_factor_secrets,
                one_per_master_key=two_factor_secrets_per_master_key,
            )
        )

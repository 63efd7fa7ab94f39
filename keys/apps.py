from __future__ import annotations

from django.apps import AppConfig


class KeysConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "keys"
    verbose_name = "Keys"

    def ready(self) -> None:
        from keys import (
            checks,  # noqa: F401  (registers the master key checks)
            crypto,
        )
        from keys.models import WorkspaceKey

        # Before a development key is made, the ring asks what the database already needs.
        crypto.master_key_ids_in_database = WorkspaceKey.master_key_ids

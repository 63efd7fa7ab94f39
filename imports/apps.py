from __future__ import annotations

from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "imports"
    verbose_name = "Imports"

    def ready(self) -> None:
        from imports.models import sealed_pending_imports
        from keys.sealed import Source, register

        register(Source("pending imports", sealed_pending_imports))

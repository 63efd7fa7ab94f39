from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class CofferAdminConfig(AdminConfig):
    """The Django admin with Coffer's site (config/admin_site.py: signed into through allauth)."""

    default_site = "config.admin_site.CofferAdminSite"

    def ready(self) -> None:
        super().ready()
        # The project's own start-up wiring, in the app that comes first: no feature app
        # imports config.
        from config import database_files  # noqa: F401  (keeps the SQLite files 0600)

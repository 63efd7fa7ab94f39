from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class CofferAdminConfig(AdminConfig):
    """The Django admin with Coffer's site (config/admin_site.py: signed into through allauth)."""

    default_site = "config.admin_site.CofferAdminSite"

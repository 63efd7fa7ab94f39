from __future__ import annotations

from django.apps import AppConfig


class LibConfig(AppConfig):
    """An app only so that Django finds the template tags in lib/templatetags/."""

    name = "lib"
    verbose_name = "Shared plumbing"

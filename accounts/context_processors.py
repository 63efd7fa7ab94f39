from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def signup(request: HttpRequest) -> dict[str, bool]:
    """Whether the sign-in page links the open sign-up page (COFFER_OPEN_SIGNUP)."""
    return {"signup_open": settings.COFFER_OPEN_SIGNUP}

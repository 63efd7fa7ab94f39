"""Security headers on every page, and the production settings Coffer starts with.

Pages come from the URL table (tests/url_table.py), so a new page is checked automatically:
a strict Content-Security-Policy (scripts and styles from our own origin only, no inline code),
no inline <script>, style="" or on* handler in the HTML (they would break under that policy),
X-Frame-Options DENY, nosniff, and Cache-Control: no-store on every token page.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.urls import reverse

from tests.helpers import HTMX
from tests.url_table import build_world, routes_in_project

ROOT = Path(__file__).resolve().parent.parent
GET_ROUTES = [route for route in routes_in_project() if route.get is not None]


class InlineCodeFinder(HTMLParser):
    """Collects what a strict CSP would block: inline scripts, style attributes, on* handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            kind = dict(attrs).get("type") or ""
            if kind not in {"application/json", "application/ld+json", "text/template"}:
                self._in_inline_script = True
        if tag == "style":
            self.problems.append("<style> element")
        if "style" in names:
            self.problems.append(f'style="" on <{tag}>')
        self.problems += [f"{name}= handler on <{tag}>" for name in names if name.startswith("on")]
        if any(
            (value or "").strip().lower().startswith("javascript:")
            for name, value in attrs
            if name in {"href", "src", "action"}
        ):
            self.problems.append(f"javascript: URL on <{tag}>")

    def handle_data(self, data: str) -> None:
        if self._in_inline_script and data.strip():
            self.problems.append(f"inline <script>: {data.strip()[:60]}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_inline_script = False


def inline_code(html: str) -> list[str]:
    finder = InlineCodeFinder()
    finder.feed(html)
    return finder.problems


def csp_directives(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy", "")
    directives = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


def assert_strict_headers(response, where: str) -> None:
    csp = csp_directives(response)
    assert csp, f"{where}: no Content-Security-Policy header"
    assert csp.get("script-src") == ["'self'"], f"{where}: script-src is {csp.get('script-src')}"
    assert csp.get("style-src") == ["'self'"], f"{where}: style-src is {csp.get('style-src')}"
    assert csp.get("default-src") == ["'self'"]
    assert csp.get("frame-ancestors") == ["'none'"]
    assert csp.get("object-src") == ["'none'"]
    assert csp.get("base-uri") == ["'none'"]
    for directive, sources in csp.items():
        loopholes = {"'unsafe-inline'", "'unsafe-eval'", "*", "http:", "https:"}
        if directive != "img-src":
            loopholes.add("data:")
        assert not loopholes & set(sources), f"{where}: {directive} allows {sources}"
    assert response.headers.get("X-Frame-Options") == "DENY", where
    assert response.headers.get("X-Content-Type-Options") == "nosniff", where
    assert response.headers.get("Referrer-Policy") == "same-origin", where
    if response.headers.get("Content-Type", "").startswith("text/html") and response.content:
        problems = inline_code(response.content.decode())
        assert not problems, f"{where}: would break under the CSP: {problems}"


@pytest.mark.django_db
@pytest.mark.parametrize("route", GET_ROUTES, ids=lambda route: route.id)
def test_every_page_and_fragment_has_strict_headers_and_no_inline_code(route):
    world = build_world(tokens_per_workspace=1)
    client = world.client(route.only_for or "owner")
    url = route.url(world.a)
    for headers in ({}, HTMX):
        response = client.get(url, headers=headers)
        assert response.status_code in {200, 302}
        assert_strict_headers(response, f"GET {url} {headers}")
        if route.name.startswith("tokens:"):
            cache_control = response.headers.get("Cache-Control", "")
            assert "no-store" in cache_control, f"{url}: Cache-Control is {cache_control!r}"


@pytest.mark.django_db
def test_sign_in_error_and_lockout_pages_have_strict_headers(client):
    assert_strict_headers(client.get(reverse("login")), "login page")
    world = build_world(tokens_per_workspace=1)
    outsider = world.client("outsider")
    assert_strict_headers(outsider.get(reverse("tokens:list", args=["acme"])), "404 page")
    viewer = world.client("viewer")
    assert_strict_headers(viewer.get(reverse("tokens:create", args=["acme"])), "403 page")


@pytest.mark.django_db
def test_admin_pages_have_the_same_strict_policy():
    world = build_world(tokens_per_workspace=1)
    admin = get_user_model().objects.create_superuser("root", "root@example.com", None)
    client = Client()
    client.force_login(admin)
    for url in (
        reverse("admin:index"),
        reverse("admin:tokens_token_changelist"),
        reverse("admin:tokens_token_change", args=[world.a.token.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 200
        csp = csp_directives(response)
        assert csp.get("script-src") == ["'self'"], url
        assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.django_db
def test_https_redirect_and_hsts_when_https_is_on():
    with override_settings(
        SECURE_SSL_REDIRECT=True, SECURE_HSTS_SECONDS=31_536_000, SECURE_HSTS_PRELOAD=True
    ):
        client = Client()
        plain = client.get(reverse("login"))
        assert plain.status_code == 301
        assert plain["Location"] == "https://testserver/accounts/login/"
        secure = client.get(reverse("login"), secure=True)
        assert secure.status_code == 200
        assert "max-age=31536000" in secure["Strict-Transport-Security"]


# --- production settings, as a real deployment starts them -------------------------------

PRODUCTION_PROBE = r"""
import json, django
django.setup()
from django.conf import settings
from django.test import Client
client = Client()
plain = client.get("/accounts/login/")
secure = client.get("/accounts/login/", secure=True)
cookie = secure.cookies.get("csrftoken")
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "SECURE_SSL_REDIRECT": settings.SECURE_SSL_REDIRECT,
    "SESSION_COOKIE_SECURE": settings.SESSION_COOKIE_SECURE,
    "SESSION_COOKIE_HTTPONLY": settings.SESSION_COOKIE_HTTPONLY,
    "CSRF_COOKIE_SECURE": settings.CSRF_COOKIE_SECURE,
    "SECURE_HSTS_SECONDS": settings.SECURE_HSTS_SECONDS,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": settings.SECURE_HSTS_INCLUDE_SUBDOMAINS,
    "SECURE_HSTS_PRELOAD": settings.SECURE_HSTS_PRELOAD,
    "plain_status": plain.status_code,
    "plain_location": plain.get("Location"),
    "hsts": secure.get("Strict-Transport-Security"),
    "csrf_cookie_secure": bool(cookie and cookie["secure"]),
}))
"""


def production_env(tmp_path) -> dict[str, str]:
    """The environment of a production start: no COFFER_DEBUG, no COFFER_HTTPS (so HTTPS on)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("COFFER_", "DJANGO_", "DATABASE_URL", "PYTEST"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        COFFER_SECRET_KEY="prod-" + "k" * 60,
        COFFER_MASTER_KEYS="prod1:" + "A" * 43 + "=",
        COFFER_ALLOWED_HOSTS="coffer.example.com,testserver",
        COFFER_DATA_DIR=str(tmp_path),
        # Hashed static files need collectstatic first; unrelated to what is checked here.
        COFFER_MANIFEST_STATIC="false",
    )
    return env


def test_production_settings_are_secure_by_default(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", PRODUCTION_PROBE],
        cwd=ROOT,
        env=production_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["DEBUG"] is False
    assert found["SECURE_SSL_REDIRECT"] is True
    assert found["SESSION_COOKIE_SECURE"] is True
    assert found["SESSION_COOKIE_HTTPONLY"] is True
    assert found["CSRF_COOKIE_SECURE"] is True
    assert found["SECURE_HSTS_SECONDS"] >= 31_536_000
    assert found["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert found["SECURE_HSTS_PRELOAD"] is True
    assert found["plain_status"] == 301
    assert found["plain_location"].startswith("https://")
    assert re.match(r"max-age=\d+; includeSubDomains; preload", found["hsts"])
    assert found["csrf_cookie_secure"] is True


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout

"""`Cache-Control: no-store` on every response to a signed-in user.

A shared or back-button cache must not keep a copy of a workspace's keys, members, catalog or
audit trail: every URL of the URL table (tests/url_table.py, so a new page is covered on its
own), as a page, as an htmx fragment and for a POST, plus error pages and every admin page.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from tests.test_isolation import admin_urls
from tests.url_table import build_world, routes_in_project

HTMX = {"HX-Request": "true"}
ROUTES = routes_in_project()


def assert_no_store(response, where: str) -> None:
    cache_control = response.headers.get("Cache-Control", "")
    assert "no-store" in cache_control, f"{where}: Cache-Control is {cache_control!r}"


@pytest.mark.django_db
@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.id)
def test_every_url_is_no_store_for_a_signed_in_member(route):
    world = build_world(tokens_per_workspace=1)
    client = world.client(route.only_for or "owner")
    url = route.url(world.a)
    if route.get is not None:
        for headers in ({}, HTMX):
            response = client.get(url, headers=headers)
            assert response.status_code in {200, 302}, url
            assert_no_store(response, f"GET {url} {headers}")
    if route.post is not None:
        # An empty POST: refused with a message (200) or done (204/302); either way no-store.
        response = client.post(url, {}, headers=HTMX)
        assert response.status_code in {200, 204, 302}, url
        assert_no_store(response, f"POST {url}")


@pytest.mark.django_db
def test_error_pages_for_a_signed_in_user_are_no_store():
    world = build_world(tokens_per_workspace=1)
    not_found = world.client("outsider").get(reverse("tokens:list", args=["acme"]))
    forbidden = world.client("viewer").get(reverse("tokens:create", args=["acme"]))
    assert (not_found.status_code, forbidden.status_code) == (404, 403)
    assert_no_store(not_found, "404 page")
    assert_no_store(forbidden, "403 page")


@pytest.mark.django_db
def test_every_admin_page_is_no_store():
    world = build_world(tokens_per_workspace=1)
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com"))
    for url in admin_urls(world):
        response = client.get(url)
        assert response.status_code in {200, 403}, url  # some admin add pages are read-only
        assert_no_store(response, f"admin {url}")

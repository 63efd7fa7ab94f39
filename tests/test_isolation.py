"""Tenant isolation, exhaustively: every URL of the project x every role x GET, htmx GET, POST.

The URLs come from the project's URL resolver (tests/url_table.py), so a new view is walked as
soon as it exists, and a view nobody described in `ROUTES` fails the first test below.

- anonymous: a redirect to the sign-in page (or 405 for a method the URL refuses);
- an outsider (member of workspace B only): 404 for every URL of workspace A, and for A's
  objects addressed through B's own slug; A's owner likewise gets 404 for B's objects addressed
  through A's slug. A 404 says nothing about whether the workspace or object exists;
- a member whose role is too low (viewer on anything that changes state, editor on owner-only
  pages): 403; members with the role: the page works (200, 204 or a redirect);
- never a 500 (the test client re-raises any exception a view lets escape).
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import UserFactory
from tests.helpers import HTMX
from tests.html_forms import main_form
from tests.url_table import (
    ROLE_ACCESS,
    ROUTES,
    Access,
    Route,
    World,
    build_world,
    project_url_names,
    public_routes_in_project,
    routes_in_project,
)
from tokens.models import Token
from workspaces.models import Role

pytestmark = pytest.mark.django_db

METHODS = ("GET", "GET (htmx)", "POST")
WORKING = {200, 204, 302}
LOGIN = reverse("login")


def send(client, method: str, url: str):
    if method == "GET":
        return client.get(url)
    if method == "GET (htmx)":
        return client.get(url, headers=HTMX)
    return client.post(url, {})


def needed(route: Route, method: str) -> Access | None:
    return route.post if method == "POST" else route.get


class Checker:
    """Sends one request per check and counts them (docs/security.md reports the total)."""

    count = 0

    def __init__(self, world: World, route: Route) -> None:
        self.world = world
        self.route = route

    def expect(self, who: str, method: str, url: str, statuses: set[int], why: str):
        response = send(self.world.client(who), method, url)
        Checker.count += 1
        assert response.status_code in statuses, (
            f"{who} {method} {url}: got {response.status_code}, expected {sorted(statuses)}: {why}"
        )
        return response


def test_every_url_pattern_is_described_in_the_route_table():
    names = project_url_names()
    described = {route.name for route in ROUTES}
    missing = sorted(f"{name} ({names[name]})" for name in set(names) - described)
    assert not missing, (
        "URL patterns with no entry in tests/url_table.py ROUTES (say how to build their "
        f"arguments and which role each method needs): {missing}"
    )
    stale = sorted(described - set(names))
    assert not stale, f"ROUTES describes URL names the project no longer has: {stale}"


@pytest.mark.parametrize("route", routes_in_project(), ids=lambda route: route.id)
def test_url_is_isolated_by_workspace_and_role(route: Route):
    world = build_world(tokens_per_workspace=1)
    check = Checker(world, route)
    own_url = route.url(world.a)

    for method in METHODS:
        refused = needed(route, method) is None
        response = check.expect(
            "anonymous",
            method,
            own_url,
            {302, 405} if refused else {302},
            "anonymous users are sent to sign in",
        )
        if response.status_code == 302:
            assert response["Location"].startswith(LOGIN), response["Location"]

    if route.in_workspace(world.a):
        for method in METHODS:
            not_found = {404, 405} if needed(route, method) is None else {404}
            check.expect("outsider", method, own_url, not_found, "outsiders learn nothing")
            if route.has_object_arguments(world.a):
                through_own_slug = route.url(world.a, slug=world.b.workspace.slug)
                check.expect(
                    "outsider", method, through_own_slug, not_found, "A's object via B's slug"
                )
                foreign_object = route.url(world.b, slug=world.a.workspace.slug)
                check.expect("owner", method, foreign_object, not_found, "B's object via A's slug")

    # Members: every role reads or is refused; the state-changing POST goes last, once, by the
    # lowest role allowed to make it (it may delete the object the other checks address).
    roles = (Role.VIEWER, Role.EDITOR, Role.OWNER)
    final_post = None
    for role in roles:
        who = role.value
        for method in METHODS:
            need = needed(route, method)
            if need is None:
                check.expect(who, method, own_url, {405}, "the URL refuses this method")
            elif ROLE_ACCESS[role] < need:
                check.expect(who, method, own_url, {403}, f"{need.name} role needed")
            elif route.only_for and who != route.only_for:
                check.expect(who, method, own_url, {404}, f"{route.only_for}'s object only")
            elif method == "POST":
                final_post = final_post or who
            else:
                check.expect(who, method, own_url, WORKING, "members with the role may read")
    if final_post:
        check.expect(final_post, "POST", own_url, WORKING, "the lowest allowed role may post")
    print(f"\nisolation checks so far: {Checker.count}")


@pytest.mark.parametrize("route", public_routes_in_project(), ids=lambda route: route.id)
def test_public_pages_answer_everyone_and_show_no_workspace_data(route):
    """The invitation link works for anyone holding it, signed in or not; without a link (or
    with another workspace's) nothing of a workspace shows, and nothing breaks."""
    world = build_world(tokens_per_workspace=1)
    for who in ("anonymous", "viewer", "outsider"):
        client = world.client(who)
        for method in route.methods:
            response = send(client, method, route.url(world.a))
            assert response.status_code in {200, 302, 404}, (who, method, response.status_code)
            page = response.content.decode()
            for value in world.values:
                assert value not in page
            assert "Globex" not in page or who == "outsider"


# --- the separately tested prefixes: the admin and Django's account views -------------------


def admin_urls(world: World) -> list[str]:
    """Every admin URL name of the project, with a real object where it takes one."""
    from django.contrib import admin

    urls = [reverse("admin:index")]
    for model in admin.site._registry:
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        urls += [reverse(f"{prefix}_changelist"), reverse(f"{prefix}_add")]
        obj = model.objects.first()
        if obj is not None:
            urls += [reverse(f"{prefix}_{view}", args=[obj.pk]) for view in ("change", "delete")]
    for app_label in {model._meta.app_label for model in admin.site._registry}:
        urls.append(reverse("admin:app_list", args=[app_label]))
    return urls


def test_admin_is_for_staff_only():
    world = build_world(tokens_per_workspace=1)
    urls = admin_urls(world)
    assert len(urls) > 30
    admin_login = reverse("admin:login")
    for who in ("anonymous", "owner", "outsider"):
        client = world.client(who)
        for url in urls:
            for method in ("GET", "POST"):
                response = client.get(url) if method == "GET" else client.post(url, {})
                Checker.count += 1
                assert response.status_code == 302, f"{who} {method} {url}"
                assert response["Location"].startswith(admin_login), response["Location"]
    print(f"\nisolation checks so far: {Checker.count} (admin: {len(urls)} URLs)")


def test_account_views_need_sign_in_where_they_should():
    world = build_world(tokens_per_workspace=1)
    anonymous = world.client("anonymous")
    signed_in_only = (
        "password_change",
        "account_email",
        "mfa_index",
        "mfa_activate_totp",
        "mfa_view_recovery_codes",
        "mfa_generate_recovery_codes",
        "mfa_deactivate_totp",
        "reauthenticate",
    )
    for name in signed_in_only:
        response = anonymous.get(reverse(name))
        assert response.status_code == 302, name
        assert response["Location"].startswith(LOGIN), name
    with_password = Client()
    with_password.force_login(UserFactory(username="has-a-password"))
    assert with_password.get(reverse("password_change")).status_code == 200
    assert anonymous.get(LOGIN).status_code == 200
    assert anonymous.get(reverse("password_reset")).status_code == 200
    Checker.count += len(signed_in_only) + 3


@pytest.mark.parametrize("field", ["products", "apps", "environments"])
@pytest.mark.parametrize("name", ["tokens:create", "tokens:edit"])
def test_token_forms_refuse_another_workspaces_objects(name, field):
    world = build_world(tokens_per_workspace=1)
    client = world.client("editor")
    token = world.a.token
    url = reverse(name, args=["acme", token.pk] if name == "tokens:edit" else ["acme"])
    form = main_form(client.get(url, headers=HTMX).text)
    data = form.defaults()
    data.update(key="SMUGGLED" if name == "tokens:create" else token.key, value="v" * 20)
    data["environments"] = data["environments"] or form.choices("environments")
    theirs = {"products": world.b.product, "apps": world.b.app, "environments": world.b.environment}
    data[field] = [str(theirs[field].pk)]
    before = sorted(getattr(token, field).values_list("pk", flat=True))

    response = client.post(url, data, headers=HTMX)

    assert response.status_code == 200, "refused, with the form shown again"
    assert "invalid-feedback" in response.text
    assert not Token.objects.filter(key="SMUGGLED").exists()
    assert sorted(getattr(token, field).values_list("pk", flat=True)) == before
    assert not theirs[field].tokens.filter(workspace=world.a.workspace).exists()

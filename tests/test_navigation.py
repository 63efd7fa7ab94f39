"""The sidebar: Access keys and Activity are workspace-level pages of their own; pages outside
a workspace (Account, two-factor) keep the last workspace's navigation; a member who cannot
create access keys is told who can."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.factories import MembershipFactory, UserFactory
from tests.helpers import text
from workspaces.middleware import LAST_WORKSPACE_COOKIE
from workspaces.models import Role

pytestmark = pytest.mark.django_db


def sidebar(page: str) -> str:
    return page[page.index('<nav class="sidebar-nav-region"') : page.index("</nav>")]


def current(page: str) -> list[str]:
    """The sidebar links marked as the current page."""
    return re.findall(r'aria-current="page"\s*href="[^"]*"><i[^>]*></i> ([^<]+)</a>', sidebar(page))


def test_access_keys_and_activity_are_in_the_sidebar(viewer_client, workspace):
    page = text(viewer_client.get(reverse("tokens:list", args=[workspace.slug])))
    nav = sidebar(page)
    assert f'href="{reverse("access:list", args=[workspace.slug])}"' in nav
    assert f'href="{reverse("audit:activity", args=[workspace.slug])}"' in nav
    assert current(page) == ["Tokens"]


@pytest.mark.parametrize(
    ("name", "here"),
    [
        ("access:list", "Access keys"),
        ("identities:list", "Access keys"),
        ("audit:activity", "Activity"),
    ],
)
def test_the_sidebar_marks_the_page_it_is_on(owner_client, workspace, name, here):
    page = text(owner_client.get(reverse(name, args=[workspace.slug])))
    assert current(page) == [here]


def test_the_access_keys_page_is_called_so(owner_client, workspace):
    page = text(owner_client.get(reverse("access:list", args=[workspace.slug])))
    assert "<h1>Access keys</h1>" in page
    assert 'aria-label="Access keys page"' in page  # its own tabs: keys and identities


def test_account_keeps_the_last_workspaces_navigation(owner_client, workspace):
    assert "Tokens</a>" not in sidebar(text(owner_client.get(reverse("account"))))  # none yet
    owner_client.get(reverse("tokens:list", args=[workspace.slug]))
    assert owner_client.cookies[LAST_WORKSPACE_COOKIE].value == workspace.slug
    page = text(owner_client.get(reverse("account")))
    assert f'href="{reverse("tokens:list", args=[workspace.slug])}"' in sidebar(page)
    assert current(page) == []  # Account is not a workspace page
    assert re.search(r'href="/account/"\s*aria-current="page"', page)


def test_a_workspace_the_user_left_is_not_shown_whatever_the_cookie_says(
    owner_client, other_workspace
):
    owner_client.cookies[LAST_WORKSPACE_COOKIE] = other_workspace.slug
    page = text(owner_client.get(reverse("account")))
    assert other_workspace.slug not in sidebar(page).split("dropdown-menu")[0]
    assert "Tokens</a>" not in sidebar(page)


@pytest.mark.parametrize("name", ["access:list", "identities:list"])
def test_an_editor_is_told_which_owners_can_create(editor_client, workspace, name):
    for owner in ("aaron", "olga"):
        MembershipFactory(workspace=workspace, user=UserFactory(username=owner), role=Role.OWNER)
    page = text(editor_client.get(reverse(name, args=[workspace.slug])))
    owners = sorted(workspace.owner_names())
    assert len(owners) == 2
    said = f"Ask <strong>{owners[0]}</strong> or <strong>{owners[1]}</strong>."
    assert "Only owners" in page and said in page


def test_an_owner_is_not_told_to_ask_anyone(owner_client, workspace):
    page = text(owner_client.get(reverse("access:list", args=[workspace.slug])))
    assert "Only owners" not in page


def test_products_and_apps_say_how_they_relate(viewer_client, workspace):
    page = text(viewer_client.get(reverse("products", args=[workspace.slug])))
    assert "Two independent lists" in page


def test_only_workspace_members_get_the_cookie(outsider_client, workspace):
    response = outsider_client.get(reverse("tokens:list", args=[workspace.slug]))
    assert response.status_code == 404
    assert LAST_WORKSPACE_COOKIE not in response.cookies


def test_two_factor_setup_keeps_the_workspaces_navigation(owner_client, workspace):
    owner_client.get(reverse("tokens:list", args=[workspace.slug]))
    page = text(owner_client.get(reverse("mfa_activate_totp")))
    assert f'href="{reverse("members", args=[workspace.slug])}"' in sidebar(page)

"""Workspace pages: home, create workspace, Products & Apps, Environments; who may see what."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import (
    AppFactory,
    MembershipFactory,
    ProductFactory,
    TokenFactory,
    UserFactory,
    WorkspaceFactory,
)
from tests.helpers import HTMX, triggers
from workspaces.models import Membership, Role, Workspace


def workspace_urls(workspace) -> list[tuple[str, str]]:
    """Every (method, URL) of `workspace`, with one object of each kind it holds."""
    product = ProductFactory(workspace=workspace)
    app = AppFactory(workspace=workspace)
    environment = workspace.environments.first()
    member = MembershipFactory(workspace=workspace, role=Role.EDITOR)
    slug = workspace.slug
    pages = [
        ("get", reverse(name, args=[slug]))
        for name in ("tokens:list", "products", "environments", "members")
    ]
    urls = [
        reverse("invitation_create", args=[slug]),
        reverse("member_edit", args=[slug, member.pk]),
        reverse("member_remove", args=[slug, member.pk]),
    ]
    for kind, item in (("products", product), ("apps", app), ("environments", environment)):
        urls += [
            reverse("catalog_add", args=[slug, kind]),
            reverse("catalog_edit", args=[slug, kind, item.pk]),
            reverse("catalog_delete", args=[slug, kind, item.pk]),
        ]
    return pages + [(method, url) for url in urls for method in ("get", "post")]


def snapshot(workspace) -> list:
    """What a successful write to the workspace would change."""
    return [
        list(workspace.memberships.values_list("user_id", "role")),
        *(
            list(items.values_list("name", "slug"))
            for items in (workspace.products, workspace.apps, workspace.environments)
        ),
    ]


# --- anonymous visitors and outsiders ---------------------------------------------------------


@pytest.mark.django_db
def test_anonymous_visitor_is_sent_to_sign_in_from_every_page(client, workspace):
    urls = workspace_urls(workspace) + [
        ("get", reverse("home")),
        ("get", reverse("workspace_create")),
        ("post", reverse("workspace_create")),
    ]
    for method, url in urls:
        response = getattr(client, method)(url)
        assert response.status_code == 302, (method, url)
        assert response["Location"].startswith(f"{reverse('login')}?next="), (method, url)
    assert Workspace.objects.count() == 1


@pytest.mark.django_db
def test_non_member_gets_404_for_every_url_of_another_workspace(outsider_client, workspace):
    urls = workspace_urls(workspace)
    before = snapshot(workspace)
    for method, url in urls:
        for headers in ({}, HTMX):
            data = {"name": "Hijacked", "username": "mallory", "role": "owner"}
            response = getattr(outsider_client, method)(url, data, headers=headers)
            assert response.status_code == 404, (method, url, headers)
            assert "Acme" not in response.content.decode()
    assert snapshot(workspace) == before


@pytest.mark.django_db
def test_another_workspaces_objects_via_my_slug_are_404(owner_client, workspace, other_workspace):
    """Owner of A addresses B's product, app, environment and member through A's URLs."""
    theirs = {
        "products": ProductFactory(workspace=other_workspace),
        "apps": AppFactory(workspace=other_workspace),
        "environments": other_workspace.environments.first(),
    }
    their_member = MembershipFactory(workspace=other_workspace, role=Role.EDITOR)
    urls = [reverse("member_edit", args=["acme", their_member.pk])]
    urls.append(reverse("member_remove", args=["acme", their_member.pk]))
    for kind, item in theirs.items():
        urls.append(reverse("catalog_edit", args=["acme", kind, item.pk]))
        urls.append(reverse("catalog_delete", args=["acme", kind, item.pk]))

    for url in urls:
        assert owner_client.get(url).status_code == 404, url
        assert owner_client.post(url, {"name": "Hijacked", "role": "owner"}).status_code == 404
    assert "Hijacked" not in str(snapshot(other_workspace))
    assert Membership.objects.get(pk=their_member.pk).role == Role.EDITOR
    assert other_workspace.environments.count() == 2


@pytest.mark.django_db
def test_a_product_addressed_as_an_app_is_404(owner_client, workspace):
    product = ProductFactory(workspace=workspace)

    response = owner_client.get(reverse("catalog_edit", args=["acme", "apps", product.pk]))

    assert response.status_code == 404


@pytest.mark.django_db
def test_unknown_catalog_kind_is_404(owner_client, workspace):
    assert owner_client.get("/w/acme/catalog/users/new/").status_code == 404


@pytest.mark.django_db
def test_unknown_workspace_is_404(owner_client):
    assert owner_client.get(reverse("products", args=["nope"])).status_code == 404


# --- home and creating a workspace ----------------------------------------------------------


@pytest.mark.django_db
def test_user_without_workspace_is_offered_create_workspace(client):
    user = UserFactory()
    client.force_login(user)

    response = client.get(reverse("home"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "You are not a member of any workspace yet" in html
    assert f'href="{reverse("workspace_create")}"' in html
    assert "Create workspace" in html


@pytest.mark.django_db
def test_home_takes_a_member_to_their_first_workspaces_tokens(owner_client, workspace):
    response = owner_client.get(reverse("home"))

    assert response.status_code == 302
    assert response["Location"] == reverse("tokens:list", args=["acme"])


@pytest.mark.django_db
def test_create_workspace_form_as_a_page_and_as_a_modal_fragment(client):
    client.force_login(UserFactory())

    page = client.get(reverse("workspace_create"))
    fragment = client.get(reverse("workspace_create"), headers=HTMX)

    assert page.status_code == fragment.status_code == 200
    assert "<html" in page.content.decode()
    html = fragment.content.decode()
    assert "<html" not in html
    assert 'hx-post="/workspaces/new/"' in html
    assert "Create workspace" in html
    assert "HX-Request" in fragment["Vary"]


@pytest.mark.django_db
def test_creating_a_workspace_makes_the_creator_owner(client):
    user = UserFactory()
    client.force_login(user)

    response = client.post(reverse("workspace_create"), {"name": "New Co", "slug": ""})

    workspace = Workspace.objects.get(slug="new-co")
    assert response.status_code == 302
    assert response["Location"] == reverse("tokens:list", args=["new-co"])
    assert Membership.objects.get(workspace=workspace, user=user).role == Role.OWNER
    assert sorted(workspace.environments.values_list("slug", flat=True)) == [
        "production",
        "sandbox",
    ]
    follow = client.get(response["Location"])
    assert "Workspace “New Co” created. You are its owner." in follow.content.decode()


@pytest.mark.django_db
def test_creating_a_workspace_with_htmx_redirects_there(client):
    client.force_login(UserFactory())

    response = client.post(
        reverse("workspace_create"), {"name": "New Co", "slug": "newco"}, headers=HTMX
    )

    assert response.status_code == 204
    assert response["HX-Redirect"] == reverse("tokens:list", args=["newco"])
    assert "closeModal" in triggers(response)
    assert Workspace.objects.filter(slug="newco").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": "", "slug": ""}, "name", "This field is required."),
        ({"name": "Bad", "slug": "no spaces!"}, "slug", "Enter a valid “slug”"),
        ({"name": "???", "slug": ""}, "slug", "Enter a slug"),
        ({"name": "x" * 101, "slug": "x"}, "name", "at most 100 characters"),
    ],
)
def test_invalid_workspace_is_refused_with_a_message(client, workspace, data, field, message):
    client.force_login(UserFactory())

    response = client.post(reverse("workspace_create"), data, headers=HTMX)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert Workspace.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("slug", ["acme", ""], ids=["typed", "from the name"])
def test_a_taken_slug_gets_the_next_free_one_and_the_message_says_which(client, workspace, slug):
    WorkspaceFactory(slug="acme-2")
    outsider = UserFactory()
    client.force_login(outsider)

    response = client.post(reverse("workspace_create"), {"name": "Acme", "slug": slug})

    created = Workspace.objects.get(slug="acme-3")
    assert response.status_code == 302
    assert response["Location"] == reverse("tokens:list", args=["acme-3"])
    assert Membership.objects.get(workspace=created, user=outsider).role == Role.OWNER
    assert not workspace.memberships.filter(user=outsider).exists()
    page = client.get(response["Location"]).content.decode()
    assert "Workspace “Acme” created with the slug “acme-3”, as “acme” is not available." in page
    assert "already exists" not in page


@pytest.mark.django_db
def test_a_taken_slug_answers_like_a_free_one(client, workspace):
    client.force_login(UserFactory())

    taken = client.post(reverse("workspace_create"), {"name": "Acme", "slug": "acme"}, headers=HTMX)
    free = client.post(reverse("workspace_create"), {"name": "Zeta", "slug": "zeta"}, headers=HTMX)

    assert taken.status_code == free.status_code == 204
    assert triggers(taken).keys() == triggers(free).keys()


@pytest.mark.django_db
def test_a_taken_fifty_character_slug_is_shortened_to_fit(client):
    WorkspaceFactory(slug="a" * 50)
    client.force_login(UserFactory())

    client.post(reverse("workspace_create"), {"name": "Long", "slug": "a" * 50})

    assert Workspace.objects.filter(slug="a" * 48 + "-2").exists()


@pytest.mark.django_db
def test_a_slug_taken_between_lookup_and_insert_moves_on_to_the_next(client, monkeypatch):
    """The race of two creators, made deterministic: a rival inserts the chosen slug just
    before our insert, so ours hits the unique constraint and must retry, not answer 500."""
    create = Workspace.create_with_owner.__func__
    rivals = []

    def rival_first(cls, *, name, slug, owner):
        if not rivals:
            rivals.append(WorkspaceFactory(slug=slug))
        return create(cls, name=name, slug=slug, owner=owner)

    monkeypatch.setattr(Workspace, "create_with_owner", classmethod(rival_first))
    client.force_login(UserFactory())

    response = client.post(reverse("workspace_create"), {"name": "Acme", "slug": "acme"})

    assert response.status_code == 302
    assert rivals[0].slug == "acme"
    assert Workspace.objects.filter(slug="acme-2", memberships__role=Role.OWNER).exists()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_creators_of_one_slug_all_get_a_workspace():
    from django.db import connection

    from tests.test_concurrency import in_threads

    if connection.vendor != "postgresql":
        pytest.skip("a real race needs PostgreSQL (SQLite serialises writers)")
    users = [UserFactory(username=f"racer{i}") for i in range(8)]

    def create(i: int) -> int:
        client = Client()
        client.force_login(users[i])
        return client.post(
            reverse("workspace_create"), {"name": "Acme", "slug": "acme"}
        ).status_code

    assert in_threads(len(users), create) == [302] * len(users)
    slugs = set(Workspace.objects.values_list("slug", flat=True))
    assert slugs == {"acme", *[f"acme-{n}" for n in range(2, len(users) + 1)]}


@pytest.mark.django_db
def test_an_empty_create_workspace_post_says_the_name_is_required(client):
    client.force_login(UserFactory())

    response = client.post(reverse("workspace_create"), headers=HTMX)

    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not Workspace.objects.exists()


# --- Products & Apps and Environments pages -------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("member", ["owner_client", "editor_client", "viewer_client"])
def test_every_member_sees_products_and_apps(request, member, workspace):
    client = request.getfixturevalue(member)
    ProductFactory(workspace=workspace, name="Payments", slug="payments")
    AppFactory(workspace=workspace, name="Checkout", slug="checkout")

    response = client.get(reverse("products", args=["acme"]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "<h1>Products &amp; Apps</h1>" in html
    assert "Payments" in html and "<code>payments</code>" in html
    assert "Checkout" in html and "<code>checkout</code>" in html


@pytest.mark.django_db
@pytest.mark.parametrize("member", ["owner_client", "editor_client", "viewer_client"])
def test_every_member_sees_environments(request, member, workspace):
    client = request.getfixturevalue(member)

    response = client.get(reverse("environments", args=["acme"]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "<code>production</code>" in html
    assert "<code>sandbox</code>" in html


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["products", "environments"])
def test_list_fragment_for_htmx_is_only_the_lists(owner_client, workspace, page):
    ProductFactory(workspace=workspace, name="Payments")

    response = owner_client.get(reverse(page, args=["acme"]), headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert "<table" in html
    assert "HX-Request" in response["Vary"]
    assert ("Payments" in html) is (page == "products")


@pytest.mark.django_db
def test_owner_sees_manage_buttons_on_products(owner_client, workspace):
    product = ProductFactory(workspace=workspace, name="Payments")

    html = owner_client.get(reverse("products", args=["acme"])).content.decode()

    assert "Add product" in html and "Add app" in html
    assert reverse("catalog_edit", args=["acme", "products", product.pk]) in html
    assert reverse("catalog_delete", args=["acme", "products", product.pk]) in html


@pytest.mark.django_db
@pytest.mark.parametrize("member", ["editor_client", "viewer_client"])
@pytest.mark.parametrize("page", ["products", "environments"])
def test_editors_and_viewers_see_no_manage_buttons(request, member, page, workspace):
    client = request.getfixturevalue(member)
    ProductFactory(workspace=workspace)
    AppFactory(workspace=workspace)

    for headers in ({}, HTMX):
        html = client.get(reverse(page, args=["acme"]), headers=headers).content.decode()
        assert "/catalog/" not in html
        assert "Add product" not in html and "Add environment" not in html
        assert ">Actions<" not in html


@pytest.mark.django_db
def test_lists_are_sorted_by_name(owner_client, workspace):
    for name in ("Mobile", "Backoffice", "Checkout"):
        AppFactory(workspace=workspace, name=name)
    workspace.environments.create(name="Canary", slug="canary")

    apps = owner_client.get(reverse("products", args=["acme"])).context["apps"]
    environments = owner_client.get(reverse("environments", args=["acme"])).context["environments"]

    assert [app.name for app in apps] == ["Backoffice", "Checkout", "Mobile"]
    assert [env.name for env in environments] == ["Canary", "Production", "Sandbox"]


@pytest.mark.django_db
def test_token_counts_are_shown(owner_client, workspace):
    product = ProductFactory(workspace=workspace, name="Payments")
    TokenFactory(workspace=workspace, products=[product])
    TokenFactory(workspace=workspace, products=[product])

    response = owner_client.get(reverse("products", args=["acme"]))

    assert response.context["products"].get(pk=product.pk).token_count == 2


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["products", "environments", "members"])
def test_list_pages_take_a_fixed_number_of_queries(
    owner_client, workspace, page, django_assert_max_num_queries
):
    products = ProductFactory.create_batch(15, workspace=workspace)
    apps = AppFactory.create_batch(15, workspace=workspace)
    for n in range(10):
        workspace.environments.create(name=f"Env {n}", slug=f"env-{n}")
        MembershipFactory(workspace=workspace, role=Role.VIEWER)
    for n in range(5):
        TokenFactory(workspace=workspace, products=products[:3], apps=apps[:3], key=f"K_{n}")
    url = reverse(page, args=["acme"])

    # session, user, membership + workspace, the lists, the switcher's workspaces
    with django_assert_max_num_queries(7):
        assert owner_client.get(url).status_code == 200
    with django_assert_max_num_queries(7):
        assert owner_client.get(url, headers=HTMX).status_code == 200


@pytest.mark.django_db
def test_switcher_lists_only_my_workspaces(owner_client, workspace, other_workspace):
    MembershipFactory(user=owner_client.user, workspace__name="Initech", workspace__slug="initech")

    html = owner_client.get(reverse("products", args=["acme"])).content.decode()

    assert reverse("tokens:list", args=["initech"]) in html
    assert reverse("tokens:list", args=["acme"]) in html
    assert "Globex" not in html


@pytest.mark.django_db
def test_pages_have_no_inline_scripts_styles_or_handlers(owner_client, workspace):
    ProductFactory(workspace=workspace)
    for url in (
        reverse("products", args=["acme"]),
        reverse("environments", args=["acme"]),
        reverse("members", args=["acme"]),
        reverse("catalog_add", args=["acme", "products"]),
        reverse("workspace_create"),
    ):
        html = owner_client.get(url).content.decode()
        assert " style=" not in html, url
        assert " onclick=" not in html and " onload=" not in html, url
        assert "<script>" not in html, url
    assert "script-src 'self'" in owner_client.get(url)["Content-Security-Policy"]


@pytest.mark.django_db
def test_sign_in_page_is_styled_and_signs_in(client):
    UserFactory(username="olivia")

    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert "Sign in to Coffer" in page.content.decode()

    response = client.post(
        reverse("login"), {"username": "olivia", "password": "correct-horse-battery-staple"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("home")


@pytest.mark.django_db
def test_wrong_password_says_so_and_does_not_sign_in(client):
    UserFactory(username="olivia")

    response = client.post(reverse("login"), {"username": "olivia", "password": "wrong"})

    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_sign_out_returns_to_sign_in(owner_client):
    response = owner_client.post(reverse("logout"))

    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert owner_client.get(reverse("home")).status_code == 302

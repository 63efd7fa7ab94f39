"""Workspace, Membership and catalog models: the rules every page and command relies on."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from tests.factories import (
    AppFactory,
    EnvironmentFactory,
    MembershipFactory,
    ProductFactory,
    TokenFactory,
    UserFactory,
    WorkspaceFactory,
)
from workspaces.forms import AppForm, EnvironmentForm, ProductForm, WorkspaceForm
from workspaces.models import App, Environment, Membership, Product, Role, Workspace

pytestmark = pytest.mark.django_db


def test_new_workspace_gets_production_and_sandbox():
    workspace = Workspace.objects.create(name="Acme", slug="acme")

    assert list(workspace.environments.values_list("name", "slug")) == [
        ("Production", "production"),
        ("Sandbox", "sandbox"),
    ]


def test_saving_an_existing_workspace_adds_no_environments():
    workspace = WorkspaceFactory()
    workspace.name = "Renamed"
    workspace.save()

    assert workspace.environments.count() == 2


def test_create_with_owner_makes_the_creator_owner():
    user = UserFactory()

    workspace = Workspace.create_with_owner(name="Acme", slug="acme", owner=user)

    membership = Membership.objects.get(workspace=workspace)
    assert membership.user == user
    assert membership.role == Role.OWNER
    assert workspace.environments.count() == 2


def test_create_with_owner_with_a_taken_slug_leaves_nothing_behind():
    WorkspaceFactory(slug="acme")
    user = UserFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        Workspace.create_with_owner(name="Other", slug="acme", owner=user)

    assert Workspace.objects.count() == 1
    assert not Membership.objects.filter(user=user).exists()


def test_for_user_lists_only_the_users_workspaces():
    user = UserFactory()
    mine = MembershipFactory(user=user, workspace__name="Mine").workspace
    WorkspaceFactory(name="Theirs")

    assert list(Workspace.objects.for_user(user)) == [mine]


def test_roles_are_ordered_viewer_editor_owner():
    assert Role.OWNER.at_least(Role.EDITOR)
    assert Role.OWNER.at_least(Role.VIEWER)
    assert Role.EDITOR.at_least(Role.VIEWER)
    assert Role.EDITOR.at_least(Role.EDITOR)
    assert not Role.EDITOR.at_least(Role.OWNER)
    assert not Role.VIEWER.at_least(Role.EDITOR)


@pytest.mark.parametrize(
    ("role", "tokens", "workspace"),
    [(Role.OWNER, True, True), (Role.EDITOR, True, False), (Role.VIEWER, False, False)],
)
def test_membership_permissions_follow_the_role(role, tokens, workspace):
    membership = MembershipFactory(role=role)

    assert membership.can_manage_tokens is tokens
    assert membership.can_manage_workspace is workspace


def test_one_membership_per_user_and_workspace():
    membership = MembershipFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        MembershipFactory(workspace=membership.workspace, user=membership.user)


def test_the_only_owner_is_the_last_owner():
    owner = MembershipFactory(role=Role.OWNER)
    editor = MembershipFactory(workspace=owner.workspace, role=Role.EDITOR)

    assert owner.is_last_owner()
    assert not editor.is_last_owner()


def test_with_two_owners_neither_is_the_last():
    first = MembershipFactory(role=Role.OWNER)
    second = MembershipFactory(workspace=first.workspace, role=Role.OWNER)
    MembershipFactory(role=Role.OWNER)  # an owner elsewhere does not count

    assert not first.is_last_owner()
    assert not second.is_last_owner()


LAST_OWNER = "A workspace needs at least one owner. Make someone else an owner first."


def test_demoting_the_last_owner_is_refused_and_changes_nothing():
    owner = MembershipFactory(role=Role.OWNER)

    with pytest.raises(ValidationError) as refused:
        owner.change_role(Role.EDITOR, by=owner.user)

    assert refused.value.messages == [LAST_OWNER]
    owner.refresh_from_db()
    assert owner.role == Role.OWNER


def test_removing_the_last_owner_is_refused_and_changes_nothing():
    owner = MembershipFactory(role=Role.OWNER)

    with pytest.raises(ValidationError) as refused:
        owner.remove(by=owner.user)

    assert refused.value.messages == [LAST_OWNER]
    assert Membership.objects.filter(pk=owner.pk).exists()


def test_an_owner_may_step_down_or_leave_while_another_owner_remains():
    first = MembershipFactory(role=Role.OWNER)
    second = MembershipFactory(workspace=first.workspace, role=Role.OWNER)

    assert first.change_role(Role.VIEWER, by=first.user) is True
    second.change_role(Role.OWNER, by=second.user)  # unchanged: allowed, nothing to do
    first.remove(by=second.user)

    assert list(first.workspace.memberships.values_list("role", flat=True)) == [Role.OWNER]


def test_a_stale_copy_counts_the_owners_as_stored():
    """The rule reads the rows as stored, not the caller's copy (which may be out of date)."""
    first = MembershipFactory(role=Role.OWNER)
    second = MembershipFactory(workspace=first.workspace, role=Role.OWNER)
    stale_first = Membership.objects.get(pk=first.pk)
    second.change_role(Role.EDITOR, by=first.user)

    with pytest.raises(ValidationError, match="at least one owner"):
        stale_first.remove(by=first.user)


def test_changing_a_removed_member_says_so():
    owner = MembershipFactory(role=Role.OWNER, user__username="zed")
    MembershipFactory(workspace=owner.workspace, role=Role.OWNER)
    copy = Membership.objects.get(pk=owner.pk)
    owner.remove()

    with pytest.raises(ValidationError) as refused:
        copy.change_role(Role.VIEWER)

    assert refused.value.messages == ["zed is no longer a member of this workspace."]


@pytest.mark.parametrize("model", [Environment, Product, App])
def test_catalog_slug_defaults_to_the_slugified_name(model):
    item = model.objects.create(workspace=WorkspaceFactory(), name="Mobile Web 2")

    assert item.slug == "mobile-web-2"


@pytest.mark.parametrize(
    ("factory", "field"),
    [
        (EnvironmentFactory, "slug"),
        (EnvironmentFactory, "name"),
        (ProductFactory, "slug"),
        (ProductFactory, "name"),
        (AppFactory, "slug"),
        (AppFactory, "name"),
    ],
)
def test_catalog_names_and_slugs_are_unique_within_a_workspace(factory, field):
    first = factory()

    with pytest.raises(IntegrityError), transaction.atomic():
        factory(workspace=first.workspace, **{field: getattr(first, field)})


@pytest.mark.parametrize("factory", [EnvironmentFactory, ProductFactory, AppFactory])
def test_the_same_name_and_slug_may_exist_in_another_workspace(factory):
    first = factory(name="Shared", slug="shared")

    second = factory(name="Shared", slug="shared")

    assert second.workspace != first.workspace


@pytest.mark.parametrize(
    ("form_class", "factory", "noun"),
    [
        (EnvironmentForm, EnvironmentFactory, "an environment"),
        (ProductForm, ProductFactory, "a product"),
        (AppForm, AppFactory, "an app"),
    ],
)
def test_catalog_form_rejects_a_taken_name_and_slug_with_clear_messages(form_class, factory, noun):
    taken = factory(name="Payments", slug="payments")

    form = form_class({"name": "Payments", "slug": "payments"}, workspace=taken.workspace)

    assert not form.is_valid()
    assert form.errors["name"] == [
        f"This workspace already has {noun} with name “Payments”. Choose another."
    ]
    assert form.errors["slug"] == [
        f"This workspace already has {noun} with slug “payments”. Choose another."
    ]


def test_catalog_form_slug_from_name_clashing_is_reported_on_the_slug():
    taken = ProductFactory(name="Payments", slug="payments")

    form = ProductForm({"name": "payments!", "slug": ""}, workspace=taken.workspace)

    assert not form.is_valid()
    assert "slug “payments”" in form.errors["slug"][0]


def test_catalog_form_allows_keeping_its_own_name_when_editing():
    product = ProductFactory(name="Payments", slug="payments")

    form = ProductForm(
        {"name": "Payments", "slug": "payments"}, instance=product, workspace=product.workspace
    )

    assert form.is_valid(), form.errors


def test_catalog_form_lowercases_a_typed_slug():
    form = ProductForm({"name": "Payments", "slug": "PAY-Ments"}, workspace=WorkspaceFactory())

    assert form.is_valid(), form.errors
    assert form.save().slug == "pay-ments"


def test_catalog_form_without_a_name_says_only_that_the_name_is_needed():
    form = ProductForm({"name": "", "slug": ""}, workspace=WorkspaceFactory())

    assert not form.is_valid()
    assert form.errors == {"name": ["This field is required."]}


def test_catalog_form_name_without_letters_asks_for_a_slug():
    form = ProductForm({"name": "!!!", "slug": ""}, workspace=WorkspaceFactory())

    assert not form.is_valid()
    assert "Enter a slug" in form.errors["slug"][0]


def test_catalog_form_save_reports_a_clash_that_appeared_after_validation():
    workspace = WorkspaceFactory()
    form = ProductForm({"name": "Payments", "slug": "payments"}, workspace=workspace)
    assert form.is_valid()
    ProductFactory(workspace=workspace, name="Payments", slug="payments")  # someone was faster

    assert form.save() is None
    assert "already has a product" in form.errors["name"][0]
    assert Product.objects.filter(workspace=workspace).count() == 1


def test_workspace_form_takes_the_next_free_slug_instead_of_refusing():
    WorkspaceFactory(slug="acme")

    form = WorkspaceForm({"name": "Acme", "slug": ""})

    assert form.is_valid()
    assert form.create(owner=UserFactory()).slug == "acme-2"


def test_workspace_form_create_moves_past_a_clash_that_appeared_after_validation():
    form = WorkspaceForm({"name": "Acme", "slug": "acme"})
    assert form.is_valid()
    WorkspaceFactory(slug="acme")

    assert form.create(owner=UserFactory()).slug == "acme-2"


def test_deletion_blocker_is_none_for_an_unused_item():
    assert ProductFactory().deletion_blocker() is None


def test_deletion_blocker_names_the_tokens_that_use_the_item():
    workspace = WorkspaceFactory()
    product = ProductFactory(workspace=workspace, name="Payments")
    TokenFactory(workspace=workspace, key="STRIPE_KEY", products=[product])

    assert product.deletion_blocker() == (
        "Product “Payments” is used by 1 token (STRIPE_KEY). "
        "Remove it from that token before deleting it."
    )


def test_deletion_blocker_counts_many_tokens():
    workspace = WorkspaceFactory()
    production = workspace.environments.get(slug="production")
    for n in range(5):
        TokenFactory(workspace=workspace, key=f"KEY_{n}", environments=[production])

    assert production.deletion_blocker() == (
        "Environment “Production” is used by 5 tokens (KEY_0, KEY_1, KEY_2 and 2 more). "
        "Remove it from those tokens before deleting it."
    )


def test_deletion_blocker_names_the_access_keys_bound_to_the_item(workspace):
    from tests.factories import make_access_key

    production = workspace.environments.get(slug="production")
    make_access_key(workspace, name="ci-deploy", environment=production)

    assert production.deletion_blocker() == (
        "Environment “Production” is used by 1 access key (ci-deploy). "
        "Delete that access key before deleting it."
    )

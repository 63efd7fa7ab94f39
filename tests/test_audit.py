"""The audit trail records every change in a workspace, wherever it is made; never a value.

Members added, removed or given another role; products, apps and environments added, renamed or
deleted; workspaces created and renamed; through the pages and through the Django admin. A
deleted workspace's own trail goes with it, so its deletion is in the admin's log.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from tests.factories import MembershipFactory, ProductFactory, UserFactory
from tests.helpers import invitation_link
from workspaces.models import Membership, Role, Workspace

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
ROOT = Path(__file__).resolve().parent.parent


def trail(workspace) -> list[tuple[str, str, dict]]:
    """(action, actor, detail) of `workspace`'s events, oldest first."""
    events = AuditEvent.objects.filter(workspace=workspace).order_by("created_at", "id")
    return [(e.action, e.actor_name, e.detail) for e in events]


# --- members ---------------------------------------------------------------------------------


def test_inviting_changing_and_removing_a_member_are_recorded(owner_client, workspace, mailoutbox):
    zed_client = Client()
    zed_client.force_login(UserFactory(username="zed"))
    owner_client.post(
        reverse("invitation_create", args=["acme"]), {"email": "zed@example.com", "role": "viewer"}
    )
    zed_client.get(invitation_link(mailoutbox[-1]))
    zed_client.post(reverse("invitation_accept"))
    zed = Membership.objects.get(workspace=workspace, user__username="zed")
    owner_client.post(reverse("member_edit", args=["acme", zed.pk]), {"role": "editor"})
    owner_client.post(reverse("member_remove", args=["acme", zed.pk]))

    assert trail(workspace) == [
        (AuditAction.MEMBER_INVITED, "olivia", {"email": "zed@example.com", "role": "viewer"}),
        (
            AuditAction.INVITATION_ACCEPTED,
            "zed",
            {"member": "zed", "email": "zed@example.com", "role": "viewer"},
        ),
        (
            AuditAction.MEMBER_ROLE_CHANGED,
            "olivia",
            {"member": "zed", "from": "viewer", "to": "editor"},
        ),
        (AuditAction.MEMBER_REMOVED, "olivia", {"member": "zed", "role": "editor"}),
    ]
    event = AuditEvent.objects.get(action=AuditAction.MEMBER_ROLE_CHANGED)
    assert (event.subject, event.summary) == ("zed", "Viewer → Editor")
    assert event.actor == owner_client.user


def test_a_refused_or_empty_change_records_nothing(owner_client, workspace):
    me = Membership.objects.get(workspace=workspace, user=owner_client.user)

    owner_client.post(reverse("member_edit", args=["acme", me.pk]), {"role": "viewer"})
    owner_client.post(reverse("member_remove", args=["acme", me.pk]))
    owner_client.post(reverse("member_edit", args=["acme", me.pk]), {"role": "owner"})

    assert trail(workspace) == []


# --- products, apps, environments ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "noun"), [("products", "product"), ("apps", "app"), ("environments", "environment")]
)
def test_adding_renaming_and_deleting_catalog_items_are_recorded(
    owner_client, workspace, kind, noun
):
    owner_client.post(reverse("catalog_add", args=["acme", kind]), {"name": "Billing", "slug": ""})
    item = getattr(workspace, kind).get(slug="billing")
    owner_client.post(
        reverse("catalog_edit", args=["acme", kind, item.pk]),
        {"name": "Invoices", "slug": "billing"},
    )
    owner_client.post(
        reverse("catalog_edit", args=["acme", kind, item.pk]),
        {"name": "Invoices", "slug": "billing"},
    )  # saved unchanged: nothing to record
    owner_client.post(reverse("catalog_delete", args=["acme", kind, item.pk]))

    assert trail(workspace) == [
        (f"{noun}.created", "olivia", {"name": "Billing", "slug": "billing"}),
        (f"{noun}.renamed", "olivia", {"name": "Invoices", "renamed": ["Billing", "Invoices"]}),
        (f"{noun}.deleted", "olivia", {"name": "Invoices", "slug": "billing"}),
    ]
    renamed = AuditEvent.objects.get(action=f"{noun}.renamed")
    assert renamed.get_action_display() == f"{noun.capitalize()} renamed"
    assert (renamed.subject, renamed.summary) == ("Invoices", "Renamed “Billing” to “Invoices”")


def test_a_new_slug_is_recorded_with_the_rename(owner_client, workspace):
    product = ProductFactory(workspace=workspace, name="Payments", slug="payments")

    owner_client.post(
        reverse("catalog_edit", args=["acme", "products", product.pk]),
        {"name": "Pay", "slug": "pay"},
    )

    event = AuditEvent.objects.get(action=AuditAction.PRODUCT_RENAMED)
    assert event.summary == "Renamed “Payments” to “Pay”; Slug payments → pay"


# --- workspaces --------------------------------------------------------------------------------


def test_creating_a_workspace_is_recorded_in_it(owner_client):
    owner_client.post(reverse("workspace_create"), {"name": "Initech", "slug": ""})

    initech = Workspace.objects.get(slug="initech")
    assert trail(initech) == [
        (AuditAction.WORKSPACE_CREATED, "olivia", {"name": "Initech", "slug": "initech"})
    ]


@pytest.fixture
def admin_client(workspace) -> Client:
    root = get_user_model().objects.create_superuser("root", "root@example.com", "x" * 20)
    MembershipFactory(workspace=workspace, user__username="olivia", role=Role.OWNER)
    client = Client()
    client.force_login(root)
    return client


def test_renaming_a_workspace_in_the_admin_is_recorded(admin_client, workspace):
    response = admin_client.post(
        reverse("admin:workspaces_workspace_change", args=[workspace.pk]),
        {
            "name": "Acme Corp",
            "slug": "acme",
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "1",
        },
    )

    assert response.status_code == 302, response.content.decode()
    assert trail(workspace) == [
        (
            AuditAction.WORKSPACE_RENAMED,
            "root",
            {"name": "Acme Corp", "renamed": ["Acme", "Acme Corp"]},
        )
    ]


def test_deleting_a_workspace_in_the_admin_is_in_the_admins_log(admin_client, workspace):
    response = admin_client.post(
        reverse("admin:workspaces_workspace_delete", args=[workspace.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    entry = LogEntry.objects.get(action_flag=DELETION)
    assert (entry.object_repr, entry.user.username) == ("Acme", "root")
    assert not AuditEvent.objects.exists()  # its own trail went with it


def test_membership_and_catalog_changes_in_the_admin_are_recorded(admin_client, workspace):
    zed = UserFactory(username="zed")
    product = ProductFactory(workspace=workspace, name="Payments", slug="payments")
    admin_client.post(
        reverse("admin:workspaces_membership_add"),
        {"workspace": workspace.pk, "user": zed.pk, "role": "viewer"},
    )
    membership = Membership.objects.get(user=zed)
    admin_client.post(
        reverse("admin:workspaces_membership_change", args=[membership.pk]),
        {"user": zed.pk, "role": "owner"},
    )
    admin_client.post(
        reverse("admin:workspaces_product_change", args=[product.pk]),
        {"name": "Pay", "slug": "payments"},
    )
    admin_client.post(
        reverse("admin:workspaces_product_delete", args=[product.pk]), {"post": "yes"}
    )
    admin_client.post(
        reverse("admin:workspaces_membership_delete", args=[membership.pk]), {"post": "yes"}
    )

    assert [(action, actor) for action, actor, _ in trail(workspace)] == [
        (AuditAction.MEMBER_ADDED, "root"),
        (AuditAction.MEMBER_ROLE_CHANGED, "root"),
        (AuditAction.PRODUCT_RENAMED, "root"),
        (AuditAction.PRODUCT_DELETED, "root"),
        (AuditAction.MEMBER_REMOVED, "root"),
    ]


def test_the_admin_keeps_the_last_owner(admin_client, workspace):
    olivia = Membership.objects.get(workspace=workspace, user__username="olivia")

    response = admin_client.post(
        reverse("admin:workspaces_membership_change", args=[olivia.pk]),
        {"user": olivia.user_id, "role": "viewer"},
    )
    delete = admin_client.get(reverse("admin:workspaces_membership_delete", args=[olivia.pk]))

    assert response.status_code == 200
    assert "A workspace needs at least one owner." in response.content.decode()
    assert delete.status_code == 403
    olivia.refresh_from_db()
    assert olivia.role == Role.OWNER
    assert trail(workspace) == []


# --- layering and the table ------------------------------------------------------------------


def imported_apps(package: str, *, leaving_out: tuple[str, ...] = ()) -> set[str]:
    """The top-level packages the modules of `package` import (migrations included), except
    the files named in `leaving_out`."""
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        if path.name in leaving_out:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
    return found


def test_base_apps_import_no_app_above_them():
    assert "tokens" not in imported_apps("workspaces")
    # The trail; its pages (views, urls, admin) fetch the workspace (tests/test_layering.py).
    trail = imported_apps("audit", leaving_out=("views.py", "urls.py", "admin.py"))
    assert not {"tokens", "workspaces"} & trail


@pytest.mark.django_db(transaction=True)
def test_events_recorded_before_the_move_to_the_audit_app_are_kept():
    executor = MigrationExecutor(connection)
    before_move = [("tokens", "0002_token_constraints"), ("workspaces", "0001_initial")]
    executor.migrate([("audit", None), *before_move])
    old = executor.loader.project_state(before_move).apps
    workspace = old.get_model("workspaces", "Workspace").objects.create(name="Old", slug="old")
    old.get_model("tokens", "AuditEvent").objects.create(
        workspace_id=workspace.pk, action="token.created", token_key="KEPT_KEY", actor_name="ada"
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    event = AuditEvent.objects.get()
    assert (event.workspace.slug, event.action, event.token_key, event.actor_name) == (
        "old",
        AuditAction.CREATED,
        "KEPT_KEY",
        "ada",
    )

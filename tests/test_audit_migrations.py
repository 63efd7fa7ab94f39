"""The audit trail's table moves to the audit app's name with every row (SQLite and
PostgreSQL: run with DATABASE_URL set for the latter), and back again."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from audit.models import AuditAction, AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("audit", "0008_sso_requirement_action")]
AFTER = [("audit", "0009_auditevent_table_in_audit_app")]


def migrate(audit_targets):
    """Every other app at its latest migration, the audit app at `audit_targets`; the models
    as they were then."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    others = [node for node in executor.loader.graph.leaf_nodes() if node[0] != "audit"]
    executor.migrate([*others, *audit_targets])
    executor.loader.build_graph()
    return executor.loader.project_state([*others, *audit_targets]).apps


def tables() -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


def rows(apps) -> list[tuple]:
    model = apps.get_model("audit", "AuditEvent")
    return list(
        model.objects.order_by("id").values_list(
            "id", "workspace__slug", "action", "actor__username", "token_key", "detail"
        )
    )


@pytest.fixture
def trail_before_the_rename():
    """Three events of two workspaces in tokens_auditevent, one by a user, one with a detail."""
    old = migrate(BEFORE)
    assert "tokens_auditevent" in tables() and "audit_auditevent" not in tables()
    Workspace = old.get_model("workspaces", "Workspace")
    User = old.get_model("auth", "User")
    Event = old.get_model("audit", "AuditEvent")
    acme = Workspace.objects.create(name="Acme", slug="acme")
    globex = Workspace.objects.create(name="Globex", slug="globex")
    ada = User.objects.create(username="ada")
    Event.objects.create(workspace=acme, action="token.created", actor=ada, token_key="DB_URL")
    Event.objects.create(
        workspace=acme,
        action="tokens.resolved",
        actor_name="ci-deploy",
        detail={"keys": ["DB_URL"], "source": "deploy.yaml"},
    )
    Event.objects.create(workspace=globex, action="member.added", detail={"member": "zed"})
    yield rows(old)
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    migrate([node for node in latest if node[0] == "audit"])


def test_the_rename_keeps_every_row_and_new_rows_follow(trail_before_the_rename):
    new = migrate(AFTER)

    assert "audit_auditevent" in tables() and "tokens_auditevent" not in tables()
    assert rows(new) == trail_before_the_rename
    # The id sequence came along: a new event gets the next id, not a clash.
    added = new.get_model("audit", "AuditEvent").objects.create(
        workspace_id=new.get_model("workspaces", "Workspace").objects.get(slug="acme").pk,
        action="token.revoked",
    )
    assert added.pk > max(row[0] for row in trail_before_the_rename)


def test_the_index_is_renamed_with_the_table(trail_before_the_rename):
    migrate(AFTER)
    with connection.cursor() as cursor:
        names = connection.introspection.get_constraints(cursor, "audit_auditevent")
    assert "audit_event_recent_idx" in names
    assert "tokens_audi_workspa_02fb8f_idx" not in names


def test_migrating_back_restores_the_old_table_with_its_rows(trail_before_the_rename):
    migrate(AFTER)
    old = migrate(BEFORE)

    assert "tokens_auditevent" in tables() and "audit_auditevent" not in tables()
    assert rows(old) == trail_before_the_rename


def test_the_model_uses_the_audit_apps_table():
    assert AuditEvent._meta.db_table == "audit_auditevent"
    assert AuditAction.RESOLVED  # the model the pages use is the one migrated above

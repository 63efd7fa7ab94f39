"""WorkspaceKey moved from the tokens app to the keys app: a database made before the move keeps
its data keys, so every value sealed under them still decrypts."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from keys import crypto
from keys.models import WorkspaceKey
from workspaces.models import Workspace

BEFORE_MOVE = [("tokens", "0005_history_versions_and_usage"), ("workspaces", "0001_initial")]


@pytest.mark.django_db(transaction=True)
def test_data_keys_made_before_the_move_still_decrypt_values_after_it():
    executor = MigrationExecutor(connection)
    executor.migrate([("keys", None), *BEFORE_MOVE])
    old = executor.loader.project_state(BEFORE_MOVE).apps
    workspace = old.get_model("workspaces", "Workspace").objects.create(name="Old", slug="old")
    kek_id, wrapped = crypto.new_data_key(workspace.pk)
    old.get_model("tokens", "WorkspaceKey").objects.create(
        workspace_id=workspace.pk, kek_id=kek_id, wrapped_dek=wrapped
    )
    dek = crypto.unwrap_data_key(workspace.pk, kek_id, wrapped, label="before the move")
    sealed = crypto.encrypt(dek, "kept-value", aad=crypto.value_aad(workspace.pk, 1, 1))

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    record = WorkspaceKey.objects.get()
    assert (record.workspace.slug, record.kek_id, bytes(record.wrapped_dek)) == (
        "old",
        kek_id,
        wrapped,
    )
    dek_after = WorkspaceKey.dek_for(
        Workspace.objects.get(slug="old")
    )  # the kept one, not a new one
    assert WorkspaceKey.objects.count() == 1
    assert (
        crypto.decrypt(dek_after, sealed, aad=crypto.value_aad(workspace.pk, 1, 1), label="after")
        == "kept-value"
    )
    assert WorkspaceKey._meta.db_table == "keys_workspacekey"

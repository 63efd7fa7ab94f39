"""WorkspaceKey moves to the keys app (keys/migrations/0001_initial.py takes it over): its rows
stay, its table is renamed from tokens_workspacekey to keys_workspacekey."""

from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tokens", "0005_history_versions_and_usage")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AlterModelTable(name="WorkspaceKey", table="keys_workspacekey")
            ],
            state_operations=[migrations.DeleteModel(name="WorkspaceKey")],
        ),
    ]

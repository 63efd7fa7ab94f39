"""The keys app takes over WorkspaceKey from the tokens app.

The table was made by tokens' first migration and renamed to keys_workspacekey by
tokens/migrations/0006_workspacekey_moved_to_keys.py, rows included; here only Django's idea of
which app owns the model changes (no SQL runs). A fresh database goes through both.
"""

from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("workspaces", "0001_initial"),
        ("tokens", "0006_workspacekey_moved_to_keys"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="WorkspaceKey",
                    fields=[
                        (
                            "workspace",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                primary_key=True,
                                related_name="data_key",
                                serialize=False,
                                to="workspaces.workspace",
                            ),
                        ),
                        (
                            "kek_id",
                            models.CharField(
                                db_index=True, max_length=32, verbose_name="master key id"
                            ),
                        ),
                        ("wrapped_dek", models.BinaryField()),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("rotated_at", models.DateTimeField(blank=True, null=True)),
                    ],
                ),
            ],
            database_operations=[],
        ),
    ]

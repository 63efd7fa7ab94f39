"""AuditEvent, moved here from the tokens app: the model's state only, the table is kept.

Databases made before the move keep tokens_auditevent and its rows; on a new database the
tokens app's first migration still creates the table. Its content type follows it, so admin
permissions and history stay attached.
"""

from __future__ import annotations

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def move_content_type(apps, schema_editor, old="tokens", new="audit"):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label=new, model="auditevent").exists():
        ContentType.objects.filter(app_label=old, model="auditevent").update(app_label=new)


def restore_content_type(apps, schema_editor):
    move_content_type(apps, schema_editor, old="audit", new="tokens")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("tokens", "0003_auditevent_moved_to_audit"),
        ("workspaces", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="AuditEvent",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("action", models.CharField(db_index=True, max_length=32)),
                        ("actor_name", models.CharField(blank=True, max_length=150)),
                        ("token_key", models.CharField(blank=True, max_length=128)),
                        ("detail", models.JSONField(blank=True, default=dict)),
                        (
                            "created_at",
                            models.DateTimeField(db_index=True, default=django.utils.timezone.now),
                        ),
                        (
                            "actor",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "token",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="audit_events",
                                to="tokens.token",
                            ),
                        ),
                        (
                            "workspace",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="audit_events",
                                to="workspaces.workspace",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "tokens_auditevent",
                        "ordering": ["-created_at", "-id"],
                        "indexes": [
                            models.Index(
                                fields=["workspace", "-created_at"],
                                name="tokens_audi_workspa_02fb8f_idx",
                            )
                        ],
                    },
                ),
            ],
        ),
        migrations.RunPython(move_content_type, restore_content_type, elidable=True),
    ]

"""The audit trail's table gets the audit app's name: tokens_auditevent becomes
audit_auditevent, every row kept (a rename, no copy), and its workspace index follows.

The table was made by the tokens app's first migration, when AuditEvent lived there; 0001 here
took over the model's state only. From this migration on, the table is the audit app's by name
too. Reversible: migrating back to 0008 renames it back.
"""

from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("audit", "0008_sso_requirement_action")]

    operations = [
        migrations.RenameIndex(
            model_name="auditevent",
            new_name="audit_event_recent_idx",
            old_name="tokens_audi_workspa_02fb8f_idx",
        ),
        migrations.AlterModelTable(name="auditevent", table=None),
    ]

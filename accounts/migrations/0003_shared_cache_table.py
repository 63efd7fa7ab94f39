"""The table of Django's database cache (CACHES in config/settings.py), made by migrate so a
fresh install needs no `createcachetable`."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_accounts_email_addresses"),
    ]

    operations = [
        migrations.CreateModel(
            name="SharedCacheEntry",
            fields=[
                ("cache_key", models.CharField(max_length=255, primary_key=True, serialize=False)),
                ("value", models.TextField()),
                ("expires", models.DateTimeField(db_index=True)),
            ],
            options={
                "db_table": "coffer_cache",
            },
        ),
    ]

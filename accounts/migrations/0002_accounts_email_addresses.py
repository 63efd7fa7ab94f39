"""Accounts made before allauth get their email into its address book, verified (as
accounts/signals.py does for new ones)."""

from __future__ import annotations

from django.db import migrations


def add_addresses(apps, schema_editor):
    User = apps.get_model("auth", "User")
    EmailAddress = apps.get_model("account", "EmailAddress")
    taken = {e.lower() for e in EmailAddress.objects.values_list("email", flat=True)}
    have = set(EmailAddress.objects.values_list("user_id", flat=True))
    for user in User.objects.exclude(email="").order_by("pk"):
        email = user.email.strip()
        if user.pk in have or email.lower() in taken:
            continue
        EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
        taken.add(email.lower())


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_accounts_invitations"),
        ("account", "0009_emailaddress_unique_primary_email"),
    ]

    operations = [migrations.RunPython(add_addresses, migrations.RunPython.noop)]

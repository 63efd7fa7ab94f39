"""Every account's email is in allauth's address book, verified: whoever set it (an invitation,
createsuperuser, the admin, seed_demo) vouched for it. Without the row allauth treats the
address as unknown, and "Change email" would blank it before the new one is confirmed."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver


def ensure_email_address(user) -> None:
    email = (user.email or "").strip()
    if not email or EmailAddress.objects.filter(user=user).exists():
        return
    if EmailAddress.objects.filter(email__iexact=email).exists():
        return  # another account has it: leave it theirs, and say nothing
    EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="coffer-email-address")
def _user_saved(sender, instance, raw: bool = False, **kwargs) -> None:
    if not raw and not getattr(instance, "_signing_up_with_allauth", False):
        ensure_email_address(instance)

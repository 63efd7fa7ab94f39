"""Coffer's adapters for django-allauth: who may sign up, our messages, encrypted 2FA secrets.

allauth does sign-in, sign-up, password reset and two-factor (TOTP and recovery codes); these
adapters are the few places where Coffer's rules differ from its defaults.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

from allauth.account.adapter import DefaultAccountAdapter
from allauth.mfa.adapter import DefaultMFAAdapter
from django.conf import settings
from django.db.models import Min, Q, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import StrIndex, Substr
from django.http import HttpRequest

from keys import crypto
from keys.sealed import Sealed


class AccountAdapter(DefaultAccountAdapter):
    error_messages = {
        **DefaultAccountAdapter.error_messages,
        # The wording Django's own sign-in form used, which people (and tests) know.
        "username_password_mismatch": (
            "Please enter a correct username and password. Note that both fields may be "
            "case-sensitive."
        ),
        "email_taken": "Choose another email address.",
        "username_taken": "Choose another username.",
    }

    # Signing in and out show the page they lead to; a toast saying so is noise.
    SILENT_MESSAGES = frozenset(
        {"account/messages/logged_in.txt", "account/messages/logged_out.txt"}
    )

    def add_message(self, request, level, message_template=None, *args, **kwargs) -> None:
        if message_template in self.SILENT_MESSAGES:
            return
        super().add_message(request, level, message_template, *args, **kwargs)

    def save_user(self, request, user, form, commit=True):
        # allauth records the new account's address itself (accounts/signals.py must not).
        user._signing_up_with_allauth = True
        return super().save_user(request, user, form, commit=commit)

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        """allauth's open sign-up page is off unless COFFER_OPEN_SIGNUP is on; invitations have
        their own sign-up (accounts/views.py)."""
        return settings.COFFER_OPEN_SIGNUP


class MFAAdapter(DefaultMFAAdapter):
    """TOTP secrets and recovery-code seeds are stored encrypted (keys/crypto.py)."""

    def encrypt(self, text: str) -> str:
        return crypto.encrypt_account_secret(text)

    def decrypt(self, encrypted_text: str) -> str:
        return crypto.decrypt_account_secret(encrypted_text)


# The fields of allauth's Authenticator.data that MFAAdapter.encrypt() sealed: a TOTP's secret,
# the recovery codes' seed.
SEALED_FIELDS = ("secret", "seed")


def reseal_two_factor_secrets() -> tuple[int, list[str]]:
    """Seal every two-factor secret still under an old master key again under the active one
    (rotate_master_key), each authenticator in its own transaction. Returns (how many were
    resealed, an error per authenticator that could not be opened, naming user and key)."""
    from allauth.mfa.models import Authenticator
    from django.db import transaction

    active = crypto.key_ring().active_id
    resealed, failures = 0, []
    for pk in Authenticator.objects.order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            authenticator = (
                Authenticator.objects.select_for_update().select_related("user").filter(pk=pk)
            ).first()
            if authenticator is None:
                continue  # removed meanwhile
            data, changed = dict(authenticator.data), False
            for field in SEALED_FIELDS:
                stored = data.get(field)
                if not isinstance(stored, str):
                    continue
                kek_id = crypto.account_secret_key_id(stored)
                if kek_id is None or kek_id == active:
                    continue
                try:
                    data[field] = crypto.encrypt_account_secret(
                        crypto.decrypt_account_secret(stored)
                    )
                except (crypto.CryptoError, crypto.MasterKeyError) as error:
                    failures.append(f"Two-factor of {authenticator.user}: {error}")
                    changed = False
                    break
                changed = True
            if changed:
                authenticator.data = data
                authenticator.save(update_fields=["data"])
                resealed += 1
    return resealed, failures


def sealed_two_factor_secrets(using: str) -> Iterator[Sealed]:
    """Each TOTP secret and recovery-code seed, sealed straight under a master key: a source
    of keys/sealed.py (re-sealed by `reseal_two_factor_secrets`), registered by
    AccountsConfig.ready."""
    from allauth.mfa.models import Authenticator

    authenticators = Authenticator.objects.using(using).select_related("user").order_by("pk")
    for authenticator in authenticators.iterator(chunk_size=500):
        yield from (item for _, item in _sealed_in(authenticator))


def two_factor_secrets_per_master_key(using: str) -> Iterator[Sealed]:
    """One TOTP secret and one recovery-code seed per master key id in use, for the start-up
    key check: one query, reading a row per master key id whatever the number of people (the
    id is read from the stored text, "v1:<id>:...", in SQL)."""
    from allauth.mfa.models import Authenticator

    firsts = Q()
    for field in SEALED_FIELDS:
        stored = KeyTextTransform(field, "data")
        after_prefix = Substr(stored, len(crypto.ACCOUNT_SECRET_PREFIX) + 2)
        first_per_master_key = (
            Authenticator.objects.using(using)
            .annotate(
                stored=stored,
                master_key_id=Substr(after_prefix, 1, StrIndex(after_prefix, Value(":")) - 1),
            )
            .filter(stored__startswith=f"{crypto.ACCOUNT_SECRET_PREFIX}:")
            .order_by()
            .values("master_key_id")
            .annotate(first=Min("pk"))
            .values("first")
        )
        firsts |= Q(pk__in=first_per_master_key)
    authenticators = Authenticator.objects.using(using).filter(firsts).select_related("user")
    seen: set[tuple[str, str | None]] = set()
    for authenticator in authenticators.order_by("pk"):
        for field, item in _sealed_in(authenticator):
            if (field, item.master_key_id) not in seen:
                seen.add((field, item.master_key_id))
                yield item


def _sealed_in(authenticator) -> Iterator[tuple[str, Sealed]]:
    """(field, sealed secret) for each secret an authenticator keeps."""
    data = authenticator.data if isinstance(authenticator.data, dict) else {}
    for field in SEALED_FIELDS:
        stored = data.get(field)
        if not isinstance(stored, str):
            continue
        what = "TOTP secret" if field == "secret" else "recovery-code seed"
        yield (
            field,
            Sealed(
                f"{what} of {authenticator.user}",
                partial(_open_account_secret, stored),
                master_key_id=crypto.account_secret_key_id(stored),
            ),
        )


def _open_account_secret(stored: str, *, label: str) -> str:
    try:
        return crypto.decrypt_account_secret(stored)
    except crypto.CryptoError as error:
        raise crypto.CryptoError(f"{label}: {error}") from None

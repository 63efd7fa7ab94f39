"""Session values that grant access are stored sealed, never in the clear.

allauth keeps the password-reset key in the session between the mailed link and the new
password (`_password_reset_key`), written by its own view. A session row read out of a copied
database or a backup would let anyone holding it set that user's password. This serializer
(SESSION_SERIALIZER) seals such values on the way to the session table and opens them on the way
back, with the same account-secret sealing as the two-factor secrets (keys/crypto.py).
Every other value is stored as Django's JSON serializer stores it.

A value that cannot be opened (written before this, or under a master key since removed) is
dropped: the person opens the link from the mail again.
"""

from __future__ import annotations

from typing import Any

from allauth.account.views._password_reset import INTERNAL_RESET_SESSION_KEY
from django.core.signing import JSONSerializer

from keys import crypto

SEALED_SESSION_KEYS = frozenset({INTERNAL_RESET_SESSION_KEY})


class SealingSerializer(JSONSerializer):
    def dumps(self, obj: Any) -> bytes:
        if isinstance(obj, dict) and not SEALED_SESSION_KEYS.isdisjoint(obj):
            obj = {
                key: crypto.encrypt_account_secret(value)
                if key in SEALED_SESSION_KEYS and isinstance(value, str) and value
                else value
                for key, value in obj.items()
            }
        return super().dumps(obj)

    def loads(self, data: bytes) -> Any:
        obj = super().loads(data)
        if isinstance(obj, dict):
            for key in SEALED_SESSION_KEYS & obj.keys():
                try:
                    obj[key] = crypto.decrypt_account_secret(obj[key])
                except (crypto.CryptoError, crypto.MasterKeyError, TypeError, AttributeError):
                    del obj[key]
        return obj

"""Envelope encryption for token values.

Three layers, as Vault, Infisical and cloud KMSs do it:

- master keys (key-encryption keys, KEKs) come from the environment (`COFFER_MASTER_KEYS`) or a
  key file, never from the database. The first key of the ring is the active one;
- each workspace has a random 256-bit data key (DEK), stored only wrapped (AES-256-GCM) by a KEK,
  with that KEK's id, and bound to its workspace by associated data;
- each token value is encrypted with AES-256-GCM under its workspace's DEK, with a fresh 96-bit
  nonce and associated data naming the workspace, the token and the value version, so a
  ciphertext copied into another row, version or workspace fails to decrypt. Webhook signing
  secrets and pending imports are sealed the same way (`encrypt`/`decrypt`), each kind with its
  own associated data (`value_aad`, `webhook_secret_aad`, `pending_import_aad`);
- people's two-factor secrets are sealed under a key derived from a master key (they belong to
  no workspace).

Nothing outside this module touches keys or ciphertext bytes. Errors never carry key material
or values, only names and ids.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.views.decorators.debug import sensitive_variables

logger = logging.getLogger(__name__)

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
KEK_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
HOW_TO_MAKE_A_KEY = (
    "Make one with `python manage.py generate_master_key` and set it as "
    'COFFER_MASTER_KEYS="<id>:<base64 key>" (or put that line in the key file '
    "COFFER_MASTER_KEY_FILE)."
)


class CryptoError(Exception):
    """A value or data key could not be encrypted or decrypted. The message is safe to show."""


class MasterKeyError(ImproperlyConfigured):
    """The master key ring is missing or malformed."""


@dataclass(frozen=True)
class KeyRing:
    """Master keys by id; `active_id` wraps new data keys."""

    keys: dict[str, bytes] = field(repr=False)  # never in a repr, a log or an error page
    active_id: str

    @property
    def ids(self) -> list[str]:
        return list(self.keys)

    def get(self, kek_id: str) -> bytes:
        try:
            return self.keys[kek_id]
        except KeyError:
            raise CryptoError(
                f"master key {kek_id!r} is not in the key ring (known: {', '.join(self.keys)}). "
                "Add it back to COFFER_MASTER_KEYS, or restore the key file."
            ) from None


def parse_key_ring(text: str, source: str) -> KeyRing:
    """Parse "k2:<base64>,k1:<base64>" (commas or new lines); the first entry is active.

    In a key file, everything after a "#" on a line is a comment.
    """
    lines = [line.partition("#")[0] for line in text.splitlines()]
    entries = [part.strip() for line in lines for part in line.split(",") if part.strip()]
    if not entries:
        raise MasterKeyError(f"{source} holds no master key. {HOW_TO_MAKE_A_KEY}")
    keys: dict[str, bytes] = {}
    for position, entry in enumerate(entries, start=1):
        kek_id, sep, encoded = entry.partition(":")
        kek_id = kek_id.strip()
        if not sep or not KEK_ID_RE.match(kek_id):
            raise MasterKeyError(
                f"{source}: entry {position} is not of the form <id>:<base64 key> "
                "(id: 1-32 letters, digits, '_', '-' or '.')."
            )
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise MasterKeyError(
                f"{source}: master key {kek_id!r} is not valid base64. {HOW_TO_MAKE_A_KEY}"
            ) from None
        if len(key) != KEY_BYTES:
            raise MasterKeyError(
                f"{source}: master key {kek_id!r} is {len(key)} bytes; it must be {KEY_BYTES} "
                f"bytes (256 bits). {HOW_TO_MAKE_A_KEY}"
            )
        if kek_id in keys:
            raise MasterKeyError(f"{source}: master key id {kek_id!r} appears twice.")
        keys[kek_id] = key
    return KeyRing(keys=keys, active_id=next(iter(keys)))


def generate_master_key() -> str:
    """A new random 256-bit master key, base64-encoded."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def _development_key_file(path: Path) -> None:
    """Make the development key file (mode 0600) unless another process just made it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as handle:
        handle.write("# Coffer development master key. Keep it secret; back it up.\n")
        handle.write(f"dev1:{generate_master_key()}\n")
    logger.warning(
        "Generated a development master key in %s (mode 0600). Values encrypted with it are "
        "unreadable without this file. Do not use it in production: there, set "
        "COFFER_MASTER_KEYS (see `python manage.py generate_master_key`).",
        path,
    )


def _nothing_in_database() -> list[str]:
    return []


# The master key ids the database's data keys are wrapped by ([] before `migrate`). Set by
# KeysConfig.ready() to the data key model's query, so this module knows no model.
master_key_ids_in_database: Callable[[], list[str]] = _nothing_in_database


@cache
def key_ring() -> KeyRing:
    """The configured master key ring, from COFFER_MASTER_KEYS or the key file.

    With DEBUG on and no key anywhere, a key file is made in the data directory. With DEBUG off,
    a missing key is an error that says how to make one.
    """
    if settings.COFFER_MASTER_KEYS.strip():
        return parse_key_ring(settings.COFFER_MASTER_KEYS, "COFFER_MASTER_KEYS")
    path = Path(settings.COFFER_MASTER_KEY_FILE)
    if not path.exists():
        if not settings.DEBUG:
            raise MasterKeyError(
                "No master key configured: COFFER_MASTER_KEYS is empty and the key file "
                f"{path} does not exist. {HOW_TO_MAKE_A_KEY}"
            )
        if in_use := master_key_ids_in_database():
            # A new key, even under the same id, would not read a single stored value.
            raise MasterKeyError(
                f"The master key file {path} is missing, but the database holds data keys "
                f"wrapped by master key {', '.join(map(repr, in_use))}. Restore the old key "
                f"file to {path} (or set COFFER_MASTER_KEYS to its keys); Coffer will not "
                "make a new key while data needs the old one."
            )
        _development_key_file(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise MasterKeyError(f"Cannot read the key file {path}: {error.strerror}.") from None
    return parse_key_ring(text, f"key file {path}")


@receiver(setting_changed)
def _forget_key_ring(*, setting: str, **kwargs) -> None:
    if setting in {"COFFER_MASTER_KEYS", "COFFER_MASTER_KEY_FILE", "DEBUG"}:
        key_ring.cache_clear()


@sensitive_variables()
def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


@sensitive_variables()
def _open(key: bytes, blob: bytes, aad: bytes) -> bytes:
    blob = bytes(blob)
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise InvalidTag
    return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)


def _dek_aad(workspace_id: int) -> bytes:
    return f"coffer:dek:v1:workspace={workspace_id}".encode()


# --- data keys ------------------------------------------------------------------------------
# `label` names what is being worked on in error messages, e.g. "workspace acme" or
# "token API_KEY in workspace acme".


@sensitive_variables()
def new_data_key(workspace_id: int) -> tuple[str, bytes]:
    """A fresh random DEK for a workspace, wrapped by the active master key: (kek_id, wrapped)."""
    ring = key_ring()
    dek = secrets.token_bytes(KEY_BYTES)
    return ring.active_id, _seal(ring.get(ring.active_id), dek, _dek_aad(workspace_id))


@sensitive_variables()
def unwrap_data_key(workspace_id: int, kek_id: str, wrapped: bytes, *, label: str) -> bytes:
    """The plaintext DEK, or a CryptoError naming `label` and the master key id."""
    try:
        kek = key_ring().get(kek_id)
    except CryptoError as error:
        raise CryptoError(f"{label}: {error}") from None
    try:
        dek = _open(kek, wrapped, _dek_aad(workspace_id))
    except InvalidTag:
        dek = b""
    if len(dek) != KEY_BYTES:
        raise CryptoError(
            f"{label}: cannot unwrap the data key with master key {kek_id!r}: the master key "
            "is wrong or the wrapped data key is corrupted."
        )
    return dek


@sensitive_variables()
def rewrap_data_key(
    workspace_id: int, kek_id: str, wrapped: bytes, *, label: str
) -> tuple[str, bytes]:
    """Wrap the workspace's DEK under the active master key: (new_kek_id, new_wrapped)."""
    dek = unwrap_data_key(workspace_id, kek_id, wrapped, label=label)
    ring = key_ring()
    return ring.active_id, _seal(ring.get(ring.active_id), dek, _dek_aad(workspace_id))


# --- what is sealed under a data key: token values, webhook signing secrets, pending imports --
# One pair, encrypt() and decrypt(): what differs between kinds is only what a ciphertext is
# bound to (its associated data) and the words of the error, given by one helper per kind.
# The associated data's text is part of the stored format: changing it makes every stored
# ciphertext of that kind unreadable (tests/test_ciphertext_format.py holds old ones).


@dataclass(frozen=True)
class Aad:
    """What one ciphertext is bound to (AES-GCM associated data), and in words what it is and
    where a copy would have come from, for the error when it does not open. No secret in it."""

    data: bytes
    what: str  # "the value"
    copied_from: str  # "another token, version or workspace"
    subject: str = "it"  # what "is corrupted" in the message

    def problem(self, label: str) -> str:
        return (
            f"{label}: cannot decrypt {self.what}: {self.subject} is corrupted, was copied from "
            f"{self.copied_from}, or the master key is wrong."
        )


def value_aad(workspace_id: int, token_id: object, version: int) -> Aad:
    """A token value (a version of it): bound to the workspace, the token and the version."""
    return Aad(
        f"coffer:value:v1:workspace={workspace_id}:token={token_id}:version={version}".encode(),
        "the value",
        "another token, version or workspace",
        subject="the ciphertext",
    )


def webhook_secret_aad(workspace_id: int, webhook_id: object) -> Aad:
    """A webhook's signing secret, read back to sign each delivery: bound to the workspace and
    the webhook."""
    return Aad(
        f"coffer:webhook-secret:v1:workspace={workspace_id}:webhook={webhook_id}".encode(),
        "the signing secret",
        "another webhook or workspace",
    )


def pending_import_aad(workspace_id: int, import_id: object) -> Aad:
    """A .env file between its preview and its import: bound to the workspace and the pending
    import's id."""
    return Aad(
        f"coffer:import:v1:workspace={workspace_id}:import={import_id}".encode(),
        "the pending import",
        "another workspace",
    )


@sensitive_variables()
def encrypt(dek: bytes, text: str, *, aad: Aad) -> bytes:
    """nonce + AES-256-GCM(text as UTF-8) under a workspace's data key, bound to `aad`."""
    return _seal(dek, text.encode("utf-8"), aad.data)


@sensitive_variables()
def decrypt(dek: bytes, blob: bytes, *, aad: Aad, label: str) -> str:
    """Open what encrypt() sealed, or raise a CryptoError naming `label` (never the text)."""
    try:
        return _open(dek, blob, aad.data).decode("utf-8")
    except (InvalidTag, UnicodeDecodeError):
        raise CryptoError(aad.problem(label)) from None


def plaintext_length(blob: bytes) -> int:
    """How many bytes the text sealed in `blob` holds, without decrypting it (AES-GCM adds
    exactly the nonce and the tag)."""
    return max(0, len(blob) - NONCE_BYTES - TAG_BYTES)


# --- account secrets (two-factor) -------------------------------------------------------------
# TOTP secrets and recovery-code seeds (allauth's MFA, through accounts/adapters.py) must be read
# back to check a code, so they are encrypted: AES-256-GCM under a key derived (HKDF-SHA256)
# from a master key of the ring, not a workspace's data key, as they belong to a person. The
# stored text names the master key that sealed it: "v1:<kek id>:<base64 nonce+ciphertext>".

ACCOUNT_SECRET_PREFIX = "v1"
_ACCOUNT_SECRET_AAD = b"coffer:account-secret:v1"


@sensitive_variables()
def _account_secret_key(kek: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=b"coffer:account-secrets"
    ).derive(kek)


@sensitive_variables()
def encrypt_account_secret(text: str) -> str:
    """Seal a person's secret (a TOTP key) under the active master key; text safe to store."""
    ring = key_ring()
    blob = _seal(
        _account_secret_key(ring.get(ring.active_id)), text.encode("utf-8"), _ACCOUNT_SECRET_AAD
    )
    return f"{ACCOUNT_SECRET_PREFIX}:{ring.active_id}:{base64.b64encode(blob).decode('ascii')}"


class AccountSecretError(CryptoError):
    """A person's two-factor secret cannot be opened (a missing or wrong master key)."""


@sensitive_variables()
def decrypt_account_secret(stored: str) -> str:
    """Open what encrypt_account_secret() sealed, or raise an AccountSecretError (no secret in
    it)."""
    prefix, _, rest = stored.partition(":")
    kek_id, _, encoded = rest.partition(":")
    if prefix != ACCOUNT_SECRET_PREFIX or not kek_id or not encoded:
        raise AccountSecretError("A two-factor secret is not in Coffer's encrypted form.")
    try:
        blob = base64.b64decode(encoded, validate=True)
        key = _account_secret_key(key_ring().get(kek_id))
        return _open(key, blob, _ACCOUNT_SECRET_AAD).decode("utf-8")
    except CryptoError as error:  # the master key is not in the ring
        raise AccountSecretError(f"Cannot decrypt a two-factor secret: {error}") from None
    except (binascii.Error, ValueError, InvalidTag, UnicodeDecodeError):
        raise AccountSecretError(
            f"Cannot decrypt a two-factor secret with master key {kek_id!r}: it is corrupted "
            "or the master key is wrong."
        ) from None


def account_secret_key_id(stored: str) -> str | None:
    """The master key id that sealed a stored account secret, or None if it is not one."""
    prefix, _, rest = stored.partition(":")
    kek_id, _, encoded = rest.partition(":")
    return kek_id if prefix == ACCOUNT_SECRET_PREFIX and kek_id and encoded else None

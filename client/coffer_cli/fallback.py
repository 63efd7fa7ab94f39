"""The encrypted fallback: the values of the last successful fetch, kept for an outage.

Where: $COFFER_CACHE_DIR, else $XDG_CACHE_HOME/coffer, else ~/.cache/coffer (mode 0700), in a
folder per Coffer URL and access key and a file per set of keys asked for (`--only`):

    folder = hex(SHA-256("coffer-cli fallback v1\\0" || URL || "\\0" || access key))[:32]
    file   = hex(SHA-256(sorted --only keys joined by ",", or "*"))[:32] + ".bin"

How: AES-256-GCM with a 96-bit random nonce per write, under a key derived from the access
key alone (nothing else on disk can decrypt it):

    key = HKDF-SHA256(ikm=access key, salt="coffer-cli fallback v1", info="aes-256-gcm " || URL,
                      length=32)
    file = "CFB1" || nonce (12 bytes) || AES-GCM(key, nonce, plaintext, aad="CFB1" || URL)
    plaintext = JSON {"fetched_at": unix seconds, "values": {...}}

The time of the fetch is inside the authenticated plaintext, so the age cannot be altered
without the key. Each write is atomic (a 0600 temporary file in the folder, fsync, rename).
A file that does not decrypt (another key, tampering) is treated as no fallback.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"CFB1"
SALT = b"coffer-cli fallback v1"
NONCE_BYTES = 12


def cache_root() -> Path:
    if os.environ.get("COFFER_CACHE_DIR"):
        return Path(os.environ["COFFER_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "coffer"


def derive_key(url: str, access_key: str) -> bytes:
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=SALT, info=b"aes-256-gcm " + url.encode()
    )
    return hkdf.derive(access_key.encode())


class Fallback:
    def __init__(self, url: str, access_key: str, only: list[str] | None) -> None:
        self.url = url
        self.aead = AESGCM(derive_key(url, access_key))
        name = hashlib.sha256(SALT + b"\0" + url.encode() + b"\0" + access_key.encode())
        self.folder = cache_root() / name.hexdigest()[:32]
        selection = ",".join(sorted(set(only))) if only else "*"
        self.path = self.folder / (hashlib.sha256(selection.encode()).hexdigest()[:32] + ".bin")

    def save(self, values: dict[str, str], now: float | None = None) -> None:
        if not self.folder.is_absolute():  # no home folder (an unnamed container user)
            raise OSError(errno.ENOENT, "no home folder for it; set COFFER_CACHE_DIR")
        plaintext = json.dumps({"fetched_at": now or time.time(), "values": values}).encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = MAGIC + nonce + self.aead.encrypt(nonce, plaintext, MAGIC + self.url.encode())
        self.folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.folder.mkdir(exist_ok=True, mode=0o700)
        descriptor, temporary = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as stream:
                os.fchmod(stream.fileno(), 0o600)
                stream.write(sealed)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def load(self) -> tuple[float, dict[str, str]] | None:
        """(fetched_at, values), or None when there is none this key can read."""
        if not self.folder.is_absolute():
            return None
        try:
            sealed = self.path.read_bytes()
        except OSError:
            return None
        if not sealed.startswith(MAGIC) or len(sealed) < len(MAGIC) + NONCE_BYTES + 16:
            return None
        nonce = sealed[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
        try:
            plaintext = self.aead.decrypt(
                nonce, sealed[len(MAGIC) + NONCE_BYTES :], MAGIC + self.url.encode()
            )
        except InvalidTag:
            return None
        data = json.loads(plaintext)
        return float(data["fetched_at"]), dict(data["values"])

    def forget(self) -> bool:
        """Delete every fallback of this URL and key; whether there was one."""
        existed = self.folder.exists()
        shutil.rmtree(self.folder, ignore_errors=True)
        return existed

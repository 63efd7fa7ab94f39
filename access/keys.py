"""The access key format: `cfr_` + 43 base62 characters of randomness + a 6-character checksum.

    cfr_1a2B3c...(43)...XyZ012

- 32 random bytes (256 bits) from `secrets`, written as a 43-character base62 number;
- a CRC32 of those 43 characters, written as 6 base62 characters (GitHub's token scheme): a
  secret scanner recognises a Coffer key offline, and a mistyped or truncated key is refused
  before any database query;
- only the SHA-256 of the whole key is stored, with its first characters (`cfr_AbCdEf`) as a
  visible identifier: enough to tell keys apart, 35 bits out of 256, never enough to matter.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib

PREFIX = "cfr_"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_BYTES = 32
RANDOM_LENGTH = 43  # 62**43 > 2**256
CHECKSUM_LENGTH = 6  # 62**6 > 2**32
KEY_LENGTH = len(PREFIX) + RANDOM_LENGTH + CHECKSUM_LENGTH
IDENTIFIER_LENGTH = len(PREFIX) + 6
# Workload identities' short-lived credentials (identities/) have the same shape with their own
# prefix, so a secret scanner and a reader can tell them apart.
PREFIXES = (PREFIX, "cfw_")
BODY_RE = re.compile(rf"[0-9A-Za-z]{{{RANDOM_LENGTH + CHECKSUM_LENGTH}}}\Z")


def base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, digit = divmod(number, 62)
        digits.append(ALPHABET[digit])
    if len(digits) > width:
        raise ValueError(f"{number} does not fit in {width} base62 digits")
    return "".join(reversed(digits)).rjust(width, "0")


def checksum(random_part: str) -> str:
    return base62(zlib.crc32(random_part.encode("ascii")), CHECKSUM_LENGTH)


def generate(prefix: str = PREFIX) -> str:
    """A new key. Shown once, to the person who made it; never stored."""
    assert prefix in PREFIXES
    random_part = base62(int.from_bytes(secrets.token_bytes(RANDOM_BYTES)), RANDOM_LENGTH)
    return prefix + random_part + checksum(random_part)


def is_well_formed(key: str, prefix: str = PREFIX) -> bool:
    """The prefix, the length, the alphabet and the checksum are right (no database needed)."""
    if not isinstance(key, str) or not key.startswith(prefix):
        return False
    if not BODY_RE.match(key, len(prefix)):
        return False
    random_part = key[len(prefix) : len(prefix) + RANDOM_LENGTH]
    return secrets.compare_digest(key[-CHECKSUM_LENGTH:], checksum(random_part))


def hash_key(key: str) -> str:
    """What is stored: the SHA-256 of the key (hex). The key has 256 random bits, so a fast hash
    is enough; a slow password hash would only cost CPU on every request."""
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def identifier(key: str) -> str:
    """The visible part: `cfr_` and the first 6 random characters."""
    return key[:IDENTIFIER_LENGTH]

"""Ciphertext integrity, in the manner of Vault's barrier tests.

AES-256-GCM authenticates every byte of a stored value together with its associated data
(workspace, token, value version), so:

- flipping any single byte of a stored ciphertext (every position, nonce and tag included) makes
  decryption fail with a clean CryptoError that names the token, never garbage or an empty value;
- a ciphertext copied to another token, to another version of the same token (a replayed old
  value) or to another workspace fails; so does a data key moved to another workspace;
- 10,000 encryptions of one value give 10,000 distinct nonces and ciphertexts;
- malformed master keys are refused when Coffer starts.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keys import crypto
from keys.crypto import CryptoError, MasterKeyError, parse_key_ring
from keys.models import WorkspaceKey
from tests.factories import TokenFactory, WorkspaceFactory
from tokens.models import Token

ROOT = Path(__file__).resolve().parent.parent
PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    + "\n".join("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC" + str(n) for n in range(4))
    + "\n-----END PRIVATE KEY-----\n"
)
VALUES = ["x", "sixteen-chars-ok", "naïve-ünïcode-välue-🔑-" * 2, PEM]


def stored(token: Token) -> bytes:
    return bytes(Token.objects.values_list("ciphertext", flat=True).get(pk=token.pk))


def store(token: Token, ciphertext: bytes, **fields) -> Token:
    Token.objects.filter(pk=token.pk).update(ciphertext=ciphertext, **fields)
    return Token.objects.select_related("workspace__data_key").get(pk=token.pk)


def assert_fails_cleanly(token: Token, value: str) -> None:
    with pytest.raises(CryptoError) as caught:
        token.reveal()
    message = str(caught.value)
    assert f"token {token.key}" in message
    assert f"workspace {token.workspace.slug}" in message
    assert "master key 'test1'" in message
    if len(value) >= 8:  # (a one-letter value is in any sentence)
        assert value not in message


@pytest.mark.django_db
@pytest.mark.slow
def test_flipping_any_byte_of_a_stored_ciphertext_fails_cleanly():
    workspace = WorkspaceFactory(slug="acme")
    tried = 0
    for n, value in enumerate(VALUES):
        token = TokenFactory(workspace=workspace, key=f"FLIP_{n}", value=value)
        original = stored(token)
        assert len(original) == 12 + len(value.encode()) + 16  # nonce + ciphertext + tag
        for position in range(len(original)):
            for mask in (0x01, 0xFF):
                flipped = bytearray(original)
                flipped[position] ^= mask
                assert_fails_cleanly(store(token, bytes(flipped)), value)
                tried += 1
        for broken in (original[:-1], original + b"\0", original[:12], b""):
            assert_fails_cleanly(store(token, broken), value)
        assert store(token, original).reveal() == value, "the untouched ciphertext still opens"
    assert tried > 600


@pytest.mark.django_db
def test_flipping_any_byte_of_a_wrapped_data_key_fails_naming_workspace_and_master_key():
    workspace = WorkspaceFactory(slug="acme")
    token = TokenFactory(workspace=workspace, key="DEK_TOKEN", value="the-value-of-dek-token")
    original = bytes(WorkspaceKey.objects.get(workspace=workspace).wrapped_dek)
    for position in range(len(original)):
        flipped = bytearray(original)
        flipped[position] ^= 0x01
        WorkspaceKey.objects.filter(workspace=workspace).update(wrapped_dek=bytes(flipped))
        with pytest.raises(CryptoError, match=r"workspace acme.*master key 'test1'"):
            Token.objects.get(pk=token.pk).reveal()


@pytest.mark.django_db
def test_ciphertext_moved_to_another_token_fails():
    workspace = WorkspaceFactory(slug="acme")
    source = TokenFactory(workspace=workspace, key="SOURCE", value="source-value-000000")
    target = TokenFactory(workspace=workspace, key="TARGET", value="target-value-000000")

    moved = store(target, stored(source))

    assert_fails_cleanly(moved, "source-value-000000")


@pytest.mark.django_db
def test_old_version_of_a_value_cannot_be_replayed():
    token = TokenFactory(key="ROTATED", value="first-value-0000000")
    version_0 = stored(token)
    token.set_value("second-value-000000")
    assert token.value_version == 1

    replayed = store(token, version_0)
    assert_fails_cleanly(replayed, "first-value-0000000")
    relabelled = store(token, version_0, value_version=0)
    assert relabelled.reveal() == "first-value-0000000", "control: it is the version that binds"


@pytest.mark.django_db
def test_ciphertext_moved_to_another_workspace_fails():
    acme = WorkspaceFactory(slug="acme")
    globex = WorkspaceFactory(slug="globex")
    theirs = TokenFactory(workspace=acme, key="SAME_KEY", value="acme-secret-value-00")
    ours = TokenFactory(workspace=globex, key="SAME_KEY", value="globex-secret-value-0")

    moved = store(ours, stored(theirs), value_version=theirs.value_version)

    assert_fails_cleanly(moved, "acme-secret-value-00")
    # The whole row, id included, is bound too: acme's ciphertext under acme's token id but in
    # globex's row (so under globex's data key) still fails.
    assert ours.reveal() != "acme-secret-value-00"


@pytest.mark.django_db
def test_data_key_moved_to_another_workspace_fails():
    acme = WorkspaceFactory(slug="acme")
    globex = WorkspaceFactory(slug="globex")
    TokenFactory(workspace=acme, key="A", value="acme-value-000000000")
    mine = TokenFactory(workspace=globex, key="B", value="globex-value-0000000")
    acme_key = WorkspaceKey.objects.get(workspace=acme)

    WorkspaceKey.objects.filter(workspace=globex).update(
        wrapped_dek=acme_key.wrapped_dek, kek_id=acme_key.kek_id
    )

    with pytest.raises(CryptoError, match=r"workspace globex"):
        Token.objects.get(pk=mine.pk).reveal()


@pytest.mark.slow
def test_ten_thousand_encryptions_of_one_value_are_all_distinct():
    dek = os.urandom(32)
    value = "the same value every time"
    blobs = [crypto.encrypt(dek, value, aad=crypto.value_aad(1, "t", 0)) for _ in range(10_000)]

    assert len({blob[:12] for blob in blobs}) == 10_000, "a nonce was reused"
    assert len(set(blobs)) == 10_000
    assert all(value.encode() not in blob for blob in blobs)
    sample = blobs[::997]
    assert {crypto.decrypt(dek, b, aad=crypto.value_aad(1, "t", 0), label="t") for b in sample} == {
        value
    }


# --- master keys refused at start-up -----------------------------------------------------

GOOD = base64.b64encode(b"k" * 32).decode()


@pytest.mark.parametrize(
    ("ring", "says"),
    [
        ("k1:" + base64.b64encode(b"k" * 16).decode(), "is 16 bytes; it must be 32"),
        ("k1:" + base64.b64encode(b"k" * 31).decode(), "is 31 bytes; it must be 32"),
        ("k1:" + base64.b64encode(b"k" * 33).decode(), "is 33 bytes; it must be 32"),
        ("k1:" + base64.b64encode(b"k" * 64).decode(), "is 64 bytes; it must be 32"),
        ("k1:not base64 at all!", "not valid base64"),
        ("k1:" + GOOD[:-2], "not valid base64"),
        ("k1:" + GOOD.replace("a", "*"), "not valid base64"),
        (GOOD, "not of the form <id>:<base64 key>"),
        ("bad id:" + GOOD, "not of the form <id>:<base64 key>"),
        (f"k1:{GOOD},k1:{GOOD}", "appears twice"),
        ("", "holds no master key"),
        ("# only a comment", "holds no master key"),
    ],
)
def test_malformed_master_keys_are_refused_without_echoing_them(ring, says):
    with pytest.raises(MasterKeyError) as caught:
        parse_key_ring(ring, "COFFER_MASTER_KEYS")
    assert says in str(caught.value)
    secret_part = ring.partition(":")[2]
    if len(secret_part) > 8:
        assert secret_part not in str(caught.value)


def start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("COFFER_", "PYTEST"))}
    base.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        COFFER_SECRET_KEY="s" * 60,
        COFFER_DATA_DIR=str(tmp_path),
        COFFER_ALLOWED_HOSTS="localhost",
        **env,
    )
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        ("k1:" + base64.b64encode(b"short").decode(), "is 5 bytes; it must be 32 bytes"),
        ("k1:%%%not-base64%%%", "is not valid base64"),
        ("", "No master key configured"),
    ],
)
def test_start_up_refuses_a_bad_or_missing_master_key(tmp_path, keys, says):
    result = start(tmp_path, COFFER_MASTER_KEYS=keys)

    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert says in output
    assert "generate_master_key" in output, "the error says how to make a key"


def test_start_up_accepts_a_good_master_key(tmp_path):
    result = start(tmp_path, COFFER_MASTER_KEYS=f"k1:{GOOD}")
    assert result.returncode == 0, result.stdout + result.stderr

"""Ciphertexts made by Coffer before encrypt/decrypt became one pair still open: the format
(nonce, AES-256-GCM, associated data of each kind) is what existing databases and backups hold.

Each fixture below was made by the code before the change (encrypt_value,
encrypt_webhook_secret, encrypt_pending_import, encrypt_account_secret, new_data_key), with
the fixed test-only keys here; none of them is used anywhere else.
"""

from __future__ import annotations

import base64

import pytest

from keys import crypto

OLD_MASTER_KEY = bytes(range(32))  # test-only
OLD_RING = f"old1:{base64.b64encode(OLD_MASTER_KEY).decode()}"
OLD_DATA_KEY = bytes(range(100, 132))  # test-only; wrapped below for workspace 7
WORKSPACE_ID = 7
TOKEN_ID = "5f0c2b1e-8d7a-4c3b-9e2f-1a2b3c4d5e6f"
IMPORT_ID = "0b9e3c8a-2f1d-4e5b-8a7c-6d5e4f3a2b1c"
WRAPPED_DATA_KEY = bytes.fromhex(
    "7b53d7af3a1759207e69aa34f6e4f4c2fc2af23847218e321e582f2b2d8e59b3041980cb7003c14f477e30e9fa"
    "38d6b24e686e86abc17e365c968f4a"
)
VALUE = bytes.fromhex(
    "fda78907c158aa5a2a74fd929394c9fef550846a2f8d969c3ee4922cf6ce5a762cf47dfc0c446a6a76e2780147"
)
WEBHOOK_SECRET = bytes.fromhex(
    "f4b6f6ed50ae2dd8255c7cc0a6a8187a97bc2c02c676639b280af45875e10146841c30bbd00a4e36ae"
)
PENDING_IMPORT = bytes.fromhex(
    "e5df5ec9cfc0300d67bbb15922240e71b54e51743420f231adbfe0c0cf6902c9e34924e4140d607a"
)
ACCOUNT_SECRET = "v1:old1:fDy3zsiQPqg0N8Do9lNjhoxw4gaAK8pmgf73KFDSd/dW//aQe3EBzRcZEUU="


@pytest.fixture(autouse=True)
def old_ring(settings):
    settings.COFFER_MASTER_KEYS = OLD_RING


def test_a_data_key_wrapped_by_the_old_code_unwraps():
    unwrapped = crypto.unwrap_data_key(WORKSPACE_ID, "old1", WRAPPED_DATA_KEY, label="old")
    assert unwrapped == OLD_DATA_KEY


def test_a_token_value_sealed_by_the_old_code_decrypts():
    aad = crypto.value_aad(WORKSPACE_ID, TOKEN_ID, 3)
    assert crypto.decrypt(OLD_DATA_KEY, VALUE, aad=aad, label="old") == "sk_live_ünïcode"
    assert crypto.plaintext_length(VALUE) == len("sk_live_ünïcode".encode())


def test_a_webhook_signing_secret_sealed_by_the_old_code_decrypts():
    aad = crypto.webhook_secret_aad(WORKSPACE_ID, 42)
    assert crypto.decrypt(OLD_DATA_KEY, WEBHOOK_SECRET, aad=aad, label="old") == "whsec_signing"


def test_a_pending_import_sealed_by_the_old_code_decrypts():
    aad = crypto.pending_import_aad(WORKSPACE_ID, IMPORT_ID)
    assert crypto.decrypt(OLD_DATA_KEY, PENDING_IMPORT, aad=aad, label="old") == 'A=1\nB="two"\n'


def test_a_two_factor_secret_sealed_by_the_old_code_decrypts():
    assert crypto.decrypt_account_secret(ACCOUNT_SECRET) == "JBSWY3DPEHPK3PXP"


@pytest.mark.parametrize(
    ("blob", "aad", "words"),
    [
        (VALUE, crypto.value_aad(WORKSPACE_ID, TOKEN_ID, 4), "the value: the ciphertext is"),
        (WEBHOOK_SECRET, crypto.webhook_secret_aad(WORKSPACE_ID, 43), "the signing secret: it"),
        (PENDING_IMPORT, crypto.pending_import_aad(8, IMPORT_ID), "the pending import: it"),
    ],
)
def test_each_kind_stays_bound_to_its_own_row(blob, aad, words):
    """Another version, webhook or workspace than the one sealed: refused, saying what it is."""
    with pytest.raises(crypto.CryptoError, match=f"old: cannot decrypt {words}") as error:
        crypto.decrypt(OLD_DATA_KEY, blob, aad=aad, label="old")
    assert "whsec" not in str(error.value) and "sk_live" not in str(error.value)


def test_kinds_cannot_be_swapped():
    """A webhook secret's ciphertext does not open as a value of the same ids, nor back."""
    with pytest.raises(crypto.CryptoError):
        crypto.decrypt(
            OLD_DATA_KEY, WEBHOOK_SECRET, aad=crypto.value_aad(WORKSPACE_ID, 42, 0), label="x"
        )
    with pytest.raises(crypto.CryptoError):
        crypto.decrypt(
            OLD_DATA_KEY, PENDING_IMPORT, aad=crypto.webhook_secret_aad(WORKSPACE_ID, 42), label="x"
        )

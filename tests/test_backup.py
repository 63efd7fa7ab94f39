"""`manage.py backup` and `manage.py verify_backup`, on the configured database (SQLite, and
PostgreSQL in CI's second pass).

Transactional tests: a backup reads what is committed, as it does in production.
"""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import stat
import subprocess
import tarfile
import threading
import time

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections

from backups.management.commands.verify_backup import restored
from tests.factories import WorkspaceFactory
from tests.test_storage_leaks import hits
from tokens.models import Token

pytestmark = pytest.mark.django_db(transaction=True)

ON_POSTGRES = connection.vendor == "postgresql"
OTHER_KEY = "k2:" + base64.b64encode(secrets.token_bytes(32)).decode()


def run(command: str, *args: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of a management command run in this process."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(command, *args, stdout=out, stderr=err)
    except CommandError as error:
        return error.returncode, out.getvalue(), err.getvalue() + str(error)
    return 0, out.getvalue(), err.getvalue()


def make_tokens(slug: str, values: dict[str, str], marker: str = "") -> list[Token]:
    workspace = WorkspaceFactory(slug=slug, name=slug.title())
    environments = list(workspace.environments.all())
    return [
        Token.objects.create_token(
            workspace=workspace,
            key=key,
            value=value,
            environments=environments,
            description=f"{marker} {key}",
        )
        for key, value in values.items()
    ]


def random_values(count: int = 4) -> dict[str, str]:
    return {f"TOKEN_{n}": f"value-{n}-{secrets.token_hex(16)}" for n in range(count)}


def manifest_of(path) -> dict:
    with tarfile.open(path) as archive:
        return json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]


def keys_in(path) -> set[str]:
    with restored(path, manifest_of(path)) as alias:
        return set(Token.objects.using(alias).values_list("key", flat=True))


# --- backup ---------------------------------------------------------------------------------


def test_backup_then_verify_passes_with_counts(tmp_path):
    make_tokens("acme", random_values(3))
    make_tokens("globex", random_values(2))
    output = tmp_path / "coffer.backup"

    status, out, err = run("backup", "--output", str(output))

    assert status == 0, err
    assert "2 workspaces, 5 tokens" in out and "Master keys needed to read it: test1" in out
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    with tarfile.open(output) as archive:
        member = "database.pgdump" if ON_POSTGRES else "database.sqlite3"
        assert archive.getnames() == ["manifest.json", member]
    manifest = manifest_of(output)
    assert manifest["counts"] == {
        "workspaces": 2,
        "data_keys": 2,
        "tokens": 5,
        "token_values": 5,
        "token_versions": 5,
        "pending_imports": 0,
        "two_factor_secrets": 0,
        "webhook_signing_secrets": 0,
    }
    assert manifest["master_key_ids"] == ["test1"]
    assert manifest["database"] == connection.vendor
    assert "0001_initial" in manifest["migrations"]["tokens"]

    status, out, err = run("verify_backup", str(output))

    assert status == 0, err
    assert "Data keys: 2 checked, 2 unwrap" in out
    assert "Token values: 5 checked, 5 decrypt and authenticate." in out
    assert "OK: with the master keys on hand, every value in this backup can be read." in out


def test_verify_live_checks_the_configured_database():
    make_tokens("acme", random_values(3))
    status, out, err = run("verify_backup", "--live")
    assert status == 0, err
    assert "Token values: 3 checked, 3 decrypt and authenticate." in out


def test_the_backup_holds_no_value(tmp_path):
    """Scanned raw, and (PostgreSQL's custom format compresses) as the SQL it restores to."""
    values = random_values(4) | {"PEM": "-----BEGIN KEY-----\n" + secrets.token_hex(40) + "\n"}
    marker = f"PLAINTEXT-CONTROL-{secrets.token_hex(8)}"
    make_tokens("acme", values, marker)
    output = tmp_path / "coffer.backup"
    assert run("backup", "--output", str(output))[0] == 0

    data = output.read_bytes()
    if ON_POSTGRES:
        with tarfile.open(output) as archive:
            archive.extract("database.pgdump", tmp_path, filter="data")
        script = subprocess.run(
            ["pg_restore", "--file=-", str(tmp_path / "database.pgdump")],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        data += script
    assert marker.encode() in data, "the scan does not see the stored rows"
    assert hits(data, list(values.values())) == []
    assert b"dGVzdC1tYXN0ZXIta2V5" not in data  # the master key (base64) is never in it


@pytest.mark.parametrize("kind", ["symlink", "directory", "fifo"])
def test_backup_refuses_a_dangerous_output_and_writes_nothing(tmp_path, kind):
    target = tmp_path / "target"
    elsewhere = tmp_path / "elsewhere"
    if kind == "symlink":
        elsewhere.write_text("keep me")
        target.symlink_to(elsewhere)
    elif kind == "directory":
        target.mkdir()
    else:
        os.mkfifo(target)
    before = sorted(p.name for p in tmp_path.iterdir())

    status, _, err = run("backup", "--output", str(target))

    assert status == 2
    assert "only a new path or a regular file is written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if kind == "symlink":
        assert elsewhere.read_text() == "keep me"


def test_backup_refuses_a_missing_folder_or_an_empty_output(tmp_path):
    status, _, err = run("backup", "--output", str(tmp_path / "missing" / "b.tar"))
    assert status == 2 and "does not exist" in err
    status, _, err = run("backup", "--output", " ")
    assert status == 2 and "must name a file" in err


def test_backup_replaces_an_old_backup_atomically(tmp_path):
    make_tokens("acme", random_values(1))
    output = tmp_path / "coffer.backup"
    output.write_bytes(b"an old backup")
    output.chmod(0o644)
    assert run("backup", "--output", str(output))[0] == 0
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert manifest_of(output)["counts"]["tokens"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["coffer.backup"]  # no temporary file left


@pytest.mark.skipif(not ON_POSTGRES, reason="pg_dump is PostgreSQL's; SQLite needs no tool")
def test_without_pg_dump_backup_says_which_command_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    status, _, err = run("backup", "--output", str(tmp_path / "b.tar"))
    assert status == 1
    assert "pg_dump is not installed" in err and "apt-get install postgresql-client" in err
    assert (
        f"pg_dump --format=custom --file=coffer.pgdump --dbname={connection.settings_dict['NAME']}"
        in err
    )
    assert not (tmp_path / "b.tar").exists()


@pytest.mark.slow
def test_a_backup_during_concurrent_writes_holds_exactly_a_committed_state(tmp_path):
    """Writers keep creating tokens while the backup runs: everything committed before the
    backup began is in it, nothing that was never committed is, the manifest counts exactly
    what the snapshot holds, and it verifies."""
    make_tokens("acme", random_values(20))
    committed: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(number: int) -> None:
        workspace = WorkspaceFactory(slug=f"writer-{number}")
        environments = list(workspace.environments.all())
        try:
            for count in range(400):
                if stop.is_set():
                    break
                key = f"W{number}_{count}"
                Token.objects.create_token(
                    workspace=workspace,
                    key=key,
                    value=secrets.token_hex(20),
                    environments=environments,
                )
                committed.append(key)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(committed) < 30 and time.monotonic() < deadline:
        time.sleep(0.01)
    before = set(committed) | {f"TOKEN_{n}" for n in range(20)}
    output = tmp_path / "coffer.backup"
    status, _, err = run("backup", "--output", str(output))
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert status == 0, err
    assert not errors, errors
    after = set(committed) | {f"TOKEN_{n}" for n in range(20)}

    in_backup = keys_in(output)

    assert before <= in_backup <= after
    assert manifest_of(output)["counts"]["tokens"] == len(in_backup)
    status, out, err = run("verify_backup", str(output))
    assert status == 0, err
    assert f"Token values: {len(in_backup)} checked, {len(in_backup)} decrypt" in out


# --- verify_backup: what fails, and how it is named ------------------------------------------


def test_one_corrupted_ciphertext_byte_fails_verification_naming_the_token(tmp_path):
    good, bad = make_tokens("acme", {"GOOD": secrets.token_hex(20), "BAD": secrets.token_hex(20)})
    ciphertext = bytearray(bytes(Token.objects.get(pk=bad.pk).ciphertext))
    ciphertext[20] ^= 0x01
    Token.objects.filter(pk=bad.pk).update(ciphertext=bytes(ciphertext))
    output = tmp_path / "coffer.backup"
    assert run("backup", "--output", str(output))[0] == 0

    status, out, err = run("verify_backup", str(output))

    assert status == 1
    assert "Token values: 2 checked, 1 decrypt and authenticate." in out
    assert (
        "FAILED: token BAD in workspace acme (master key 'test1'): cannot decrypt the value" in err
    )
    assert "GOOD" not in err
    assert "1 problem: with the master keys on hand, not every value in this backup" in err
    assert run("verify_backup", "--live")[0] == 1


def test_a_missing_master_key_fails_verification_naming_each_token(tmp_path, settings):
    make_tokens("acme", {"ACME_KEY": secrets.token_hex(20)})
    settings.COFFER_MASTER_KEYS = f"{OTHER_KEY},{os.environ['COFFER_MASTER_KEYS']}"
    make_tokens("globex", {"GLOBEX_A": secrets.token_hex(20), "GLOBEX_B": secrets.token_hex(20)})
    output = tmp_path / "coffer.backup"
    assert run("backup", "--output", str(output))[0] == 0
    assert manifest_of(output)["master_key_ids"] == ["k2", "test1"]
    settings.COFFER_MASTER_KEYS = os.environ["COFFER_MASTER_KEYS"]  # k2 is lost

    status, out, err = run("verify_backup", str(output))

    assert status == 1
    assert "Master keys needed: k2 (MISSING), test1 (in the key ring)." in out
    assert "Data keys: 2 checked, 1 unwrap" in out
    assert "Token values: 3 checked, 1 decrypt and authenticate." in out
    assert "FAILED: data key of workspace globex: master key 'k2' is not in the key ring" in err
    for key in ("GLOBEX_A", "GLOBEX_B"):
        assert f"FAILED: token {key} in workspace globex (master key 'k2'): its workspace's" in err
    assert "ACME_KEY" not in err


def test_a_damaged_backup_file_fails_before_anything_is_checked(tmp_path):
    make_tokens("acme", random_values(2))
    output = tmp_path / "coffer.backup"
    assert run("backup", "--output", str(output))[0] == 0
    data = bytearray(output.read_bytes())
    data[-20_000] ^= 0xFF  # inside the database member (the archive ends with padding)
    output.write_bytes(bytes(data))

    status, _, err = run("verify_backup", str(output))

    assert status == 1
    assert "does not match the SHA-256 in its manifest" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"not a tar at all" * 100, "is not a Coffer backup (not a tar archive)"),
        ("empty-tar", "holds no manifest.json"),
    ],
)
def test_verify_refuses_what_is_not_a_backup(tmp_path, content, message):
    path = tmp_path / "file"
    if content == "empty-tar":
        with tarfile.open(path, "w"):
            pass
    elif content is not None:
        path.write_bytes(content)
    status, _, err = run("verify_backup", str(path))
    assert status == 2
    assert message in err


def test_verify_needs_a_file_or_live_not_both(tmp_path):
    assert run("verify_backup")[0] == 2
    assert run("verify_backup", str(tmp_path / "x"), "--live")[0] == 2


def test_verify_output_never_holds_a_value(tmp_path):
    values = random_values(3)
    tokens = make_tokens("acme", values)
    Token.objects.filter(pk=tokens[0].pk).update(ciphertext=b"\x00" * 40)
    output = tmp_path / "coffer.backup"
    _, backup_out, _ = run("backup", "--output", str(output))
    _, out, err = run("verify_backup", str(output))
    _, live_out, live_err = run("verify_backup", "--live")
    everything = (backup_out + out + err + live_out + live_err).encode()
    assert "TOKEN_0" in err
    assert hits(everything, list(values.values())) == []


def test_old_versions_and_webhook_secrets_are_checked_too(tmp_path):
    """History keeps old ciphertexts and webhooks keep their signing secrets: a backup must
    bring those back as well, and a damaged old version is named."""
    from notifications.models import Webhook
    from tests.factories import make_webhook
    from tokens.models import TokenVersion

    (token,) = make_tokens("acme", {"ROTATED": secrets.token_hex(20)})
    token.set_value(secrets.token_hex(20))
    token.set_value(secrets.token_hex(20))
    make_webhook(token.workspace)
    assert Webhook.objects.count() == 1
    output = tmp_path / "good.backup"
    assert run("backup", "--output", str(output))[0] == 0

    status, out, err = run("verify_backup", str(output))

    assert status == 0, err
    versions = TokenVersion.objects.sealed().count()
    assert versions >= 3
    assert f"Token versions: {versions} checked, {versions} decrypt and authenticate." in out
    assert "Webhook signing secrets: 1 checked, 1 decrypt and authenticate." in out

    oldest = TokenVersion.objects.sealed().order_by("version").first()
    assert oldest is not None and oldest.version != Token.objects.get().value_version
    damaged = bytearray(bytes(oldest.ciphertext))
    damaged[20] ^= 0x01
    TokenVersion.objects.filter(pk=oldest.pk).update(ciphertext=bytes(damaged))
    status, out, err = run("verify_backup", "--live")
    assert status == 1
    assert f"FAILED: version {oldest.number} of token ROTATED in workspace acme" in err


def test_a_key_with_a_token_per_environment_is_backed_up_and_verified(tmp_path):
    workspace = WorkspaceFactory(slug="acme")
    for slug, value in (("production", "sk_live_0000000000000000"), ("sandbox", "sk_test_0000")):
        Token.objects.create_token(
            workspace=workspace,
            key="STRIPE_SECRET",
            value=value,
            environments=[workspace.environments.get(slug=slug)],
        )
    output = tmp_path / "coffer.backup"
    assert run("backup", "--output", str(output))[0] == 0
    assert manifest_of(output)["counts"]["tokens"] == 2
    status, out, err = run("verify_backup", str(output))
    assert status == 0, err
    assert "Token values: 2 checked, 2 decrypt and authenticate." in out
    with restored(output, manifest_of(output)) as alias:
        restored_tokens = Token.objects.using(alias).filter(key="STRIPE_SECRET")
        assert {t.environments.get().slug for t in restored_tokens} == {"production", "sandbox"}

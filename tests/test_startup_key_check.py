"""A master key that does not read the database's data keys is caught at start-up.

With COFFER_MASTER_KEYS set to another key under the same id, the server used to start, the
Tokens page loaded and Create Token answered a bare 500. Now the WSGI/ASGI entry points and
`manage.py check` unwrap one data key per master key id in use and refuse with a message naming
the id; creating or editing a token on a crypto error answers a styled 503 page.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from keys.checks import master_key_problems
from tests.factories import TokenFactory, WorkspaceFactory, token_form_data
from tokens.models import Token

ROOT = Path(__file__).resolve().parent.parent
RIGHT = base64.b64encode(b"r" * 32).decode()
WRONG = base64.b64encode(b"w" * 32).decode()
OTHER = base64.b64encode(b"o" * 32).decode()
TEST_RING = os.environ["COFFER_MASTER_KEYS"]
TEST_ID = TEST_RING.partition(":")[0]
SECRET = "startup-check-secret-9d2e7c41b0a6"

# --- in process: the system check and the views -----------------------------------------------


@pytest.fixture
def stored_tokens(workspace):
    TokenFactory(workspace=workspace, key="FIRST", value=SECRET)
    TokenFactory(workspace=WorkspaceFactory(), key="SECOND")
    return workspace


def test_check_passes_with_the_right_key_ring(stored_tokens):
    call_command("check")
    assert master_key_problems() == []


@pytest.mark.django_db
def test_check_passes_on_an_empty_database():
    assert master_key_problems() == []


def test_check_refuses_another_key_under_the_same_id(stored_tokens, settings):
    settings.COFFER_MASTER_KEYS = f"{TEST_ID}:{WRONG}"

    with pytest.raises(SystemCheckError) as caught:
        call_command("check")

    message = str(caught.value)
    assert "coffer.E002" in message
    assert f"Master key {TEST_ID!r} does not match the database" in message
    assert WRONG not in message


def test_check_refuses_a_ring_without_an_id_in_use(stored_tokens, settings):
    settings.COFFER_MASTER_KEYS = f"newer:{OTHER}"

    with pytest.raises(SystemCheckError) as caught:
        call_command("check")

    assert "coffer.E002" in str(caught.value)
    assert f"master key {TEST_ID!r} is not in the key ring" in str(caught.value)


def test_check_reads_one_data_key_per_master_key_id_in_one_query(stored_tokens):
    """One query for the data keys, one per kind sealed straight under a master key (the
    two-factor secrets), whatever the number of workspaces. (On PostgreSQL a query read as an
    iterator is a server-side cursor: its statement starts with DECLARE.)"""

    def selects() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert master_key_problems() == []
        reads = ("SELECT", "DECLARE")
        return sum(q["sql"].startswith(reads) for q in queries.captured_queries)

    few = selects()
    for _ in range(5):
        TokenFactory(workspace=WorkspaceFactory())
    assert selects() == few == 2


@pytest.mark.parametrize("htmx", [False, True])
def test_create_token_with_a_wrong_master_key_is_a_clear_503(
    stored_tokens, editor_client, settings, htmx
):
    settings.COFFER_MASTER_KEYS = f"{TEST_ID}:{WRONG}"
    before = Token.objects.count()

    response = editor_client.post(
        reverse("tokens:create", args=[stored_tokens.slug]),
        token_form_data(stored_tokens, key="NEW_KEY", value=SECRET),
        headers={"HX-Request": "true"} if htmx else {},
    )

    assert response.status_code == 503
    page = response.content.decode()
    assert "The master key does not match" in page
    assert "Nothing was saved or changed" in page
    assert "Traceback" not in page and SECRET not in page and WRONG not in page
    assert Token.objects.count() == before


def test_edit_token_value_with_a_wrong_master_key_is_a_clear_503(
    stored_tokens, editor_client, settings
):
    token = Token.objects.get(key="FIRST")
    settings.COFFER_MASTER_KEYS = f"{TEST_ID}:{WRONG}"

    response = editor_client.post(
        reverse("tokens:edit", args=[stored_tokens.slug, token.pk]),
        token_form_data(stored_tokens, key="FIRST", value="another-value-" + "x" * 20),
    )

    assert response.status_code == 503
    assert "The master key does not match" in response.content.decode()
    settings.COFFER_MASTER_KEYS = TEST_RING
    assert Token.objects.get(pk=token.pk).reveal() == SECRET


# --- real start-ups in child processes (a few seconds each: marked slow) ------------------------

STORE_A_TOKEN = """
import django
django.setup()
from django.core.management import call_command
from tokens.models import Token
from workspaces.models import Workspace
call_command("migrate", verbosity=0)
workspace = Workspace.objects.create(name="Acme", slug="acme")
Token.objects.create_token(
    workspace=workspace, key="API_KEY", value="child-process-secret-value",
    environments=workspace.environments.all(),
)
"""
IMPORT_WSGI = "import config.wsgi"
IMPORT_ASGI = "import config.asgi"


def run(data_dir: Path, code: list[str], **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("COFFER_", "PYTEST"))}
    base.pop("DATABASE_URL", None)
    base.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        COFFER_SECRET_KEY="s" * 60,
        COFFER_DATA_DIR=str(data_dir),
        COFFER_ALLOWED_HOSTS="localhost",
        **env,
    )
    return subprocess.run(
        [sys.executable, *code], cwd=ROOT, env=base, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def data_dir_with_tokens(tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("startup") / "data"
    made = run(data_dir, ["-c", STORE_A_TOKEN], COFFER_MASTER_KEYS=f"k1:{RIGHT}")
    assert made.returncode == 0, made.stderr
    return data_dir


@pytest.mark.slow
@pytest.mark.parametrize("entry_point", [IMPORT_WSGI, IMPORT_ASGI])
def test_server_refuses_to_start_with_another_key_under_the_same_id(
    data_dir_with_tokens, entry_point
):
    result = run(data_dir_with_tokens, ["-c", entry_point], COFFER_MASTER_KEYS=f"k1:{WRONG}")

    assert result.returncode != 0
    assert "Coffer cannot start" in result.stderr
    assert "Master key 'k1' does not match the database" in result.stderr
    assert WRONG not in result.stderr + result.stdout


@pytest.mark.slow
def test_server_refuses_to_start_when_an_id_in_use_is_not_in_the_ring(data_dir_with_tokens):
    result = run(data_dir_with_tokens, ["-c", IMPORT_WSGI], COFFER_MASTER_KEYS=f"k2:{OTHER}")

    assert result.returncode != 0
    assert "master key 'k1' is not in the key ring" in result.stderr


@pytest.mark.slow
def test_server_starts_with_the_right_key(data_dir_with_tokens):
    result = run(
        data_dir_with_tokens, ["-c", IMPORT_WSGI], COFFER_MASTER_KEYS=f"k2:{OTHER},k1:{RIGHT}"
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_manage_py_check_refuses_the_wrong_key(data_dir_with_tokens):
    result = run(data_dir_with_tokens, ["manage.py", "check"], COFFER_MASTER_KEYS=f"k1:{WRONG}")

    assert result.returncode != 0
    assert "coffer.E002" in result.stderr
    assert "'k1'" in result.stderr


@pytest.mark.slow
def test_check_and_migrate_work_on_a_database_not_migrated_yet(tmp_path):
    keys = {"COFFER_MASTER_KEYS": f"k1:{RIGHT}"}
    assert run(tmp_path, ["manage.py", "check"], **keys).returncode == 0
    migrated = run(tmp_path, ["manage.py", "migrate", "--no-input"], **keys)
    assert migrated.returncode == 0, migrated.stderr
    assert run(tmp_path, ["-c", IMPORT_WSGI], **keys).returncode == 0


@pytest.mark.slow
def test_development_refuses_to_replace_a_missing_key_file_the_data_needs(tmp_path):
    dev = {"COFFER_DEBUG": "1", "COFFER_MASTER_KEYS": ""}
    made = run(tmp_path, ["-c", STORE_A_TOKEN], **dev)
    assert made.returncode == 0, made.stderr
    key_file = tmp_path / "master.keys"
    assert key_file.exists(), "development made its key file on first run"
    key_file.unlink()

    result = run(tmp_path, ["manage.py", "check"], **dev)

    assert result.returncode != 0
    assert f"The master key file {key_file} is missing" in result.stderr
    assert "'dev1'" in result.stderr
    assert not key_file.exists(), "no new key was made under the old id"


# --- two-factor secrets: one per master key id, however many people -------------------------


def _with_two_factor(username: str, kek_ring: str) -> None:
    """A person with a TOTP secret and a recovery-code seed sealed under `kek_ring`'s first key."""
    from allauth.mfa.models import Authenticator

    from keys import crypto
    from tests.factories import UserFactory

    user = UserFactory(username=username)
    with override_settings(COFFER_MASTER_KEYS=kek_ring):
        Authenticator.objects.create(
            user=user,
            type=Authenticator.Type.TOTP,
            data={"secret": crypto.encrypt_account_secret("JBSWY3DPEHPK3PXP")},
        )
        Authenticator.objects.create(
            user=user,
            type=Authenticator.Type.RECOVERY_CODES,
            data={"seed": crypto.encrypt_account_secret("seed-" + username), "used_mask": 0},
        )


def _check_reads() -> tuple[int, int, list[str]]:
    """(queries, two-factor rows read, problems) of one start-up key check."""
    from allauth.mfa.models import Authenticator
    from django.db.models.signals import post_init

    rows = []

    def count(sender, instance, **kwargs):
        rows.append(instance.pk)

    post_init.connect(count, sender=Authenticator)
    try:
        with CaptureQueriesContext(connection) as queries:
            problems = master_key_problems()
    finally:
        post_init.disconnect(count, sender=Authenticator)
    reads = ("SELECT", "DECLARE")
    return sum(q["sql"].startswith(reads) for q in queries.captured_queries), len(rows), problems


@pytest.mark.django_db
def test_check_reads_two_factor_secrets_once_per_master_key_however_many_people(settings):
    """The check used to read every person's authenticators to open one per master key id."""
    older = f"k0:{OTHER}"
    settings.COFFER_MASTER_KEYS = f"{TEST_RING},{older}"
    _with_two_factor("ada", TEST_RING)
    _with_two_factor("bob", older)
    few = _check_reads()

    for n in range(20):
        _with_two_factor(f"person{n}", TEST_RING if n % 2 else older)
    many = _check_reads()

    assert few == many == (2, 4, [])  # data keys; one query: a TOTP and a seed per master key


@pytest.mark.django_db
def test_check_still_names_each_master_key_id_that_does_not_read_two_factor_secrets(settings):
    older = f"k0:{OTHER}"
    _with_two_factor("ada", TEST_RING)
    for n in range(5):
        _with_two_factor(f"person{n}", older)
    settings.COFFER_MASTER_KEYS = f"{TEST_RING},k0:{WRONG}"  # k0 is there, but not the right key

    problems = _check_reads()[2]

    assert len(problems) == 1
    assert problems[0].startswith("Master key 'k0' does not read the two-factor secrets:")
    assert WRONG not in problems[0]

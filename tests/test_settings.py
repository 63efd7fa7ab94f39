"""Settings come from the environment; each case runs in a fresh interpreter with a clean env."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOW_SETTINGS = (
    "import json; from django.conf import settings as s; db = s.DATABASES['default']; "
    "print(json.dumps({'debug': s.DEBUG, 'hosts': s.ALLOWED_HOSTS, 'engine': db['ENGINE'], "
    "'name': str(db['NAME']), 'host': db.get('HOST'), 'port': db.get('PORT'), "
    "'user': db.get('USER'), 'secret_key': s.SECRET_KEY, 'ssl_redirect': s.SECURE_SSL_REDIRECT}))"
)


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Run Python in the repo with only PATH, the settings module and `env` set."""
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "COFFER_DATA_DIR": str(tmp_path / "data"),
        **env,
    }
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


def settings_with(tmp_path: Path, **env: str) -> dict:
    result = run(["-c", SHOW_SETTINGS], tmp_path, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_without_a_secret_key_refuses_to_start(tmp_path):
    result = run(["manage.py", "check"], tmp_path)

    assert result.returncode != 0
    assert "COFFER_SECRET_KEY must be set when COFFER_DEBUG is off" in result.stderr


def test_defaults_are_production_with_sqlite_in_the_data_dir(tmp_path):
    found = settings_with(tmp_path, COFFER_SECRET_KEY="k" * 50)

    assert found["debug"] is False
    assert found["hosts"] == []
    assert found["ssl_redirect"] is True
    assert found["engine"] == "django.db.backends.sqlite3"
    assert found["name"] == str((tmp_path / "data" / "coffer.sqlite3").resolve())
    assert (tmp_path / "data").is_dir()


def test_allowed_hosts_and_database_url_are_read(tmp_path):
    found = settings_with(
        tmp_path,
        COFFER_SECRET_KEY="k" * 50,
        COFFER_ALLOWED_HOSTS=" coffer.example.com, ,admin.example.com ",
        DATABASE_URL="postgres://alice:pw@db.example.com:6543/coffer",
    )

    assert found["hosts"] == ["coffer.example.com", "admin.example.com"]
    assert found["engine"] == "django.db.backends.postgresql"
    assert (found["name"], found["host"], found["port"], found["user"]) == (
        "coffer",
        "db.example.com",
        6543,
        "alice",
    )


def test_development_keeps_a_generated_secret_key_in_the_data_dir(tmp_path):
    found = settings_with(tmp_path, COFFER_DEBUG="1")

    key_file = tmp_path / "data" / "dev-secret-key"
    assert found["debug"] is True
    assert found["hosts"] == ["127.0.0.1", "localhost", "[::1]"]
    assert found["secret_key"] == key_file.read_text().strip()
    assert len(found["secret_key"]) >= 50
    assert key_file.stat().st_mode & 0o077 == 0  # readable by its owner only


def test_insecure_oidc_issuers_need_debug(tmp_path):
    """Plain-http OIDC issuers are for development: refused at start-up in production."""
    result = run(
        ["manage.py", "check"],
        tmp_path,
        COFFER_SECRET_KEY="k" * 50,
        COFFER_OIDC_ALLOW_INSECURE_ISSUERS="1",
    )
    assert result.returncode != 0
    assert "COFFER_OIDC_ALLOW_INSECURE_ISSUERS is for development and tests" in result.stderr
    allowed = run(
        [
            "-c",
            "import django; django.setup(); from django.conf import settings as s; "
            "print(s.COFFER_OIDC_ALLOW_INSECURE_ISSUERS, s.COFFER_OIDC_CREDENTIAL_MINUTES)",
        ],
        tmp_path,
        COFFER_DEBUG="1",
        COFFER_OIDC_ALLOW_INSECURE_ISSUERS="1",
    )
    assert allowed.stdout.split() == ["True", "15"], allowed.stderr


CONNECTION = (
    "import json; from django.conf import settings as s; db = s.DATABASES['default']; "
    "print(json.dumps([db['CONN_MAX_AGE'], db['CONN_HEALTH_CHECKS']]))"
)
POSTGRES = "postgres://coffer@db.example.com:5432/coffer"


def test_production_keeps_database_connections_with_health_checks(tmp_path):
    """A connection per request costs API throughput and CPU: production keeps them for a
    minute, and checks one before reusing it (a database restart costs no failed request)."""
    result = run(["-c", CONNECTION], tmp_path, COFFER_SECRET_KEY="k" * 50, DATABASE_URL=POSTGRES)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [60, True]


def test_development_and_an_explicit_value_open_a_connection_per_request(tmp_path):
    # The development server starts a thread per request: kept connections would pile up.
    debug = run(["-c", CONNECTION], tmp_path, COFFER_DEBUG="1", DATABASE_URL=POSTGRES)
    assert json.loads(debug.stdout) == [0, True], debug.stderr
    chosen = run(
        ["-c", CONNECTION],
        tmp_path,
        COFFER_SECRET_KEY="k" * 50,
        DATABASE_URL=POSTGRES,
        COFFER_DB_CONN_MAX_AGE="0",
    )
    assert json.loads(chosen.stdout) == [0, True], chosen.stderr


def test_the_asgi_server_opens_a_connection_per_request(tmp_path):
    """Under ASGI each request runs in a thread of its own: kept connections would pile up."""
    asgi = run(
        ["-c", CONNECTION],
        tmp_path,
        COFFER_SECRET_KEY="k" * 50,
        DATABASE_URL=POSTGRES,
        COFFER_WEB_SERVER="asgi",
    )
    assert json.loads(asgi.stdout) == [0, True], asgi.stderr


def test_a_bad_connection_age_stops_with_a_clear_message(tmp_path):
    result = run(
        ["manage.py", "check"],
        tmp_path,
        COFFER_SECRET_KEY="k" * 50,
        COFFER_DB_CONN_MAX_AGE="a minute",
    )
    assert result.returncode != 0
    assert (
        "COFFER_DB_CONN_MAX_AGE must be a whole number of seconds (0 or more), not 'a minute'."
        in result.stderr
    )


def test_local_webhook_receivers_are_for_development_only(tmp_path):
    """`make run` (DEBUG) lets a webhook go to this machine; production never does."""
    show = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.COFFER_WEBHOOK_ALLOW_LOCAL, s.COFFER_WEBHOOK_ALLOW_PRIVATE)"
    )
    production = run(["-c", show], tmp_path, COFFER_SECRET_KEY="k" * 50)
    assert production.stdout.split() == ["False", "False"], production.stderr
    development = run(["-c", show], tmp_path, COFFER_DEBUG="1")
    assert development.stdout.split() == ["True", "False"], development.stderr

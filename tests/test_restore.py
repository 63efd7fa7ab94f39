"""Restoring a backup, following the documented steps (docs/operations.md, "Backups and restore")
command by command, in processes of their own as an operator runs them: SQLite (stop, replace,
start) and PostgreSQL (pg_restore into an empty database), each ending with
`verify_backup --live` and a resolve of every token that must give back the original values.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from backups.archive import psycopg_arguments
from tests.api_server import free_port, server_environment

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ON_POSTGRES = connection.vendor == "postgresql"

SEED = r"""
import json, sys
from tokens.models import Token
from workspaces.models import Workspace

values = json.loads(sys.argv[1])
for slug in ("acme", "globex"):
    workspace = Workspace.objects.create(name=slug.title(), slug=slug)
    production = workspace.environments.get(slug="production")
    for key, value in values.items():
        Token.objects.create_token(
            workspace=workspace, key=key, value=f"{slug}:{value}", environments=[production]
        )
"""

# What happens after the backup, which the restore must undo.
DAMAGE = r"""
from tokens.models import Token
from workspaces.models import Workspace
Token.objects.get(workspace__slug="acme", key="PEM").delete_token()
Token.objects.get(workspace__slug="globex", key="DB_URL").set_value("changed after the backup")
Workspace.objects.get(slug="globex").tokens.get(key="QUOTES").revoke()
"""


def tricky_values() -> dict[str, str]:
    return {
        "DB_URL": f"postgres://app:p@ss$word-{secrets.token_hex(6)}@db:5432/app",
        "PEM": f"-----BEGIN KEY-----\r\n{secrets.token_hex(30)}\n-----END KEY-----\n",
        "QUOTES": f'it\'s "quoted" $(x) \\ {secrets.token_hex(6)} ключ',
    }


TEMPLATE = "".join(f"{key}=$Secret{{{key}}}\n" for key in tricky_values())


def expected(slug: str, values: dict[str, str]) -> bytes:
    """The resolved template, byte for byte (the PEM keeps its CRLF)."""
    return "".join(f"{key}={slug}:{value}\n" for key, value in values.items()).encode()


class Operator:
    """Runs commands as the docs say, in a shell-less list form, with Coffer's settings."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env, self.cwd = env, cwd

    def run(self, *command: str, ok: bool = True, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("text", True)
        result = subprocess.run(
            list(command),
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            timeout=180,
            **kwargs,
        )
        if ok:
            assert result.returncode == 0, f"{command}: {result.stdout}\n{result.stderr}"
        return result

    def manage(self, *args: str, ok: bool = True, **kwargs) -> subprocess.CompletedProcess:
        return self.run(PYTHON, str(ROOT / "manage.py"), *args, ok=ok, **kwargs)

    def seed(self, script: str, *args: str) -> None:
        self.run(
            PYTHON, "-c", "import django; django.setup(); exec(open(0).read())", *args, input=script
        )

    def resolve(self, slug: str) -> subprocess.CompletedProcess:
        return self.manage(
            "resolve",
            "-",
            "--workspace",
            slug,
            "--environment",
            "production",
            ok=False,
            input=TEMPLATE.encode(),
            text=False,
        )


@contextlib.contextmanager
def gunicorn(operator: Operator):
    """`systemctl start coffer-web` in miniature: the production gunicorn.conf.py, 2 workers."""
    port = free_port()
    env = {**operator.env, "COFFER_BIND": f"127.0.0.1:{port}", "COFFER_WEB_WORKERS": "2"}
    process = subprocess.Popen(
        [str(Path(PYTHON).with_name("gunicorn")), "config.wsgi"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            assert process.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def healthz(url: str) -> int:
    with urllib.request.urlopen(url + "/healthz", timeout=10) as response:
        return response.status


def production_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    key = "prod1:" + base64.b64encode(secrets.token_bytes(32)).decode()
    return server_environment(data_dir, COFFER_MASTER_KEYS=key, **overrides)


@pytest.mark.skipif(ON_POSTGRES, reason="the SQLite restore; PostgreSQL's is tested below")
def test_sqlite_restore_stop_replace_start_gives_back_every_value(tmp_path):
    data_dir, backups = tmp_path / "data", tmp_path / "backups"
    data_dir.mkdir(mode=0o700)
    backups.mkdir()
    (data_dir / "staticfiles").mkdir()
    operator = Operator(production_env(data_dir), cwd=ROOT)
    values = tricky_values()
    operator.manage("migrate", "--no-input", "-v0")
    operator.seed(SEED, json.dumps(values))
    backup = backups / "coffer.backup"

    with gunicorn(operator) as url:  # the backup is taken while Coffer serves
        assert healthz(url) == 200
        operator.manage("backup", "--output", str(backup))
        operator.seed(DAMAGE)
    assert operator.resolve("acme").returncode == 1  # PEM is gone

    # The documented steps, run in the data directory. 1. Coffer is stopped (above).
    restore = Operator(operator.env, cwd=data_dir)
    restore.manage("verify_backup", str(backup))
    restore.run("sh", "-c", "mkdir before-restore && mv coffer.sqlite3* before-restore/")
    assert (data_dir / "before-restore" / "coffer.sqlite3").exists()
    restore.run("tar", "-xf", str(backup), "database.sqlite3")
    restore.run("mv", "database.sqlite3", "coffer.sqlite3")
    restore.run("chmod", "600", "coffer.sqlite3")
    restore.manage("migrate", "--no-input")
    checked = restore.manage("verify_backup", "--live")
    assert "Token values: 6 checked, 6 decrypt and authenticate." in checked.stdout

    with gunicorn(operator) as url:
        assert healthz(url) == 200
        for slug in ("acme", "globex"):
            result = operator.resolve(slug)
            assert result.returncode == 0, result.stderr
            assert result.stdout == expected(slug, values)


def _admin(database: str):
    return psycopg.connect(**psycopg_arguments(connection.settings_dict, database), autocommit=True)


@pytest.mark.skipif(not ON_POSTGRES, reason="needs PostgreSQL (CI's DATABASE_URL pass)")
def test_postgresql_restore_into_an_empty_database_gives_back_every_value(tmp_path):
    settings = connection.settings_dict
    source, target = f"{settings['NAME']}_restore_src", f"{settings['NAME']}_restore_dst"
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    url = f"postgres://{settings['USER']}{password}@{settings['HOST']}:{settings['PORT']}/"
    with _admin(settings["NAME"]) as admin:
        for name in (source, target):
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{source}"')
    data_dir = tmp_path / "data"
    (data_dir / "staticfiles").mkdir(parents=True)
    env = production_env(data_dir, DATABASE_URL=url + source)
    try:
        operator = Operator(env, cwd=ROOT)
        values = tricky_values()
        operator.manage("migrate", "--no-input", "-v0")
        operator.seed(SEED, json.dumps(values))
        backup = tmp_path / "coffer.backup"
        with gunicorn(operator) as served:
            assert healthz(served) == 200
            operator.manage("backup", "--output", str(backup))
        operator.seed(DAMAGE)

        # The documented steps: check the backup, then restore it into a new, empty database.
        restore = Operator(
            {
                **env,
                "PGHOST": settings["HOST"],
                "PGUSER": settings["USER"],
                "PGPORT": str(settings["PORT"]),
            },
            cwd=tmp_path,
        )
        restore.manage("verify_backup", str(backup))
        restore.run("tar", "-xf", str(backup), "database.pgdump")
        restore.run("createdb", target)
        restore.run(
            "pg_restore",
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            f"--dbname={target}",
            "database.pgdump",
        )
        restored = Operator({**env, "DATABASE_URL": url + target}, cwd=ROOT)
        restored.manage("migrate", "--no-input")
        checked = restored.manage("verify_backup", "--live")
        assert "Token values: 6 checked, 6 decrypt and authenticate." in checked.stdout
        with gunicorn(restored) as served:
            assert healthz(served) == 200
            for slug in ("acme", "globex"):
                result = restored.resolve(slug)
                assert result.returncode == 0, result.stderr
                assert result.stdout == expected(slug, values)
    finally:
        with _admin(settings["NAME"]) as admin:
            for name in (source, target):
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(data_dir, ignore_errors=True)


def test_the_operations_page_gives_these_steps():
    page = (ROOT / "docs" / "operations.md").read_text()
    section = page.split("## Backups and restore", 1)[1].split("\n## ", 1)[0]
    for step in (
        "python manage.py backup --output",
        "python manage.py verify_backup",
        "mv coffer.sqlite3* before-restore/",
        "tar -xf /var/backups/coffer/coffer.backup database.sqlite3",
        "mv database.sqlite3 coffer.sqlite3",
        "pg_restore --no-owner --no-privileges --exit-on-error --dbname=coffer_restored",
        "python manage.py verify_backup --live",
    ):
        assert step in section, step

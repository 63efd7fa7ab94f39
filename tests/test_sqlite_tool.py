"""Operators can check and query the SQLite database with Debian's stock `sqlite3` tool.

The token-key CHECK constraint once used REGEXP, a function only Django's own connections
define: `sqlite3 coffer.sqlite3 "pragma integrity_check"` then failed with "unknown function:
REGEXP()". `make test` installs the tool (scripts/ensure-sqlite3.sh), so this never skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

MAKE_DATABASE = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("seed_demo", password="demo-password-for-tests")
"""


def sqlite3_tool() -> str:
    tool = shutil.which("sqlite3")
    if tool is None:
        pytest.fail("the sqlite3 command-line tool is missing: run `make test` (or install it)")
    return tool


@pytest.fixture(scope="module")
def database_file(tmp_path_factory) -> Path:
    """A real database file, migrated, holding the demo workspace and its tokens."""
    data_dir = tmp_path_factory.mktemp("sqlite-tool") / "data"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "COFFER_DATA_DIR"}}
    env.update(
        COFFER_DATA_DIR=str(data_dir), COFFER_DEBUG="1", DJANGO_SETTINGS_MODULE="config.settings"
    )
    subprocess.run(
        [sys.executable, "-c", MAKE_DATABASE], cwd=ROOT, env=env, check=True, timeout=120
    )
    return data_dir / "coffer.sqlite3"


def run_tool(path: Path, sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sqlite3_tool(), str(path), sql], capture_output=True, text=True, timeout=60
    )


def test_stock_sqlite3_tool_integrity_check_says_ok(database_file):
    tokens = run_tool(database_file, "select count(*) from tokens_token")
    assert tokens.returncode == 0, tokens.stderr
    assert int(tokens.stdout) >= 4, "the file holds the demo tokens"

    result = run_tool(database_file, "pragma integrity_check")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("key", ["1BAD", "BAD KEY", "BAD-KEY", "CAFÉ", "K" * 129, ""])
def test_stock_sqlite3_tool_still_enforces_the_token_key_rule(database_file, key):
    quoted = key.replace("'", "''")
    result = run_tool(database_file, f"update tokens_token set key = '{quoted}'")

    assert result.returncode != 0
    assert "CHECK constraint failed: token_key_grammar_and_length" in result.stderr


def test_stock_sqlite3_tool_accepts_a_good_key(database_file):
    good = "A" + "b_9" * 42 + "Z"  # 128 characters
    result = run_tool(
        database_file,
        f"begin; update tokens_token set key = '{good}' where rowid = "
        "(select min(rowid) from tokens_token); rollback;",
    )
    assert result.returncode == 0, result.stderr

"""`coffer render` and `coffer check` against a real gunicorn: the server's resolve, its
problems printed as TEMPLATE:LINE:COL: KEY: REASON, and -o written whole with mode 0600."""

from __future__ import annotations

import os
import stat

import pytest
from coffer_helpers import coffer, coffer_env
from tests.api_server import running_server

pytestmark = pytest.mark.slow

GOOD = "DB=$Secret{DB_URL}\nSTRIPE=$Secret{STRIPE_KEY}\n"
BAD = "DB=$Secret{DB_URL}\nX = $Secret{NOPE}\n  $Secret{bad-key}\n"


@pytest.fixture(scope="module")
def server():
    with running_server(COFFER_API_RATE_LIMIT="1000") as running:
        yield running


@pytest.fixture
def env(server, cache):
    return coffer_env(server.url, server.keys["main"], cache)


@pytest.fixture
def templates(tmp_path):
    (tmp_path / "good.tmpl").write_text(GOOD)
    (tmp_path / "bad.tmpl").write_text(BAD)
    return tmp_path


def test_render_writes_the_resolved_template(server, env, templates):
    result = coffer("render", "good.tmpl", env=env, cwd=templates)
    assert result.returncode == 0, result.stderr
    values = server.values
    assert result.stdout == f"DB={values['DB_URL']}\nSTRIPE={values['STRIPE_KEY']}\n".encode()


def test_render_output_is_0600_and_whole(server, env, templates):
    target = templates / "app.env"
    result = coffer("render", "good.tmpl", "-o", "app.env", env=env, cwd=templates)
    assert result.returncode == 0 and result.stdout == b""
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert target.read_text().startswith(f"DB={server.values['DB_URL']}\n")
    assert sorted(p.name for p in templates.iterdir()) == ["app.env", "bad.tmpl", "good.tmpl"]


def test_render_prints_each_problem_and_writes_nothing(server, env, templates):
    (templates / "app.env").write_text("old\n")
    result = coffer("render", "bad.tmpl", "-o", "app.env", env=env, cwd=templates)
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.decode().splitlines() == [
        "bad.tmpl:2:5: NOPE: unknown token, or not available in this context",
        "bad.tmpl:3:3: $Secret{bad-key}: malformed reference",
        "coffer: 2 references cannot be resolved; nothing was written",
    ]
    assert (templates / "app.env").read_text() == "old\n"
    assert sorted(p.name for p in templates.iterdir()) == ["app.env", "bad.tmpl", "good.tmpl"]
    assert server.values["DB_URL"].encode() not in result.stderr


def test_check_passes_and_fails_readably(env, templates):
    passed = coffer("check", "good.tmpl", env=env, cwd=templates)
    assert (passed.returncode, passed.stdout) == (0, b"")
    assert passed.stderr == b"2 distinct references: all resolve.\n"
    failed = coffer("check", "bad.tmpl", env=env, cwd=templates)
    assert failed.returncode == 1
    assert failed.stderr.decode().splitlines() == [
        "bad.tmpl:2:5: NOPE: unknown token, or not available in this context",
        "bad.tmpl:3:3: $Secret{bad-key}: malformed reference",
        "coffer: 3 distinct references: 2 cannot be resolved",
    ]


def test_a_refused_key_is_one_readable_line(server, templates, cache):
    env = coffer_env(server.url, server.keys["revoked"], cache)
    result = coffer("render", "good.tmpl", env=env, cwd=templates)
    assert result.returncode == 1
    line = result.stderr.decode()
    assert line.startswith("coffer: access key cfr_") and "refused (HTTP 401)" in line
    assert line.count("\n") == 1 and "{" not in line
    assert server.keys["revoked"] not in line


def test_render_reads_stdin(server, env, templates):
    result = coffer("render", "-", env=env, input=b"$Secret{NOPE}", cwd=templates)
    assert result.returncode == 1
    assert result.stderr.decode().startswith(
        "<stdin>:1:1: NOPE: unknown token, or not available in this context\n"
    )

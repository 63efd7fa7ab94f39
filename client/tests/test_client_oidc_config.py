"""Which sign-in `coffer` uses: an access key, or COFFER_IDENTITY with the CI job's OIDC token
from GitHub Actions, COFFER_OIDC_TOKEN or COFFER_OIDC_TOKEN_FILE; and the usage errors."""

from __future__ import annotations

import socket

import pytest
from coffer_helpers import coffer, coffer_env

from coffer_cli import cli

URL = "https://coffer.example.com"
GITHUB_URL = "https://pipelines.actions.example/abc/idtoken?api-version=2.0"


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    for name in (
        "COFFER_ACCESS_KEY",
        "COFFER_ACCESS_KEY_FILE",
        "COFFER_IDENTITY",
        "COFFER_OIDC_TOKEN",
        "COFFER_OIDC_TOKEN_FILE",
        "COFFER_AUDIENCE",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)


def usage_error(function, *args) -> str:
    with pytest.raises(cli.Failure) as failure:
        function(*args)
    assert failure.value.status == cli.USAGE
    return str(failure.value)


def test_an_access_key_means_no_identity(monkeypatch):
    monkeypatch.setenv("COFFER_ACCESS_KEY", "cfr_abcdef")
    assert cli.identity_reference() is None


def test_an_identity_and_a_key_is_a_usage_error(monkeypatch):
    monkeypatch.setenv("COFFER_IDENTITY", "acme/gh-deploy")
    for name in ("COFFER_ACCESS_KEY", "COFFER_ACCESS_KEY_FILE"):
        monkeypatch.setenv(name, "x")
        assert "or COFFER_IDENTITY, not both" in usage_error(cli.identity_reference)
        monkeypatch.delenv(name)
    assert cli.identity_reference() == "acme/gh-deploy"


@pytest.mark.parametrize("reference", ["gh-deploy", "acme/", "/gh-deploy", "acme/a/b", "a/\x1b"])
def test_an_identity_must_be_workspace_slash_name(monkeypatch, reference):
    monkeypatch.setenv("COFFER_IDENTITY", reference)
    assert "is not <workspace>/<identity name>" in usage_error(cli.identity_reference)


def test_github_actions_is_asked_for_the_coffer_url_as_audience(monkeypatch):
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", GITHUB_URL)
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token")
    source = cli.token_source(URL)
    assert source == (
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        GITHUB_URL + "&audience=https%3A%2F%2Fcoffer.example.com",
        "request-token",
    )
    monkeypatch.setenv("COFFER_AUDIENCE", "coffer")
    assert cli.token_source(URL).value == GITHUB_URL + "&audience=coffer"


def test_an_explicit_token_wins_over_github_actions(monkeypatch):
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", GITHUB_URL)
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token")
    monkeypatch.setenv("COFFER_OIDC_TOKEN", "a.b.c")
    assert cli.token_source(URL) == ("COFFER_OIDC_TOKEN", "a.b.c", "")
    monkeypatch.delenv("COFFER_OIDC_TOKEN")
    monkeypatch.setenv("COFFER_OIDC_TOKEN_FILE", "/run/token")
    assert cli.token_source(URL) == ("COFFER_OIDC_TOKEN_FILE", "/run/token", "")
    monkeypatch.setenv("COFFER_OIDC_TOKEN", "a.b.c")
    assert "COFFER_OIDC_TOKEN or COFFER_OIDC_TOKEN_FILE, not both" in usage_error(
        cli.token_source, URL
    )


def test_no_token_source_says_how_to_get_one(monkeypatch):
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", GITHUB_URL)  # no request token: no id-token
    message = usage_error(cli.token_source, URL)
    assert "permissions: id-token: write" in message and "id_tokens: COFFER_OIDC_TOKEN" in message


# --- through the command -----------------------------------------------------------------------


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_usage_errors_through_the_command(cache, tmp_path):
    env = coffer_env(closed_port_url(), None, cache, COFFER_IDENTITY="acme/gh-deploy")
    none = coffer("run", "--", "touch", "ran", env=env, cwd=tmp_path)
    assert none.returncode == 2 and b"there is no OIDC token" in none.stderr
    env["COFFER_ACCESS_KEY"] = "cfr_abcdefghijklmnop"
    both = coffer("render", "-", env=env, input=b"")
    assert both.returncode == 2 and b"or COFFER_IDENTITY, not both" in both.stderr
    assert b"cfr_abcdefghijklmnop" not in both.stderr
    del env["COFFER_ACCESS_KEY"], env["COFFER_IDENTITY"]
    nothing = coffer("run", "--", "true", env=env)
    assert nothing.returncode == 2 and b"or COFFER_IDENTITY to sign in" in nothing.stderr
    env.update(COFFER_IDENTITY="acme/gh-deploy", COFFER_OIDC_TOKEN_FILE=str(tmp_path / "none"))
    unreadable = coffer("run", "--", "true", env=env)
    assert unreadable.returncode == 2 and b"cannot read COFFER_OIDC_TOKEN_FILE" in (
        unreadable.stderr
    )
    assert not (tmp_path / "ran").exists()


def test_an_unreachable_server_says_once_there_is_no_fallback(cache, tmp_path):
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    env = coffer_env(
        closed_port_url(), None, cache, COFFER_IDENTITY="acme/gh-deploy", COFFER_OIDC_TOKEN=token
    )
    result = coffer("run", "--tries", "1", "--", "touch", "ran", env=env, cwd=tmp_path)
    assert result.returncode == 125
    assert result.stderr.count(b"no fallback") == 1
    assert b"connection refused" in result.stderr and token.encode() not in result.stderr
    assert not (tmp_path / "ran").exists()


def test_a_refused_credential_is_named_by_its_identity_and_touches_no_fallback(cache, monkeypatch):
    monkeypatch.setenv("COFFER_CACHE_DIR", str(cache))
    error = cli.Refused(401, "Invalid or expired access key")
    failure = cli.refused(error, cli.SignIn("cfw_secretcredential", "acme/gh-deploy"), URL, None)
    assert str(failure) == (
        "the credential of workload identity acme/gh-deploy was refused (HTTP 401): "
        "Invalid or expired access key"
    )
    assert not cache.exists()

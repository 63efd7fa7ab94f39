"""`coffer` signing in with the CI job's OIDC token, end to end: a real gunicorn, the test OIDC
issuer, and a fake GitHub Actions token endpoint. The bound environment's values and nothing
else; a refused token runs nothing; neither token nor credential is ever shown or inherited."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from pathlib import Path

import pytest
from coffer_helpers import coffer, coffer_env
from tests.api_server import PYTHON, ROOT, running_server
from tests.oidc_issuer import Issuer

pytestmark = pytest.mark.slow

IDENTITY = "acme/gh-deploy"
REQUEST_TOKEN = "ghs_request-token-of-the-runner"
SANDBOX_VALUE = "sandbox-only-value"
DUMP_ENV = "import json, os; print(json.dumps(dict(os.environ)))"

SEED_IDENTITY = r"""
import sys
from tests.factories import make_workload_identity
from tokens.models import Token
from workspaces.models import App, Product, Workspace

issuer, audience, sandbox_value = sys.argv[1:4]
workspace = Workspace.objects.get(slug="acme")
Token.objects.create_token(
    workspace=workspace, key="SANDBOX_ONLY", value=sandbox_value,
    environments=[workspace.environments.get(slug="sandbox")],
)
make_workload_identity(
    workspace, issuer=issuer, audience=audience,
    product=Product.objects.get(slug="payments"), app=App.objects.get(slug="checkout"),
)
"""


class GitHubTokenEndpoint:
    """GitHub Actions' ACTIONS_ID_TOKEN_REQUEST_URL: checks the runner's bearer, answers
    `{"value": <a token from the issuer for the asked audience>}` with `claims` over it."""

    def __init__(self, issuer: Issuer) -> None:
        self.claims: dict = {}
        self.audiences: list[str] = []
        self.issued: list[str] = []
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                if self.headers.get("Authorization") != f"Bearer {REQUEST_TOKEN}":
                    self.send_error(401)
                    return
                if query.get("api-version") != ["2.0"] or len(query.get("audience", [])) != 1:
                    self.send_error(400)
                    return
                audience = query["audience"][0]
                endpoint.audiences.append(audience)
                token = issuer.token(aud=audience, **endpoint.claims)
                endpoint.issued.append(token)
                body = json.dumps({"count": 1, "value": token}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/token?api-version=2.0"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def issuer():
    with tempfile.TemporaryDirectory() as folder, Issuer(Path(folder)) as running:
        yield running


@pytest.fixture(scope="module")
def server(issuer):
    with running_server(
        COFFER_API_RATE_LIMIT="1000",
        COFFER_WEBHOOK_ALLOW_PRIVATE="true",
        COFFER_WEBHOOK_CA_FILE=str(issuer.certificate),
    ) as running:
        subprocess.run(
            [
                PYTHON,
                "-c",
                "import django; django.setup(); exec(open(0).read())",
                issuer.url,
                running.url,
                SANDBOX_VALUE,
            ],
            input=SEED_IDENTITY,
            cwd=ROOT,
            env=running.env,
            check=True,
            capture_output=True,
            text=True,
        )
        yield running


@pytest.fixture
def github(issuer):
    endpoint = GitHubTokenEndpoint(issuer)
    yield endpoint
    endpoint.close()


@pytest.fixture
def env(server, github, cache):
    """A GitHub Actions job: no access key, the runner's token request variables."""
    return coffer_env(
        server.url,
        None,
        cache,
        COFFER_IDENTITY=IDENTITY,
        ACTIONS_ID_TOKEN_REQUEST_URL=github.url,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN=REQUEST_TOKEN,
    )


def secrets_of_the_sign_in(github) -> list[bytes]:
    """The OIDC tokens issued, and the marker every credential starts with."""
    return [token.encode() for token in github.issued] + [b"cfw_"]


def test_a_github_job_gets_exactly_its_bound_environments_values(server, github, env, cache):
    result = coffer("run", "--", sys.executable, "-c", DUMP_ENV, env=env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert {key: seen.get(key) for key in server.values} == server.values
    assert "SANDBOX_ONLY" not in seen, "another environment's token"
    assert SANDBOX_VALUE not in result.stdout.decode()
    assert github.audiences == [server.url], "the audience defaults to COFFER_URL"
    assert result.stderr == b""
    child = result.stdout.replace(REQUEST_TOKEN.encode(), b"")  # the runner's own, left as is
    for secret in secrets_of_the_sign_in(github):
        assert secret not in child + result.stderr
    assert not cache.exists() or not any(cache.iterdir()), "no fallback for an OIDC sign-in"


def test_the_audience_can_be_set(server, github, env):
    env["COFFER_AUDIENCE"] = "https://coffer.example"
    result = coffer("run", "--", "true", env=env)
    assert github.audiences == ["https://coffer.example"]
    assert result.returncode == 125
    assert b"workload identity acme/gh-deploy refused (HTTP 401): Refused (audience)" in (
        result.stderr
    )


def test_render_works_with_the_identity(server, env, tmp_path):
    template = tmp_path / "app.env.tmpl"
    template.write_text("DB_URL=$Secret{DB_URL}\n")
    result = coffer("render", str(template), env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"DB_URL={server.values['DB_URL']}\n".encode()
    template.write_text("X=$Secret{SANDBOX_ONLY}\n")
    other = coffer("render", str(template), env=env)
    assert other.returncode == 1 and SANDBOX_VALUE.encode() not in other.stdout + other.stderr


def test_a_token_of_another_repository_is_refused_and_nothing_runs(github, env, tmp_path):
    github.claims = {"repository": "mallory/app", "sub": "repo:mallory/app:ref:refs/heads/main"}
    result = coffer("run", "--", "touch", "ran", env=env, cwd=tmp_path)
    assert result.returncode == 125
    assert not (tmp_path / "ran").exists()
    assert result.stderr.startswith(
        b"coffer: workload identity acme/gh-deploy refused (HTTP 401): Refused (claims): "
    )
    assert b"repository" in result.stderr
    for secret in secrets_of_the_sign_in(github):
        assert secret not in result.stdout + result.stderr
    checked = coffer("check", "-", env=env, input=b"$Secret{DB_URL}")
    assert checked.returncode == 1 and b"Refused (claims)" in checked.stderr


def test_a_token_from_coffer_oidc_token_works_and_is_not_inherited(server, issuer, cache):
    token = issuer.token(aud=server.url)
    env = coffer_env(server.url, None, cache, COFFER_IDENTITY=IDENTITY, COFFER_OIDC_TOKEN=token)
    result = coffer("run", "--", sys.executable, "-c", DUMP_ENV, env=env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["DB_URL"] == server.values["DB_URL"] and "SANDBOX_ONLY" not in seen
    assert "COFFER_OIDC_TOKEN" not in seen
    assert token.encode() not in result.stdout + result.stderr
    assert b"cfw_" not in result.stdout + result.stderr


def test_a_token_from_coffer_oidc_token_file_works(server, issuer, cache, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(issuer.token(aud=server.url) + "\n")
    env = coffer_env(
        server.url, None, cache, COFFER_IDENTITY=IDENTITY, COFFER_OIDC_TOKEN_FILE=str(token_file)
    )
    result = coffer("render", "-", env=env, input=b"$Secret{STRIPE_KEY}")
    assert result.returncode == 0, result.stderr
    assert result.stdout == server.values["STRIPE_KEY"].encode()


def test_a_wrong_request_token_is_reported_without_the_token(github, env):
    env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = "ghs_not-the-runners"
    result = coffer("run", "--", "true", env=env)
    assert result.returncode == 125
    assert (
        b"GitHub Actions' OIDC token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL) refused "
        b"(HTTP 401)" in result.stderr
    )
    assert b"ghs_" not in result.stderr

"""A real Coffer server for the API tests: gunicorn with 2 workers on 127.0.0.1, driven by curl.

`running_server(**env)` makes a temporary data directory with a migrated SQLite database and a
random master key, seeds a workspace (tokens with tricky values, access keys), starts gunicorn
on a free port and yields a `Server`; it stops gunicorn and removes the directory afterwards.
The access log records each request's worker pid, so a test can see both workers served.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CURL = shutil.which("curl") or "/usr/bin/curl"

SEED = r"""
import json, sys
from access.models import AccessKey
from tokens.models import Token
from workspaces.models import App, Product, Workspace

values = json.loads(sys.argv[1])
workspace = Workspace.objects.create(name="Acme", slug="acme")
payments = Product.objects.create(workspace=workspace, name="Payments", slug="payments")
checkout = App.objects.create(workspace=workspace, name="Checkout", slug="checkout")
production = workspace.environments.get(slug="production")
for key, value in values.items():
    Token.objects.create_token(
        workspace=workspace, key=key, value=value, environments=[production],
        products=[payments] if key == "STRIPE_KEY" else [],
    )
keys = {}
def make(name, **options):
    row, key = AccessKey.objects.create_key(
        workspace=workspace, name=name, environment=production, product=payments, app=checkout,
        **options,
    )
    keys[name] = key
    return row
make("main")
make("pinned", allowed_networks=["203.0.113.0/24", "2001:db8::/32"])
for n in range(4):
    make(f"spare{n}")
make("revoked").revoke()
print(json.dumps(keys))
"""

TRICKY_VALUES = {
    "DB_URL": "postgres://app:p@ss$word@db:5432/app?sslmode=require",
    "STRIPE_KEY": "sk_live_" + secrets.token_hex(12),
    "MULTILINE": "-----BEGIN KEY-----\nline 'two' \"three\" $HOME `x` \\n\n-----END KEY-----\n",
    "QUOTES": "it's a \"quoted\" 'value' with $(command) and \\backslashes\\",
}


@dataclass
class Server:
    url: str
    keys: dict[str, str]
    values: dict[str, str]
    data_dir: Path
    access_log: Path
    process: subprocess.Popen
    env: dict[str, str]

    def curl(self, path: str, *args: str, key: str | None = None) -> tuple[int, dict, bytes]:
        """(status, headers, body) of one request made by the curl binary."""
        command = [CURL, "-sS", "-i", "--max-time", "30"]
        if key is not None:
            command += ["-H", f"Authorization: Bearer {key}"]
        result = subprocess.run(
            [*command, *args, self.url + path], capture_output=True, check=True, timeout=60
        )
        return parse_response(result.stdout)

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True
        )

    def django(self, code: str) -> str:
        """Run `code` with Django set up against the server's database (an editor's change,
        as the UI would make it: the model methods, their audit events); what it printed."""
        return subprocess.run(
            [PYTHON, "-c", "import django; django.setup(); exec(open(0).read())"],
            input=code,
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def log_lines(self) -> list[str]:
        return self.access_log.read_text().splitlines()

    def worker_pids(self, since: int) -> set[str]:
        """The worker pids that answered the requests in the access log's lines after `since`."""
        return {line.split(" ", 1)[0] for line in self.log_lines()[since:]}


def parse_response(raw: bytes) -> tuple[int, dict, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 100"):  # "100 Continue" before the real answer
        head, _, body = body.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_environment(data_dir: Path, **overrides: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COFFER_", "DJANGO_", "DATABASE_URL"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        COFFER_SECRET_KEY=secrets.token_urlsafe(50),
        COFFER_MASTER_KEYS="srv1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        COFFER_ALLOWED_HOSTS="127.0.0.1,localhost",
        COFFER_HTTPS="false",
        COFFER_MANIFEST_STATIC="false",
        COFFER_DATA_DIR=str(data_dir),
        COFFER_LOG_LEVEL="WARNING",
        COFFER_RATELIMIT_REDIS_PREFIX=os.environ["COFFER_RATELIMIT_REDIS_PREFIX"],
    )
    env.update(overrides)
    return env


@contextlib.contextmanager
def running_server(
    *, asgi: bool = False, static: bool = False, **overrides: str
) -> Iterator[Server]:
    """`asgi=True`: uvicorn workers serving config.asgi (COFFER_WEB_SERVER=asgi), as the
    change feed's long poll needs; else sync workers serving config.wsgi. `static=True`:
    collectstatic first, so the pages have their styles and scripts (a browser test's)."""
    data_dir = Path(tempfile.mkdtemp(prefix="coffer-api-server-"))
    (data_dir / "staticfiles").mkdir()
    env = server_environment(data_dir, **overrides)
    process = None
    try:
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True
        )
        if static:
            subprocess.run(
                [PYTHON, "manage.py", "collectstatic", "--no-input", "-v0"],
                cwd=ROOT,
                env=env,
                check=True,
            )
        seeded = subprocess.run(
            [
                PYTHON,
                "-c",
                "import django; django.setup(); exec(open(0).read())",
                json.dumps(TRICKY_VALUES),
            ],
            input=SEED,
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        keys = json.loads(seeded.stdout.strip().splitlines()[-1])
        port = free_port()
        access_log = data_dir / "access.log"
        # Sync workers with one thread (more would switch gunicorn to gthread, as
        # gunicorn.conf.py asks) take one request at a time: a busy worker leaves the next
        # requests to the other.
        app, worker = ("config.wsgi", "sync")
        if asgi:
            app, worker = ("config.asgi", "config.asgi_worker.CofferUvicornWorker")
        process = subprocess.Popen(
            [
                str(Path(PYTHON).with_name("gunicorn")),
                app,
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--graceful-timeout",
                "5",
                "--worker-class",
                worker,
                "--threads",
                "1",
                "--access-logfile",
                str(access_log),
                "--access-logformat",
                "%(p)s %(s)s %(U)s",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.1)
        yield Server(url, keys, dict(TRICKY_VALUES), data_dir, access_log, process, env)
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(data_dir, ignore_errors=True)

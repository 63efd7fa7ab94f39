"""Load benchmark: Coffer under gunicorn on PostgreSQL, driven by concurrent signed-in clients.

    .venv/bin/python bench/load.py [--clients 8] [--seconds 20] [--tokens 300]

What it does:
1. creates its own PostgreSQL database (`coffer_load` by default; DATABASE_URL's server, or
   127.0.0.1:5432), migrates it and seeds one workspace with editors, products, apps and a few
   hundred tokens, under a fresh random master key;
2. starts gunicorn with the production gunicorn.conf.py on 127.0.0.1 on a free port
   (production settings, plain HTTP, access log written to /dev/null);
3. signs N clients in (each its own user, session cookie and CSRF token) and lets them loop for
   a fixed time over the Tokens page, a search, Create Token and Revoke (of a token the client
   created), each a real HTTP request with keep-alive, as htmx sends them;
4. reports requests per second, p50 and p99 latency per action and overall, errors (any
   unexpected status or failed request counts; the target is 0) and the server's CPU time per
   request (a figure other processes on the machine do not distort), then stops gunicorn and
   drops the database.

Nothing here is a test: the figures go in the README.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlencode, urlparse

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PASSWORD = "load-test-password-" + secrets.token_hex(4)

SEED = r"""
import json, sys
from django.contrib.auth import get_user_model
from tokens.models import Token
from workspaces.models import App, Membership, Product, Role, Workspace

clients, tokens, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
User = get_user_model()
owner = User.objects.create_user("load-owner", password=password)
workspace = Workspace.create_with_owner(name="Acme", slug="acme", owner=owner)
for n in range(clients):
    user = User.objects.create_user(f"load{n}", password=password)
    Membership.objects.create(workspace=workspace, user=user, role=Role.EDITOR)
products = [Product.objects.create(workspace=workspace, name=f"Product {n}") for n in range(5)]
apps = [App.objects.create(workspace=workspace, name=f"App {n}") for n in range(5)]
environments = list(workspace.environments.all())
for n in range(tokens):
    Token.objects.create_token(
        workspace=workspace, key=f"SEEDED_TOKEN_{n:04d}", value=f"seeded-value-{n:04d}-" + "x" * 24,
        description=f"Seeded token number {n}", type="api_key",
        products=products[n % 5 : n % 5 + 1], apps=apps[n % 3 : n % 3 + 1],
        environments=environments[: 1 + n % 2],
    )
print(json.dumps({"environments": [env.pk for env in environments]}))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_url(database: str) -> tuple[str, str]:
    """(admin URL to create/drop databases, URL of the benchmark's own database)."""
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    parsed = urlparse(base)
    if parsed.scheme not in {"postgres", "postgresql"}:
        base = "postgres://postgres@127.0.0.1:5432/postgres"
        parsed = urlparse(base)
    return parsed._replace(path="/postgres").geturl(), parsed._replace(path=f"/{database}").geturl()


def recreate_database(admin_url: str, name: str, drop_only: bool = False) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def environment(database_url: str, data_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COFFER_", "DJANGO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=database_url,
        COFFER_SECRET_KEY=secrets.token_urlsafe(50),
        COFFER_MASTER_KEYS="load1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        COFFER_ALLOWED_HOSTS="127.0.0.1,localhost",
        COFFER_HTTPS="false",
        COFFER_MANIFEST_STATIC="false",
        COFFER_DATA_DIR=data_dir,
        COFFER_LOG_LEVEL="WARNING",
        COFFER_DB_CONN_MAX_AGE="60",
    )
    return env


# --- one client ------------------------------------------------------------------------------


class Client:
    """A signed-in browser session over one keep-alive HTTP connection."""

    def __init__(self, port: int, username: str) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.username = username

    def request(self, method: str, path: str, body: dict | None = None, htmx: bool = False):
        headers = {"Host": f"127.0.0.1:{self.port}"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if htmx:
            headers["HX-Request"] = "true"
        data = None
        if method == "POST":
            headers["X-CSRFToken"] = self.cookies.get("csrftoken", "")
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = urlencode(body or {}, doseq=True)
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed an idle keep-alive connection: reconnect and send again, as
                # browsers do. A second failure is a real error.
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt == 2:
                    raise
        content = response.read()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status, dict(response.getheaders()), content

    def sign_in(self) -> None:
        status, _, page = self.request("GET", "/accounts/login/")
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert status == 200 and token, "the sign-in page"
        fields = {"csrfmiddlewaretoken": token.group(1).decode()}
        fields |= {"username": self.username, "password": PASSWORD}
        status, headers, _ = self.request("POST", "/accounts/login/", fields)
        assert status == 302 and "sessionid" in self.cookies, f"sign-in failed: {status}"


# --- the run ---------------------------------------------------------------------------------


def drive(port: int, clients: int, seconds: float, environments: list[int]):
    timings: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    lock = threading.Lock()
    signed_in = []
    for n in range(clients):
        client = Client(port, f"load{n}")
        client.sign_in()
        signed_in.append(client)
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def loop(n: int, client: Client) -> None:
        rng = random.Random(n)
        created: list[str] = []
        counter = 0
        start.wait()
        while time.perf_counter() < deadline[0]:
            roll = rng.random()
            if roll < 0.40:
                action, method, path, body, expect = (
                    "tokens page",
                    "GET",
                    "/w/acme/tokens/",
                    None,
                    200,
                )
            elif roll < 0.65:
                q = f"SEEDED_TOKEN_{rng.randrange(300):04d}"[: rng.choice([14, 16, 17])]
                action, method, path, body, expect = (
                    "search", "GET", f"/w/acme/tokens/?q={q}&sort=-expiry", None, 200
                )  # fmt: skip
            elif roll < 0.85 or not created:
                counter += 1
                body = {
                    "key": f"LOAD_{n}_{counter}",
                    "value": secrets.token_urlsafe(24),
                    "description": "created by bench/load.py",
                    "type": "api_key",
                    "environments": environments,
                }
                action, method, path, expect = "create", "POST", "/w/acme/tokens/new/", 204
            else:
                pk = created.pop(rng.randrange(len(created)))
                action, method, path, body, expect = (
                    "revoke", "POST", f"/w/acme/tokens/{pk}/revoke/", {}, 204
                )  # fmt: skip
            began = time.perf_counter()
            try:
                status, headers, content = client.request(method, path, body, htmx=True)
            except Exception as error:  # noqa: BLE001 - every failure is counted and shown
                with lock:
                    errors.append(f"{action}: {type(error).__name__}: {error}")
                continue
            elapsed = time.perf_counter() - began
            with lock:
                timings[action].append(elapsed)
                if status != expect:
                    errors.append(f"{action} {path}: HTTP {status}: {content[:200]!r}")
            if action == "create" and status == 204:
                trigger = json.loads(headers.get("HX-Trigger", "{}"))
                created.append(trigger["tokensChanged"]["id"])

    threads = [threading.Thread(target=loop, args=(n, c)) for n, c in enumerate(signed_in)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    return timings, errors, time.perf_counter() - began


def server_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by gunicorn's master and workers (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(child) for child in children]
    except OSError:
        return float("nan")
    total = 0.0
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def percentile(values: list[float], p: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def report(timings, errors, wall: float, args) -> None:
    everything = [t for values in timings.values() for t in values]
    total = len(everything) + len(errors)
    print()
    print(
        f"Coffer under gunicorn ({args.workers} workers x {args.threads} threads) on PostgreSQL, "
        f"{args.clients} concurrent clients for {wall:.1f} s, {args.tokens} seeded tokens:"
    )
    print(f"{'action':<12} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for action in ("tokens page", "search", "create", "revoke"):
        values = timings.get(action, [])
        if values:
            print(
                f"{action:<12} {len(values):>9} {len(values) / wall:>8.1f} "
                f"{percentile(values, 50) * 1000:>8.1f} {percentile(values, 99) * 1000:>8.1f}"
            )
    print(
        f"{'all':<12} {total:>9} {total / wall:>8.1f} {percentile(everything, 50) * 1000:>8.1f} "
        f"{percentile(everything, 99) * 1000:>8.1f}"
    )
    print(f"errors: {len(errors)}")
    for error in errors[:10]:
        print("  ", error)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--database", default="coffer_load")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    admin_url, database_url = server_url(args.database)
    recreate_database(admin_url, args.database)
    data_dir = tempfile.mkdtemp(prefix="coffer-load-")
    (Path(data_dir) / "staticfiles").mkdir()
    env = environment(database_url, data_dir)
    server = None
    try:
        print(f"Migrating and seeding {args.database} ({args.tokens} tokens)...", flush=True)
        manage = [PYTHON, "manage.py"]
        subprocess.run([*manage, "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True)
        seeded = subprocess.run(
            [PYTHON, "-c", "import django; django.setup(); exec(open(0).read())",
             str(args.clients), str(args.tokens), PASSWORD],
            input=SEED, cwd=ROOT, env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        environments = json.loads(seeded.stdout.strip().splitlines()[-1])["environments"]

        port = free_port()
        gunicorn = str(Path(PYTHON).with_name("gunicorn"))
        # The production configuration (gunicorn.conf.py, read from ROOT), sized by its
        # environment variables; its access log (stdout) is written, then thrown away.
        server = subprocess.Popen(
            [gunicorn, "config.wsgi"],
            cwd=ROOT,
            env={
                **env,
                "COFFER_BIND": f"127.0.0.1:{port}",
                "COFFER_WEB_WORKERS": str(args.workers),
                "COFFER_WEB_THREADS": str(args.threads),
            },
            stdout=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        print(f"gunicorn on 127.0.0.1:{port}; signing in {args.clients} clients...", flush=True)
        cpu_before = server_cpu_seconds(server.pid)
        timings, errors, wall = drive(port, args.clients, args.seconds, environments)
        cpu = server_cpu_seconds(server.pid) - cpu_before
        report(timings, errors, wall, args)
        served = sum(len(values) for values in timings.values())
        if served and cpu == cpu:  # (nan when /proc is not there)
            print(
                f"server CPU: {cpu * 1000 / served:.1f} ms per request (gunicorn processes; "
                f"PostgreSQL and the clients not counted), machine load average "
                f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
            )
        return 1 if errors else 0
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        if not args.keep:
            recreate_database(admin_url, args.database, drop_only=True)


if __name__ == "__main__":
    sys.exit(main())

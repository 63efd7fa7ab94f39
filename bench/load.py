"""Load benchmark: Coffer under gunicorn on PostgreSQL, driven by concurrent signed-in clients.

    .venv/bin/python bench/load.py [--clients 8] [--seconds 20] [--tokens 300] [--servers 2]

What it does:
1. creates its own PostgreSQL database (`coffer_load` by default; DATABASE_URL's server, or
   127.0.0.1:5432), migrates it and seeds one workspace with editors, products, apps and a few
   hundred tokens, under a fresh random master key;
2. starts gunicorn with the production gunicorn.conf.py on 127.0.0.1 on a free port
   (production settings, plain HTTP, access log written to /dev/null);
3. signs N clients in (each its own user, session cookie and CSRF token) and lets them loop for
   a fixed time over the Tokens page, a search, Create Token and Revoke (of a token the client
   created), each a real HTTP request with keep-alive, as htmx sends them;
   With `--servers 2` (or more) it starts that many gunicorn processes on separate ports, as
   several machines behind a load balancer without sticky sessions: every request goes to a
   server drawn at random, the mix adds the resolve API (an access key per client) and
   /healthz, and each Revoke is followed at once by an API resolve of that token on another
   server, which must be refused. After the load it checks that the API rate limit and the
   sign-in throttling count requests to every server together;
4. reports requests per second, p50 and p99 latency per action and overall, errors (any
   unexpected status or failed request counts; the target is 0) and the server's CPU time per
   request (a figure other processes on the machine do not distort), then stops gunicorn and
   drops the database.

Nothing here is a test: the figures go in docs/benchmarks.md.
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
from access.models import AccessKey
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
for n in range(API_TOKENS):  # unscoped, for the resolve API's template
    Token.objects.create_token(
        workspace=workspace, key=f"API_TOKEN_{n:02d}", value=f"api-value-{n:02d}-" + "y" * 24,
        type="api_key", environments=environments[:1],
    )
keys = [  # one per client, and one for the rate-limit check
    AccessKey.objects.create_key(
        workspace=workspace, name=f"load-{n}", environment=environments[0]
    )[1]
    for n in range(clients + 1)
]
print(json.dumps({"environments": [env.pk for env in environments], "keys": keys}))
""".replace("API_TOKENS", "20")
API_TEMPLATE = "".join(f"T{n}=$Secret{{API_TOKEN_{n:02d}}}\n" for n in range(20)).encode()
RATE_LIMIT = 300  # per access key and minute, on every server together


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
        COFFER_LOG_LEVEL="ERROR",  # the refusals the run provokes on purpose are WARNINGs
        COFFER_DB_CONN_MAX_AGE="60",
    )
    return env


# --- one client ------------------------------------------------------------------------------


class Client:
    """A signed-in browser session over one keep-alive HTTP connection."""

    def __init__(self, ports: list[int], username: str, seed: int = 0) -> None:
        self.ports = ports
        self.cookies: dict[str, str] = {}
        self.conns = {port: self._connect(port) for port in ports}
        self.username = username
        self.rng = random.Random(seed)

    @staticmethod
    def _connect(port: int) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def pick(self) -> int:
        """The server a load balancer without sticky sessions would send the next request to."""
        return self.rng.choice(self.ports)

    def request(
        self,
        method: str,
        path: str,
        body: dict | bytes | None = None,
        htmx: bool = False,
        port: int | None = None,
        headers: dict[str, str] | None = None,
    ):
        port = port or self.pick()
        headers = {"Host": "127.0.0.1", **(headers or {})}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if htmx:
            headers["HX-Request"] = "true"
        data: str | bytes | None = body if isinstance(body, bytes) else None
        if method == "POST" and not isinstance(body, bytes):
            headers["X-CSRFToken"] = self.cookies.get("csrftoken", "")
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = urlencode(body or {}, doseq=True)
        for attempt in (1, 2):
            conn = self.conns[port]
            try:
                conn.request(method, path, body=data, headers=headers)
                response = conn.getresponse()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed an idle keep-alive connection: reconnect and send again, as
                # browsers do. A second failure is a real error.
                conn.close()
                self.conns[port] = self._connect(port)
                if attempt == 2:
                    raise
        content = response.read()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status, dict(response.getheaders()), content

    def try_sign_in(self, password: str = PASSWORD, port: int | None = None) -> int:
        """One sign-in attempt (the form from the same server, as a browser gets it)."""
        port = port or self.pick()
        status, _, page = self.request("GET", "/accounts/login/", port=port)
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert status == 200 and token, "the sign-in page"
        fields = {"csrfmiddlewaretoken": token.group(1).decode()}
        fields |= {"username": self.username, "password": password}
        return self.request("POST", "/accounts/login/", fields, port=port)[0]

    def sign_in(self) -> None:
        status = self.try_sign_in()
        assert status == 302 and "sessionid" in self.cookies, f"sign-in failed: {status}"

    def api(self, key: str, body: bytes, port: int | None = None):
        return self.request(
            "POST", "/api/v1/resolve", body, port=port, headers={"Authorization": f"Bearer {key}"}
        )


# --- the run ---------------------------------------------------------------------------------


ACTIONS = ("tokens page", "search", "create", "revoke", "revoked, other", "api", "healthz")
# (action, share): one server keeps the mix the single-server figures were measured with.
MIXES = {
    "one": [("tokens page", 0.40), ("search", 0.25), ("create", 0.20), ("revoke", 0.15)],
    "several": [
        ("tokens page", 0.30),
        ("search", 0.15),
        ("create", 0.15),
        ("revoke", 0.10),
        ("api", 0.20),
        ("healthz", 0.10),
    ],
}


def choose(rng: random.Random, mix: list[tuple[str, float]]) -> str:
    roll, total = rng.random(), 0.0
    for action, share in mix:
        total += share
        if roll < total:
            return action
    return mix[-1][0]


def drive(ports: list[int], clients: int, seconds: float, environments: list[int], keys: list[str]):
    timings: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    lock = threading.Lock()
    mix = MIXES["several" if len(ports) > 1 else "one"]
    signed_in = []
    for n in range(clients):
        client = Client(ports, f"load{n}", seed=n)
        client.sign_in()
        signed_in.append(client)
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def loop(n: int, client: Client) -> None:
        rng = random.Random(n)
        created: list[tuple[str, str]] = []  # (id, key) of the tokens this client made
        counter = 0
        start.wait()

        def timed(action: str, expect: int, *request, **options):
            began = time.perf_counter()
            try:
                status, headers, content = client.request(*request, **options)
            except Exception as error:  # noqa: BLE001 - every failure is counted and shown
                with lock:
                    errors.append(f"{action}: {type(error).__name__}: {error}")
                return None
            elapsed = time.perf_counter() - began
            with lock:
                timings[action].append(elapsed)
                if status != expect:
                    errors.append(f"{action} {request[1]}: HTTP {status}: {content[:200]!r}")
            return status, headers, content

        while time.perf_counter() < deadline[0]:
            action = choose(rng, mix)
            if action == "revoke" and not created:
                action = "create"
            if action == "tokens page":
                timed(action, 200, "GET", "/w/acme/tokens/")
            elif action == "search":
                q = f"SEEDED_TOKEN_{rng.randrange(300):04d}"[: rng.choice([14, 16, 17])]
                timed(action, 200, "GET", f"/w/acme/tokens/?q={q}&sort=-expiry")
            elif action == "create":
                counter += 1
                key = f"LOAD_{n}_{counter}"
                body = {
                    "key": key,
                    "value": secrets.token_urlsafe(24),
                    "description": "created by bench/load.py",
                    "type": "api_key",
                    "environments": environments,
                }
                answer = timed(action, 204, "POST", "/w/acme/tokens/new/", body, htmx=True)
                if answer and answer[0] == 204:
                    trigger = json.loads(answer[1].get("HX-Trigger", "{}"))
                    created.append((trigger["tokensChanged"]["id"], key))
            elif action == "revoke":
                pk, key = created.pop(rng.randrange(len(created)))
                port = client.pick()
                path = f"/w/acme/tokens/{pk}/revoke/"
                answer = timed(action, 204, "POST", path, {}, htmx=True, port=port)
                if answer and answer[0] == 204 and len(ports) > 1:
                    # At once, on another server: the token must no longer resolve there.
                    other = rng.choice([p for p in ports if p != port])
                    body = f"$Secret{{{key}}}".encode()
                    headers = {"Authorization": f"Bearer {keys[n]}"}
                    answer = timed(
                        "revoked, other",
                        422,
                        "POST",
                        "/api/v1/resolve",
                        body,
                        port=other,
                        headers=headers,
                    )
                    if answer and b"token revoked" not in answer[2]:
                        with lock:
                            errors.append(f"revoked {key} on {port}, {other} did not say so")
            elif action == "api":
                headers = {"Authorization": f"Bearer {keys[n]}"}
                timed(action, 200, "POST", "/api/v1/resolve", API_TEMPLATE, headers=headers)
            else:
                timed(action, 200, "GET", "/healthz")

    threads = [threading.Thread(target=loop, args=(n, c)) for n, c in enumerate(signed_in)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    return timings, errors, time.perf_counter() - began


def cluster_checks(ports: list[int], limit_key: str) -> list[str]:
    """What several servers must share through the database: the API rate limit and the sign-in
    throttling count requests to every server together. Returns what failed."""
    failures = []
    if time.time() % 60 > 30:  # the rate limit counts fixed one-minute windows
        time.sleep(61 - time.time() % 60)
    client = Client(ports, "load-owner")
    statuses = [
        client.api(limit_key, API_TEMPLATE, port=port)[0]
        for port in (ports * RATE_LIMIT)[: RATE_LIMIT + 2 * len(ports)]
    ]
    if statuses.count(200) != RATE_LIMIT or set(statuses[-len(ports) :]) != {429}:
        failures.append(
            f"rate limit: {statuses.count(200)} answered, {statuses.count(429)} refused "
            f"(expected {RATE_LIMIT} answered across {len(ports)} servers, then 429 on each)"
        )
    attempts = [client.try_sign_in("wrong-password", port=ports[n % len(ports)]) for n in range(5)]
    last = client.try_sign_in(PASSWORD, port=ports[-1])
    if attempts != [200, 200, 200, 200, 429] or last != 429:
        failures.append(f"sign-in throttling: {attempts} then the right password: {last}")
    return failures


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
    servers = f"{args.servers} gunicorn servers" if args.servers > 1 else "gunicorn"
    print()
    print(
        f"Coffer under {servers} ({args.workers} workers x {args.threads} threads each) on "
        f"PostgreSQL, {args.clients} concurrent clients for {wall:.1f} s, {args.tokens} seeded "
        f"tokens:"
    )
    print(f"{'action':<15} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for action in ACTIONS:
        values = timings.get(action, [])
        if values:
            print(
                f"{action:<15} {len(values):>9} {len(values) / wall:>8.1f} "
                f"{percentile(values, 50) * 1000:>8.1f} {percentile(values, 99) * 1000:>8.1f}"
            )
    print(
        f"{'all':<15} {total:>9} {total / wall:>8.1f} {percentile(everything, 50) * 1000:>8.1f} "
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
    parser.add_argument("--servers", type=int, default=1, help="gunicorn processes, one port each")
    parser.add_argument("--database", default="coffer_load")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    admin_url, database_url = server_url(args.database)
    recreate_database(admin_url, args.database)
    data_dir = tempfile.mkdtemp(prefix="coffer-load-")
    (Path(data_dir) / "staticfiles").mkdir()
    env = environment(database_url, data_dir)
    servers: list[subprocess.Popen] = []
    try:
        print(f"Migrating and seeding {args.database} ({args.tokens} tokens)...", flush=True)
        manage = [PYTHON, "manage.py"]
        subprocess.run([*manage, "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True)
        seeded = subprocess.run(
            [
                PYTHON,
                "-c",
                "import django; django.setup(); exec(open(0).read())",
                str(args.clients),
                str(args.tokens),
                PASSWORD,
            ],
            input=SEED,
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        seed = json.loads(seeded.stdout.strip().splitlines()[-1])
        environments, keys = seed["environments"], seed["keys"]

        ports = [free_port() for _ in range(args.servers)]
        gunicorn = str(Path(PYTHON).with_name("gunicorn"))
        # The production configuration (gunicorn.conf.py, read from ROOT), sized by its
        # environment variables; its access log (stdout) is written, then thrown away.
        for port in ports:
            servers.append(
                subprocess.Popen(
                    [gunicorn, "config.wsgi"],
                    cwd=ROOT,
                    env={
                        **env,
                        "COFFER_BIND": f"127.0.0.1:{port}",
                        "COFFER_WEB_WORKERS": str(args.workers),
                        "COFFER_WEB_THREADS": str(args.threads),
                        "COFFER_API_RATE_LIMIT": str(RATE_LIMIT),
                    },
                    stdout=subprocess.DEVNULL,
                )
            )
        for port in ports:
            for _ in range(200):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    time.sleep(0.1)
        where = ", ".join(f"127.0.0.1:{port}" for port in ports)
        print(f"gunicorn on {where}; signing in {args.clients} clients...", flush=True)
        cpu_before = sum(server_cpu_seconds(server.pid) for server in servers)
        timings, errors, wall = drive(ports, args.clients, args.seconds, environments, keys)
        cpu = sum(server_cpu_seconds(server.pid) for server in servers) - cpu_before
        report(timings, errors, wall, args)
        served = sum(len(values) for values in timings.values())
        if served and cpu == cpu:  # (nan when /proc is not there)
            print(
                f"server CPU: {cpu * 1000 / served:.1f} ms per request (gunicorn processes; "
                f"PostgreSQL and the clients not counted), machine load average "
                f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
            )
        failures = []
        if len(ports) > 1:
            failures = cluster_checks(ports, keys[-1])
            print(
                f"shared across {len(ports)} servers: API rate limit ({RATE_LIMIT}/min per key) "
                f"and sign-in throttling: {'held' if not failures else 'FAILED'}"
            )
            for failure in failures:
                print("  ", failure)
        return 1 if errors or failures else 0
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        if not args.keep:
            recreate_database(admin_url, args.database, drop_only=True)


if __name__ == "__main__":
    sys.exit(main())

"""API benchmark: POST /api/v1/resolve under gunicorn on PostgreSQL, next to /healthz as the floor.

    .venv/bin/python bench/api.py [--seconds 10] [--clients 1,8,32] [--redis]

1. creates its own PostgreSQL database (`coffer_api_bench`), migrates it and seeds a workspace
   with 20 tokens and one access key (rate limit raised out of the way), under a fresh master
   key;
2. starts gunicorn (2 workers x 4 threads, plain HTTP) on a free port;
3. for 1, 8 and 32 concurrent clients (keep-alive connections, one thread each), first
   GET /healthz, then POST /api/v1/resolve with a 20-reference template, each for a bounded
   time; every answer is checked (status, and the resolved length), anything else is an error;
4. reports requests/s, p50/p99 latency, errors (the target is 0) and the server's CPU time per
   request (gunicorn's processes, from /proc), and the ratio of a resolve's CPU to /healthz's
   (the target: at most 3x), then stops gunicorn and drops the database.

`--redis` keeps the rate-limit counters on Redis (127.0.0.1:6379) instead of the database.
`--baseline DIR` also serves another checkout of the code (say the commit before a change) on
the same database and measures its resolve in the same run, between this one's rows: on a
shared, noisy machine that is the fair comparison.
The helpers (database, environment, CPU time, percentiles) are bench/load.py's.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import (  # noqa: E402 - bench/ is not a package
    PYTHON,
    ROOT,
    environment,
    free_port,
    percentile,
    recreate_database,
    server_cpu_seconds,
    server_url,
)

REFERENCES = 20
SEED = r"""
import json, sys
from access.models import AccessKey
from tokens.models import Token
from workspaces.models import Workspace

count = int(sys.argv[1])
workspace = Workspace.objects.create(name="Acme", slug="acme")
production = workspace.environments.get(slug="production")
for n in range(count):
    Token.objects.create_token(
        workspace=workspace, key=f"BENCH_TOKEN_{n:02d}", value=f"bench-value-{n:02d}-" + "v" * 24,
        environments=[production],
    )
# One key, a value per environment: BENCH_TOKEN_00 also has a Sandbox and a Staging token, so
# the read picks the one usable token among three (issue: one key, a value per environment).
staging = workspace.environments.create(name="Staging", slug="staging")
for other in (workspace.environments.get(slug="sandbox"), staging):
    Token.objects.create_token(
        workspace=workspace, key="BENCH_TOKEN_00", value=f"bench-{other.slug}-" + "v" * 24,
        environments=[other],
    )
_, key = AccessKey.objects.create_key(
    workspace=workspace, name="bench", environment=production, expires=None
)
print(json.dumps({"key": key}))
"""


def template() -> bytes:
    lines = [f"setting_{n}: $Secret{{BENCH_TOKEN_{n:02d}}}" for n in range(REFERENCES)]
    return ("\n".join(lines) + "\n").encode()


def expected_length() -> int:
    values = sum(len(f"bench-value-{n:02d}-" + "v" * 24) for n in range(REFERENCES))
    references = sum(len(f"$Secret{{BENCH_TOKEN_{n:02d}}}") for n in range(REFERENCES))
    return len(template()) - references + values


def drive(port: int, clients: int, seconds: float, request) -> tuple[list[float], list[str], float]:
    """Each client loops `request(conn)` over its own keep-alive connection until the end."""
    timings: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def loop() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start.wait()
        while time.perf_counter() < deadline[0]:
            began = time.perf_counter()
            try:
                problem = request(conn)
            except (http.client.HTTPException, OSError) as error:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                problem = f"{type(error).__name__}: {error}"
            elapsed = time.perf_counter() - began
            with lock:
                if problem:
                    errors.append(problem)
                else:
                    timings.append(elapsed)
        conn.close()

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    return timings, errors, time.perf_counter() - began


def healthz(conn: http.client.HTTPConnection) -> str | None:
    conn.request("GET", "/healthz", headers={"Host": "127.0.0.1"})
    response = conn.getresponse()
    body = response.read()
    return None if response.status == 200 else f"healthz HTTP {response.status}: {body[:100]!r}"


def resolver(key: str):
    body, length = template(), expected_length()
    headers = {
        "Host": "127.0.0.1",
        "Authorization": f"Bearer {key}",
        "Content-Type": "text/plain",
    }

    def resolve(conn: http.client.HTTPConnection) -> str | None:
        conn.request("POST", "/api/v1/resolve?source=bench", body=body, headers=headers)
        response = conn.getresponse()
        content = response.read()
        if response.status != 200 or len(content) != length:
            return f"resolve HTTP {response.status}: {content[:100]!r}"
        return None

    return resolve


def wait_for(port: int, process: subprocess.Popen) -> None:
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError("gunicorn exited") from None
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start")


def start_server(root: Path, env: dict, args) -> tuple[subprocess.Popen, int]:
    port = free_port()
    gunicorn = str(Path(PYTHON).with_name("gunicorn"))
    server = subprocess.Popen(
        [
            gunicorn,
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(args.workers),
            "--threads",
            str(args.threads),
            "--worker-class",
            "gthread",
            "--keep-alive",
            "30",
            "--log-level",
            "warning",
            "--max-requests",
            "0",
        ],  # a restarted worker's CPU time would vanish from the count
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,  # the access log: written, not shown
    )
    wait_for(port, server)
    return server, port


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--database", default="coffer_api_bench")
    parser.add_argument("--redis", action="store_true", help="rate-limit counters on Redis")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of the code (e.g. `git worktree add /tmp/base HEAD~3`), served by "
        "its own gunicorn on the same database: its resolve is measured in the same run, "
        "alternating with this one's",
    )
    args = parser.parse_args()
    concurrency = [int(n) for n in args.clients.split(",")]

    admin_url, database_url = server_url(args.database)
    recreate_database(admin_url, args.database)
    data_dir = tempfile.mkdtemp(prefix="coffer-api-bench-")
    (Path(data_dir) / "staticfiles").mkdir()
    env = environment(database_url, data_dir)
    env["COFFER_API_RATE_LIMIT"] = str(10**9)
    if args.redis:
        env["COFFER_RATELIMIT_REDIS_URL"] = "redis://127.0.0.1:6379/13"
    servers: dict[str, tuple[subprocess.Popen, int]] = {}
    rows = []
    try:
        print(f"Migrating and seeding {args.database}...", flush=True)
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True
        )
        seeded = subprocess.run(
            [PYTHON, "-c", "import django; django.setup(); exec(open(0).read())", str(REFERENCES)],
            input=SEED,
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        key = json.loads(seeded.stdout.strip().splitlines()[-1])["key"]
        servers["this"] = start_server(ROOT, env, args)
        if args.baseline:
            servers["baseline"] = start_server(args.baseline.resolve(), env, args)
        resolve = resolver(key)
        plan = [("/healthz", "this", healthz), ("resolve", "this", resolve)]
        if args.baseline:
            plan.insert(1, ("resolve", "baseline", resolve))
        for _, name, request in plan:  # warm every path up (imports, connections)
            drive(servers[name][1], 2, 1.0, request)
        for clients in concurrency:
            for label, name, request in plan:
                server, port = servers[name]
                cpu_before = server_cpu_seconds(server.pid)
                timings, errors, wall = drive(port, clients, args.seconds, request)
                cpu = server_cpu_seconds(server.pid) - cpu_before
                if args.baseline:
                    label = f"{label} ({name})"
                rows.append((label, clients, timings, errors, wall, cpu))
                print(f"  {label} x {clients} clients: {len(timings)} requests", flush=True)
    finally:
        for server, _ in servers.values():
            stop(server)
        recreate_database(admin_url, args.database, drop_only=True)

    counters = "Redis" if args.redis else "the database"
    print()
    print(
        f"gunicorn {args.workers} workers x {args.threads} threads on PostgreSQL, rate-limit "
        f"counters in {counters}, {args.seconds:.0f} s per row, resolve = {REFERENCES} "
        "references to 20 tokens:"
    )
    width = max(len(row[0]) for row in rows)
    print(
        f"{'request':<{width}} {'clients':>7} {'requests':>9} {'req/s':>7} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'errors':>6} {'CPU ms/req':>10}"
    )
    cpu_per = {}
    failed = 0
    for name, clients, timings, errors, wall, cpu in rows:
        served = len(timings)
        failed += len(errors)
        cpu_per[name, clients] = cpu * 1000 / served if served else float("nan")
        p50 = percentile(timings, 50) * 1000 if timings else float("nan")
        p99 = percentile(timings, 99) * 1000 if timings else float("nan")
        print(
            f"{name:<{width}} {clients:>7} {served:>9} {served / wall:>7.1f} {p50:>7.1f} "
            f"{p99:>7.1f} {len(errors):>6} {cpu_per[name, clients]:>10.2f}"
        )
        for error in errors[:5]:
            print("    ", error)
    floor = "/healthz (this)" if args.baseline else "/healthz"
    for clients in concurrency:
        for name in [row[0] for row in rows if row[0].startswith("resolve") and row[1] == clients]:
            ratio = cpu_per[name, clients] / cpu_per[floor, clients]
            print(
                f"{name} / {floor} server CPU with {clients} clients: {ratio:.2f}x (target <= 3x)"
            )
    print(f"machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

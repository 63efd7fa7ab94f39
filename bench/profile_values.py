"""Where a 50-value read's time goes: cProfile of `GET /api/v1/values`, in process, on PostgreSQL.

    .venv/bin/python bench/profile_values.py [--requests 300] [--top 30] [--sort tottime]

Creates its own PostgreSQL database (`peer_profile`; DATABASE_URL's server, or 127.0.0.1:5432),
migrates it and seeds bench/peer.py's data set (50 tokens, one access key) under production
settings (DEBUG off), then sends the request through Django's test Client (every middleware,
the view, the database; no HTTP server) a number of times, after a warm-up:

1. without the profiler: wall and CPU time per request, and the SQL statements each request
   sends with the share of the time spent waiting for them;
2. under cProfile: the functions that take the time, sorted by cumulative time (`--sort`
   tottime for the time spent in each function itself).

The database is dropped at the end. Nothing here is a test; `bench/peer.py` measures the same
request under gunicorn against OpenBao.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import io
import os
import pstats
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# bench/ is on the path first when this file runs; its api.py would shadow the `api` app.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))
sys.path.append(str(HERE))
from load import recreate_database, server_url  # noqa: E402 - bench/ is not a package

VALUES = 50


def configure(database_url: str, data_dir: str) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=database_url,
        COFFER_DEBUG="false",
        COFFER_SECRET_KEY=secrets.token_urlsafe(50),
        COFFER_MASTER_KEYS="profile:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        COFFER_ALLOWED_HOSTS="testserver",
        COFFER_HTTPS="false",
        COFFER_MANIFEST_STATIC="false",
        COFFER_DATA_DIR=data_dir,
        COFFER_LOG_LEVEL="ERROR",
        COFFER_API_RATE_LIMIT=str(10**9),
    )
    import django

    django.setup()


def seed() -> str:
    from access.models import AccessKey
    from tokens.models import Token
    from workspaces.models import Workspace

    workspace = Workspace.objects.create(name="Acme", slug="acme")
    production = workspace.environments.get(slug="production")
    for n in range(VALUES):
        Token.objects.create_token(
            workspace=workspace,
            key=f"BENCH_TOKEN_{n:02d}",
            value=f"bench-value-{n:02d}-" + "v" * 24,
            environments=[production],
        )
    _, key = AccessKey.objects.create_key(
        workspace=workspace, name="profile", environment=production, expires=None
    )
    return key


class Statements:
    """Counts the SQL statements sent and the wall time spent in them."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.kinds: Counter[str] = Counter()
        self.by_table: Counter[str] = Counter()
        self.time_by_table: Counter[str] = Counter()

    def __call__(self, execute, sql, params, many, context):
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            took = time.perf_counter() - began
            self.seconds += took
            self.count += 1
            kind = sql.split(None, 1)[0].upper() if sql.strip() else "?"
            self.kinds[kind] += 1
            label = f"{kind} {statement_table(sql)}"
            self.by_table[label] += 1
            self.time_by_table[label] += took


def statement_table(sql: str) -> str:
    """The first table a statement names, to tell the statements apart in the report."""
    found = re.search(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', sql, re.IGNORECASE)
    return found.group(1) if found else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", choices=["cumulative", "tottime"], default="cumulative")
    parser.add_argument("--database", default="peer_profile")
    args = parser.parse_args()
    if not 1 <= args.requests <= 100_000:
        parser.error("--requests: from 1 to 100000")

    admin_url, database_url = server_url(args.database)
    recreate_database(admin_url, args.database)
    data_dir = tempfile.mkdtemp(prefix="coffer-profile-")
    (Path(data_dir) / "staticfiles").mkdir()
    try:
        configure(database_url, data_dir)
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client

        call_command("migrate", verbosity=0, interactive=False)
        key = seed()
        client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")

        def read() -> None:
            response = client.get("/api/v1/values")
            if response.status_code != 200 or len(response.json()) != VALUES:
                raise SystemExit(f"GET /api/v1/values: HTTP {response.status_code}")

        for _ in range(20):  # warm-up: imports, compiled templates, the connection
            read()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM")  # autovacuum may be off; the warm-up updated rows

        statements = Statements()
        wall, cpu = time.perf_counter(), time.process_time()
        with connection.execute_wrapper(statements):
            for _ in range(args.requests):
                read()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        n = args.requests
        print(f"GET /api/v1/values, {VALUES} values, {n} requests in process on PostgreSQL:")
        print(f"  wall {wall * 1000 / n:.2f} ms, CPU {cpu * 1000 / n:.2f} ms per request")
        kinds = ", ".join(f"{count / n:g} {kind}" for kind, count in statements.kinds.items())
        print(
            f"  {statements.count / n:g} SQL statements per request ({kinds}); waiting for "
            f"them: {statements.seconds * 1000 / n:.2f} ms per request, "
            f"{statements.seconds / wall:.0%} of the wall time"
        )
        for label, seconds in statements.time_by_table.most_common():
            count = statements.by_table[label]
            print(f"    {label}: {count / n:g} per request, {seconds * 1e6 / count:.0f} us each")
        print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

        with connection.cursor() as cursor:
            cursor.execute("VACUUM")
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(n):
            read()
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats(args.sort).print_stats(args.top)
        print()
        print(f"cProfile of the same {n} requests, top {args.top} by {args.sort}:")
        print(out.getvalue().split("\n", 3)[-1].rstrip())
        connection.close()
    finally:
        recreate_database(admin_url, args.database, drop_only=True)
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

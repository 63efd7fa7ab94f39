"""Benchmark the Tokens page against the Django admin's changelist of the same 10,000 tokens.

    .venv/bin/python bench/tokens_page.py [--tokens N] [--runs N]

Builds a throwaway data directory (its own SQLite database and master key), one workspace with
N tokens (real ciphertext, scopes, environments, expiries, last uses) and a superuser who owns
the workspace; then times, in one run and alternately, server-side through Django's test Client
(the whole request: middleware, session, queries, templates):

- the Tokens page, 25 rows (its default), as a full page and as the htmx fragment;
- the Tokens page with 100 rows, the same page size as the admin's changelist;
- a search and a filtered, sorted Tokens page;
- the admin changelist of tokens (100 rows), and an admin search.

It prints the median wall and CPU time of each request (CPU time is steadier on a shared
machine), its SQL query count, and the ratios admin / Tokens page (above 1: the Tokens page is
faster).
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def configure(data_dir: Path) -> None:
    os.environ.update(
        {
            "COFFER_DATA_DIR": str(data_dir),
            "DATABASE_URL": f"sqlite:///{data_dir / 'bench.sqlite3'}",
            "COFFER_DEBUG": "false",
            "COFFER_HTTPS": "false",
            "COFFER_MANIFEST_STATIC": "false",
            "COFFER_SECRET_KEY": secrets.token_urlsafe(50),
            "COFFER_MASTER_KEYS": "bench:" + base64.b64encode(os.urandom(32)).decode(),
            "COFFER_ALLOWED_HOSTS": "testserver,localhost",
            "COFFER_LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def build(count: int):
    """A superuser owning workspace `bench` with `count` tokens; returns (user, workspace)."""
    from django.contrib.auth import get_user_model

    from tests.factories import bulk_tokens
    from workspaces.models import Workspace

    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "unused")
    workspace = Workspace.create_with_owner(name="Bench", slug="bench", owner=user)
    bulk_tokens(workspace, count)
    return user, workspace


class QueryCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def measure(client, url: str, headers: dict, runs: int) -> tuple[list[float], int]:
    from django.db import connection

    queries = QueryCounter()
    with connection.execute_wrapper(queries):
        response = client.get(url, headers=headers)
    assert response.status_code == 200, (url, response.status_code)
    times = []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        response = client.get(url, headers=headers)
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
        assert response.status_code == 200
    return times, queries.count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="coffer-bench-"))
    (data_dir / "staticfiles").mkdir()
    try:
        configure(data_dir)
        from django.core.management import call_command
        from django.test import Client

        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        user, workspace = build(args.tokens)
        built = time.perf_counter() - started
        client = Client()
        client.force_login(user)

        page = f"/w/{workspace.slug}/tokens/"
        admin = "/admin/tokens/token/"
        cases = [
            ("Tokens page, 25 rows", page, {}),
            ("Tokens page, htmx fragment", page, {"HX-Request": "true"}),
            ("Tokens page, 100 rows", page + "?per_page=100", {}),
            ("Tokens page, search", page + "?q=number+99", {}),
            ("Tokens page, filter+sort", page + "?status=active&env=production&sort=expiry", {}),
            ("Admin changelist, 100 rows", admin, {}),
            ("Admin changelist, search", admin + "?q=number+99", {}),
        ]
        results = {name: ([], 0) for name, _, _ in cases}
        # Alternate the cases in rounds so that machine noise hits them all alike.
        rounds = 5
        for _ in range(rounds):
            for name, url, headers in cases:
                times, queries = measure(client, url, headers, max(1, args.runs // rounds))
                results[name] = (results[name][0] + times, queries)

        print(
            f"Tokens page vs Django admin changelist: {args.tokens:,} tokens in one workspace, "
            f"SQLite, DEBUG off, {len(results[cases[0][0]][0])} requests each"
        )
        print(
            f"Python {platform.python_version()} on {platform.machine()}, "
            f"{os.cpu_count()} CPUs; data built in {built:.1f} s"
        )
        print()
        heading = ("request", "wall median", "wall best", "CPU median", "queries")
        print("{:<30} {:>11} {:>10} {:>11} {:>8}".format(*heading))
        for name, _, _ in cases:
            times, queries = results[name]
            walls, cpus = [w for w, _ in times], [c for _, c in times]
            print(
                f"{name:<30} {statistics.median(walls) * 1000:>8.1f} ms "
                f"{min(walls) * 1000:>7.1f} ms {statistics.median(cpus) * 1000:>8.1f} ms "
                f"{queries:>8}"
            )
        print()

        def cpu(name: str) -> float:
            return statistics.median(c for _, c in results[name][0])

        def wall(name: str) -> float:
            return statistics.median(w for w, _ in results[name][0])

        admin, search = "Admin changelist, 100 rows", "Admin changelist, search"
        pairs = [
            (admin, "Tokens page, 25 rows"),
            (admin, "Tokens page, 100 rows"),
            (search, "Tokens page, search"),
        ]
        print(
            "ratio admin / Tokens page (above 1: the Tokens page is faster), CPU and wall medians:"
        )
        for slow, fast in pairs:
            print(
                f"  {slow.lower()} / {fast.lower()}: {cpu(slow) / cpu(fast):.2f}x CPU, "
                f"{wall(slow) / wall(fast):.2f}x wall"
            )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()

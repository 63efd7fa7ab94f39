"""Many long-poll waiters on one server, what they cost, and how soon an edit reaches them.

    .venv/bin/python bench/longpoll.py [--waiters 500] [--method HEAD|GET]
                                       [--postgres postgres://.../postgres]
    .venv/bin/python bench/longpoll.py --watchers 20 [--stagger 0] [--postgres ...]

Starts a real Coffer under ASGI (gunicorn, 2 uvicorn workers, config.asgi; the API tests'
seeded workspace), on SQLite, or with --postgres on a fresh database made on that server (and
dropped afterwards). Then:

1. opens N connections, each `HEAD /api/v1/values?wait=60` (as `coffer run --watch` asks: no
   value read on a change) or with --method GET (the new values in the answer, each an
   audited read) with the current ETag in If-None-Match (one access key for all, as a fleet
   sharing one key), and lets them settle;
2. reads the server's processes (gunicorn's master and workers) from /proc: resident memory
   and threads before the waiters and while they wait, and (PostgreSQL) the database
   connections open while they wait;
3. edits a token the waiters read (`Token.set_value`, in another process that prints the
   moment its transaction committed), and times each waiter's answer from that moment.

Prints the figures with the date and the machine's load averages.

With --watchers N it measures the whole way instead, from an edit to the watched process's
restart: N `coffer run --watch -- CHILD` (this checkout's client), each CHILD a shell that
writes the time it started to its own file, then sleeps. Once every child has started, a token
they read is edited as above, and each delay runs from the edit's commit to the new child's
start (the long poll's answer, the --stagger delay, the audited GET, SIGTERM to the old child
and the new one's start). Twice in the same run (two edits, the second once every child has
restarted after the first); prints the median and max of each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("COFFER_RATELIMIT_REDIS_PREFIX", f"coffer-bench-{os.getpid()}")
from tests.api_server import PYTHON, running_server  # noqa: E402 - after the path is set

EDIT = """
import time
from tokens.models import Token
Token.objects.get(key="DB_URL").set_value("rotated-" + str(time.time()))
print(time.time())
"""


def processes_of(root: int) -> list[int]:
    """`root` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def footprint(root: int) -> tuple[float, int]:
    """Resident memory (MiB) and threads of the server's processes."""
    rss_kib, threads = 0, 0
    for pid in processes_of(root):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss_kib += int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads += int(line.split()[1])
    return rss_kib / 1024, threads


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    import psycopg

    name = f"delivery_db_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield admin_url.rsplit("/", 1)[0] + "/" + name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def connections_to(admin_url: str, database_url: str) -> int:
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [name]
        ).fetchone()
    return int(row[0]) if row else 0


async def wait_once(host: str, port: int, request: bytes, answers: list) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(request)
    await writer.drain()
    status = await reader.readline()
    answered = time.time()
    await reader.read()
    writer.close()
    answers.append((int(status.split()[1]) if status else 0, answered))


async def run_waiters(
    host: str, port: int, request: bytes, count: int, settle: float, edit
) -> tuple[list, dict]:
    answers: list[tuple[int, float]] = []
    tasks = [asyncio.create_task(wait_once(host, port, request, answers)) for _ in range(count)]
    await asyncio.sleep(settle)
    during = await asyncio.to_thread(edit)
    await asyncio.gather(*tasks)
    return answers, during


# A child of `coffer run --watch`: its start time (the restart's end) to the file it is given.
CHILD = 'date +%s.%N >> "$1"; exec sleep 100000'


def run_edit(server) -> float:
    """Edit the token the waiters and watchers read; the moment its transaction committed."""
    done = subprocess.run(
        [PYTHON, "-c", "import django; django.setup(); exec(open(0).read())"],
        input=EDIT,
        cwd=ROOT,
        env=server.env,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def starts(path: Path) -> list[float]:
    return [float(line) for line in path.read_text().split()]


def wait_for_starts(paths: list[Path], count: int, within: float) -> None:
    deadline = time.monotonic() + within
    while any(len(starts(path)) < count for path in paths):
        if time.monotonic() > deadline:
            missing = sum(len(starts(path)) < count for path in paths)
            raise SystemExit(f"{missing} children did not start {count} times in {within:.0f} s")
        time.sleep(0.05)


def watched_restarts(server, watchers: int, stagger: float, folder: Path) -> list[list[float]]:
    """Two edits, and for each, every watched child's delay from the commit to its restart."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
    env.update(
        COFFER_URL=server.url,
        COFFER_ACCESS_KEY=server.keys["main"],
        COFFER_CACHE_DIR=str(folder / "cache"),
        PYTHONPATH=str(ROOT / "client"),
    )
    paths = [folder / f"child-{n}.starts" for n in range(watchers)]
    command = [sys.executable, "-m", "coffer_cli", "run", "--watch", "--stagger", str(stagger)]
    processes = []
    try:
        for path in paths:
            path.touch()
            processes.append(
                subprocess.Popen(
                    [*command, "--", "sh", "-c", CHILD, "child", str(path)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        wait_for_starts(paths, 1, within=60 + watchers)
        time.sleep(3 + watchers / 20)  # every watch's long poll in place
        rounds = []
        for round_ in (2, 3):
            committed = run_edit(server)
            wait_for_starts(paths, round_, within=60 + stagger + watchers)
            rounds.append(sorted(starts(path)[round_ - 1] - committed for path in paths))
            time.sleep(3 + watchers / 20)
        return rounds
    finally:
        for process in processes:
            process.terminate()  # coffer passes it on to its child
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main_watchers(options: argparse.Namespace) -> None:
    with contextlib.ExitStack() as stack:
        env = {"COFFER_API_RATE_LIMIT": "1000000", "COFFER_LOG_LEVEL": "ERROR"}
        database = "SQLite"
        if options.postgres:
            env["DATABASE_URL"] = stack.enter_context(postgres_database(options.postgres))
            database = "PostgreSQL"
        server = stack.enter_context(running_server(asgi=True, **env))
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="coffer-bench-")))
        rounds = watched_restarts(server, options.watchers, options.stagger, folder)
    load = os.getloadavg()
    print(
        f"bench/longpoll.py --watchers, {dt.date.today()}, {database}, "
        f"{options.watchers} x coffer run --watch --stagger {options.stagger:g}, "
        f"load averages {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    for number, delays in enumerate(rounds, 1):
        print(
            f"edit {number}: edit committed -> child restarted: "
            f"median {statistics.median(delays):.2f} s, max {delays[-1]:.2f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiters", type=int, default=500)
    parser.add_argument(
        "--watchers", type=int, default=0, help="coffer run --watch processes (see above)"
    )
    parser.add_argument("--stagger", type=float, default=0, help="--watchers' --stagger")
    parser.add_argument("--settle", type=float, default=0, help="seconds (default: 5 + N/100)")
    parser.add_argument("--postgres", help="an admin URL of a PostgreSQL server")
    parser.add_argument("--method", choices=["HEAD", "GET"], default="HEAD")
    options = parser.parse_args()
    if options.watchers:
        main_watchers(options)
        return
    settle = options.settle or 5 + options.waiters / 100

    with contextlib.ExitStack() as stack:
        env = {"COFFER_API_RATE_LIMIT": "1000000", "COFFER_LOG_LEVEL": "ERROR"}
        database = "SQLite"
        if options.postgres:
            env["DATABASE_URL"] = stack.enter_context(postgres_database(options.postgres))
            database = "PostgreSQL"
        server = stack.enter_context(running_server(asgi=True, **env))
        key = server.keys["main"]
        host, port = server.url.removeprefix("http://").split(":")
        request = urllib.request.Request(
            server.url + "/api/v1/values", headers={"Authorization": f"Bearer {key}"}
        )
        with urllib.request.urlopen(request) as answer:
            etag = answer.headers["ETag"]
            json.load(answer)
        time.sleep(2)
        idle_rss, idle_threads = footprint(server.process.pid)
        wire = (
            f"{options.method} /api/v1/values?wait=60 HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {key}\r\nIf-None-Match: {etag}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()

        def edit() -> dict:
            rss, threads = footprint(server.process.pid)
            measured = {"rss": rss, "threads": threads}
            if options.postgres:
                measured["connections"] = connections_to(options.postgres, env["DATABASE_URL"])
            measured["committed"] = run_edit(server)
            return measured

        answers, during = asyncio.run(
            run_waiters(host, int(port), wire, options.waiters, settle, edit)
        )

    statuses: dict[int, int] = {}
    for status, _ in answers:
        statuses[status] = statuses.get(status, 0) + 1
    delays = sorted(at - during["committed"] for status, at in answers if status == 200)
    load = os.getloadavg()
    print(
        f"bench/longpoll.py, {dt.date.today()}, {database}, "
        f"{options.waiters} {options.method} waiters, "
        f"load averages {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"answers: {statuses}")
    print(f"server idle:    {idle_rss:7.1f} MiB resident, {idle_threads} threads")
    per_waiter = (during["rss"] - idle_rss) * 1024 / options.waiters
    threads_each = (during["threads"] - idle_threads) / options.waiters
    print(
        f"while waiting:  {during['rss']:7.1f} MiB resident, {during['threads']} threads "
        f"({per_waiter:.0f} KiB and {threads_each:.2f} threads per waiter)"
    )
    if "connections" in during:
        print(
            f"database connections while waiting: {during['connections']} "
            "(the bench's own admin connection included)"
        )
    if delays:
        p95 = delays[max(0, int(len(delays) * 0.95) - 1)]
        print(
            f"edit committed -> waiter answered: median {statistics.median(delays):.2f} s, "
            f"p95 {p95:.2f} s, max {delays[-1]:.2f} s"
        )


if __name__ == "__main__":
    main()

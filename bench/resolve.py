"""Benchmark `$Secret{KEY}` resolution against its floor.

    .venv/bin/python bench/resolve.py [--runs N]

1. In process: a 5 MB text with 100,000 references to 1,000 distinct keys (one of them, as in
   "one key, a value per environment", has a token in each of three environments), resolved with
   `resolve_text` (parse, one token query, 1,000 decryptions, the last-used UPDATE, the audit
   INSERT, substitution) next to the floor: a plain `re.sub` with a dict of the plaintext values
   over the same text. Both are timed in the same run, alternately; the best of N wall-clock
   and CPU times are reported (CPU time is steadier on a shared machine).
2. Start-up: `manage.py resolve` on a 100-reference file end to end, next to its floor, a bare
   `python -c "import django; django.setup()"` with the project's settings (and `manage.py
   check` for reference); the median wall and CPU times of N runs of each.
3. A large file: `manage.py resolve` (output to /dev/null) and `manage.py resolve --check` on a
   ~50 MB template (1,000,000 references), end to end, alternately, twice; the check's wall and
   CPU time as a ratio to the resolve's, per pair (the check must be no slower).
4. Memory: the peak RSS of a `manage.py resolve` subprocess on that template, and of its
   `--check`, above the baseline (the same command on the 100-reference file), as a ratio to
   the input size.

Everything happens in a throwaway data directory with its own SQLite database and master key.
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKENS = 1_000
REFERENCES = 100_000
TEXT_BYTES = 5_000_000
SMALL_REFERENCES = 100
LARGE_FACTOR = 10  # the memory benchmark's template: 10 times the in-process text, 50 MB


def configure(data_dir: Path) -> None:
    os.environ.update(
        {
            "COFFER_DATA_DIR": str(data_dir),
            "DATABASE_URL": f"sqlite:///{data_dir / 'bench.sqlite3'}",
            "COFFER_DEBUG": "false",
            "COFFER_SECRET_KEY": secrets.token_urlsafe(50),
            "COFFER_MASTER_KEYS": "bench:" + base64.b64encode(os.urandom(32)).decode(),
            "COFFER_ALLOWED_HOSTS": "localhost",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def big_text(factor: int = 1) -> str:
    """100,000 lines of 50 bytes (times `factor`), each with one reference: 5,000,000 bytes."""
    width = TEXT_BYTES // REFERENCES - 1
    lines = []
    for n in range(REFERENCES * factor):
        line = f"setting_{n:06d}: $Secret{{SERVICE_{n % TOKENS:04d}_KEY}} # "
        lines.append(line.ljust(width, "x")[:width] + "\n")
    text = "".join(lines)
    assert len(text.encode()) == TEXT_BYTES * factor
    return text


def timed(function) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for one call."""
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall_start, time.process_time() - cpu_start


def run_once(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of running `command` once, its output discarded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def wall(command: list[str], runs: int) -> tuple[float, float]:
    """Median (wall seconds, CPU seconds) of running `command`."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


# Run from a small probe process: a child forked from this (large) benchmark process would count
# this process's pages in its peak until its exec.
RSS_PROBE = (
    "import resource, subprocess, sys; "
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def peak_rss(command: list[str]) -> int:
    """The peak resident set size, in bytes, of running `command` (its output discarded)."""
    probe = [sys.executable, "-c", RSS_PROBE, *command]
    result = subprocess.run(probe, cwd=ROOT, check=True, capture_output=True, text=True)
    return int(result.stdout) * 1024  # kilobytes on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs

    data_dir = Path(tempfile.mkdtemp(prefix="coffer-bench-"))
    try:
        configure(data_dir)
        run_benchmark(data_dir, runs)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def run_benchmark(data_dir: Path, runs: int) -> None:
    from django.core.management import call_command

    from tokens.models import Token, UseContext
    from tokens.references.grammar import Template
    from tokens.references.resolve import resolve_text
    from workspaces.models import Workspace

    call_command("migrate", verbosity=0)
    workspace = Workspace.objects.create(name="Bench", slug="bench")
    production = workspace.environments.get(slug="production")
    environments = [production, *workspace.environments.exclude(pk=production.pk)]
    values = {}
    start = time.perf_counter()
    environments.append(workspace.environments.create(name="Staging", slug="staging"))
    for n in range(TOKENS):
        key = f"SERVICE_{n:04d}_KEY"
        values[key] = f"value-{n:04d}-{secrets.token_urlsafe(24)}"
        Token.objects.create_token(
            workspace=workspace,
            key=key,
            value=values[key],
            environments=environments[:1] if n == 0 else environments,
        )
    # One key, a value per environment: SERVICE_0000_KEY has a token in each of the three
    # environments; the resolve (in production) picks the one usable there.
    for other in environments[1:]:
        Token.objects.create_token(
            workspace=workspace,
            key="SERVICE_0000_KEY",
            value=f"{other.slug}-" + "x" * 32,
            environments=[other],
        )
    setup = time.perf_counter() - start

    text = big_text()
    floor_re = re.compile(r"\$Secret\{([A-Za-z_][A-Za-z0-9_]*)\}")

    def floor() -> str:
        return floor_re.sub(lambda match: values[match.group(1)], text)

    def resolve() -> str:
        return resolve_text(text, UseContext(production), source="bench", actor="bench")

    def substitution_only() -> str:
        return Template(text).render(values)

    assert resolve() == floor(), "the resolver and the floor disagree"
    timings: dict[str, list[tuple[float, float]]] = {"floor": [], "resolve": [], "render": []}
    for _ in range(runs):  # alternate, so that all three see the same machine state
        timings["floor"].append(timed(floor))
        timings["resolve"].append(timed(resolve))
        timings["render"].append(timed(substitution_only))
    best = {
        name: (min(w for w, _ in times), min(c for _, c in times))
        for name, times in timings.items()
    }

    small = data_dir / "app.yaml.tmpl"
    small.write_text(
        "".join(f"key_{n}: $Secret{{SERVICE_{n:04d}_KEY}}\n" for n in range(SMALL_REFERENCES))
    )
    manage = [sys.executable, str(ROOT / "manage.py")]
    context = ["--workspace", "bench", "--environment", "production"]
    setup_floor = [sys.executable, "-c", "import django; django.setup()"]
    setup_s = wall(setup_floor, runs)
    check_s = wall([*manage, "check"], runs)
    resolve_cli_s = wall([*manage, "resolve", str(small), *context], runs)
    report_cli_s = wall([*manage, "resolve", str(small), *context, "--check"], runs)

    large = data_dir / "large.yaml.tmpl"
    large.write_text(big_text(LARGE_FACTOR))
    large_bytes = large.stat().st_size
    large_resolve = [*manage, "resolve", str(large), *context]
    large_check = [*large_resolve, "--check"]
    pairs = [(run_once(large_resolve), run_once(large_check)) for _ in range(2)]
    memory_runs = max(3, runs // 5)
    rss = {
        name: min(peak_rss(command) for _ in range(memory_runs))
        for name, command in (
            ("python", [sys.executable, "-c", "pass"]),
            ("setup", setup_floor),
            ("baseline", [*manage, "resolve", str(small), *context]),
            ("resolve", large_resolve),
            ("check", large_check),
        )
    }

    floor_wall, floor_cpu = best["floor"]

    def row(label: str, name: str) -> str:
        wall_s, cpu_s = best[name]
        return (
            f"    {label:<48} {wall_s * 1000:7.1f} ms {cpu_s * 1000:7.1f} ms"
            f"   {wall_s / floor_wall:4.2f}x {cpu_s / floor_cpu:4.2f}x"
        )

    print(
        f"Coffer resolve benchmark: {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, SQLite, load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    print(f"  set-up: {TOKENS:,} tokens created in {setup:.1f} s")
    print(
        f"  in process: {TEXT_BYTES / 1e6:.0f} MB, {REFERENCES:,} references to {TOKENS:,} "
        f"tokens; best of {runs}, alternating"
    )
    print(f"    {'':<48} {'wall':>10} {'CPU':>10}   {'vs the floor':>12}")
    print(row("floor: re.sub with a dict of plaintext values", "floor"))
    print(row("resolve_text: query, decrypt, audit, substitute", "resolve"))
    print(row("  of which parse + substitute alone", "render"))
    print(f"  start-up, a {SMALL_REFERENCES}-reference file end to end; median of {runs} runs")
    for label, (wall_s, cpu_s) in (
        ('floor: python -c "import django; django.setup()"', setup_s),
        ("manage.py resolve", resolve_cli_s),
        ("manage.py resolve --check", report_cli_s),
        ("manage.py check", check_s),
    ):
        print(
            f"    {label:<48} {wall_s * 1000:7.0f} ms {cpu_s * 1000:7.0f} ms"
            f"   {wall_s / setup_s[0]:4.2f}x {cpu_s / setup_s[1]:4.2f}x"
        )
    mb = 1024 * 1024
    print(
        f"  a {large_bytes / mb:.1f} MiB template with {REFERENCES * LARGE_FACTOR:,} references, "
        "end to end; alternating, twice"
    )
    print(f"    {'':<48} {'wall':>10} {'CPU':>10}   {'check vs resolve':>16}")
    for n, ((resolve_wall, resolve_cpu), (check_wall, check_cpu)) in enumerate(pairs, 1):
        print(
            f"    {f'manage.py resolve > /dev/null ({n})':<48} "
            f"{resolve_wall:8.2f} s {resolve_cpu:8.2f} s"
        )
        print(
            f"    {f'manage.py resolve --check ({n})':<48} {check_wall:8.2f} s {check_cpu:8.2f} s"
            f"   {check_wall / resolve_wall:4.2f}x {check_cpu / resolve_cpu:4.2f}x"
        )
    print(
        f"  memory: peak RSS, least of {memory_runs} runs; a {large_bytes / mb:.1f} MiB template "
        f"with {REFERENCES * LARGE_FACTOR:,} references"
    )
    print(f"    {'python -c pass':<48} {rss['python'] / mb:7.1f} MiB")
    print(f"    {'django.setup()':<48} {rss['setup'] / mb:7.1f} MiB")
    print(f"    {'baseline: manage.py resolve, small file':<48} {rss['baseline'] / mb:7.1f} MiB")
    for label, name in (("manage.py resolve", "resolve"), ("manage.py resolve --check", "check")):
        above = rss[name] - rss["baseline"]
        print(
            f"    {label:<48} {rss[name] / mb:7.1f} MiB   {above / mb:6.1f} MiB above the "
            f"baseline = {above / large_bytes:4.2f}x the input"
        )


if __name__ == "__main__":
    main()

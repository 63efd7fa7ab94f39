"""What the `coffer` client adds: `coffer run -- true` next to a bare curl of the same values.

    .venv/bin/python bench/client_run.py [--runs 30] [--coffer PATH]

Starts a real Coffer (gunicorn, 2 workers, SQLite, the API tests' seeded workspace), then times,
alternately in the same run, N times each:

- `curl` fetching GET /api/v1/values (the key in a header file, as a CI job would pass it);
- `coffer run -- true`: the client's start, the same fetch, the fallback's encrypted write, and
  starting `true` with the values in its environment;
- `python -c pass` and `true` alone: the interpreter's and a process's own start, for scale.

Prints the median and 90th percentile wall time of each, the client's added time over curl, the
date, the machine's load averages and the Python that ran the client. By default the client
runs from this checkout (`python -m coffer_cli`, compiled first); --coffer names an installed
`coffer` command instead (e.g. one installed with `pip install ./client` in a fresh venv).
Anchors reported elsewhere: Doppler's `doppler run` 0.3-0.4 s, Infisical's `infisical run`
about 8 s.
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("COFFER_RATELIMIT_REDIS_PREFIX", f"coffer-bench-{os.getpid()}")
from tests.api_server import CURL, running_server  # noqa: E402 - after the path is set

CLIENT = ROOT / "client"


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--coffer", help="an installed coffer command (default: this checkout)")
    options = parser.parse_args()

    if options.coffer:
        client = [options.coffer]
        python = str(Path(options.coffer).with_name("python"))
    else:
        compileall.compile_dir(CLIENT / "coffer_cli", quiet=1)
        client, python = [sys.executable, "-m", "coffer_cli"], sys.executable
    version = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    with (
        running_server(COFFER_API_RATE_LIMIT="100000") as server,
        tempfile.TemporaryDirectory(prefix="coffer-bench-client-") as folder,
    ):
        key = server.keys["main"]
        header = Path(folder) / "header"
        header.write_text(f"Authorization: Bearer {key}\n")
        header.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
        env.update(
            COFFER_URL=server.url,
            COFFER_ACCESS_KEY=key,
            COFFER_CACHE_DIR=str(Path(folder) / "cache"),
            PYTHONPATH=str(CLIENT),
        )
        url = f"{server.url}/api/v1/values?format=json"
        commands = {
            "curl GET /api/v1/values": [CURL, "-sS", "--fail", "-H", f"@{header}", url],
            "coffer run -- true": [*client, "run", "--", "true"],
            "python -c pass": [python, "-c", "pass"],
            "true": [shutil.which("true") or "/bin/true"],
        }
        for command in commands.values():  # warm up: caches, the server's workers
            timed(command, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(options.runs):
            for name, command in commands.items():
                times[name].append(timed(command, env))

    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"coffer run vs curl, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {load}")
    print(f"client: Python {version}, {' '.join(client[:1])}; {options.runs} runs each\n")
    print(f"{'':28}{'median':>10}{'p90':>10}")
    medians = {}
    for name, values in times.items():
        values.sort()
        medians[name] = statistics.median(values)
        p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
        print(f"{name:28}{medians[name] * 1000:>8.1f}ms{p90 * 1000:>8.1f}ms")
    added = medians["coffer run -- true"] - medians["curl GET /api/v1/values"]
    print(f"\nadded by coffer over curl (median): {added * 1000:.1f} ms")
    print("anchors: doppler run 300-400 ms, infisical run ~8 s (as reported)")


if __name__ == "__main__":
    main()

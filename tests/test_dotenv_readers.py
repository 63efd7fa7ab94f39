"""The API's `format=dotenv` read back by every common reader, with hostile values.

Each value is either written so that every reader below gets it back exactly, with no other
variable appearing, or refused with a reason (tokens/references/output.py says which and why):

- bash: `set -a; . FILE` and `eval "$(cat FILE)"`; dash: the same;
- python-dotenv with its default settings (`dotenv_values(path)`: interpolation on, the file
  opened as text as its `load_dotenv` does);
- Node's dotenv (npm, `make node-dotenv` pins it): `parse` and its `fast` parser;
- Coffer's own Import (python-dotenv's parser, then the Token rules): one entry per value, and
  each value it would import is exactly the one written (it refuses some itself, e.g. empty);
- docker's `--env-file`, emulated by its documented rule, not run (no docker here): each line
  is `KEY=VALUE` taken literally to the end of the line, no quotes processed, no newline
  possible. It can only read exactly the values written bare, so those are checked with it.

`format=shell` (POSIX shells only) is checked with bash and dash for any value but NUL.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from dotenv import dotenv_values
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from imports.parsing import EntryState, parse_entries
from tokens.references import output as dotenv

NODE_DOTENV = Path(__file__).resolve().parents[1] / ".tools/node-dotenv/node_modules/dotenv"
SENTINEL = "OWNED"  # a variable that a value must never manage to set
SHELL_ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/home/reader"}

# A node process that parses each file named on stdin with both of dotenv's parsers.
NODE_READER = """
const dotenv = require(process.argv[1]);
const fs = require("fs");
require("readline").createInterface({input: process.stdin}).on("line", (path) => {
  const source = fs.readFileSync(path);
  const parsed = [dotenv.parse(source), dotenv.parse(source, {fast: true})];
  process.stdout.write(JSON.stringify(parsed) + "\\n");
});
"""


@pytest.fixture(scope="module")
def node_dotenv():
    if not (NODE_DOTENV / "package.json").exists():
        pytest.fail(f"Node's dotenv is needed at {NODE_DOTENV}: run `make node-dotenv` (npm).")
    process = subprocess.Popen(
        ["node", "-e", NODE_READER, str(NODE_DOTENV)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )

    def read(path: Path) -> list[dict[str, str]]:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(f"{path}\n")
        process.stdin.flush()
        return json.loads(process.stdout.readline())

    yield read
    assert process.stdin is not None
    process.stdin.close()
    process.wait(timeout=10)


def posix_shell(shell: str, path: Path, names: list[str]) -> list[dict[str, str | None]]:
    """What `shell` holds after `set -a; . FILE` and after `eval "$(cat FILE)"`: each name's
    value, None when unset."""
    printer = "".join(
        f'if [ -n "${{{name}+set}}" ]; then printf "1%s\\0" "${name}"; else printf "0\\0"; fi; '
        for name in [*names, SENTINEL]
    )
    script = f'(set -a; . "$1"; {printer}); (eval "$(cat "$1")"; {printer})'
    result = subprocess.run(
        [shell, "-c", script, shell, str(path)],
        capture_output=True,
        check=True,
        env=SHELL_ENV,
    )
    fields = result.stdout.decode("utf-8").split("\0")[:-1]
    names = [*names, SENTINEL]
    assert len(fields) == 2 * len(names), result.stderr
    return [
        {name: (f[1:] if f[0] == "1" else None) for name, f in zip(names, half, strict=True)}
        for half in (fields[: len(names)], fields[len(names) :])
    ]


def docker_env_file(text: str) -> dict[str, str]:
    """docker's --env-file rule: per line, leading whitespace trimmed, blank and # lines
    skipped, split at the first `=`, the value kept literally (a trailing CR dropped)."""
    found = {}
    for line in text.split("\n"):
        line = line.removesuffix("\r").lstrip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            found[name] = value
    return found


def write_and_read_back(values: list[str], tmp_path: Path, node_dotenv) -> None:
    """Encode `values` as K0, K1, ...; every value not refused must come back exactly from
    every reader, and nothing else may be set."""
    given_values = {f"K{n}": value for n, value in enumerate(values)}
    refused = dotenv.problems(given_values, "dotenv")
    kept = {key: value for key, value in given_values.items() if key not in refused}
    path = tmp_path / "values.env"
    path.write_bytes(dotenv.encode(kept, "dotenv").encode("utf-8"))
    names = list(given_values)
    expected_in_shell = {**{name: kept.get(name) for name in names}, SENTINEL: None}

    for shell in ("bash", "dash"):
        for read in posix_shell(shell, path, names):
            assert read == expected_in_shell, shell
    assert dotenv_values(path) == kept, "python-dotenv"
    parsed, parsed_fast = node_dotenv(path)
    assert parsed == kept, "Node's dotenv"
    assert parsed_fast == kept, "Node's dotenv (fast)"
    entries = parse_entries(path.read_text(encoding="utf-8"))
    assert len(entries) == len(kept), "Coffer's Import: one entry per value"
    imported = {e.key: e.value for e in entries if e.state is EntryState.NEW}
    assert imported.items() <= kept.items(), "Coffer's Import"
    bare = {key: value for key, value in kept.items() if dotenv.BARE.fullmatch(value)}
    docker = docker_env_file(dotenv.encode(bare, "dotenv"))
    assert docker == bare, "docker --env-file"


# Fragments the issue found or that break one reader or another, mixed with any text.
HOSTILE = st.sampled_from(
    [
        "'",
        '"',
        "\\",
        "\\'",
        "\\\\",
        "\n",
        "\r",
        "\r\n",
        "\t",
        " ",
        "#",
        "=",
        "${HOME}",
        "$HOME",
        "$(id)",
        "`id`",
        "\nOWNED=1\n",
        "'\nOWNED=1\n'",
        '"\nOWNED=1\n"',
        "';OWNED=1;'",
        "~",
        ":~",
        "-----BEGIN KEY-----",
        "é",
        "✓",
        "\u2028",
        "\u0085",
        "\ufeff",
        "\x00",
    ]
)
VALUE = st.lists(
    HOSTILE | st.text(st.characters(exclude_categories=["Cs"]), max_size=4), max_size=6
).map("".join)


@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(values=st.lists(VALUE, min_size=1, max_size=8))
@example(values=["line1\\'\nOWNED=1\n", "after"])  # the issue: \' and a newline made a variable
@example(values=["it's", "next"])  # a ' dropped this value and the next
@example(values=["ends with \\", "next"])  # so did a final backslash
@example(values=["${HOME}", "$(id)", "`id`", "a # b", "x=y", " spaced ", "naïve ✓"])
@example(values=["", "plain-Value_1.2/3:4@5%6+7,8=9", "multi\nline\n"])
def test_every_value_round_trips_through_every_reader_or_is_refused(
    values, tmp_path_factory, node_dotenv
):
    write_and_read_back(values, tmp_path_factory.mktemp("dotenv"), node_dotenv)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("a\x00b", "NUL"),
        ("a\rb", "carriage return"),
        ("${HOME}", "${…}"),
        ("C:\\\\share", "two backslashes"),
        ("ends with \\", "one at the end"),
        ("it's $5", "single quote together with"),
        ('it\'s "quoted"', "single quote together with"),
    ],
)
def test_values_no_quoting_carries_for_every_reader_are_refused(value, reason):
    assert reason in dotenv.problems({"K": value}, "dotenv")["K"]


def test_the_lightest_quoting_is_chosen():
    assert dotenv.encode({"A": "abc-1.2/3:4@5%6+7,8=9", "B": 'a b$`"#\n', "C": "it's"}) == (
        "A=abc-1.2/3:4@5%6+7,8=9\nB='a b$`\"#\n'\nC=\"it's\"\n"
    )


SHELL_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))


@settings(max_examples=30, derandomize=True, deadline=None, database=None)
@given(values=st.lists(SHELL_TEXT | VALUE.filter(lambda v: "\x00" not in v), max_size=8))
def test_shell_format_carries_any_value_but_nul(values, tmp_path_factory):
    given_values = {f"K{n}": value for n, value in enumerate(values)}
    assert not dotenv.problems(given_values, "shell")
    path = tmp_path_factory.mktemp("shell") / "values.env"
    path.write_bytes(dotenv.encode(given_values, "shell").encode("utf-8"))
    for shell in ("bash", "dash"):
        for read in posix_shell(shell, path, list(given_values)):
            assert read == {**given_values, SENTINEL: None}, shell


def test_python_dotenv_reads_the_environment_it_would_expand_from():
    """The property above is not vacuous: python-dotenv does replace ${HOME} in quotes."""
    assert os.environ.get("HOME")
    assert dotenv_values(stream=io.StringIO("A='${HOME}'\n"))["A"] != "${HOME}"

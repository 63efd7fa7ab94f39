"""What a resolve gives out, encoded: values as `.env` lines (`format=dotenv`) or POSIX shell
assignments (`format=shell`), JSON; the check report's payload; and the refusal of templates in
a wide encoding, whose references could not be seen.

Values as `.env` lines or shell assignments:

`format=dotenv` writes each value with the one quoting that every common reader reads back as
exactly that value: bash and dash (`set -a; . ./values.env`, `eval`), python-dotenv with its
default settings, and Node's dotenv. The readers disagree about everything but a small common
ground: python-dotenv decodes `\\\\` and `\\'` inside single quotes and replaces `${VAR}` in every
quoting; Node's dotenv reads a carriage return as a line break and keeps backslashes in double
quotes; a shell reads single quotes with no escapes at all. So a value is written

- bare when it is only ASCII letters, digits and `_ . / : @ % + , = -` (docker's `--env-file`,
  which takes a line literally to its end, reads these too);
- otherwise in single quotes, which every reader takes literally (newlines, `"`, `$`, `#`,
  backticks, a lone backslash) once the value holds no `'`, no `\\\\` and no final `\\`;
- otherwise (it holds a `'`) in double quotes, which every reader takes literally once the
  value holds no `"`, `$`, backtick or backslash.

A value none of these carries is refused with the reason (`dotenv_problem`), never written in a
form one of the readers would misread. `format=shell` (today's `KEY='value'` lines, `'` written
as `'\\''`) carries any value but a NUL byte, for a POSIX shell only. Token Keys are valid
variable names by their grammar, so keys are written as they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from lib.text import printable
from tokens.references.grammar import CheckReport

if TYPE_CHECKING:
    from tokens.models import UseContext

BARE = re.compile(r"[A-Za-z0-9_./:@%+,=-]*")
INTERPOLATED = re.compile(r"\$\{[^}]*\}")  # what python-dotenv would expand (and a little more)

NUL = "a NUL character, which no shell variable can hold"


def dotenv_problem(value: str) -> str:
    """Why `value` cannot be written so that every reader reads it exactly, or ""."""
    if "\x00" in value:
        return NUL
    if "\r" in value:
        return "a carriage return, which python-dotenv and Node's dotenv read as a line break"
    if INTERPOLATED.search(value):
        return "${…}, which python-dotenv replaces with a variable even inside quotes"
    if "\\\\" in value or value.endswith("\\"):
        return "two backslashes in a row or one at the end, which python-dotenv reads as an escape"
    if "'" in value and any(char in value for char in '"$`\\'):
        return 'a single quote together with ", $, ` or \\, which no quoting keeps for every reader'
    return ""


def dotenv_quote(value: str) -> str:
    """`value` quoted for every reader; call only when `dotenv_problem(value)` is ""."""
    if BARE.fullmatch(value):
        return value
    if "'" not in value:
        return f"'{value}'"
    return f'"{value}"'


def shell_problem(value: str) -> str:
    return NUL if "\x00" in value else ""


def shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


FORMATS: dict[str, tuple[Callable[[str], str], Callable[[str], str]]] = {
    "dotenv": (dotenv_problem, dotenv_quote),
    "shell": (shell_problem, shell_quote),
}


def problems(values: Mapping[str, str], format: str) -> dict[str, str]:
    """Each key whose value `format` cannot carry, with why (never the value itself)."""
    problem = FORMATS[format][0]
    return {key: reason for key, value in values.items() if (reason := problem(value))}


def encode(values: Mapping[str, str], format: str = "dotenv") -> str:
    """One `KEY=value` line per value; call only when `problems(values, format)` is empty."""
    quote = FORMATS[format][1]
    return "".join(f"{key}={quote(value)}\n" for key, value in values.items())


def refusal(refused: Mapping[str, str], format: str) -> str:
    """The 422 message: each refused key and why, and which format carries them."""
    listed = "; ".join(f"{key} holds {reason}" for key, reason in refused.items())
    if format == "dotenv":
        return (
            f"These values cannot be written as dotenv that bash, dash, python-dotenv and Node's "
            f"dotenv all read exactly: {listed}. Use format=shell (for a POSIX shell) or "
            "format=json."
        )
    return f"These values cannot be written for a shell: {listed}. Use format=json."


# --- templates and check reports, for `manage.py resolve` and the HTTP API -------------------

# Encodings that are not ASCII-compatible: their references could not be seen, so refuse them.
WIDE_BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}


def wide_encoding(data: bytes | bytearray) -> str | None:
    """The wide encoding ("UTF-16" or "UTF-32") `data`'s byte-order mark names, or None."""
    for bom, encoding in WIDE_BOMS.items():
        if data.startswith(bom):
            return encoding
    return None


def report_payload(report: CheckReport, context: UseContext) -> dict:
    """A check report as `resolve --format json` prints it (and the API returns it)."""
    return {
        "ok": report.ok,
        "source": printable(report.source),
        "workspace": context.environment.workspace.slug,
        "environment": context.environment.slug,
        "product": context.product.slug if context.product else None,
        "app": context.app.slug if context.app else None,
        "references": [
            {**status.as_dict(), "reference": printable(status.reference)}
            for status in report.references
        ],
    }

"""Reading a .env file into import entries, as python-dotenv reads it.

`read_source` turns what the user sent (pasted text or an uploaded file's bytes) into text, or
says why it cannot: too large, binary (NUL bytes), not UTF-8, too many lines. `parse_entries`
then walks python-dotenv's own parser (`dotenv.parser.parse_stream`: `export`, single and double
quotes, escapes, multi-line quoted values, comments) and checks each binding against the Token
Key and value rules of tokens/models.py, so a line the Tokens form would refuse is refused here
with the same words and its line number.

A line that is not a valid assignment (no `=`, a key the grammar refuses, nothing after the `=`
but `=` signs, as a line of base64 ends) is reported by its line number only: such a line is
often a piece of a secret (the body of an unquoted multi-line PEM key, a bare token), so its key
is left empty and its text never reaches the preview, a message or the audit trail. A value that
opens a `-----BEGIN …-----` block without its `-----END …-----` line was cut at the end of its
line (a multi-line value must be quoted) and is refused rather than imported truncated.

An entry holds its value only so the import can store it; nothing here renders, logs or raises
with a value in it.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from enum import StrEnum

from django.views.decorators.debug import sensitive_variables
from dotenv.parser import parse_stream

from tokens.models import key_grammar_error, value_errors

IMPORT_MAX_BYTES = 1024 * 1024  # 1 MiB: thousands of ordinary lines, nothing like a disk image
IMPORT_MAX_LINES = 5_000


# Resolving inserts a value once and never scans it again (tokens/references.py), and
# python-dotenv's own parser does not expand ${VAR}: both are kept as written, and said so.
SECRET_REFERENCE_NOTE = (
    "Its value contains $Secret{…}: kept as written. A token's value is never resolved, so "
    "this reference will not be replaced by the other token's value."
)
INTERPOLATION_NOTE = (
    "Its value contains ${…}: kept as written, not expanded from other lines or the environment."
)


NOT_AN_ASSIGNMENT = "Not a KEY=VALUE line (check its quotes)."
NO_VALUE = "No value: write KEY=VALUE."
BASE64_LINE = "Not a KEY=VALUE line: it ends in = signs, as a line of base64 does."
TRUNCATED_PEM = (
    "Its value opens a -----BEGIN …----- block without its -----END …----- line, so only the "
    "first line of a multi-line value was read: put the whole value in double quotes."
)
PEM_BEGIN = re.compile(r"-----BEGIN ([^\n-]+)-----")


def truncated_pem(value: str) -> bool:
    """Whether `value` opens a PEM block (-----BEGIN X-----) that it does not close."""
    return any(
        f"-----END {match[1]}-----" not in value[match.end() :]
        for match in PEM_BEGIN.finditer(value)
    )


class ImportRefused(ValueError):
    """The whole source is refused (nothing is imported); the message is safe to show."""


class EntryState(StrEnum):
    NEW = "new"
    EXISTS = "exists"
    INVALID = "invalid"


@dataclass
class Entry:
    """One binding of the file: where it is, its key, its value (never shown) and its fate."""

    line: int
    key: str
    value: str | None = field(default=None, repr=False)
    state: EntryState = EntryState.NEW
    reason: str = ""
    note: str = ""  # said beside an importable entry; never quotes the value
    where: str = ""  # an existing key: where its tokens the import would meet are valid
    tokens: list = field(default_factory=list, repr=False)  # those tokens' ids

    @property
    def importable(self) -> bool:
        return self.state in (EntryState.NEW, EntryState.EXISTS)


def size_message(size: int) -> str:
    return (
        f"The file is {size:,} bytes; an import takes at most 1 MiB ({IMPORT_MAX_BYTES:,} bytes). "
        "Split it into smaller files."
    )


@sensitive_variables("data", "text")
def read_source(data: bytes | str) -> str:
    """The text of a pasted or uploaded .env file; ImportRefused says why it cannot be one."""
    raw = data.encode("utf-8", errors="surrogatepass") if isinstance(data, str) else data
    if len(raw) > IMPORT_MAX_BYTES:
        raise ImportRefused(size_message(len(raw)))
    if b"\x00" in raw:
        raise ImportRefused(
            "The file contains NUL bytes: it looks like a binary file, not a .env file. "
            "Nothing was imported."
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportRefused(
            f"The file is not UTF-8 text (the first invalid byte is at position "
            f"{error.start:,}). Save it as UTF-8 and try again. Nothing was imported."
        ) from None
    lines = text.count("\n") + 1
    if lines > IMPORT_MAX_LINES:
        raise ImportRefused(
            f"The file has {lines:,} lines; an import takes at most {IMPORT_MAX_LINES:,}. "
            "Split it into smaller files. Nothing was imported."
        )
    if not text.strip():
        raise ImportRefused("The file is empty: paste KEY=VALUE lines or choose a .env file.")
    return text


def first_line(original: str, line: int) -> int:
    """The line a binding's text starts on: python-dotenv counts from the blank lines before
    it, which its original string includes."""
    blank = original[: len(original) - len(original.lstrip())]
    return line + blank.count("\n")


@sensitive_variables("key", "value")
def malformed_reason(key: str | None, value: str | None, error: bool, *, quoted: bool) -> str:
    """Why a binding is not a valid KEY=VALUE assignment (its text is not to be shown), or "".
    A quoted value is what the user meant, even one of = signs only."""
    if error or key is None:
        return NOT_AN_ASSIGNMENT
    if problem := key_grammar_error(key):
        return problem
    if value is None:
        return NO_VALUE
    if not value:
        return value_errors(value, required=True)["value"][0]
    if not quoted and not value.strip("="):
        return BASE64_LINE
    return ""


@sensitive_variables("text", "binding", "entries")
def parse_entries(text: str) -> list[Entry]:
    """One entry per binding of `text` (comments and blank lines left out), in file order.

    A key given twice keeps its last value, as python-dotenv does; the earlier lines say so.
    """
    entries: list[Entry] = []
    for binding in parse_stream(io.StringIO(text)):
        line = first_line(binding.original.string, binding.original.line)
        if binding.key is None and not binding.error:  # a comment or a blank line
            continue
        quoted = binding.original.string.partition("=")[2].lstrip()[:1] in ("'", '"')
        if malformed := malformed_reason(binding.key, binding.value, binding.error, quoted=quoted):
            # Reported by its line number only: the "key" may be a piece of a secret.
            entries.append(Entry(line, key="", state=EntryState.INVALID, reason=malformed))
            continue
        assert binding.key is not None and binding.value is not None
        entry = Entry(line, key=binding.key, value=binding.value)
        if errors := value_errors(binding.value, required=True).get("value"):
            entry.state, entry.reason, entry.value = EntryState.INVALID, errors[0], None
        elif truncated_pem(binding.value):
            entry.state, entry.reason, entry.value = EntryState.INVALID, TRUNCATED_PEM, None
        elif "$Secret{" in binding.value:
            entry.note = SECRET_REFERENCE_NOTE
        elif "${" in binding.value:
            entry.note = INTERPOLATION_NOTE
        entries.append(entry)
    last_line: dict[str, int] = {}
    for entry in entries:
        if entry.state is not EntryState.INVALID:
            last_line[entry.key] = entry.line
    for entry in entries:
        if entry.state is not EntryState.INVALID and last_line[entry.key] != entry.line:
            entry.state, entry.value = EntryState.INVALID, None
            entry.reason = f"{entry.key} is set again on line {last_line[entry.key]}, which wins."
    return entries

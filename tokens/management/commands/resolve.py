"""`manage.py resolve`: replace `$Secret{KEY}` references with token values, for pipelines.

The contract (exit codes, error lines, byte-exact output) is in the help text below and in the
README; tests/test_resolve_command.py holds it in place.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, DjangoHelpFormatter
from django.db import DatabaseError

from tokens.models import UseContext
from tokens.references import (
    CheckReport,
    ResolveError,
    check_text,
    decode_template,
    encode_output,
    printable,
    report_payload,
    resolve_text,
    wide_encoding,
)
from workspaces.models import Workspace

OK, UNRESOLVED, USAGE = 0, 1, 2
ACTOR_MAX_LENGTH = 150
STDIN = "<stdin>"

HELP = """\
Replace every $Secret{KEY} reference in FILE (or stdin) with its token's value in the given
workspace, environment and optional product/app, and write the result to stdout or --output.

Fail closed: if any reference cannot be resolved, nothing is written, every problem is listed
on stderr as SOURCE:LINE:COL: $Secret{KEY}: REASON, and the exit status is 1. $$Secret{ writes
a literal $Secret{. Values are inserted verbatim; all other bytes are kept exactly (encoding,
CRLF line endings, a missing final newline). Each successful run marks the tokens used and
writes one audit event (keys and context, never values) before any output.

exit status:
  0  resolved (with --check: every reference would resolve)
  1  a reference cannot be resolved, or the resolve failed (nothing was written)
  2  bad arguments, unreadable input or unwritable --output, or an unknown workspace,
     environment, product or app

example:
  cat app.yaml.tmpl | python manage.py resolve --workspace acme --environment production \\
      --app checkout > app.yaml
"""


class HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's option order, with the description's line breaks kept."""


def usage_error(message: str) -> CommandError:
    return CommandError(message, returncode=USAGE)


class Command(BaseCommand):
    help = HELP
    stealth_options = ("stdin",)  # a binary stream instead of sys.stdin (for tests)
    # Nothing here depends on the web stack's configuration; skipping the checks keeps a
    # pipeline step close to Django's start-up floor.
    requires_system_checks = []

    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> argparse.ArgumentParser:
        kwargs.setdefault("formatter_class", HelpFormatter)
        parser = super().create_parser(prog_name, subcommand, **kwargs)

        def error(message: str):
            if parser.called_from_command_line:
                parser.print_usage(sys.stderr)
                parser.exit(USAGE, f"{parser.prog}: error: {message}\n")
            raise usage_error(f"Error: {message}")

        parser.error = error  # bad arguments exit 2, also through call_command
        return parser

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "file", nargs="?", metavar="FILE", help="The template; - or none: stdin."
        )
        parser.add_argument("--workspace", required=True, metavar="SLUG", help="Its slug.")
        parser.add_argument(
            "--environment", required=True, metavar="SLUG", help="Where the result is used."
        )
        parser.add_argument("--product", metavar="SLUG", help="The product using the result.")
        parser.add_argument("--app", metavar="SLUG", help="The app using the result.")
        parser.add_argument(
            "--output",
            metavar="PATH",
            help="Write here instead of stdout: atomically (temporary file + rename), mode 0600.",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="Print each distinct reference's status and a summary, never a value.",
        )
        parser.add_argument(
            "--format",
            choices=["text", "json"],
            default="text",
            help='The --check report\'s format; "json" implies --check.',
        )
        parser.add_argument(
            "--actor",
            metavar="NAME",
            help="Who the audit event names (default: the operating-system user).",
        )

    def handle(self, *args, **options) -> None:
        try:
            self.run(options)
        except DatabaseError as error:
            raise CommandError(
                f"Database error: {error}. Nothing was written.", returncode=UNRESOLVED
            ) from None

    def run(self, options: dict) -> None:
        check = options["check"] or options["format"] == "json"
        if check and options["output"]:
            raise usage_error("--output cannot be used with --check (a check writes no values).")
        actor = self.actor(options["actor"])
        context = self.context(options)
        source, data = self.read(options["file"], options.get("stdin"))
        text = decode_template(data)  # every byte survives the round trip
        if check:
            self.report(check_text(text, context, source=source), context, options["format"])
            return
        output = AtomicFile(options["output"]) if options["output"] else None
        try:
            resolved = resolve_text(text, context, source=source, actor=actor)
            result = encode_output(resolved)
            if output is not None:
                output.commit(result)
        except ResolveError as error:
            for problem in error.problems:
                self.stderr.write(printable(str(problem)), style_func=str)
            raise CommandError(str(error.args[0]), returncode=UNRESOLVED) from None
        finally:
            if output is not None:
                output.discard()
        if output is None:
            self.write_stdout(result)

    # --- arguments ------------------------------------------------------------------------

    def actor(self, name: str | None) -> str:
        if name is None:
            try:
                return getpass.getuser()[:ACTOR_MAX_LENGTH]
            except OSError:  # no login name anywhere (e.g. an anonymous container user)
                return f"uid {os.getuid()}"
        if not name.strip():
            raise usage_error("--actor must not be empty.")
        if not name.isprintable():
            raise usage_error("--actor must be printable text (no control characters).")
        if len(name) > ACTOR_MAX_LENGTH:
            raise usage_error(f"--actor has at most {ACTOR_MAX_LENGTH} characters.")
        return name

    def context(self, options: dict) -> UseContext:
        slug = options["workspace"]
        workspace = Workspace.objects.filter(slug=slug).first()
        if workspace is None:
            raise usage_error(f'Workspace "{slug}" not found.')
        environment = self.catalog_item(workspace, "environment", options["environment"])
        return UseContext(
            environment=environment,
            product=self.catalog_item(workspace, "product", options["product"]),
            app=self.catalog_item(workspace, "app", options["app"]),
        )

    def catalog_item(self, workspace: Workspace, kind: str, slug: str | None):
        if slug is None:
            return None
        items = {item.slug: item for item in getattr(workspace, f"{kind}s").all()}
        if slug in items:
            return items[slug]
        known = ", ".join(sorted(items)) or "none"
        raise usage_error(
            f'{kind.capitalize()} "{slug}" not found in workspace {workspace.slug} '
            f"(its {kind}s: {known})."
        )

    def read(self, file: str | None, stdin) -> tuple[str, bytes]:
        if file is None or file == "-":
            source = STDIN
            stdin = stdin or sys.stdin.buffer
            if file is None and stdin.isatty():
                raise usage_error(
                    "No template given: name a FILE or pipe one in (FILE - reads the terminal)."
                )
            data = stdin.read()
        else:
            source = file
            try:
                data = Path(file).read_bytes()
            except OSError as error:
                raise usage_error(f"Cannot read {file}: {error.strerror}.") from None
        if encoding := wide_encoding(data):
            raise usage_error(
                f"{source} is {encoding} text; resolve reads UTF-8 or another "
                "ASCII-compatible encoding."
            )
        return source, data

    # --- output ---------------------------------------------------------------------------

    def write_stdout(self, data: bytes) -> None:
        stream = self.stdout._out
        binary = getattr(stream, "buffer", stream)
        try:
            stream.flush()
            binary.write(data)
            binary.flush()
        except BrokenPipeError:
            raise CommandError(
                "stdout was closed before all the output was written.", returncode=UNRESOLVED
            ) from None

    def report(self, report: CheckReport, context: UseContext, format: str) -> None:
        failed = [status for status in report.references if not status.ok]
        if format == "json":
            self.stdout.write(json.dumps(report_payload(report, context), indent=2))
        else:
            source = printable(report.source)
            for status in report.references:
                self.stdout.write(
                    f"{source}:{status.line}:{status.column}: {printable(status.reference)}: "
                    f"{status.reason or 'ok'}",
                    style_func=str,
                )
            self.stdout.write(summary(report, failed), style_func=str)
        if failed:
            raise CommandError(summary(report, failed), returncode=UNRESOLVED)


def summary(report: CheckReport, failed: list) -> str:
    distinct = len(report.references)
    occurrences = sum(status.occurrences for status in report.references)
    counted = (
        f"{distinct} distinct reference{'s' if distinct != 1 else ''} "
        f"({occurrences} occurrence{'s' if occurrences != 1 else ''})"
    )
    if failed:
        return f"{counted}: {len(failed)} cannot be resolved."
    return f"{counted}: all resolve." if distinct else "No references."


class AtomicFile:
    """A file written whole or not at all: a 0600 temporary file beside it, then a rename.

    The temporary file is made up front, so an unwritable destination is reported (exit 2)
    before anything is resolved, audited or marked used.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise usage_error(f"--output {path} is a directory.")
        try:
            fd, temporary = tempfile.mkstemp(
                dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
            )
        except OSError as error:
            raise usage_error(f"Cannot write --output {path}: {error.strerror}.") from None
        self.temporary: Path | None = Path(temporary)
        self.handle = os.fdopen(fd, "wb")
        os.fchmod(fd, 0o600)

    def commit(self, data: bytes) -> None:
        try:
            self.handle.write(data)
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
            os.replace(self.temporary, self.path)
        except OSError as error:
            raise CommandError(
                f"Cannot write --output {self.path}: {error.strerror}; it was left unchanged.",
                returncode=UNRESOLVED,
            ) from None
        self.temporary = None

    def discard(self) -> None:
        """Remove the temporary file unless it was committed (safe to call twice)."""
        if not self.handle.closed:
            self.handle.close()
        if self.temporary is not None:
            self.temporary.unlink(missing_ok=True)
            self.temporary = None

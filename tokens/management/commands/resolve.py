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
from collections.abc import Iterable
from typing import IO, Any, NoReturn, cast

from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    DjangoHelpFormatter,
)
from django.db import DatabaseError

from lib.commands import USAGE, usage_error
from lib.files import AtomicFile
from lib.text import printable
from tokens.cli import every_environment, use_context
from tokens.models import UseContext
from tokens.references.grammar import CheckReport, ResolveError
from tokens.references.output import report_payload, wide_encoding
from tokens.references.resolve import Audience, Request, check_text, resolve_pieces

OK, UNRESOLVED = 0, 1
ACTOR_MAX_LENGTH = 150
STDIN = "<stdin>"
MAX_BYTES = 64 * 1024 * 1024  # the default --max-bytes
# The default --max-output-bytes: four times the largest template it takes by default. The
# output is streamed (to stdout or the file), so this guards the disk more than the memory.
MAX_OUTPUT_BYTES = 4 * MAX_BYTES
READ_CHUNK = 1024 * 1024
PROBLEM_LINES = 1_000  # problem lines printed at most; then one line counts the rest

HELP = """\
Replace every $Secret{KEY} reference in FILE (or stdin) with its token's value in the given
workspace, environment and optional product/app, and write the result to stdout or --output.

Fail closed: if any reference cannot be resolved, nothing is written, every problem is listed
on stderr as SOURCE:LINE:COL: $Secret{KEY}: REASON, and the exit status is 1. $$Secret{ writes
a literal $Secret{. Values are inserted verbatim; all other bytes are kept exactly (encoding,
CRLF line endings, a missing final newline). Each successful run marks the tokens used and
writes one audit event (keys and context, never values) before any output.

--check --all-environments checks the template in every environment of the workspace at once
and lists, per environment, every reference that would fail and why (never a value).

exit status:
  0  resolved (with --check: every reference would resolve, in every environment asked)
  1  a reference cannot be resolved, the output would be over --max-output-bytes, or the
     resolve failed (nothing was written)
  2  bad arguments, unreadable input or input over --max-bytes, an empty or unwritable
     --output or one that is not a regular file (a link, device, FIFO, socket, directory),
     or an unknown workspace, environment, product or app

At most 1,000 problem lines are printed, then a count of the rest. Control characters in
anything echoed (references, file names, arguments) are shown escaped, e.g. \\x1b.

examples:
  cat app.yaml.tmpl | python manage.py resolve --workspace acme --environment production \\
      --app checkout > app.yaml
  python manage.py resolve app.yaml.tmpl --workspace acme --app checkout --check \\
      --all-environments
"""


class HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's option order, with the description's line breaks kept."""


def byte_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of bytes") from None
    if count < 1:
        raise argparse.ArgumentTypeError("it must be at least 1")
    return count


class Command(BaseCommand):
    help = HELP
    stealth_options = ("stdin",)  # a binary stream instead of sys.stdin (for tests)
    # Nothing here depends on the web stack's configuration; skipping the checks keeps a
    # pipeline step close to Django's start-up floor.
    requires_system_checks = []

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault("formatter_class", HelpFormatter)
        parser = super().create_parser(prog_name, subcommand, **kwargs)

        def error(message: str) -> NoReturn:
            if parser.called_from_command_line:
                parser.print_usage(sys.stderr)
                parser.exit(USAGE, printable(f"{parser.prog}: error: {message}") + "\n")
            raise usage_error(f"Error: {message}")

        parser.error = error  # type: ignore[method-assign]  # bad arguments exit 2, also through call_command
        return parser

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "file", nargs="?", metavar="FILE", help="The template; - or none: stdin."
        )
        parser.add_argument("--workspace", required=True, metavar="SLUG", help="Its slug.")
        parser.add_argument("--environment", metavar="SLUG", help="Where the result is used.")
        parser.add_argument("--product", metavar="SLUG", help="The product using the result.")
        parser.add_argument("--app", metavar="SLUG", help="The app using the result.")
        parser.add_argument(
            "--output",
            metavar="PATH",
            help="Write here instead of stdout: atomically (temporary file + rename), mode "
            "0600. Only a new path or an existing regular file.",
        )
        parser.add_argument(
            "--max-bytes",
            type=byte_count,
            default=MAX_BYTES,
            metavar="N",
            help=f"Refuse a template larger than N bytes (default {MAX_BYTES} = 64 MiB).",
        )
        parser.add_argument(
            "--max-output-bytes",
            type=byte_count,
            default=MAX_OUTPUT_BYTES,
            metavar="N",
            help=f"Refuse, before decrypting anything, a resolve whose output would be larger "
            f"than N bytes (default {MAX_OUTPUT_BYTES} = 256 MiB).",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="Print each distinct reference's status and a summary, never a value.",
        )
        parser.add_argument(
            "--all-environments",
            action="store_true",
            help="With --check, instead of --environment: check the template in every "
            "environment of the workspace (with --product/--app if given) and list, per "
            "environment, every reference that would fail and why.",
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
                printable(f"Database error: {error}. Nothing was written."), returncode=UNRESOLVED
            ) from None

    def run(self, options: dict) -> None:
        check = options["check"] or options["format"] == "json"
        if check and options["output"] is not None:
            raise usage_error("--output cannot be used with --check (a check writes no values).")
        if options["output"] is not None and not options["output"].strip():
            raise usage_error("--output must name a file (it is empty).")
        actor = self.actor(options["actor"])
        if options["all_environments"]:
            if not check:
                raise usage_error("--all-environments only checks: add --check.")
            if options["environment"] is not None:
                raise usage_error("--all-environments cannot be used with --environment.")
            contexts = every_environment(options["workspace"], options["product"], options["app"])
            source, data = self.read(options["file"], options.get("stdin"), options["max_bytes"])
            self.report_all(source, data, contexts, options["format"])
            return
        if options["environment"] is None:
            raise usage_error(
                "the following arguments are required: --environment "
                "(or --all-environments with --check)"
            )
        context = self.context(options)
        # The file's bytes, never decoded whole: every byte survives, and a large template costs
        # about its own size in memory, not several times it.
        source, data = self.read(options["file"], options.get("stdin"), options["max_bytes"])
        if check:
            report = check_text(data, context, source=source, audience=Audience.OPERATOR)
            self.report(report, context, options["format"])
            return
        output = AtomicFile(options["output"]) if options["output"] is not None else None
        try:
            request = Request(
                context,
                source,
                actor,
                audience=Audience.OPERATOR,
                max_output=options["max_output_bytes"],
            )
            pieces = resolve_pieces(data, request)
            if output is not None:
                for piece in pieces:
                    output.write(piece)
                output.commit()
        except ResolveError as error:
            self.print_problems(error.problems, error.problem_count)
            raise CommandError(str(error.args[0]), returncode=UNRESOLVED) from None
        finally:
            if output is not None:
                output.discard()
        if output is None:
            self.write_stdout(pieces)

    def print_problems(self, problems: list, count: int) -> None:
        shown = problems[:PROBLEM_LINES]
        for problem in shown:
            self.stderr.write(printable(str(problem)), style_func=str)
        if (rest := count - len(shown)) > 0:
            self.stderr.write(
                f"... and {rest:,} more problem{'s' if rest != 1 else ''} not shown.",
                style_func=str,
            )

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
        return use_context(
            options["workspace"], options["environment"], options["product"], options["app"]
        )

    def read(self, file: str | None, stdin, limit: int) -> tuple[str, bytearray]:
        if file is None or file == "-":
            source = STDIN
            stdin = stdin or sys.stdin.buffer
            if file is None and stdin.isatty():
                raise usage_error(
                    "No template given: name a FILE or pipe one in (FILE - reads the terminal)."
                )
            data = read_at_most(stdin, limit, source)
        else:
            source = file
            try:
                with open(file, "rb") as stream:
                    data = read_at_most(stream, limit, source)
            except OSError as error:
                raise usage_error(f"Cannot read {file}: {error.strerror}.") from None
        if encoding := wide_encoding(data):
            raise usage_error(
                f"{source} is {encoding} text; resolve reads UTF-8 or another "
                "ASCII-compatible encoding."
            )
        return source, data

    # --- output ---------------------------------------------------------------------------

    def write_stdout(self, pieces: Iterable[bytes]) -> None:
        # The wrapped stream (text, or binary in tests), which its stub does not declare.
        stream = cast(IO[Any], self.stdout._out)
        binary = getattr(stream, "buffer", stream)
        try:
            stream.flush()
            for piece in pieces:
                binary.write(piece)
            binary.flush()
        except BrokenPipeError:
            raise CommandError(
                "stdout was closed before all the output was written.", returncode=UNRESOLVED
            ) from None

    def report_all(
        self, source: str, data: bytearray, contexts: list[UseContext], format: str
    ) -> None:
        """--check --all-environments: per environment, every reference that would fail and
        why (never a value); exit 1 when any environment has one."""
        reports = [
            (context, check_text(data, context, source=source, audience=Audience.OPERATOR))
            for context in contexts
        ]
        failing = [context.environment.slug for context, report in reports if not report.ok]
        if format == "json":
            payload = {
                "ok": not failing,
                "source": printable(source),
                "workspace": contexts[0].environment.workspace.slug if contexts else None,
                "environments": [report_payload(report, context) for context, report in reports],
            }
            self.stdout.write(json.dumps(payload, indent=2))
        else:
            for context, report in reports:
                prefix = f"{printable(context.environment.slug)}: "
                for line in failure_lines(report, prefix):
                    self.stdout.write(line, style_func=str)
                failed = [status for status in report.references if not status.ok]
                self.stdout.write(prefix + summary(report, failed), style_func=str)
        if failing:
            raise CommandError(
                f"{len(failing)} of {len(reports)} environments cannot resolve every reference: "
                f"{', '.join(map(printable, failing))}.",
                returncode=UNRESOLVED,
            )
        if not reports:
            raise usage_error("The workspace has no environments.")

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


def failure_lines(report: CheckReport, prefix: str = "") -> list[str]:
    source = printable(report.source)
    return [
        f"{prefix}{source}:{status.line}:{status.column}: {printable(status.reference)}: "
        f"{status.reason}"
        for status in report.references
        if not status.ok
    ]


def read_at_most(stream, limit: int, source: str) -> bytearray:
    """The stream's bytes, read in chunks; a usage error past `limit` bytes, found by reading
    at most one byte more (an endless /dev/zero stops there)."""
    data = bytearray()
    while len(data) <= limit:
        chunk = stream.read(min(READ_CHUNK, limit + 1 - len(data)))
        if not chunk:
            return data
        data += chunk
    raise usage_error(
        f"{source} is larger than --max-bytes {limit:,} bytes; nothing was read further or "
        "written (raise --max-bytes for a larger template)."
    )


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

"""`manage.py resolve`: its contract for pipelines (exit codes, error lines, exact bytes)."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import getpass
import io
import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from tests.api_helpers import audit_insert_fails
from tests.factories import AppFactory, ProductFactory, TokenFactory
from tokens.management.commands.resolve import Command
from tokens.models import Token

VALUE = "s3cret-value-for-tests-0001"
CONTEXT = ["--workspace", "acme", "--environment", "production"]


@dataclass
class Result:
    code: int
    out: bytes
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


def run(*args: str, stdin: bytes = b"") -> Result:
    """Run the command as a pipeline would; `err` ends with the CommandError's message."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="")
    err = io.StringIO()
    code = 0
    try:
        call_command("resolve", *args, stdin=io.BytesIO(stdin), stdout=out, stderr=err)
    except CommandError as error:
        code = error.returncode
        err.write(f"CommandError: {error}\n")
    out.flush()
    return Result(code, out.buffer.getvalue(), err.getvalue())


@pytest.fixture
def token(workspace):
    return TokenFactory(workspace=workspace, key="DB_PASSWORD", value=VALUE)


def resolved_events():
    return AuditEvent.objects.filter(action=AuditAction.RESOLVED)


# --- success -----------------------------------------------------------------------------------


@pytest.mark.parametrize("file_args", [[], ["-"]])
def test_reads_stdin_and_writes_the_resolved_text_to_stdout(token, file_args):
    result = run(*file_args, *CONTEXT, stdin=b"password: $Secret{DB_PASSWORD}\n")
    assert result == Result(0, f"password: {VALUE}\n".encode(), "")


def test_reads_the_named_file(token, tmp_path):
    template = tmp_path / "app.yaml.tmpl"
    template.write_bytes(b"db: $Secret{DB_PASSWORD}")
    result = run(str(template), *CONTEXT)
    assert (result.code, result.out) == (0, f"db: {VALUE}".encode())
    assert resolved_events().get().detail["source"] == str(template)


def test_every_other_byte_is_kept_exactly(token):
    template = (
        b"\xef\xbb\xbf# caf\xc3\xa9 \xe2\x9c\x93\r\n"  # UTF-8 BOM, non-ASCII, CRLF
        b"latin1: caf\xe9 \xff\xfe\r\n"  # bytes that are not UTF-8
        b"tab\there: $Secret{DB_PASSWORD}\r\n"
        b"escaped: $$Secret{DB_PASSWORD}\r\n"
        b"no final newline"
    )
    expected = template.replace(b"$Secret{DB_PASSWORD}", VALUE.encode(), 1).replace(
        b"$$Secret{", b"$Secret{"
    )
    result = run(*CONTEXT, stdin=template)
    assert (result.code, result.out) == (0, expected)


def test_text_without_references_passes_through_byte_for_byte(workspace):
    data = bytes(range(256)) * 4
    result = run(*CONTEXT, stdin=data[2:])  # not starting with a UTF-16 byte-order mark
    assert (result.code, result.out) == (0, data[2:])


def test_values_are_inserted_verbatim_and_never_rescanned(workspace):
    TokenFactory(workspace=workspace, key="A", value="$Secret{B} \\1 \\g<0> ${x} {}")
    TokenFactory(workspace=workspace, key="B", value="ünïcode ✓ value\r\n")
    result = run(*CONTEXT, stdin=b"a=$Secret{A};b=$Secret{B}")
    expected = "a=$Secret{B} \\1 \\g<0> ${x} {};b=ünïcode ✓ value\r\n".encode()
    assert (result.code, result.out) == (0, expected)


def test_product_and_app_select_scoped_tokens(workspace):
    checkout = ProductFactory(workspace=workspace, slug="checkout")
    web = AppFactory(workspace=workspace, slug="web")
    TokenFactory(workspace=workspace, key="P", value="product-value", products=[checkout])
    TokenFactory(workspace=workspace, key="A", value="app-value", apps=[web])
    text = b"$Secret{P} $Secret{A}"
    result = run(*CONTEXT, "--product", "checkout", "--app", "web", stdin=text)
    assert (result.code, result.out) == (0, b"product-value app-value")


def test_success_marks_tokens_used_and_audits_keys_and_context_never_values(token, workspace):
    unused = TokenFactory(workspace=workspace, key="UNUSED")
    result = run(*CONTEXT, "--actor", "ci-pipeline", stdin=b"$Secret{DB_PASSWORD}" * 3)
    assert result.code == 0
    token.refresh_from_db()
    unused.refresh_from_db()
    assert token.last_used_at is not None
    assert unused.last_used_at is None
    event = resolved_events().get()
    assert event.actor_name == "ci-pipeline"
    assert event.detail == {
        "keys": ["DB_PASSWORD"],
        "references": 3,
        "environment": "production",
        "product": None,
        "app": None,
        "source": "<stdin>",
    }
    assert VALUE not in json.dumps([event.actor_name, event.token_key, event.detail])


def test_actor_defaults_to_the_operating_system_user(token):
    assert run(*CONTEXT, stdin=b"$Secret{DB_PASSWORD}").code == 0
    assert resolved_events().get().actor_name == getpass.getuser()


def test_audit_event_is_written_before_any_output(token):
    seen = []
    original = Command.write_stdout

    def spy(command, data):
        seen.append(resolved_events().count())
        original(command, data)

    with mock.patch.object(Command, "write_stdout", spy):
        assert run(*CONTEXT, stdin=b"$Secret{DB_PASSWORD}").code == 0
    assert seen == [1]


def test_audit_failure_fails_the_resolve_with_nothing_output(token, tmp_path):
    target = tmp_path / "out.yaml"
    with audit_insert_fails("disk full"):
        to_stdout = run(*CONTEXT, stdin=b"$Secret{DB_PASSWORD}")
        to_file = run(*CONTEXT, "--output", str(target), stdin=b"$Secret{DB_PASSWORD}")
    for result in (to_stdout, to_file):
        assert (result.code, result.out) == (1, b"")
        assert "audit event could not be written" in result.err
        assert VALUE not in result.err
    assert list(tmp_path.iterdir()) == []
    token.refresh_from_db()
    assert token.last_used_at is None


def test_wrong_master_key_fails_with_nothing_output(token, settings):
    settings.COFFER_MASTER_KEYS = "other:" + base64.b64encode(b"k" * 32).decode()
    result = run(*CONTEXT, stdin=b"$Secret{DB_PASSWORD}")
    assert (result.code, result.out) == (1, b"")
    assert "master key 'test1' is not in the key ring" in result.err
    assert not resolved_events().exists()


def test_database_error_exits_1_with_a_message(token):
    with mock.patch.object(Command, "context", side_effect=OperationalError("database is locked")):
        result = run(*CONTEXT, stdin=b"$Secret{DB_PASSWORD}")
    assert (result.code, result.out) == (1, b"")
    assert result.err_lines == [
        "CommandError: Database error: database is locked. Nothing was written."
    ]


# --- failure: exit 1, every problem, nothing written ------------------------------------------


@pytest.fixture
def troubled(workspace):
    """One token per reason a reference can fail, and one that works."""
    production = workspace.environments.get(slug="production")
    checkout = ProductFactory(workspace=workspace, slug="checkout")
    ProductFactory(workspace=workspace, slug="billing")
    TokenFactory(workspace=workspace, key="GOOD", value=VALUE)
    TokenFactory(workspace=workspace, key="REVOKED").revoke()
    expired = TokenFactory(workspace=workspace, key="EXPIRED")
    Token.objects.filter(pk=expired.pk).update(
        expires_at=dt.datetime(2026, 1, 2, 0, 0, tzinfo=dt.UTC)
    )
    sandbox_only = workspace.environments.get(slug="sandbox")
    TokenFactory(workspace=workspace, key="SANDBOX_ONLY", environments=[sandbox_only])
    TokenFactory(workspace=workspace, key="SCOPED", products=[checkout], environments=[production])


TROUBLED_TEMPLATE = (
    b"good: $Secret{GOOD}\n"
    b"unknown: $Secret{MISSING}\n"
    b"revoked: $Secret{REVOKED}\r\n"
    b"expired: $Secret{EXPIRED}\n"
    b"env: $Secret{SANDBOX_ONLY}\n"
    b"scope: $Secret{SCOPED}\n"
    b"bad: $Secret{bad key} $Secret{} $Secret{9X} caf\xc3\xa9 $Secret{REVOKED}\n"
    b"unclosed: $Secret{FOO"
)


def test_every_problem_is_listed_on_stderr_in_the_exact_format(troubled, tmp_path):
    template = tmp_path / "app.tmpl"
    template.write_bytes(TROUBLED_TEMPLATE)
    result = run(str(template), *CONTEXT, "--product", "billing")
    assert (result.code, result.out) == (1, b"")
    assert result.err_lines == [
        f"{template}:2:10: $Secret{{MISSING}}: unknown token",
        f"{template}:3:10: $Secret{{REVOKED}}: token revoked in production",
        f"{template}:4:10: $Secret{{EXPIRED}}: token expired on 2026-01-02 00:00:00 UTC"
        " in production",
        f"{template}:5:6: $Secret{{SANDBOX_ONLY}}: not valid in environment production"
        " (valid in sandbox)",
        f"{template}:6:8: $Secret{{SCOPED}}: not in scope for billing (scoped to checkout)",
        f"{template}:7:6: $Secret{{bad key}}: malformed reference",
        f"{template}:7:23: $Secret{{}}: malformed reference",
        f"{template}:7:33: $Secret{{9X}}: malformed reference",
        f"{template}:7:50: $Secret{{REVOKED}}: token revoked in production",
        f"{template}:8:11: $Secret{{FOO: malformed reference",
        "CommandError: 10 references cannot be resolved; nothing was output.",
    ]
    assert VALUE not in result.err
    assert not resolved_events().exists()


def test_stdin_problems_name_stdin_as_the_source(troubled):
    result = run(*CONTEXT, stdin=b"x\n  $Secret{SCOPED}")
    reason = "not in scope: no product or app given (scoped to checkout)"
    assert result.err_lines[0] == f"<stdin>:2:3: $Secret{{SCOPED}}: {reason}"


def test_not_in_scope_names_both_product_and_app(troubled, workspace):
    AppFactory(workspace=workspace, slug="mobile")
    result = run(*CONTEXT, "--product", "billing", "--app", "mobile", stdin=b"$Secret{SCOPED}")
    assert (
        result.err_lines[0]
        == "<stdin>:1:1: $Secret{SCOPED}: not in scope for billing, mobile (scoped to checkout)"
    )


def test_undecodable_bytes_in_a_malformed_reference_are_shown_escaped(workspace):
    result = run(*CONTEXT, stdin=b"$Secret{caf\xe9}")
    assert result.err_lines[0] == "<stdin>:1:1: $Secret{caf\\xe9}: malformed reference"


def test_failure_leaves_an_existing_output_file_untouched(troubled, tmp_path):
    target = tmp_path / "app.yaml"
    target.write_bytes(b"previous good config\n")
    target.chmod(0o640)
    before = target.stat()
    result = run(*CONTEXT, "--output", str(target), stdin=b"$Secret{GOOD} $Secret{REVOKED}")
    assert result.code == 1
    assert target.read_bytes() == b"previous good config\n"
    assert target.stat().st_mtime_ns == before.st_mtime_ns
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert list(tmp_path.iterdir()) == [target]


def test_failure_creates_no_output_file(troubled, tmp_path):
    target = tmp_path / "app.yaml"
    result = run(*CONTEXT, "--output", str(target), stdin=b"$Secret{MISSING}")
    assert result.code == 1
    assert list(tmp_path.iterdir()) == []


# --- --output ----------------------------------------------------------------------------------


def test_output_is_written_atomically_with_mode_0600(token, tmp_path):
    target = tmp_path / "app.yaml"
    target.write_bytes(b"old")
    target.chmod(0o644)
    replaced = []
    original = os.replace

    def spy(source, destination):
        replaced.append((Path(source).parent, stat.S_IMODE(os.stat(source).st_mode)))
        original(source, destination)

    with mock.patch("os.replace", spy):
        result = run(*CONTEXT, "--output", str(target), stdin=b"db: $Secret{DB_PASSWORD}\n")
    assert (result.code, result.out, result.err) == (0, b"", "")
    assert replaced == [(tmp_path, 0o600)]  # a complete temporary file beside it, renamed
    assert target.read_bytes() == f"db: {VALUE}\n".encode()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert list(tmp_path.iterdir()) == [target]


def test_unwritable_output_is_refused_before_anything_is_resolved(token, tmp_path):
    result = run(
        *CONTEXT, "--output", str(tmp_path / "missing" / "app.yaml"), stdin=b"$Secret{DB_PASSWORD}"
    )
    assert result.code == 2
    assert "Cannot write --output" in result.err
    assert not resolved_events().exists()
    result = run(*CONTEXT, "--output", str(tmp_path), stdin=b"$Secret{DB_PASSWORD}")
    assert (result.code, result.err_lines) == (
        2,
        [
            f"CommandError: --output {tmp_path} is a directory; "
            "only a new path or a regular file is written."
        ],
    )


# --- --check and --format json -----------------------------------------------------------------


def test_check_lists_each_distinct_reference_and_a_summary_without_values(token):
    text = b"a: $Secret{DB_PASSWORD}\nb: $Secret{DB_PASSWORD}\n"
    result = run(*CONTEXT, "--check", stdin=text)
    assert result.code == 0
    assert result.out.decode().splitlines() == [
        "<stdin>:1:4: $Secret{DB_PASSWORD}: ok",
        "1 distinct reference (2 occurrences): all resolve.",
    ]
    token.refresh_from_db()
    assert token.last_used_at is None
    assert not resolved_events().exists()


def test_check_with_problems_exits_1(troubled):
    text = b"$Secret{GOOD} $Secret{REVOKED}\n$Secret{REVOKED} $Secret{}"
    result = run(*CONTEXT, "--check", stdin=text)
    assert result.code == 1
    assert result.out.decode().splitlines() == [
        "<stdin>:1:1: $Secret{GOOD}: ok",
        "<stdin>:1:15: $Secret{REVOKED}: token revoked in production",
        "<stdin>:2:18: $Secret{}: malformed reference",
        "3 distinct references (4 occurrences): 2 cannot be resolved.",
    ]
    assert VALUE.encode() not in result.out


def test_check_gives_the_line_and_column_of_references_deep_in_a_large_file(
    workspace, django_assert_num_queries
):
    """A 3 MB file (three of the parser's segments): each key's first line and column (in
    characters, after wide ones, with CRLF lines), where the same key escaped comes first on
    its line and in its segment, and every occurrence counted."""
    TokenFactory(workspace=workspace, key="EVERYWHERE")
    TokenFactory(workspace=workspace, key="DEEP")
    filler = "filler: caf\u00e9 \u2713 $Secret{EVERYWHERE}".ljust(62, "x") + "\r\n"
    lines = [filler] * 50_000  # 64 bytes a line: 3.2 MB
    lines[45_000] = "deep: \u00e9\u00e9 $$Secret{DEEP} \u2713 $Secret{DEEP} $Secret{GONE}\r\n"
    lines[49_999] = "last: $Secret{DEEP}"
    text = "".join(lines).encode()
    assert len(text) > 3 * 1024 * 1024
    # The workspace, the environment, the usable tokens and GONE's candidates (none), and the
    # check's savepoint (two statements): whatever the file's size.
    with django_assert_num_queries(6):
        result = run(*CONTEXT, "--check", stdin=text)
    assert result.code == 1
    assert result.out.decode().splitlines() == [
        "<stdin>:1:16: $Secret{EVERYWHERE}: ok",
        "<stdin>:45001:27: $Secret{DEEP}: ok",
        "<stdin>:45001:41: $Secret{GONE}: unknown token",
        "3 distinct references (50001 occurrences): 1 cannot be resolved.",
    ]


def test_check_of_a_text_without_references(workspace):
    result = run(*CONTEXT, "--check", stdin=b"plain\n")
    assert (result.code, result.out) == (0, b"No references.\n")


def test_json_report_for_machines(troubled):
    text = b"$Secret{GOOD}\n  $Secret{REVOKED} $Secret{GOOD}"
    result = run(*CONTEXT, "--check", "--format", "json", stdin=text)
    assert result.code == 1
    report = json.loads(result.out)
    assert report["ok"] is False
    assert [
        {name: entry[name] for name in ("key", "line", "column", "status", "reason")}
        for entry in report["references"]
    ] == [
        {"key": "GOOD", "line": 1, "column": 1, "status": "ok", "reason": None},
        {
            "key": "REVOKED",
            "line": 2,
            "column": 3,
            "status": "error",
            "reason": "token revoked in production",
        },
    ]
    assert VALUE.encode() not in result.out


def test_json_format_implies_check_and_succeeds_with_exit_0(token):
    result = run(*CONTEXT, "--format", "json", stdin=b"$Secret{DB_PASSWORD}")
    assert result.code == 0
    assert json.loads(result.out)["ok"] is True
    assert VALUE.encode() not in result.out
    assert not resolved_events().exists()


# --- exit 2: bad arguments and unknown context --------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workspace", "nope", "--environment", "production"], 'Workspace "nope" not found.'),
        (
            ["--workspace", "acme", "--environment", "prod"],
            'Environment "prod" not found in workspace acme (its environments: production, '
            "sandbox).",
        ),
        (
            [*CONTEXT, "--product", "nope"],
            'Product "nope" not found in workspace acme (its products: checkout).',
        ),
        ([*CONTEXT, "--app", "nope"], 'App "nope" not found in workspace acme (its apps: none).'),
    ],
)
def test_unknown_context_exits_2_naming_what_was_not_found(workspace, args, message):
    ProductFactory(workspace=workspace, slug="checkout")
    result = run(*args, stdin=b"$Secret{X}")
    assert (result.code, result.out, result.err_lines) == (2, b"", [f"CommandError: {message}"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workspace", "acme"], "the following arguments are required: --environment"),
        ([*CONTEXT, "--format", "xml"], "invalid choice: 'xml'"),
        ([*CONTEXT, "--check", "--output", "x"], "--output cannot be used with --check"),
        ([*CONTEXT, "--actor", " "], "--actor must not be empty."),
        ([*CONTEXT, "--actor", "a" * 151], "--actor has at most 150 characters."),
        ([*CONTEXT, "--actor", "bot\x00"], "--actor must be printable text"),
        (["missing.tmpl", *CONTEXT], "Cannot read missing.tmpl: No such file or directory."),
        (["a", "b", *CONTEXT], "unrecognized arguments: b"),
    ],
)
def test_bad_arguments_exit_2(workspace, args, message):
    result = run(*args)
    assert (result.code, result.out) == (2, b"")
    assert message in result.err


class Terminal(io.BytesIO):
    def isatty(self) -> bool:
        return True


def test_no_file_and_a_terminal_on_stdin_exits_2_instead_of_waiting(workspace):
    err = io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("resolve", *CONTEXT, stdin=Terminal(), stderr=err)
    assert raised.value.returncode == 2
    assert "No template given: name a FILE or pipe one in" in str(raised.value)


def test_utf16_input_is_refused(workspace):
    result = run(*CONTEXT, stdin="$Secret{X}".encode("utf-16"))
    assert result.code == 2
    assert "<stdin> is UTF-16 text" in result.err


def test_help_documents_the_exit_codes():
    text = Command().create_parser("manage.py", "resolve").format_help()
    assert "exit status:" in text
    for line in ("0  resolved", "1  a reference cannot be resolved", "2  bad arguments"):
        assert line in text


def test_query_count_is_constant_through_the_command(
    reads_only, workspace, django_assert_max_num_queries
):
    for n in range(200):
        TokenFactory(workspace=workspace, key=f"K{n}")
    many = "".join(f"$Secret{{K{n}}}\n" for n in range(200)).encode()
    # The workspace, its environments, the usable tokens, the data key, the UPDATE and the
    # audit INSERT (in a savepoint here, as the test runs in a transaction).
    with django_assert_max_num_queries(8):
        assert run(*CONTEXT, stdin=b"$Secret{K0}").code == 0
    with django_assert_max_num_queries(8):
        assert run(*CONTEXT, stdin=many).code == 0


# --- the Tokens page and the command together --------------------------------------------------


def test_token_created_on_the_tokens_page_resolves_until_it_is_revoked(workspace, owner_client):
    production = workspace.environments.get(slug="production")
    response = owner_client.post(
        reverse("tokens:create", args=[workspace.slug]),
        {
            "key": "PAYMENT_API_KEY",
            "value": "pk_live_created_on_the_page",
            "type": "api_key",
            "environments": [production.pk],
        },
    )
    assert response.status_code == 302
    template = b"payment: $Secret{PAYMENT_API_KEY}\n"
    assert run(*CONTEXT, stdin=template).out == b"payment: pk_live_created_on_the_page\n"

    token = Token.objects.get(workspace=workspace, key="PAYMENT_API_KEY")
    response = owner_client.post(reverse("tokens:revoke", args=[workspace.slug, token.pk]))
    assert response.status_code == 302
    result = run(*CONTEXT, stdin=template)
    assert (result.code, result.out) == (1, b"")
    assert (
        result.err_lines[0] == "<stdin>:1:10: $Secret{PAYMENT_API_KEY}: token revoked in production"
    )


# --- a real shell pipeline ---------------------------------------------------------------------


def subprocess_env() -> dict[str, str]:
    """The test run's environment, pointed at the test database (committed data only)."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        url = f"sqlite:///{db['NAME']}"
    else:
        url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    return {**os.environ, "DATABASE_URL": url}


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        timeout=60,
    )


@pytest.mark.django_db(transaction=True)
def test_shell_pipeline_resolves_and_fails_closed(tmp_path):
    from tests.factories import WorkspaceFactory

    workspace = WorkspaceFactory(slug="acme")
    TokenFactory(workspace=workspace, key="DB_PASSWORD", value=VALUE)
    TokenFactory(workspace=workspace, key="OLD").revoke()
    (tmp_path / "good.tmpl").write_bytes(b"db: $Secret{DB_PASSWORD}\r\nend")
    (tmp_path / "bad.tmpl").write_bytes(b"db: $Secret{DB_PASSWORD}\nold: $Secret{OLD}\n")
    manage = f"{sys.executable} {settings.BASE_DIR / 'manage.py'} resolve"
    context = "--workspace acme --environment production --actor pipeline"

    good = shell(f"cat good.tmpl | {manage} {context} > app.yaml", tmp_path)
    assert good.returncode == 0, good.stderr.decode()
    assert (tmp_path / "app.yaml").read_bytes() == f"db: {VALUE}\r\nend".encode()
    assert resolved_events().get().actor_name == "pipeline"

    bad = shell(f"cat bad.tmpl | {manage} {context} --output out.yaml", tmp_path)
    assert bad.returncode == 1
    assert (
        "<stdin>:2:6: $Secret{OLD}: token revoked in production" in bad.stderr.decode().splitlines()
    )
    assert VALUE.encode() not in bad.stdout + bad.stderr
    assert not (tmp_path / "out.yaml").exists()

    unknown = shell(f"{manage} good.tmpl --workspace nope --environment production", tmp_path)
    assert unknown.returncode == 2
    assert b'Workspace "nope" not found.' in unknown.stderr


# --- limits and escaping -------------------------------------------------------------------------


class EndlessZeros(io.RawIOBase):
    """Like /dev/zero on stdin, counting what was read."""

    read_total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.read_total > 2 * 64 * 1024 * 1024:
            raise AssertionError("read on far past the limit")
        buffer[:] = bytes(len(buffer))
        self.read_total += len(buffer)
        return len(buffer)

    def isatty(self) -> bool:
        return False


def test_input_over_max_bytes_exits_2_and_writes_nothing(token):
    result = run(*CONTEXT, "--max-bytes", "20", stdin=b"x" * 21)
    assert (result.code, result.out) == (2, b"")
    assert "<stdin> is larger than --max-bytes 20 bytes" in result.err
    assert not resolved_events().exists()
    at_the_limit = run(*CONTEXT, "--max-bytes", "20", stdin=b"$Secret{DB_PASSWORD}")
    assert (at_the_limit.code, at_the_limit.out) == (0, VALUE.encode())


@pytest.mark.parametrize("limit", [None, "1000"])
def test_an_endless_stream_is_read_only_one_byte_past_the_limit(workspace, limit):
    stream = EndlessZeros()
    args = ["--max-bytes", limit] if limit else []
    with pytest.raises(CommandError) as raised:
        call_command("resolve", *CONTEXT, *args, stdin=stream, stdout=io.StringIO())
    assert raised.value.returncode == 2
    assert stream.read_total == int(limit or 64 * 1024 * 1024) + 1


def test_dev_zero_as_the_file_stops_at_the_limit(workspace):
    result = run("/dev/zero", *CONTEXT, "--max-bytes", "4096")
    assert result.code == 2
    assert "/dev/zero is larger than --max-bytes 4,096 bytes" in result.err


@pytest.mark.parametrize("bad", ["0", "-1", "lots"])
def test_max_bytes_must_be_a_positive_number(workspace, bad):
    result = run(*CONTEXT, "--max-bytes", bad, stdin=b"x")
    assert (result.code, result.out) == (2, b"")
    assert "--max-bytes" in result.err


def test_at_most_1000_problem_lines_then_a_count_of_the_rest(workspace):
    result = run(*CONTEXT, stdin=b"$Secret{}\n" * 1_500)
    assert result.code == 1
    lines = result.err_lines
    assert len(lines) == 1_002
    assert lines[999] == "<stdin>:1000:1: $Secret{}: malformed reference"
    assert lines[1000] == "... and 500 more problems not shown."
    assert lines[1001] == "CommandError: 1500 references cannot be resolved; nothing was output."


ESCAPE = "\x1b[2J\x1b]0;pwned\x07"


def test_control_characters_in_references_and_sources_are_printed_escaped(workspace, tmp_path):
    template = tmp_path / f"app{ESCAPE}.tmpl"
    template.write_bytes(f"x: $Secret{{A{ESCAPE}}}\n".encode())
    shown = "app\\x1b[2J\\x1b]0;pwned\\x07.tmpl"
    result = run(str(template), *CONTEXT)
    assert result.code == 1
    assert "\x1b" not in result.err and "\x07" not in result.err
    assert result.err_lines[0] == (
        f"{tmp_path}/{shown}:1:4: $Secret{{A\\x1b[2J\\x1b]0;pwned\\x07}}: malformed reference"
    )
    check = run(str(template), *CONTEXT, "--check")
    assert b"\x1b" not in check.out and b"\x07" not in check.out
    assert f"{shown}:1:4: $Secret{{A\\x1b[2J".encode() in check.out
    report = run(str(template), *CONTEXT, "--format", "json")
    assert b"\x1b" not in report.out and b"\x07" not in report.out
    assert json.loads(report.out)["source"] == f"{tmp_path}/{shown}"


@pytest.mark.parametrize(
    "args",
    [
        ["--workspace", f"acme{ESCAPE}", "--environment", "production"],
        ["--workspace", "acme", "--environment", f"prod{ESCAPE}"],
        [*CONTEXT, "--app", f"a{ESCAPE}"],
        [*CONTEXT, f"missing{ESCAPE}.tmpl"],
        [*CONTEXT, "--max-bytes", f"1{ESCAPE}"],
        [*CONTEXT, "--output", f"/nonexistent{ESCAPE}/out"],
    ],
)
def test_control_characters_in_arguments_are_escaped_in_messages(workspace, args):
    result = run(*args, stdin=b"x")
    assert result.code == 2
    assert "\x1b" not in result.err and "\x07" not in result.err
    assert "\\x1b[2J" in result.err


# --- memory ------------------------------------------------------------------------------------


def large_template(workspace, references: int = 40_000) -> bytes:
    for n in range(10):
        TokenFactory(workspace=workspace, key=f"SERVICE_{n}_KEY", value=f"value-{n}-" * 4)
    return b"".join(
        f"setting_{n:06d}: $Secret{{SERVICE_{n % 10}_KEY}} # caf\u00e9 \xff\n".encode(
            "utf-8", "surrogateescape"
        )
        for n in range(references)
    )


@pytest.mark.parametrize(
    ("check", "environment"),
    [(False, "production"), (True, "production"), (True, "staging")],
)
def test_a_large_template_costs_less_than_twice_its_size_in_memory(workspace, check, environment):
    """Python's allocations while resolving (or checking) a 2 MB template: less than twice the
    template (it used to be 8.6 times, and 15 times for --check). Also checked where its
    40,000 references all fail (a new environment has none of its tokens): the report keeps
    the first 1,000 failing occurrences and counts the others (it kept all: 6.6 times the
    template). Reads and segments are made smaller than their 1 MiB, in proportion to this
    template's size."""
    import tracemalloc

    from tokens.management.commands import resolve
    from tokens.references import grammar as references

    data = large_template(workspace)
    workspace.environments.get_or_create(slug=environment, defaults={"name": environment})
    args = ["--workspace", "acme", "--environment", environment, *(["--check"] if check else [])]
    with open(os.devnull, "w") as sink, contextlib.ExitStack() as stack:
        # Once on a small file first: what is imported and cached is not the template's cost.
        with contextlib.suppress(CommandError):  # exit 1 where the references fail
            call_command("resolve", *args, stdin=io.BytesIO(data[:999]), stdout=sink)
        tracemalloc.start()
        try:
            stack.enter_context(mock.patch.object(references, "SEGMENT_SIZE", 32 * 1024))
            stack.enter_context(mock.patch.object(resolve, "READ_CHUNK", 32 * 1024))
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            with contextlib.suppress(CommandError):
                call_command("resolve", *args, stdin=io.BytesIO(data), stdout=sink, stderr=sink)
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
    assert peak < 2 * len(data), f"{peak / len(data):.1f}x the input"


# --- --check --all-environments --------------------------------------------------------------


def test_check_in_every_environment_lists_what_would_fail_where(workspace):
    production = workspace.environments.get(slug="production")
    TokenFactory(workspace=workspace, key="DB_PASSWORD", value=VALUE)
    TokenFactory(workspace=workspace, key="LIVE_ONLY", value=VALUE + "x", environments=[production])
    text = b"db: $Secret{DB_PASSWORD}\nlive: $Secret{LIVE_ONLY}\n"
    result = run("--workspace", "acme", "--check", "--all-environments", stdin=text)
    assert result.code == 1
    assert result.out.decode().splitlines() == [
        "production: 2 distinct references (2 occurrences): all resolve.",
        "sandbox: <stdin>:2:7: $Secret{LIVE_ONLY}: not valid in environment sandbox "
        "(valid in production)",
        "sandbox: 2 distinct references (2 occurrences): 1 cannot be resolved.",
    ]
    assert result.err_lines == [
        "CommandError: 1 of 2 environments cannot resolve every reference: sandbox."
    ]
    assert VALUE not in result.out.decode() + result.err
    assert not resolved_events().exists()
    assert not Token.objects.filter(last_used_at__isnull=False).exists()

    result = run("--workspace", "acme", "--all-environments", "--format", "json", stdin=text)
    report = json.loads(result.out)
    assert result.code == 1 and report["ok"] is False
    assert [(env["environment"], env["ok"]) for env in report["environments"]] == [
        ("production", True),
        ("sandbox", False),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--all-environments"], "--all-environments only checks: add --check."),
        (
            ["--all-environments", "--check", "--environment", "production"],
            "--all-environments cannot be used with --environment.",
        ),
    ],
)
def test_all_environments_is_only_a_check_of_every_environment(workspace, args, message):
    result = run("--workspace", "acme", *args, stdin=b"$Secret{X}")
    assert (result.code, result.out, result.err_lines) == (2, b"", [f"CommandError: {message}"])

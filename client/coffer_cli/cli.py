"""The `coffer` command: argument parsing, configuration, and the three subcommands."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import signal
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from coffer_cli import __version__, runner, watch
from coffer_cli.fallback import Fallback
from coffer_cli.transport import Api, Refused, Unreachable

OK, FAILED, USAGE = 0, 1, 2
RUN_FAILED = 125  # coffer run's own failure, as `env` and `docker run` report theirs
DEFAULT_TIMEOUT = 30.0
DEFAULT_TRIES = 5
DEFAULT_MAX_AGE = "24h"
KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
IDENTIFIER_LENGTH = 10  # `cfr_` and 6 characters: what Coffer's pages show of a key
IDENTITY_RE = re.compile(r"^[^/]+/[^/]+$")
EXCHANGE = "/api/v1/auth/oidc"

DESCRIPTION = """\
Run a command with its secrets from Coffer, or render a template with them.

configuration (environment only; the access key is never a command-line argument, where
`ps` would show it):
  COFFER_URL               the server, e.g. https://coffer.example.com
  COFFER_ACCESS_KEY        the access key (cfr_...), or
  COFFER_ACCESS_KEY_FILE   a file holding it, or, with neither set:
  COFFER_IDENTITY          a workload identity (workspace/name): sign in with the CI job's
                           OIDC token, from GitHub Actions (permissions: id-token: write), or
  COFFER_OIDC_TOKEN        the token itself (GitLab CI: id_tokens), or
  COFFER_OIDC_TOKEN_FILE   a file holding it (e.g. a Kubernetes projected token)
  COFFER_AUDIENCE          the audience asked of GitHub Actions (default: COFFER_URL)
  COFFER_CA_FILE           a CA bundle for a private certificate authority
  COFFER_TIMEOUT           seconds for a whole fetch, retries included (default 30)
  COFFER_TRIES             tries per fetch (default 5)
  COFFER_FALLBACK_MAX_AGE  the oldest fallback `run` accepts (default 24h)
  COFFER_CACHE_DIR         where fallbacks are kept (default $XDG_CACHE_HOME/coffer)
"""

RUN_DESCRIPTION = """\
Fetch the values the access key's context allows, start CMD with them in its environment,
forward the signals coffer receives (INT, TERM, HUP, QUIT, USR1, USR2, WINCH) and exit with
CMD's status (128+N if signal N ended it). Values are kept in memory only; COFFER_ACCESS_KEY
and COFFER_OIDC_TOKEN are removed from CMD's environment.

If Coffer cannot be reached (connection refused, timeout, 5xx) after the retries, the values
of the last successful fetch are used from the encrypted fallback, with a warning giving its
age on stderr. A refused key (401 or 403) never falls back: the fallback is deleted and
nothing runs. A sign-in with COFFER_IDENTITY has no fallback (no long-lived secret to encrypt
it with).

With --watch, coffer keeps asking Coffer (a long poll: an answer as soon as a value changes)
and, after a random delay of up to --stagger seconds, restarts CMD with the new values
(SIGTERM, --grace seconds, SIGKILL), or sends it --reload-signal instead. If the access key is
refused (revoked, expired), the watch stops with a message and CMD keeps running, unless
--exit-on-revoke.

exit status:
  CMD's own status, or
  125  coffer could not get the values (nothing was run), or the key was refused while
       watching with --exit-on-revoke
  126  CMD could not be executed
  127  CMD was not found
  2    bad arguments

examples:
  coffer run -- ./manage.py migrate
  coffer run --only DB_URL,REDIS_URL --mask -- pytest -q
  coffer run --watch --stagger 30 -- ./server
"""

RENDER_DESCRIPTION = """\
Send TEMPLATE to Coffer, which replaces every $Secret{KEY} with the token's value (the same
fail-closed rules as `manage.py resolve`), and write the result to stdout or -o FILE.

If any reference cannot be resolved, nothing is written, each problem is printed on stderr as
TEMPLATE:LINE:COL: KEY: REASON, and the exit status is 1. Rendering needs Coffer: there is no
fallback.

exit status:
  0  rendered
  1  a reference cannot be resolved, the key was refused, or Coffer cannot be reached
  2  bad arguments, or TEMPLATE cannot be read

example:
  coffer render config/app.env.tmpl -o .env
"""

CHECK_DESCRIPTION = """\
Ask Coffer whether every $Secret{KEY} reference in TEMPLATE would resolve, without any value
being decrypted, sent or recorded. Problems are printed on stderr as
TEMPLATE:LINE:COL: KEY: REASON, then a summary.

exit status:
  0  every reference would resolve
  1  some reference would not, the key was refused, or Coffer cannot be reached
  2  bad arguments, or TEMPLATE cannot be read
"""


class Failure(Exception):
    def __init__(self, message: str, status: int = FAILED) -> None:
        super().__init__(message)
        self.status = status


def say(message: str) -> None:
    sys.stderr.write(f"coffer: {message}\n")
    sys.stderr.flush()


def printable(text: str) -> str:
    """Control characters shown escaped, so nothing echoed can drive the terminal."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


# --- configuration ---------------------------------------------------------------------------


def duration(text: str) -> float:
    """Seconds from `90`, `90s`, `30m`, `12h` or `7d`."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90s, 30m, 12h, 7d")
    return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]


def positive(text: str) -> float:
    value = duration(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("it must be more than 0")
    return value


def seconds(text: str) -> float:
    """A duration of 0 or more (--stagger, --grace)."""
    return duration(text)


def signal_name(text: str) -> int:
    """A signal by name: HUP, SIGHUP, USR1, ... (not KILL or STOP, which no process can
    handle)."""
    name = text.strip().upper()
    name = name if name.startswith("SIG") else "SIG" + name
    number = getattr(signal.Signals, name, None) if name.isidentifier() else None
    if number is None or number in (signal.SIGKILL, signal.SIGSTOP):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a signal a process can handle, such as HUP, USR1 or USR2"
        )
    return int(number)


def tries(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= 20:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of tries from 1 to 20")
    return int(text)


def key_list(text: str) -> list[str]:
    keys = [key.strip() for key in text.split(",") if key.strip()]
    bad = [key for key in keys if not KEY_RE.match(key)]
    if not keys or bad:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of Token Keys (e.g. DB_URL,API_KEY)"
        )
    return keys


def access_key() -> str:
    key, path = os.environ.get("COFFER_ACCESS_KEY"), os.environ.get("COFFER_ACCESS_KEY_FILE")
    if key and path:
        raise Failure("set COFFER_ACCESS_KEY or COFFER_ACCESS_KEY_FILE, not both", USAGE)
    if path:
        try:
            key = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise Failure(
                f"cannot read COFFER_ACCESS_KEY_FILE {printable(path)}: {error.strerror}", USAGE
            ) from None
        except UnicodeDecodeError:
            raise Failure(f"COFFER_ACCESS_KEY_FILE {printable(path)} is not text", USAGE) from None
    key = (key or "").strip()
    if not key:
        raise Failure(
            "no access key: set COFFER_ACCESS_KEY, or COFFER_ACCESS_KEY_FILE to a file holding "
            "it, or COFFER_IDENTITY to sign in with the CI job's OIDC token",
            USAGE,
        )
    if not key.isprintable() or " " in key:
        raise Failure("the access key has spaces or control characters in it", USAGE)
    return key


def identity_reference() -> str | None:
    """COFFER_IDENTITY (`workspace/name`) when the job signs in with its OIDC token; None when
    it uses an access key. Both at once is a usage error: which one was meant is not known."""
    reference = os.environ.get("COFFER_IDENTITY", "").strip()
    if not reference:
        return None
    if os.environ.get("COFFER_ACCESS_KEY") or os.environ.get("COFFER_ACCESS_KEY_FILE"):
        raise Failure(
            "set an access key (COFFER_ACCESS_KEY or COFFER_ACCESS_KEY_FILE) or COFFER_IDENTITY, "
            "not both",
            USAGE,
        )
    if not IDENTITY_RE.match(reference) or not reference.isprintable():
        raise Failure(
            f"COFFER_IDENTITY {printable(reference)!r} is not <workspace>/<identity name>", USAGE
        )
    return reference


class TokenSource(NamedTuple):
    """Where the job's OIDC token comes from: `kind` is the variable that says so."""

    kind: str  # COFFER_OIDC_TOKEN, COFFER_OIDC_TOKEN_FILE or ACTIONS_ID_TOKEN_REQUEST_URL
    value: str  # the token, its file, or the URL to ask GitHub Actions (audience included)
    bearer: str = ""  # ACTIONS_ID_TOKEN_REQUEST_TOKEN


def token_source(url: str) -> TokenSource:
    """COFFER_OIDC_TOKEN or COFFER_OIDC_TOKEN_FILE when set (they are explicit), else GitHub
    Actions' token endpoint asked for the audience COFFER_AUDIENCE (default: COFFER_URL)."""
    value, path = os.environ.get("COFFER_OIDC_TOKEN"), os.environ.get("COFFER_OIDC_TOKEN_FILE")
    if value and path:
        raise Failure("set COFFER_OIDC_TOKEN or COFFER_OIDC_TOKEN_FILE, not both", USAGE)
    if value:
        return TokenSource("COFFER_OIDC_TOKEN", value)
    if path:
        return TokenSource("COFFER_OIDC_TOKEN_FILE", path)
    request_url = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL", "").strip()
    bearer = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "").strip()
    if request_url and bearer:
        audience = os.environ.get("COFFER_AUDIENCE", "").strip() or url
        separator = "&" if "?" in request_url else "?"
        query = urllib.parse.urlencode({"audience": audience})
        return TokenSource("ACTIONS_ID_TOKEN_REQUEST_URL", request_url + separator + query, bearer)
    raise Failure(
        "COFFER_IDENTITY is set but there is no OIDC token: in GitHub Actions give the job "
        "`permissions: id-token: write`; in GitLab CI set `id_tokens: COFFER_OIDC_TOKEN`; "
        "elsewhere set COFFER_OIDC_TOKEN or COFFER_OIDC_TOKEN_FILE",
        USAGE,
    )


def server_url() -> str:
    url = os.environ.get("COFFER_URL", "").strip().rstrip("/")
    if not url:
        raise Failure("COFFER_URL is not set (e.g. https://coffer.example.com)", USAGE)
    if not re.match(r"^https?://[^/\s]+", url):
        raise Failure(f"COFFER_URL {printable(url)!r} is not an http(s):// URL", USAGE)
    return url


def env_default(name: str, parse, default: str):
    text = os.environ.get(name) or default
    try:
        return parse(text)
    except argparse.ArgumentTypeError as error:
        raise Failure(f"{name}: {error}", USAGE) from None


def api(options: argparse.Namespace, url: str, key: str | None, private_ca: bool = True) -> Api:
    return Api(
        url,
        key,
        timeout=options.timeout or env_default("COFFER_TIMEOUT", positive, str(DEFAULT_TIMEOUT)),
        tries=options.tries or env_default("COFFER_TRIES", tries, str(DEFAULT_TRIES)),
        warn=say,
        private_ca=private_ca,
    )


# --- signing in ------------------------------------------------------------------------------


class SignIn(NamedTuple):
    """The bearer for Coffer's API: the access key, or the short-lived credential the OIDC
    exchange gave `identity` (never shown: errors name the identity instead)."""

    key: str
    identity: str | None = None


def sign_in(options: argparse.Namespace, url: str) -> SignIn:
    reference = identity_reference()
    if reference is None:
        return SignIn(access_key())
    token = oidc_token(options, token_source(url))
    return SignIn(exchange(options, url, reference, token), reference)


def oidc_token(options: argparse.Namespace, source: TokenSource) -> str:
    """The job's OIDC token; errors name where it was looked for, never the token."""
    if source.kind == "COFFER_OIDC_TOKEN":
        token = source.value
    elif source.kind == "COFFER_OIDC_TOKEN_FILE":
        try:
            token = Path(source.value).read_text(encoding="utf-8")
        except OSError as error:
            shown = printable(source.value)
            message = f"cannot read COFFER_OIDC_TOKEN_FILE {shown}: {error.strerror}"
            raise Failure(message, USAGE) from None
        except UnicodeDecodeError:
            shown = printable(source.value)
            raise Failure(f"COFFER_OIDC_TOKEN_FILE {shown} is not text", USAGE) from None
    else:
        token = github_token(options, source)
    token = token.strip()
    if not token or not token.isprintable() or " " in token:
        raise Failure(f"the OIDC token from {source.kind} is empty or not a token", USAGE)
    return token


def github_token(options: argparse.Namespace, source: TokenSource) -> str:
    """GitHub Actions' job token for the audience: GET the request URL with the request token
    as bearer; the answer is `{"value": "<JWT>"}`."""
    where = "GitHub Actions' OIDC token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL)"
    try:
        endpoint = api(options, source.value, source.bearer, private_ca=False)
        response = endpoint.request("GET", "", {})
    except Refused as error:
        message = printable(error.message)
        raise Failure(f"{where} refused (HTTP {error.status}): {message}") from None
    except Unreachable as error:
        raise Failure(f"{where} cannot be reached: {error}") from None
    try:
        token = json.loads(response.body)["value"]
    except (ValueError, KeyError, TypeError):
        token = None
    if not isinstance(token, str):
        raise Failure(f"{where} answered HTTP {response.status} without a token")
    return token


def exchange(options: argparse.Namespace, url: str, reference: str, token: str) -> str:
    """The credential Coffer gives for the token (POST /api/v1/auth/oidc). A refusal fails
    closed, naming the check that failed; there is no fallback."""
    body = json.dumps({"identity": reference, "token": token}).encode()
    try:
        response = api(options, url, None).request(
            "POST", EXCHANGE, {}, body, content_type="application/json"
        )
    except Refused as error:
        message = printable(error.message)
        raise Failure(
            f"workload identity {reference} refused (HTTP {error.status}): {message}"
        ) from None
    except Unreachable as error:
        raise Failure(
            f"Coffer cannot be reached: {error}; a sign-in with a workload identity has no fallback"
        ) from None
    try:
        credential = json.loads(response.body)["credential"]
    except (ValueError, KeyError, TypeError):
        credential = None
    if response.status != 200 or not isinstance(credential, str) or not credential:
        raise Failure(
            f"Coffer's answer to the OIDC exchange could not be read (HTTP {response.status})"
        )
    return credential


def refused(error: Refused, signed: SignIn, url: str, only: list[str] | None) -> Failure:
    """The failure for a refusal; for 401/403, after deleting this key's fallbacks."""
    message = f"Coffer refused the request (HTTP {error.status}): {printable(error.message)}"
    if error.status in (401, 403) and signed.identity is not None:
        message = (
            f"the credential of workload identity {signed.identity} was refused "
            f"(HTTP {error.status}): {printable(error.message)}"
        )
    elif error.status in (401, 403):
        shown = signed.key[:IDENTIFIER_LENGTH] + "…"
        message = f"access key {shown} refused (HTTP {error.status}): {printable(error.message)}"
        if Fallback(url, signed.key, only).forget():
            message += "; its fallback was deleted and is not used"
    return Failure(message)


# --- run -------------------------------------------------------------------------------------


def values_query(options: argparse.Namespace, source: str = "coffer run") -> dict[str, str]:
    query = {"format": "json", "source": source}
    if options.only:
        query["keys"] = ",".join(options.only)
    return query


def fetch_values(
    options: argparse.Namespace, url: str, signed: SignIn, etags: list[str] | None = None
) -> dict[str, str]:
    """The values (from Coffer, or the fallback); the answer's ETag appended to `etags`."""
    only = options.only
    query = values_query(options)
    fallback = None
    if not options.no_fallback and signed.identity is None:
        fallback = Fallback(url, signed.key, only)
    try:
        response = api(options, url, signed.key).request("GET", "/api/v1/values", query)
    except Refused as error:
        raise refused(error, signed, url, only) from None
    except Unreachable as error:
        if signed.identity is not None:
            raise Failure(
                f"Coffer cannot be reached: {error}; a sign-in with a workload "
                "identity has no fallback"
            ) from None
        if fallback is None:
            raise Failure(f"Coffer cannot be reached: {error} (--no-fallback)") from None
        return from_fallback(fallback, options, str(error))
    if response.status == 422:
        raise Failure(unresolved(response.body))
    values = json.loads(response.body)
    if etags is not None and response.headers.get("etag"):
        etags.append(response.headers["etag"])
    if fallback is not None:
        try:
            fallback.save(values)
        except OSError as error:
            say(f"warning: the fallback could not be written ({error.strerror})")
    return values


def from_fallback(fallback: Fallback, options: argparse.Namespace, reason: str) -> dict[str, str]:
    max_age = options.fallback_max_age or env_default(
        "COFFER_FALLBACK_MAX_AGE", duration, DEFAULT_MAX_AGE
    )
    loaded = fallback.load()
    if loaded is None:
        raise Failure(f"Coffer cannot be reached: {reason}; and there is no fallback for this key")
    fetched_at, values = loaded
    age = max(0.0, time.time() - fetched_at)
    when = dt.datetime.fromtimestamp(fetched_at, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    if age > max_age:
        raise Failure(
            f"Coffer cannot be reached: {reason}; the fallback is {human(age)} old (from {when}), "
            f"older than --fallback-max-age {human(max_age)}: not used"
        )
    say(
        f"warning: Coffer cannot be reached ({reason}); using the fallback from {when}, "
        f"{human(age)} old"
    )
    return values


def unresolved(body: bytes) -> str:
    try:
        report = json.loads(body)
        problems = [ref for ref in report["references"] if ref["status"] != "ok"]
    except (ValueError, KeyError, TypeError):
        return "Coffer could not resolve the values (HTTP 422)"
    lines = [f"  {printable(ref['key'] or ref['reference'])}: {ref['reason']}" for ref in problems]
    return "these keys cannot be resolved here; nothing was run:\n" + "\n".join(lines)


def human(seconds: float) -> str:
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            rest = seconds % size
            below = {"d": ("h", 3600), "h": ("m", 60), "m": ("s", 1)}[unit]
            part = rest // below[1]
            return f"{seconds // size}{unit}" + (f"{part}{below[0]}" if part else "")
    return f"{seconds}s"


def command_run(options: argparse.Namespace) -> int:
    command = options.command
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise Failure("name the command to run after --, e.g. coffer run -- ./start.sh", USAGE)
    watching = options.watch or options.reload_signal is not None
    url = server_url()
    etags: list[str] = []
    try:
        signed = sign_in(options, url)
        values = fetch_values(options, url, signed, etags)
    except Failure as failure:
        raise Failure(str(failure), USAGE if failure.status == USAGE else RUN_FAILED) from None
    try:
        if watching:
            return watch_run(options, command, url, signed, values, etags)
        return runner.run(
            command, child_env(options, values), list(values.values()) if options.mask else None
        )
    except runner.LaunchError as error:
        raise Failure(str(error), error.status) from None


def child_env(options: argparse.Namespace, values: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("COFFER_ACCESS_KEY", None)
    env.pop("COFFER_OIDC_TOKEN", None)
    for name, value in values.items():
        if options.preserve_env and name in os.environ:
            continue
        if "\0" in value:
            raise Failure(f"{name}'s value has a NUL byte, which no environment can hold", 125)
        env[name] = value
    return env


def watch_run(
    options: argparse.Namespace,
    command: list[str],
    url: str,
    signed: SignIn,
    values: dict[str, str],
    etags: list[str],
) -> int:
    """`run --watch`: see coffer_cli/watch.py. The long poll gets its own time budget (the
    server holds it up to watch.WAIT seconds)."""
    budget = watch.WAIT + (
        options.timeout or env_default("COFFER_TIMEOUT", positive, str(DEFAULT_TIMEOUT))
    )
    poll = Api(
        url,
        signed.key,
        timeout=budget,
        tries=options.tries or env_default("COFFER_TRIES", tries, str(DEFAULT_TRIES)),
        warn=lambda message: None,
    )
    watcher = watch.Watcher(
        poll,
        values_query(options, "coffer run --watch"),
        etags[0] if etags else None,
        values,
        options.interval,
    )

    def on_refused(error: Refused) -> str:
        return str(refused(error, signed, url, options.only))

    return watch.supervise(
        command,
        lambda new: child_env(options, new),
        values,
        watcher,
        mask=options.mask,
        reload_signal=options.reload_signal,
        grace=options.grace,
        stagger=options.stagger,
        exit_on_revoke=options.exit_on_revoke,
        say=say,
        on_refused=on_refused,
    )


# --- render and check ------------------------------------------------------------------------


def read_template(name: str) -> bytes:
    try:
        if name == "-":
            return sys.stdin.buffer.read()
        return Path(name).read_bytes()
    except OSError as error:
        raise Failure(f"cannot read {printable(name)}: {error.strerror}", USAGE) from None


def resolve(options: argparse.Namespace, check: bool) -> tuple:
    url = server_url()
    name = "<stdin>" if options.template == "-" else options.template
    data = read_template(options.template)
    signed = sign_in(options, url)
    query = {"source": printable(name)[:200]}
    if check:
        query["check"] = "1"
    try:
        response = api(options, url, signed.key).request("POST", "/api/v1/resolve", query, data)
    except Refused as error:
        raise refused(error, signed, url, None) from None
    except Unreachable as error:
        raise Failure(f"Coffer cannot be reached: {error}") from None
    return name, response


def report_problems(name: str, body: bytes) -> int:
    """Print each failing reference as NAME:LINE:COL: KEY: REASON; their number."""
    try:
        references = json.loads(body)["references"]
    except (ValueError, KeyError, TypeError):
        raise Failure("Coffer's report could not be read") from None
    failed = [ref for ref in references if ref["status"] != "ok"]
    for ref in failed:
        sys.stderr.write(
            f"{printable(name)}:{ref['line']}:{ref['column']}: "
            f"{printable(ref['key'] or ref['reference'])}: {ref['reason']}\n"
        )
    return len(failed)


def command_render(options: argparse.Namespace) -> int:
    output = AtomicOutput(options.output) if options.output else None
    try:
        name, response = resolve(options, check=False)
        if response.status == 422:
            count = report_problems(name, response.body)
            raise Failure(
                f"{count} reference{'s' if count != 1 else ''} cannot be resolved; "
                "nothing was written"
            )
        if output is not None:
            output.commit(response.body)
        else:
            sys.stdout.buffer.write(response.body)
            sys.stdout.buffer.flush()
    finally:
        if output is not None:
            output.discard()
    return OK


def command_check(options: argparse.Namespace) -> int:
    name, response = resolve(options, check=True)
    references = json.loads(response.body)["references"]
    failed = report_problems(name, response.body)
    distinct = len(references)
    summary = f"{distinct} distinct reference{'s' if distinct != 1 else ''}"
    if failed:
        raise Failure(f"{summary}: {failed} cannot be resolved")
    sys.stderr.write(f"{summary}: all resolve.\n" if distinct else "No references.\n")
    return OK


class AtomicOutput:
    """-o FILE: a 0600 temporary file beside it, written, fsynced and renamed into place (so
    FILE is whole or untouched). Made first, so an unwritable folder fails before the fetch."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise Failure(f"-o {printable(path)} is a directory", USAGE)
        try:
            descriptor, temporary = tempfile.mkstemp(
                dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
            )
        except OSError as error:
            raise Failure(f"cannot write -o {printable(path)}: {error.strerror}", USAGE) from None
        os.fchmod(descriptor, 0o600)
        self.descriptor: int | None = descriptor
        self.temporary: Path | None = Path(temporary)

    def commit(self, data: bytes) -> None:
        assert self.descriptor is not None and self.temporary is not None
        try:
            runner.write_all(self.descriptor, data)
            os.fsync(self.descriptor)
            os.close(self.descriptor)
            self.descriptor = None
            os.replace(self.temporary, self.path)
        except OSError as error:
            shown = printable(str(self.path))
            raise Failure(f"cannot write -o {shown}: {error.strerror}") from None
        self.temporary = None

    def discard(self) -> None:
        if self.descriptor is not None:
            os.close(self.descriptor)
            self.descriptor = None
        if self.temporary is not None:
            self.temporary.unlink(missing_ok=True)
            self.temporary = None


# --- arguments -------------------------------------------------------------------------------


class Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--timeout",
        type=positive,
        metavar="SECONDS",
        help="give up after this long, retries included (default: $COFFER_TIMEOUT or 30)",
    )
    group.add_argument(
        "--tries",
        type=tries,
        metavar="N",
        help="tries on a network error, 5xx or 429, with backoff and jitter "
        "(default: $COFFER_TRIES or 5)",
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="coffer", description=DESCRIPTION, formatter_class=Formatter)
    top.add_argument("--version", action="version", version=f"coffer {__version__}")
    commands = top.add_subparsers(dest="subcommand", metavar="COMMAND", title="commands")

    run = commands.add_parser(
        "run",
        help="run a command with its secrets in its environment",
        description=RUN_DESCRIPTION,
        formatter_class=Formatter,
        usage="coffer run [options] -- CMD [ARGS...]",
    )
    run.add_argument(
        "--only", type=key_list, metavar="KEYS", help="only these Token Keys (comma-separated)"
    )
    run.add_argument(
        "--preserve-env",
        action="store_true",
        help="a variable already set in the environment keeps its value",
    )
    run.add_argument(
        "--mask",
        action="store_true",
        help="replace any value (of 4 characters or more) in CMD's stdout and stderr with ***",
    )
    fallback = run.add_argument_group("fallback")
    fallback.add_argument(
        "--fallback-max-age",
        type=duration,
        metavar="AGE",
        help="refuse an older fallback: 90s, 30m, 12h, 7d "
        f"(default: $COFFER_FALLBACK_MAX_AGE or {DEFAULT_MAX_AGE})",
    )
    fallback.add_argument(
        "--no-fallback",
        action="store_true",
        help="neither use nor write the fallback: fail when Coffer cannot be reached",
    )
    watching = run.add_argument_group("watch")
    watching.add_argument(
        "--watch",
        action="store_true",
        help="when a value changes, restart CMD with the new values (or send --reload-signal)",
    )
    watching.add_argument(
        "--reload-signal",
        type=signal_name,
        metavar="SIGNAL",
        help="send CMD this signal (e.g. HUP) on a change instead of restarting it; CMD's "
        "environment keeps the old values, so CMD must read its values again itself",
    )
    watching.add_argument(
        "--stagger",
        type=seconds,
        default=0.0,
        metavar="SECONDS",
        help="wait a random delay of up to this long before acting on a change, so a fleet "
        "does not restart at once (default: 0)",
    )
    watching.add_argument(
        "--grace",
        type=seconds,
        default=10.0,
        metavar="SECONDS",
        help="on a restart, how long CMD gets after SIGTERM before SIGKILL (default: 10)",
    )
    watching.add_argument(
        "--exit-on-revoke",
        action="store_true",
        help="when the access key is refused (revoked, expired), stop CMD and exit 125; by "
        "default CMD keeps running and only the watch stops",
    )
    watching.add_argument(
        "--interval",
        type=positive,
        default=15.0,
        metavar="SECONDS",
        help="how often to ask when the server cannot hold a request, or cannot be reached "
        "(default: 15, with jitter)",
    )
    add_connection_options(run)
    run.add_argument("command", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    run.set_defaults(handler=command_run)

    for name, summary, description, handler in (
        ("render", "render a template with its secrets", RENDER_DESCRIPTION, command_render),
        (
            "check",
            "check that every reference in a template resolves",
            CHECK_DESCRIPTION,
            command_check,
        ),
    ):
        sub = commands.add_parser(
            name, help=summary, description=description, formatter_class=Formatter
        )
        sub.add_argument("template", metavar="TEMPLATE", help="the template file; - for stdin")
        if name == "render":
            sub.add_argument(
                "-o",
                "--output",
                metavar="FILE",
                help="write FILE atomically with mode 0600 instead of stdout",
            )
        add_connection_options(sub)
        sub.set_defaults(handler=handler)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser()
    options = arguments.parse_args(argv)
    if options.subcommand is None:
        arguments.print_help(sys.stderr)
        return USAGE
    try:
        return int(options.handler(options))
    except Failure as failure:
        say(str(failure))
        return failure.status
    except KeyboardInterrupt:
        return 130

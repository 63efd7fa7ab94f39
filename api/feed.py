"""The change feed of `GET /api/v1/values`: an ETag, `If-None-Match` answered with 304, and
`?wait=SECONDS` (a long poll) that holds the request until something the context can read
changes or the wait ends.

**The ETag** is a digest of what the answer is made from, never of a value: the context (its
environment, product and app), the format and `keys` asked for, and for each token the context
may use now (`Token.objects.usable_in`, the rule the resolver itself keeps in step with) its id,
its key and its value's version. An edit of the value, a restore (a new version), a revoke, a
delete, a scope or environment change and an expiry passing all change it; a description or
reminder change does not (the answer would be the same). It is computed *before* the values are
read, so a change that lands in between makes the next poll fetch again rather than miss it.

**HEAD** answers the same way without reading any value: 200 with the new ETag and no body
when the context changed (whether a GET would then succeed is the GET's to say). A watching
fleet long-polls with HEAD and GETs the values after its random stagger, so its reads (each one
audited, and serialised on the shared key's row) are spread instead of arriving together.

**A 304** is authenticated and rate-limited like any API call (one request, however long it
waited) and counts as a use of the access key (its last use and use count: the Access keys tab
shows a watching fleet is alive), but it is not audited as a read and marks no token used: no
value left the server. A changed context is answered with the same 200 as without the feed
(views.values: one "Resolved" event, usage rows), now with its ETag.

**Waiting without a thread or a connection.** The view is async. Under ASGI (gunicorn with
`COFFER_WEB_SERVER=asgi`: uvicorn workers serving config.asgi) a waiting request is a
suspended coroutine: it holds no database connection (closed before the wait) and no worker
thread. Django's ASGI handler does keep each open request's per-request thread (the one its
synchronous middleware ran in) parked, idle, until the answer: about 0.1-0.2 MiB a waiter as
bench/longpoll.py measured it (docs/benchmarks.md); making every middleware async-native would
remove it. At most DATABASE_SLOTS feed requests per process use the database at a time.
Each change in a workspace bumps its `WorkspaceChange` counter in the change's own transaction
(`bump_on_change`, a receiver of the audit trail's signal: every change is audited), and one
thread per process (`ChangeHub`) reads the counters of the watched workspaces once a second with
one short query, closing its connection after each, and wakes the waiters of a workspace whose
counter moved; each then computes its ETag again. The next expiry of a token the context reads
(and of the key itself) ends the wait too. A wake that changes nothing (another context's change
in the same workspace) costs that waiter one query and it waits on.

Under WSGI (gthread workers, the default) a held request would hold a worker thread, so the
server does not hold it: it answers at once and says so (`Coffer-Wait: 0`), and the client polls
at its own interval instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db import DatabaseError, connection, connections, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.utils import timezone
from django.utils.http import parse_etags
from django.views.decorators.csrf import csrf_exempt

from access.models import AccessKey
from api import views
from api.auth import (
    ApiError,
    ApiHttpRequest,
    Credential,
    authenticate,
    error_response,
    guarded,
    no_store,
    unauthorized,
)
from api.models import WorkspaceChange
from audit.models import AuditAction
from identities.models import WorkloadCredential
from tokens import usage
from tokens.models import Token

logger = logging.getLogger("coffer.api")

WAIT_MAX = 60  # seconds; under the proxies' usual 60-120 s idle timeouts
# Under ASGI nothing bounds how many requests run their synchronous part at once (gthread has
# its threads): hundreds of waiters arriving or waking together would each open a database
# connection (and PostgreSQL refuses past max_connections). Each process lets this many feed
# requests use the database at a time; the others wait their turn, holding nothing.
DATABASE_SLOTS = 4
POLL_INTERVAL = 1.0  # seconds between two reads of the watched workspaces' counters
ETAG_VERSION = "v1"

# The audit actions that change what some context may read: every other action (a read, a
# check, a member or settings change) leaves the waiters asleep.
CHANGE_PREFIXES = ("token.", "product.", "app.", "environment.")
CHANGE_ACTIONS = frozenset(
    {
        AuditAction.ACCESS_KEY_REVOKED,
        AuditAction.ACCESS_KEY_DELETED,
        AuditAction.WORKLOAD_IDENTITY_DELETED,
    }
)

# --- the counter ----------------------------------------------------------------------------


def is_change(action: str) -> bool:
    return action.startswith(CHANGE_PREFIXES) or action in CHANGE_ACTIONS


def bump_on_change(sender: Any, *, event: Any, **kwargs: Any) -> None:
    """A receiver of the audit trail's signal (api/apps.py): count a change in its workspace, in
    the transaction that records it. One upsert; the row stays locked until that transaction
    ends, so two changes in one workspace commit one after the other (each is a person's edit or
    one bulk action, which already lock their tokens)."""
    if not is_change(event.action) or _bumped_in_this_transaction(event.workspace_id):
        return
    table = WorkspaceChange._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (workspace_id, counter) VALUES (%s, 1) "
            f"ON CONFLICT (workspace_id) DO UPDATE SET counter = {table}.counter + 1",
            [event.workspace_id],
        )


def _bumped_in_this_transaction(workspace_id: int) -> bool:
    """Whether this transaction already bumped the workspace's counter (one bump says it all:
    an import of a thousand tokens is one change to a waiter, not a thousand upserts). Told by
    a no-op on_commit callback: Django drops it with the transaction, or with the savepoint
    whose rollback also undid the bump."""
    if not connection.in_atomic_block:
        return False
    marker = ("coffer.feed", workspace_id)
    if any(
        getattr(callback, "marker", None) == marker for _, callback, *_ in connection.run_on_commit
    ):
        return True

    def bumped() -> None:
        pass

    bumped.marker = marker  # type: ignore[attr-defined]
    transaction.on_commit(bumped)
    return False


def change_counter(workspace_id: int) -> int:
    return (
        WorkspaceChange.objects.filter(workspace_id=workspace_id)
        .values_list("counter", flat=True)
        .first()
        or 0
    )


# --- the ETag -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Look:
    """What the context could read at one moment, as a digest, and until when it holds."""

    etag: str
    workspace_id: int
    counter: int  # the workspace's change counter, read before the tokens
    until: dt.datetime | None  # the next expiry among them (and the key's own)


def credential_expiry(key: Credential) -> dt.datetime | None:
    if isinstance(key, WorkloadCredential):
        moments = [key.expires_at, key.identity.expires_at]
        return min(moment for moment in moments if moment is not None)
    return key.expires_at


def look(key: Credential, keys: list[str] | None, output: str, at: dt.datetime) -> Look:
    """Two short queries: the change counter, then the usable tokens' ids and versions."""
    context = key.context
    workspace_id = context.environment.workspace_id
    counter = change_counter(workspace_id)
    usable = Token.objects.usable_in(context, at)
    if keys is not None:
        usable = usable.filter(key__in=keys)
    rows = list(usable.values_list("id", "key", "value_version", "expires_at"))
    moments = [expires for *_, expires in rows if expires is not None]
    if (expiry := credential_expiry(key)) is not None:
        moments.append(expiry)
    etag = etag_of(key, keys, output, [row[:3] for row in rows])
    return Look(etag, workspace_id, counter, min(moments, default=None))


def etag_of(key: Credential, keys: list[str] | None, output: str, tokens: list[tuple]) -> str:
    """The ETag of an answer: the context, the question, and each token's (id, key, value
    version), whether `look` found them or a read did."""
    context = key.context
    described = [
        ETAG_VERSION,
        [
            context.environment.pk,
            getattr(context.product, "pk", None),
            getattr(context.app, "pk", None),
        ],
        output,
        keys,
        [[str(pk), name, version] for pk, name, version in sorted(tokens, key=lambda t: t[1])],
    ]
    digest = hashlib.sha256(json.dumps(described, separators=(",", ":")).encode()).hexdigest()
    return f'"{ETAG_VERSION}-{digest[:32]}"'


def matches(request: HttpRequest, etag: str) -> bool:
    header = request.headers.get("If-None-Match", "")
    if not header.strip():
        return False
    tags = parse_etags(header)
    # Weak comparison (RFC 9110 13.1.2): W/"x" matches "x".
    return "*" in tags or etag in {tag.removeprefix("W/") for tag in tags}


def wait_param(request: HttpRequest) -> int:
    raw = request.GET.get("wait", "0").strip()
    if not raw.isdigit() or int(raw) > WAIT_MAX:
        raise ApiError(
            400, f"wait is a whole number of seconds from 0 to {WAIT_MAX}, e.g. wait=30."
        )
    return int(raw)


# --- the answers ----------------------------------------------------------------------------


def with_etag(response: HttpResponse, etag: str) -> HttpResponse:
    """The ETag on the values, and on a 422 too (a key asked for cannot be resolved): that
    answer also holds until the context changes, so a watcher can wait on it."""
    if response.status_code in (200, 422):
        response["ETag"] = etag
    return response


def not_modified(request: ApiHttpRequest, key: Credential, etag: str) -> HttpResponse:
    """304: the key's use is counted (which re-checks it in the database: a key revoked
    meanwhile gets the 401 instead); nothing is audited as read."""
    at = timezone.now()
    with transaction.atomic():
        if not key.hold(at=at):
            raise unauthorized()
        usage.append(
            usage.Use.in_context(
                key.context,
                at=at,
                token_ids=(),
                actor=key.actor_name,
                source="",
                credential=key.usage_ref,
                address=request.client_address,
            )
        )
    usage.roll_up_if_due()
    response = HttpResponseNotModified()
    response["ETag"] = etag
    return response


def changed(request: ApiHttpRequest, key: Credential, etag: str) -> HttpResponse:
    """The answer to a client without the current ETag: for GET, the values (an ordinary read,
    audited); for HEAD, only the new ETag, with no read at all, so a fleet told of a change can
    spread its reads (`coffer run --watch --stagger`) instead of all reading at once."""
    if request.method == "HEAD":
        response = HttpResponse(status=200, content_type="application/json")
        response["ETag"] = etag
        return response
    return with_etag(views.read_values(request, key)[0], etag)


def read(request: ApiHttpRequest, key: Credential, keys: list[str] | None, output: str):
    """A GET without `If-None-Match`: the values, with the ETag made from the very tokens the
    read used (no look before it). A 422's ETag comes from a look after it."""
    response, outcome = views.read_values(request, key)
    if response.status_code == 200 and outcome is not None:
        return with_etag(response, etag_of(key, keys, output, outcome.versions))
    if response.status_code == 422:
        return with_etag(response, look(key, keys, output, timezone.now()).etag)
    return response


def still_usable(key: Credential, at: dt.datetime) -> bool:
    if isinstance(key, AccessKey):
        return AccessKey.objects.active(at).filter(pk=key.pk).exists()
    fresh = WorkloadCredential.objects.select_related("identity").filter(pk=key.pk).first()
    return fresh is not None and fresh.is_usable(at)


class SharedLooks:
    """What the waiters woken at one counter value of a workspace can share: whether a key is
    still usable, and the Look for one question (context, keys, format). An entry holds for
    that counter only (any change moves it), and a Look only until its own next expiry."""

    KEPT = 1000  # entries; the oldest go first

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._usable: dict[tuple, bool] = {}
        self._looks: dict[tuple, Look] = {}

    def _keep(self, table: dict, entry: tuple, value: Any) -> None:
        with self._lock:
            table[entry] = value
            while len(table) > self.KEPT:
                table.pop(next(iter(table)))

    def usable(self, key: Credential, at: dt.datetime, counter: int | None) -> bool:
        expiry = credential_expiry(key)
        if expiry is not None and expiry <= at:
            return False
        if counter is None:
            return still_usable(key, at)
        entry = (type(key).__name__, key.pk, counter)
        found = self._usable.get(entry)
        if found is None:
            found = still_usable(key, at)
            self._keep(self._usable, entry, found)
        return found

    def look(
        self,
        key: Credential,
        keys: list[str] | None,
        output: str,
        at: dt.datetime,
        counter: int | None,
    ) -> Look:
        if counter is None:
            return look(key, keys, output, at)
        context = key.context
        entry = (
            context.environment.workspace_id,
            context.environment.pk,
            getattr(context.product, "pk", None),
            getattr(context.app, "pk", None),
            tuple(keys) if keys is not None else None,
            output,
            counter,
        )
        found = self._looks.get(entry)
        if found is None or (found.until is not None and found.until <= at):
            found = look(key, keys, output, at)
            self._keep(self._looks, entry, found)
        expiry = credential_expiry(key)
        if expiry is not None and (found.until is None or expiry < found.until):
            found = Look(found.etag, found.workspace_id, found.counter, expiry)
        return found


shared = SharedLooks()


@dataclass
class Pending:
    """A request that waits: its key, what it asked for, and what it saw last."""

    key: Credential
    keys: list[str] | None
    output: str
    wait: int
    seen: Look


def first_look(request: ApiHttpRequest) -> HttpResponse | Pending:
    """Authenticate (rate limit included), read the parameters and answer at once unless the
    client already has the current answer and asked to wait for the next one."""

    def step() -> HttpResponse | Pending:
        key = authenticate(request)
        wait = wait_param(request)
        keys = views.keys_param(request)
        output = views.format_param(request)
        views.source_param(request, "<values>")
        if request.method == "GET" and not request.headers.get("If-None-Match", "").strip():
            return read(request, key, keys, output)
        seen = look(key, keys, output, timezone.now())
        if not matches(request, seen.etag):
            return changed(request, key, seen.etag)
        if wait == 0 or not can_wait(request):
            return not_modified(request, key, seen.etag)
        return Pending(key, keys, output, wait, seen)

    return guarded(request, step)


def look_again(request: ApiHttpRequest, pending: Pending, final: bool) -> HttpResponse | None:
    """After a wake or a timeout: 401 if the key went, the new answer if the ETag moved, 304
    at the end of the wait; None to wait on (the connection closed first)."""

    def step() -> HttpResponse | None:
        now = timezone.now()
        # Woken by the hub: the many waiters of one workspace share one check of the key and
        # one look per question at the counter the hub read (no query for the others). The
        # wait's last look, and one after the hub's counters went stale, are each their own.
        counter = None if final else hub.counter_of(pending.seen.workspace_id)
        if not shared.usable(pending.key, now, counter):
            raise unauthorized()
        current = shared.look(pending.key, pending.keys, pending.output, now, counter)
        if current.etag != pending.seen.etag:
            return changed(request, pending.key, current.etag)
        if final:
            return not_modified(request, pending.key, current.etag)
        pending.seen = current
        return None

    try:
        return guarded(request, step)
    finally:
        release_connection()


def can_wait(request: HttpRequest) -> bool:
    """Only under ASGI: under WSGI the wait would hold one of the worker's few threads."""
    return isinstance(request, ASGIRequest)


def release_connection() -> None:
    if not connection.in_atomic_block:
        connection.close()


@csrf_exempt  # no session is looked at (api/auth.py)
async def values(request: ApiHttpRequest) -> HttpResponse:
    """`GET /api/v1/values` with its ETag, `If-None-Match` and `?wait=` (see the docstring)."""
    if request.method not in ("GET", "HEAD"):
        return no_store(error_response(405, "Use GET or HEAD.", {"Allow": "GET, HEAD"}))
    held = can_wait(request)

    def begin() -> HttpResponse | Pending:
        try:
            return first_look(request)
        finally:
            if held:
                release_connection()

    async with slot(held):
        first = await sync_to_async(begin)()
    if isinstance(first, HttpResponse):
        return finish(first, request, held)
    pending = first
    loop = asyncio.get_running_loop()
    deadline = loop.time() + pending.wait
    while True:
        timeout = deadline - loop.time()
        if pending.seen.until is not None:
            timeout = min(timeout, (pending.seen.until - timezone.now()).total_seconds() + 0.05)
        if timeout > 0:
            await hub.wait(pending.seen.workspace_id, pending.seen.counter, timeout)
        final = loop.time() >= deadline
        async with slot(held):
            answer = await sync_to_async(look_again)(request, pending, final)
        if answer is not None:
            return finish(answer, request, held)


@csrf_exempt  # no session is looked at (api/auth.py)
def values_now(request: ApiHttpRequest) -> HttpResponse:
    """`values` under WSGI (gthread workers): the same answers, and a `?wait=` answered at once
    (`Coffer-Wait: 0`), since a held request would hold one of the worker's few threads."""
    if request.method not in ("GET", "HEAD"):
        return no_store(error_response(405, "Use GET or HEAD.", {"Allow": "GET, HEAD"}))
    answer = first_look(request)
    assert isinstance(answer, HttpResponse)  # only an ASGI request waits
    return finish(answer, request, held=False)


_slots: asyncio.Semaphore | None = None


def slot(held: bool) -> contextlib.AbstractAsyncContextManager:
    """One of the process's DATABASE_SLOTS under ASGI (one event loop per worker); nothing to
    take under WSGI, where each request runs its own short-lived loop."""
    global _slots
    if not held:
        return contextlib.nullcontext()
    if _slots is None:
        _slots = asyncio.Semaphore(DATABASE_SLOTS)
    return _slots


def finish(response: HttpResponse, request: HttpRequest, held: bool) -> HttpResponse:
    if "wait" in request.GET:
        response["Coffer-Wait"] = request.GET["wait"].strip() if held else "0"
    return no_store(response)


# --- waking the waiters ----------------------------------------------------------------------


@dataclass
class _Waiter:
    seen: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(True)


class ChangeHub:
    """The waiters of one process, by workspace, and the one thread that reads their counters.

    Started on the first wait; each pass is one query for every watched workspace at once, on
    a connection closed right after. A failed read (database down) is logged and tried again
    next pass; the waiters then end at their timeout, and their last look answers 503."""

    def __init__(self, interval: float = POLL_INTERVAL) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._waiters: dict[int, list[_Waiter]] = {}
        self._thread: threading.Thread | None = None
        self._counters: dict[int, tuple[int, float]] = {}  # workspace: (counter, read at)

    def counter_of(self, workspace_id: int) -> int | None:
        """The workspace's counter as the last pass read it, if that was in the last few
        intervals; None otherwise (the caller then reads for itself)."""
        with self._lock:
            counter, read_at = self._counters.get(workspace_id, (0, 0.0))
        return counter if time.monotonic() - read_at < 3 * self.interval else None

    def watching(self) -> int:
        with self._lock:
            return sum(len(waiters) for waiters in self._waiters.values())

    async def wait(self, workspace_id: int, seen: int, timeout: float) -> bool:
        """True when the workspace's counter moved from `seen`, False at the timeout."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(seen, loop, loop.create_future())
        with self._lock:
            self._waiters.setdefault(workspace_id, []).append(waiter)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="coffer-feed", daemon=True)
                self._thread.start()
        try:
            await asyncio.wait_for(waiter.future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                waiters = self._waiters.get(workspace_id, [])
                if waiter in waiters:
                    waiters.remove(waiter)
                if not waiters:
                    self._waiters.pop(workspace_id, None)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            with self._lock:
                watched = {ws: list(waiters) for ws, waiters in self._waiters.items()}
            if not watched:
                continue
            try:
                counters = dict(
                    WorkspaceChange.objects.filter(workspace_id__in=list(watched)).values_list(
                        "workspace_id", "counter"
                    )
                )
            except DatabaseError as error:
                logger.warning(
                    "Change feed: the counters could not be read: %s", type(error).__name__
                )
                continue
            finally:
                connections.close_all()
            read_at = time.monotonic()
            with self._lock:
                for workspace_id in watched:
                    self._counters[workspace_id] = (counters.get(workspace_id, 0), read_at)
                for workspace_id in [ws for ws in self._counters if ws not in self._waiters]:
                    del self._counters[workspace_id]
            for workspace_id, waiters in watched.items():
                counter = counters.get(workspace_id, 0)
                for waiter in waiters:
                    if counter != waiter.seen:
                        waiter.loop.call_soon_threadsafe(_wake, waiter.future)


hub = ChangeHub()

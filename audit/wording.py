"""How an audit event reads: one sentence, and its details as labelled lines.

"ci-deploy resolved PROD_DB_PASSWORD in Production from 10.0.0.7": who, what, on which token or
item, where. A sentence is a list of `Part`s so that a page can set keys in monospace (never
broken inside) and the actor in bold, while an export joins them into plain text. The details say
everything the event recorded, each field under a label a person understands; an empty field
is left out (never "None").

Environment, product and app names come from `CatalogNames` (the event keeps their slugs, as
they were); a slug no longer in the workspace is shown as it was recorded.

A moment an event recorded as text (an access key's expiry, "2026-12-31 12:00 UTC"; a reason,
"token expired on 2026-03-04 05:06:07 UTC"; an export's date filters) is read back into a date
or time, which the page shows in the one date format (`{% when %}`); the event keeps its text,
and a text that is no moment stays as it was written.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from django.db import models

from audit.models import FIELD_LABELS, VERSION_FIELDS, AuditAction, AuditEvent, source_label

EXPORT_FORMAT_NAMES = {"csv": "CSV", "jsonl": "JSON lines"}
KEYS_IN_A_SENTENCE = 3  # more are counted ("and 4 more"); the details list them all


PartKind = Literal["actor", "text", "key", "name", "moment"]
Phrase = Callable[[AuditEvent, dict, "CatalogNames"], list["Part"]]


@dataclass(frozen=True)
class Part:
    """A piece of a sentence: plain `text`, the `actor`, a Token `key` (monospace, whole), the
    `name` of a member, item or access key, or a `moment` (its text as recorded; a page shows
    `moment` in the one date format)."""

    kind: PartKind
    text: str
    moment: dt.date | dt.datetime | None = None


# A date, or a date and time (UTC, as every recorded moment is), as events write them:
# "2026-12-31", "2026-12-31 12:00 UTC", "2026-12-31 12:00:00 UTC", "2026-12-31T12:00:00Z".
MOMENT_TEXT = re.compile(
    r"""(?<![\w-]) (\d{4}-\d{2}-\d{2})               # the day
    (?: [ T] (\d{2}:\d{2} (?: :\d{2} (?:\.\d+)? )?)  # the time
        (?: \ ?UTC | Z | \+00:00 )? )?
    (?![\w-])""",
    re.VERBOSE,
)


def moment_of(text: str) -> dt.date | dt.datetime | None:
    """The date (or UTC time) that `text` is, as events record them, or None."""
    match = MOMENT_TEXT.fullmatch(text.strip())
    return _moment(match) if match else None


def _moment(match: re.Match) -> dt.date | dt.datetime | None:
    day, time = match.groups()
    try:
        if time is None:
            return dt.date.fromisoformat(day)
        return dt.datetime.fromisoformat(f"{day}T{time}").replace(tzinfo=dt.UTC)
    except ValueError:  # "2026-13-45": not a moment after all
        return None


def with_moments(text: str) -> list[Part]:
    """`text` as parts, each moment in it (see MOMENT_TEXT) a `moment` part. An "on " before a
    moment goes with it ("token expired on 2026-03-04 05:06:07 UTC" reads "token expired 9
    months ago" in the one date format, which is relative)."""
    parts: list[Part] = []
    position = 0
    for match in MOMENT_TEXT.finditer(text):
        if (moment := _moment(match)) is None:
            continue
        start = match.start()
        if text.endswith(" on ", position, start):
            start -= len("on ")
        if start > position:
            parts.append(_text(text[position:start]))
        parts.append(Part("moment", text[start : match.end()], moment))
        position = match.end()
    if position < len(text):
        parts.append(_text(text[position:]))
    return parts


@dataclass
class CatalogNames:
    """A workspace's environment, product and app names by slug, read once per page."""

    environment: dict[str, str] = field(default_factory=dict)
    product: dict[str, str] = field(default_factory=dict)
    app: dict[str, str] = field(default_factory=dict)
    # Token id -> "Production, Sandbox", for the tokens whose key another token shares, so
    # that two tokens of one key are never confused.
    token_environments: dict[object, str] = field(default_factory=dict)

    @classmethod
    def of(cls, workspace, events: Iterable[AuditEvent] = ()) -> CatalogNames:
        """One query (a UNION of the three lists), and one more for the environments of the
        `events`' tokens whose key is shared, whatever the number of events."""
        lists = [
            getattr(workspace, related)
            .order_by()
            .annotate(kind=models.Value(kind, output_field=models.CharField()))
            .values_list("kind", "slug", "name")
            for kind, related in (
                ("environment", "environments"),
                ("product", "products"),
                ("app", "apps"),
            )
        ]
        names = cls()
        for kind, slug, name in lists[0].union(*lists[1:], all=True):
            getattr(names, kind)[slug] = name
        if token_ids := {event.token_id for event in events if event.token_id}:
            shared = (
                workspace.tokens.order_by()
                .values("key")
                .annotate(count=models.Count("pk"))
                .filter(count__gt=1)
                .values("key")
            )
            rows = (
                workspace.tokens.filter(pk__in=token_ids, key__in=shared)
                .order_by("pk", "environments__name")
                .values_list("pk", "environments__name")
            )
            environments: dict[object, list[str]] = {}
            for pk, environment in rows:
                environments.setdefault(pk, []).extend([environment] if environment else [])
            names.token_environments = {pk: ", ".join(e) for pk, e in environments.items()}
        return names

    def name(self, kind: str, slug: object) -> str:
        text = str(slug or "")
        return getattr(self, kind, {}).get(text, text) if text else ""


NO_NAMES = CatalogNames()


# --- the sentence ----------------------------------------------------------------------------


def _text(text: str) -> Part:
    return Part("text", text)


def _name(text: object) -> Part:
    return Part("name", str(text or ""))


def _join(items: list[list[Part]]) -> list[Part]:
    """a, b and c"""
    parts: list[Part] = []
    for index, item in enumerate(items):
        if index:
            parts.append(_text(" and " if index == len(items) - 1 else ", "))
        parts += item
    return parts


def _keys(keys: list[str]) -> list[Part]:
    shown = [[Part("key", key)] for key in keys[:KEYS_IN_A_SENTENCE]]
    hidden = len(keys) - len(shown)
    if hidden:
        shown.append([_text(f"{hidden} more")])
    return _join(shown) if shown else [_text("no token")]


def _context(detail: dict, names: CatalogNames) -> list[Part]:
    """ " in Production for Payments / Checkout from 10.0.0.7", as much as was recorded."""
    parts: list[Part] = []
    if environment := names.name("environment", detail.get("environment")):
        parts += [_text(" in "), _name(environment)]
    product = names.name("product", detail.get("product"))
    app = names.name("app", detail.get("app"))
    if product or app:
        parts += [_text(" for "), _name(" / ".join(x for x in (product, app) if x))]
    if address := detail.get("client_address"):
        parts += [_text(" from "), _name(address)]
    return parts


def _role(value: object) -> str:
    return str(value or "").capitalize()


def _changed_fields(changed: list) -> str:
    """ "value, description and environments", as the Tokens page labels the fields."""
    labels = [FIELD_LABELS.get(str(name), str(name)).removeprefix("Token ") for name in changed]
    words = [[_text(label[:1].lower() + label[1:])] for label in labels]
    return "".join(part.text for part in _join(words))


def _token_edit(event: AuditEvent, detail: dict) -> list[Part]:
    key = [Part("key", event.token_key)]
    changed = [name for name in detail.get("changed", []) if name != "key"]
    if previous := detail.get("previous_key"):
        parts = [_text("renamed "), Part("key", str(previous)), _text(" to "), *key]
        if changed:
            parts.append(_text(f" and changed its {_changed_fields(changed)}"))
        return parts
    if changed:
        return [_text(f"changed the {_changed_fields(changed)} of "), *key]
    return [_text("edited "), *key]


def _version(value: object) -> str:
    # Stored from 0 (as in the ciphertexts), shown from 1 as on History.
    return str(value + 1) if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _key(event: AuditEvent) -> list[Part]:
    return [Part("key", event.token_key)] if event.token_key else [_text("a token")]


def _on_token(verb: str) -> Phrase:
    return lambda event, detail, names: [_text(f"{verb} "), *_key(event)]


def _on_version(verb: str, field_name: str) -> Phrase:
    def phrase(event: AuditEvent, detail: dict, names: CatalogNames) -> list[Part]:
        return [_text(f"{verb} version {_version(detail.get(field_name))} of "), *_key(event)]

    return phrase


def _naming(words: str, field_name: str, *, with_role: bool = False) -> Phrase:
    """ "added the workload identity gh-deploy", "invited zed@example.com as Viewer"."""

    def phrase(event: AuditEvent, detail: dict, names: CatalogNames) -> list[Part]:
        parts = [_text(f"{words} "), _name(detail.get(field_name))]
        if with_role and detail.get("role"):
            parts.append(_text(f" as {_role(detail['role'])}"))
        return parts

    return phrase


def _saying(words: str, *, with_context: bool = False) -> Phrase:
    def phrase(event: AuditEvent, detail: dict, names: CatalogNames) -> list[Part]:
        return [_text(words), *(_context(detail, names) if with_context else [])]

    return phrase


def _required(required: str, optional: str) -> Phrase:
    return lambda event, detail, names: [_text(required if detail.get("required") else optional)]


def _resolved(event: AuditEvent, detail: dict, names: CatalogNames) -> list[Part]:
    keys = [str(key) for key in detail.get("keys", [])]
    if not keys and event.token_key:
        keys = [event.token_key]
    return [_text("resolved "), *_keys(keys), *_context(detail, names)]


def _rotated(event: AuditEvent, detail: dict, names: CatalogNames) -> list[Part]:
    parts = [_text("rotated the master key")]
    old, new = detail.get("from_master_key"), detail.get("to_master_key")
    if old and new:
        parts += [_text(" from "), _name(old), _text(" to "), _name(new)]
    return parts


def _role_changed(event: AuditEvent, detail: dict, names: CatalogNames) -> list[Part]:
    change = f" from {_role(detail.get('from'))} to {_role(detail.get('to'))}"
    return [_text("changed the role of "), _name(detail.get("member")), _text(change)]


def _accepted(event: AuditEvent, detail: dict, names: CatalogNames) -> list[Part]:
    role = f" as {_role(detail['role'])}" if detail.get("role") else ""
    return [_text(f"accepted an invitation{role}")]


def _call_failed(event: AuditEvent, detail: dict, names: CatalogNames) -> list[Part]:
    parts = [_text("made an API call that failed"), *_context(detail, names)]
    if reason := str(detail.get("reason") or "").strip():
        parts += [_text(": "), *with_moments(reason)]
    return parts


def _exported(event: AuditEvent, detail: dict, names: CatalogNames) -> list[Part]:
    count = detail.get("events")
    shown = f"{count} event{'' if count == 1 else 's'}" if isinstance(count, int) else "events"
    as_format = EXPORT_FORMAT_NAMES.get(str(detail.get("format")), "a file")
    return [_text(f"exported {shown} as {as_format}")]


def _catalog(event: AuditEvent, detail: dict, names: CatalogNames) -> list[Part]:
    noun, _, change = event.action.partition(".")
    if change == "renamed":
        renamed = detail.get("renamed")
        if renamed and len(renamed) == 2:
            return [
                _text(f"renamed the {noun} “"),
                _name(renamed[0]),
                _text("” to “"),
                _name(renamed[1]),
                _text("”"),
            ]
        slug = detail.get("slug_changed")
        if slug and len(slug) == 2:
            return [
                _text(f"changed the slug of the {noun} "),
                _name(detail.get("name") or slug[0]),
                _text(f" from {slug[0]} to {slug[1]}"),
            ]
        return [_text(f"renamed the {noun} "), _name(detail.get("name"))]
    verb = {"created": "added" if noun != "workspace" else "created"}.get(change, change)
    return [_text(f"{verb} the {noun} "), _name(detail.get("name"))]


def _phrases() -> dict[str, Phrase]:
    A = AuditAction
    phrases: dict[str, Phrase] = {
        A.CREATED: _on_token("created"),
        A.UPDATED: lambda event, detail, names: _token_edit(event, detail),
        A.REVOKED: _on_token("revoked"),
        A.DELETED: _on_token("deleted"),
        A.RESOLVED: _resolved,
        A.VERSION_RESTORED: _on_version("restored", "restored_version"),
        A.VERSION_DESTROYED: _on_version("destroyed", "destroyed_version"),
        A.KEY_ROTATED: _rotated,
        A.MEMBER_ADDED: _naming("added", "member", with_role=True),
        A.MEMBER_ROLE_CHANGED: _role_changed,
        A.MEMBER_REMOVED: _naming("removed", "member"),
        A.MEMBER_INVITED: _naming("invited", "email", with_role=True),
        A.INVITATION_ACCEPTED: _accepted,
        A.INVITATION_REVOKED: _naming("revoked the invitation of", "email"),
        A.MEMBER_LEFT: _saying("left the workspace"),
        A.TWO_FACTOR_REQUIREMENT_CHANGED: _required(
            "required two-factor authentication", "made two-factor authentication optional"
        ),
        A.SSO_REQUIREMENT_CHANGED: _required(
            "required single sign-on", "made single sign-on optional"
        ),
        A.ACCESS_KEY_CREATED: _naming("created the access key", "access_key"),
        A.ACCESS_KEY_REVOKED: _naming("revoked the access key", "access_key"),
        A.ACCESS_KEY_DELETED: _naming("deleted the access key", "access_key"),
        A.WORKLOAD_IDENTITY_CREATED: _naming("added the workload identity", "workload_identity"),
        A.WORKLOAD_IDENTITY_DELETED: _naming("deleted the workload identity", "workload_identity"),
        A.WORKLOAD_IDENTITY_EXCHANGED: _saying("signed in", with_context=True),
        A.ACCESS_KEY_CHECKED: _saying("checked references", with_context=True),
        A.ACCESS_KEY_CALL_FAILED: _call_failed,
        A.ACTIVITY_EXPORTED: _exported,
    }
    for action in A:
        if action.value.split(".")[0] in ("product", "app", "environment", "workspace"):
            phrases.setdefault(action.value, _catalog)
    return phrases


PHRASES = _phrases()


def _unknown(event: AuditEvent, detail: dict, names: CatalogNames) -> list[Part]:
    """An action this version does not know (a newer one, restored from a backup)."""
    parts = [_text(f"did “{event.get_action_display()}”")]
    return parts + ([_text(" on "), *_key(event)] if event.token_key else [])


def sentence_parts(event: AuditEvent, names: CatalogNames = NO_NAMES) -> list[Part]:
    """The event as a sentence: the actor, then what they did."""
    global PHRASES
    if PHRASES is None:
        PHRASES = _phrases()
    phrase = PHRASES.get(event.action, _unknown)
    parts = [
        Part("actor", event.actor_label),
        _text(" "),
        *phrase(event, dict(event.detail or {}), names),
    ]
    if environments := names.token_environments.get(event.token_id):
        # After the event's own key, which of the key's tokens: "STRIPE_SECRET (Sandbox)".
        for index, part in enumerate(parts):
            if part.kind == "key" and part.text == event.token_key:
                parts.insert(index + 1, _text(f" ({environments})"))
                break
    return parts


def sentence(event: AuditEvent, names: CatalogNames = NO_NAMES) -> str:
    """The sentence as plain text (exports, the admin)."""
    return "".join(part.text for part in sentence_parts(event, names))


# --- the details -----------------------------------------------------------------------------

DETAIL_LABELS = {
    "keys": "Tokens",
    "references": "References",
    "environment": "Environment",
    "product": "Product",
    "app": "App",
    "source": "Source",
    "access_key": "Access key",
    "identifier": "Key identifier",
    "client_address": "From address",
    "workload_identity": "Workload identity",
    "credential": "Credential",
    "subject": "Subject",
    "expires": "Expires",
    "changed": "Changed",
    "previous_key": "Previous key",
    "restored_version": "Restored version",
    "new_version": "New version",
    "destroyed_version": "Destroyed version",
    "member": "Member",
    "role": "Role",
    "from": "Role before",
    "to": "Role after",
    "email": "Email",
    "name": "Name",
    "slug": "Slug",
    "renamed": "Renamed",
    "slug_changed": "Slug changed",
    "required": "Required",
    "from_master_key": "From master key",
    "to_master_key": "To master key",
    "reason": "Reason",
    "problems": "Problems",
    "note": "Note",
    "format": "Format",
    "filters": "Filters",
    "events": "Events",
}
ROLE_FIELDS = frozenset({"role", "from", "to"})
KEY_FIELDS = frozenset({"keys", "previous_key"})
# Fields recorded as a moment's text (or "never"), and text that may name moments.
MOMENT_FIELDS = frozenset({"expires"})
TEXT_WITH_MOMENTS = frozenset({"reason"})
DATE_FILTERS = frozenset({"since", "until"})


@dataclass(frozen=True)
class DetailLine:
    """One labelled line of an event's details; `keys` for Token Keys (set in monospace).

    `text` says it all in plain text (as recorded); a page shows instead `moment`, or `parts`
    (text with moments in it), in the one date format ({% when %})."""

    label: str
    text: str = ""
    keys: tuple[str, ...] = ()
    moment: dt.date | dt.datetime | None = None
    parts: tuple[Part, ...] = ()


def _plain(value: object) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_plain(v)}" for k, v in value.items() if v not in (None, "", []))
    if isinstance(value, list | tuple):
        return ", ".join(_plain(item) for item in value if item not in (None, ""))
    return str(value)


def _line(name: str, value: object, names: CatalogNames) -> DetailLine | None:
    if value is None or value == "" or value == [] or value == {}:
        return None
    if name == "format":
        return DetailLine("Format", EXPORT_FORMAT_NAMES.get(str(value), str(value)))
    label = DETAIL_LABELS.get(name, name.replace("_", " ").capitalize())
    if name in KEY_FIELDS:
        keys = value if isinstance(value, list) else [value]
        return DetailLine(label, keys=tuple(str(k) for k in keys))
    if name in ("environment", "product", "app"):
        return DetailLine(label, names.name(name, value))
    if name == "source":
        return DetailLine(label, source_label(value))
    if name == "changed" and isinstance(value, list):
        return DetailLine(label, ", ".join(FIELD_LABELS.get(str(v), str(v)) for v in value))
    if name in VERSION_FIELDS:
        return DetailLine(label, _version(value))
    if name in ROLE_FIELDS:
        return DetailLine(label, _role(value))
    if name in ("renamed", "slug_changed") and isinstance(value, list) and len(value) == 2:
        return DetailLine(label, f"{value[0]} → {value[1]}")
    if name in MOMENT_FIELDS and isinstance(value, str):
        if value.strip().lower() == "never":
            return DetailLine(label, "Never")
        return DetailLine(label, value, moment=moment_of(value))
    if name in TEXT_WITH_MOMENTS and isinstance(value, str):
        return _with_parts(DetailLine(label, value), with_moments(value))
    if name == "filters" and isinstance(value, dict):
        return _with_parts(DetailLine(label, _plain(value)), _filters(value))
    return DetailLine(label, _plain(value))


def _with_parts(line: DetailLine, parts: list[Part]) -> DetailLine:
    """`line` with `parts` when they hold a moment (else its text says it all)."""
    if any(part.moment for part in parts):
        return DetailLine(line.label, line.text, parts=tuple(parts))
    return line


def _filters(filters: dict) -> list[Part]:
    """ "since: 2026-12-01, kind: Tokens", the dates as moments."""
    parts: list[Part] = []
    for name, value in filters.items():
        if value in (None, "", []):
            continue
        if parts:
            parts.append(_text(", "))
        parts.append(_text(f"{name}: "))
        shown = _plain(value)
        moment = moment_of(shown) if name in DATE_FILTERS else None
        parts.append(Part("moment", shown, moment) if moment else _text(shown))
    return parts


def detail_lines(event: AuditEvent, names: CatalogNames = NO_NAMES) -> list[DetailLine]:
    """Everything the event recorded, labelled: when, what, who (as recorded), then each detail
    field that has something to say."""
    lines = [
        DetailLine("When", moment=event.created_at),
        DetailLine("Action", str(event.get_action_display())),
        DetailLine("Recorded as", event.actor_name or "system"),
    ]
    if event.token_key and "keys" not in (event.detail or {}):
        lines.append(DetailLine("Token", keys=(event.token_key,)))
    for name, value in (event.detail or {}).items():
        if line := _line(str(name), value, names):
            lines.append(line)
    return lines

"""Activity's formatting: `{% load audit_extras %}`.

`{% event_sentence event names %}` writes an event as its sentence (audit/wording.py): the actor
in bold, Token Keys in monospace and whole (never broken inside, never underlined: an underline
hides underscores).
`{% event_details event names as lines %}` gives its labelled details; `{% with_moments parts %}`
writes a line's text with the moments in it in the one date format (`{% when %}`);
`|source_label` names a use's source as a person says it ("API values request", "resolve of
deploy.yaml").
"""

from __future__ import annotations

from urllib.parse import urlencode

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from audit.models import AuditEvent
from audit.models import source_label as _source_label
from audit.wording import NO_NAMES, CatalogNames, DetailLine, Part, detail_lines, sentence_parts
from lib.templatetags.ui import token_key_html, when

register = template.Library()


def key_html(key: str, href: str = "") -> SafeString:
    code = token_key_html(key, "event-key")
    return format_html('<a class="event-key-link" href="{}">{}</a>', href, code) if href else code


@register.simple_tag(takes_context=True)
def event_sentence(
    context: template.Context, event: AuditEvent, names: CatalogNames | None = None
) -> SafeString:
    """The sentence without links: it is the summary of the event's details, and a link inside
    a summary (a button) is lost to keyboards. The details link the token."""
    pieces: list[SafeString | str] = []
    for part in sentence_parts(event, names or NO_NAMES):
        if part.kind == "actor":
            pieces.append(format_html('<span class="event-actor">{}</span>', part.text))
        elif part.kind == "key":
            pieces.append(key_html(part.text))
        else:
            pieces.append(_text_or_moment(context, part))
    return format_html_join("", "{}", ((piece,) for piece in pieces))


def _text_or_moment(context: template.Context, part: Part) -> SafeString | str:
    return when(context, part.moment) if part.moment else format_html("{}", part.text)


@register.simple_tag(takes_context=True)
def with_moments(context: template.Context, parts: tuple[Part, ...]) -> SafeString:
    """A details line's text, each moment in it in the one date format."""
    return format_html_join("", "{}", ((_text_or_moment(context, part),) for part in parts))


@register.simple_tag
def event_details(event: AuditEvent, names: CatalogNames | None = None) -> list[DetailLine]:
    return detail_lines(event, names or NO_NAMES)


@register.filter
def keys_html(line: DetailLine, activity_url: str = "") -> SafeString:
    """The keys of a details line, each whole; a long one may wrap after an underscore only
    (a phone has no room for 128 characters on one line). With `activity_url`, each key links
    to Activity filtered on it."""
    pieces = []
    for key in line.keys:
        code = token_key_html(key, "event-key")
        if activity_url:
            href = f"{activity_url}?{urlencode({'token': key})}"
            code = format_html('<a class="event-key-link" href="{}">{}</a>', href, code)
        pieces.append(code)
    return format_html_join(", ", "{}", ((piece,) for piece in pieces))


@register.filter
def source_label(source: object) -> str:
    return _source_label(source)

"""`{% shown_once %}`: the one panel that shows a secret for the only time.

    {% shown_once "this key" label="Access key" field_id="new-access-key" value=key
                  button="Copy key" copy_label="the access key" %}
      Copy it now and store it … (the advice after "You won't see this key again.")
    {% endshown_once %}

A list `value` (recovery codes) is shown one item per line. Without `button` there is no copy
button. The markup is templates/includes/shown_once.html.
"""

from __future__ import annotations

from collections.abc import Sequence

from django import template
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

register = template.Library()


@register.simple_block_tag
def shown_once(
    content: SafeString,
    what: str,
    *,
    label: str,
    field_id: str,
    value: str | Sequence[str],
    button: str = "",
    copy_label: str = "",
) -> SafeString:
    lines = [value] if isinstance(value, str) else list(value)
    return render_to_string(
        "includes/shown_once.html",
        {
            "what": what,
            "advice": content,
            "label": label,
            "field_id": field_id,
            "value": "\n".join(lines),
            "rows": len(lines) if not isinstance(value, str) else 0,
            "button": button,
            "copy_label": copy_label,
        },
    )

"""Read a page's POST form the way a browser does, so tests can fill in any form generically.

The security suite posts to every form of the project (leak scan, bad input) without knowing
each form's fields in advance: it reads them from the rendered HTML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class FormField:
    name: str
    kind: str  # input type ("text", "password", "checkbox", ...), "select" or "textarea"
    value: str = ""
    options: list[str] = field(default_factory=list)  # select options / checkbox values
    selected: list[str] = field(default_factory=list)
    multiple: bool = False
    required: bool = False


@dataclass
class Form:
    action: str
    fields: dict[str, FormField] = field(default_factory=dict)

    def defaults(self) -> dict[str, str | list[str]]:
        """What submitting the untouched form sends."""
        data: dict[str, str | list[str]] = {}
        for f in self.fields.values():
            if f.kind in {"checkbox", "radio"} or f.multiple:
                data[f.name] = list(f.selected)
            elif f.kind == "select":
                data[f.name] = f.selected[0] if f.selected else (f.options or [""])[0]
            elif f.kind in {"submit", "button", "reset", "file", "image"}:
                continue
            else:
                data[f.name] = f.value
        return data

    def choices(self, name: str) -> list[str]:
        return [option for option in self.fields[name].options if option != ""]

    def secret_fields(self) -> list[str]:
        """Fields that take a token value: password inputs, or a field named like a value."""
        return [
            f.name
            for f in self.fields.values()
            if f.kind == "password" or f.name in {"value", "new_value"}
        ]


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._select: FormField | None = None
        self._textarea: FormField | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {name: (value or "") for name, value in attrs}
        if tag == "form":
            if a.get("method", "get").lower() == "post":
                self.forms.append(Form(action=a.get("action", "")))
            else:
                self.forms.append(Form(action="<get form>"))
            return
        if not self.forms:
            return
        form = self.forms[-1]
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text").lower()
            existing = form.fields.get(name)
            if kind in {"checkbox", "radio"}:
                f = existing or form.fields.setdefault(name, FormField(name, kind))
                f.options.append(a.get("value", "on"))
                if "checked" in a:
                    f.selected.append(a.get("value", "on"))
                f.multiple = kind == "checkbox"
            else:
                form.fields[name] = FormField(
                    name, kind, value=a.get("value", ""), required="required" in a
                )
        elif tag == "select" and name:
            self._select = form.fields[name] = FormField(
                name, "select", multiple="multiple" in a, required="required" in a
            )
        elif tag == "option" and self._select is not None:
            self._select.options.append(a.get("value", ""))
            if "selected" in a:
                self._select.selected.append(a.get("value", ""))
        elif tag == "textarea" and name:
            self._textarea = form.fields[name] = FormField(name, "textarea")

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea.value += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            if self._textarea is not None:
                self._textarea.value = self._textarea.value.removeprefix("\n")
            self._textarea = None


def post_forms(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return [form for form in parser.forms if form.action != "<get form>"]


def main_form(html: str, skip_actions: tuple[str, ...] = ("/accounts/logout/",)) -> Form | None:
    """The page's main POST form (the one with the most fields, sign-out excluded)."""
    forms = [form for form in post_forms(html) if form.action not in skip_actions]
    return max(forms, key=lambda form: len(form.fields), default=None)

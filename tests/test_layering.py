"""The floors of the house (STYLE.md, Layout), read from the import statements of the source.

Every `import` counts, wherever it is: at the top, inside a function or under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FEATURE_APPS = (
    "access",
    "accounts",
    "api",
    "audit",
    "backups",
    "identities",
    "imports",
    "notifications",
    "tokens",
    "workspaces",
)
PROJECT = (*FEATURE_APPS, "config", "lib")
# Modules an app keeps to itself: its pages, its admin and its commands.
PRIVATE = ("views", "admin", "management")
# The decorators that signed_in_view stacks; a view asks for sign-in through it.
SIGN_IN = {"login_required"}


def imports_of(package: str) -> list[tuple[str, str, list[str]]]:
    """(file, module, names) for every import in `package`'s Python files."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        where = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(), filename=where)):
            if isinstance(node, ast.Import):
                found += [(where, alias.name, []) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((where, node.module, [alias.name for alias in node.names]))
    return found


def top(module: str) -> str:
    return module.split(".")[0]


def offending(package: str, wrong: Callable[[str, list[str]], bool]) -> list[str]:
    """'file: module' for each import in `package` for which `wrong(module, names)` holds."""
    return [
        f"{file}: {module}" for file, module, names in imports_of(package) if wrong(module, names)
    ]


def outside(*allowed: str) -> Callable[[str, list[str]], bool]:
    """An import of a project package other than `allowed`."""
    return lambda module, _: top(module) in PROJECT and top(module) not in allowed


def test_lib_imports_nothing_of_the_project():
    assert not offending("lib", outside("lib"))


def test_audit_is_the_bottom_floor():
    assert not offending("audit", outside("audit", "lib"))


def test_workspaces_builds_only_on_audit_and_lib():
    assert not offending("workspaces", outside("workspaces", "audit", "lib"))


@pytest.mark.parametrize("app", FEATURE_APPS)
def test_no_app_imports_another_apps_views_admin_or_commands(app):
    """Shared plumbing lives in lib/, not in the app that happened to need it first."""

    def private_to_another(module: str, _: list[str]) -> bool:
        app_of, _, rest = module.partition(".")
        return app_of in FEATURE_APPS and app_of != app and rest.split(".")[0] in PRIVATE

    assert not offending(app, private_to_another)


@pytest.mark.parametrize("app", FEATURE_APPS)
def test_views_ask_for_sign_in_through_signed_in_view(app):
    """One decorator stack for every signed-in page: login_required is applied in lib only."""

    def applies_sign_in(module: str, names: list[str]) -> bool:
        return module == "django.contrib.auth.decorators" and bool(SIGN_IN & set(names))

    assert not offending(app, applies_sign_in)


def test_the_reference_grammar_is_pure_python():
    """tokens/references/grammar.py imports nothing of Django or the project: its property
    tests need no settings and no database, and anything may parse a template."""
    allowed = {"__future__", "re", "collections", "dataclasses", "itertools", "operator"}
    grammar = "tokens/references/grammar.py"
    imported = [module for file, module, _ in imports_of("tokens") if file == grammar]
    assert imported, "grammar.py was not read"
    assert {top(module) for module in imported} <= allowed, imported

"""A query the ORM builds and compiles once per shape, then run as its SQL with new parameters.

Building and compiling a queryset costs more CPU than running it, on a path taken by every
request. `CompiledQuery.of(queryset, markers)` compiles the queryset once, built with marker
values in place of the real ones (ids, datetimes or strings that no row holds), and finds each
marker among the compiled parameters; `params(values)` then puts the real values in the markers'
places. The SQL is the ORM's own, so the rule stays the queryset's: there is no second copy of
it to keep in step.

A datetime marker stands for a DateTimeField's value: it and the value replacing it are
adapted for the database the same way (a string on SQLite).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.db.models import QuerySet


class MarkerNotFound(Exception):
    """A marker is not among the compiled parameters: the query does not use that value."""


def _prepared(value: Any, alias: str) -> Any:
    if isinstance(value, dt.datetime):
        return connections[alias].ops.adapt_datetimefield_value(value)
    return value


@dataclass(frozen=True)
class CompiledQuery:
    sql: str
    # For each parameter of `sql`, in order: (the marker's name, None) or (None, a constant).
    slots: tuple[tuple[str | None, Any], ...]
    alias: str

    @classmethod
    def of(
        cls, queryset: QuerySet, markers: Mapping[str, Any], *, using: str = "default"
    ) -> CompiledQuery:
        """Compile `queryset`, built with `markers`' values, for the database `using`."""
        sql, params = queryset.query.get_compiler(using=using).as_sql()
        names: dict[Any, str] = {}
        for marker, value in markers.items():
            names[(type(value), _prepared(value, using))] = marker
        slots: list[tuple[str | None, Any]] = []
        found = set()
        name: str | None
        for param in params:
            try:
                name = names.get((type(param), param))
            except TypeError:  # an unhashable constant (e.g. a list)
                name = None
            if name is None and isinstance(param, str):
                name = names.get((dt.datetime, param))  # an adapted datetime (SQLite)
            slots.append((name, None) if name is not None else (None, param))
            found.add(name)
        if missing := set(markers) - found:
            raise MarkerNotFound(f"{sorted(missing)} not in the compiled query: {sql}")
        return cls(sql, tuple(slots), using)

    def params(self, values: Mapping[str, Any]) -> list[Any]:
        """The parameters of `sql` with each marker's real value from `values`."""
        alias = self.alias
        return [
            constant if name is None else _prepared(values[name], alias)
            for name, constant in self.slots
        ]

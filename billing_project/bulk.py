"""Bulk inserts of several models' rows in ONE statement (PostgreSQL data-modifying CTEs): a
billing run writes an invoice's fees, taxes, credits, invoice row and events in one round trip,
and may join further statements of the same transaction to it (a `Tail`: the invoice's lineage)."""

# Each model's rows are compiled by Django's own insert compiler (field preparation, auto_now,
# defaults, as bulk_create does), then joined: WITH i0 AS (INSERT ...), i1 AS (INSERT ...)
# INSERT .... PostgreSQL runs every sub-statement exactly once, in one snapshot; foreign keys
# between them are checked at commit (Django's are DEFERRABLE INITIALLY DEFERRED), so their order
# does not matter. No RETURNING: every model written this way has its primary key set in Python
# (UUID defaults) or does not need it back (a BigAutoField is left to the database). Elsewhere
# (SQLite) one bulk_create per model, same rows.

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, models
from django.db.models.sql import InsertQuery

Batch = tuple[type[models.Model], Sequence[models.Model]]

_NAMED = re.compile(r"%\((\w+)\)s")


@dataclass
class Tail:
    """More of the statement, after the inserts (PostgreSQL only): `ctes` ("a AS (...), b AS
    (...)") join the WITH list, `select` becomes the statement's answer, read into `rows`. Named
    parameters (%(name)s); its sub-statements see the snapshot the inserts see (not their rows)."""

    ctes: str
    select: str
    params: Mapping[str, Any]
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def positional(self) -> tuple[str, str, list[Any]]:
        """ctes and select with %s placeholders, and their parameters in order."""
        params: list[Any] = []

        def placeholder(match: re.Match[str]) -> str:
            params.append(self.params[match.group(1)])
            return "%s"

        ctes = _NAMED.sub(placeholder, self.ctes)
        select = _NAMED.sub(placeholder, self.select)
        return ctes, select, params


def insert_together(batches: Sequence[Batch], *, tail: Tail | None = None) -> int:
    """Insert every batch's objects (then run `tail`, PostgreSQL); returns the number of
    statements run (1 on PostgreSQL)."""
    lists = [(model, list(objs)) for model, objs in batches if objs]
    if not lists and tail is None:
        return 0
    if connection.vendor != "postgresql":
        if tail is not None:
            raise ValueError("insert_together: a tail is PostgreSQL's")
        for model, objs in lists:
            model._default_manager.bulk_create(objs)
        return len(lists)
    statements: list[str] = []
    params: list[Any] = []
    for model, objs in lists:
        opts = model._meta
        for obj in objs:
            if obj.pk is None and not opts.pk.db_returning:
                obj.pk = opts.pk.get_pk_value_on_save(obj)
            obj._prepare_related_fields_for_save(operation_name="insert_together")  # type: ignore[attr-defined]
        without_pk = [obj for obj in objs if obj.pk is None]
        if without_pk and len(without_pk) != len(objs):
            raise ValueError(f"{model.__name__}: primary keys all set or all left to the database")
        fields = [f for f in opts.concrete_fields if not f.generated and (not without_pk or f is not opts.pk)]
        query = InsertQuery(model)
        query.insert_values(fields, objs)
        for sql, sql_params in query.get_compiler(connection=connection).as_sql():
            statements.append(sql)
            params.extend(sql_params)
    if tail is not None:
        # Every insert becomes a CTE (PostgreSQL runs each once, referenced or not); the tail's
        # SELECT is the answer.
        ctes, select, tail_params = tail.positional()
        parts = [f"i{n} AS ({sql})" for n, sql in enumerate(statements)] + [ctes]
        sql, params = f"WITH {', '.join(parts)} {select}", params + tail_params
    else:
        head = ", ".join(f"i{n} AS ({sql})" for n, sql in enumerate(statements[:-1]))
        sql = f"WITH {head} {statements[-1]}" if head else statements[-1]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if tail is not None:
            tail.rows = list(cursor.fetchall())
    for _, objs in lists:
        for obj in objs:
            obj._state.adding = False
            obj._state.db = connection.alias
    return 1

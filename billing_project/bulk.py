"""Bulk inserts of several models' rows in ONE statement (PostgreSQL data-modifying CTEs): a
billing run writes an invoice's fees, taxes, credits, invoice row and events in one round trip."""

# Each model's rows are compiled by Django's own insert compiler (field preparation, auto_now,
# defaults, as bulk_create does), then joined: WITH i0 AS (INSERT ...), i1 AS (INSERT ...)
# INSERT .... PostgreSQL runs every sub-statement exactly once, in one snapshot; foreign keys
# between them are checked at commit (Django's are DEFERRABLE INITIALLY DEFERRED), so their order
# does not matter. No RETURNING: every model written this way has its primary key set in Python
# (UUID defaults) or does not need it back (a BigAutoField is left to the database). Elsewhere
# (SQLite) one bulk_create per model, same rows.

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection, models
from django.db.models.sql import InsertQuery

Batch = tuple[type[models.Model], Sequence[models.Model]]


def insert_together(batches: Sequence[Batch]) -> int:
    """Insert every batch's objects; returns the number of statements run (1 on PostgreSQL)."""
    lists = [(model, list(objs)) for model, objs in batches if objs]
    if not lists:
        return 0
    if connection.vendor != "postgresql":
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
    head = ", ".join(f"i{n} AS ({sql})" for n, sql in enumerate(statements[:-1]))
    sql = f"WITH {head} {statements[-1]}" if head else statements[-1]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    for _, objs in lists:
        for obj in objs:
            obj._state.adding = False
            obj._state.db = connection.alias
    return 1

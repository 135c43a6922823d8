"""Bulk inserts of several models' rows in ONE statement (PostgreSQL data-modifying CTEs): a
billing run writes a batch of invoices' rows, fees, taxes, credits and events in one round trip,
and may join further statements of the same transaction to it (a `Tail`: the invoices' lineage)."""

# Each model's rows become Django's own PostgreSQL insert (VALUES for one row, UNNEST of one
# array per column for several), their values prepared as bulk_create prepares them (defaults
# and auto_now set on the objects, each field's get_db_prep_save where it changes anything, and
# Django's compiler for expressions: _insert_arrays), then joined: WITH i0 AS (INSERT ...), i1 AS
# (INSERT ...) INSERT .... PostgreSQL runs every sub-statement exactly once, in one snapshot; foreign keys
# between them are checked at commit (Django's are DEFERRABLE INITIALLY DEFERRED), so their order
# does not matter. No RETURNING: every model written this way has its primary key set in Python
# (UUID defaults) or does not need it back (a BigAutoField is left to the database). Elsewhere
# (SQLite) one bulk_create per model, same rows.

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any, cast

from django.conf import settings
from django.db import connection, models
from django.db.models.sql import InsertQuery

Batch = tuple[type[models.Model], Sequence[models.Model]]


# Values Django's own preparation (Field.get_db_prep_save on PostgreSQL) hands to the driver
# unchanged, by the exact field class: such a value is taken as it is, anything else (None
# excepted) goes through the field's get_db_prep_save, as bulk_create would. Exact classes only:
# a subclass may prepare its values its own way. The billing run inserts about 160 values per
# invoice; Django's per-value path was a quarter of the run's Python time.
def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_decimal(value: Any) -> bool:
    return type(value) is Decimal and value.is_finite()


def _is_aware(value: Any) -> bool:
    return type(value) is datetime and (value.tzinfo is not None or not settings.USE_TZ)


_AS_IS: dict[type[models.Field], Callable[[Any], bool]] = {
    models.CharField: _is_str,
    models.TextField: _is_str,
    models.UUIDField: lambda value: type(value) is uuid.UUID,
    models.BooleanField: lambda value: type(value) is bool,
    models.IntegerField: _is_int,
    models.BigIntegerField: _is_int,
    models.SmallIntegerField: _is_int,
    models.PositiveIntegerField: _is_int,
    models.PositiveBigIntegerField: _is_int,
    models.PositiveSmallIntegerField: _is_int,
    models.BigAutoField: _is_int,
    models.AutoField: _is_int,
    models.DecimalField: _is_decimal,
    models.DateTimeField: _is_aware,
    models.DateField: lambda value: type(value) is date,
}


@dataclass(frozen=True)
class _Column:
    field: models.Field
    attname: str
    as_is: Callable[[Any], bool] | None  # None: always prepared by the field
    pre_save: bool  # read through field.pre_save (auto_now, files) rather than the attribute
    json: bool  # a JSONField: several rows' values sent as ONE JSON array (text), not a jsonb[]


def _column(model_field: models.Field) -> _Column:
    target = model_field.target_field if model_field.is_relation else model_field  # type: ignore[attr-defined]
    exact = type(model_field) is models.ForeignKey or type(model_field) in _AS_IS
    as_is = _AS_IS.get(type(target)) if exact else None
    # Field.pre_save is the attribute for every field but the ones that set or save something.
    stamped = bool(getattr(model_field, "auto_now", False) or getattr(model_field, "auto_now_add", False))
    pre_save = as_is is None or stamped
    return _Column(model_field, model_field.attname, as_is, pre_save, type(model_field) is models.JSONField)


# A JSONField's values of several rows: one JSON array (Python's None as JSON null, read back as
# SQL NULL, as Django stores None), unpacked in order. A jsonb[] literal escapes every quote of
# every document for the array and again for the string: 20 ms of the client's 48 ms per batch
# of 50 invoices (five JSON columns), against well under a millisecond for one text value.
_JSON_ROWS = (
    "ARRAY(SELECT NULLIF(j, 'null'::jsonb) FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS t(j, n) ORDER BY n)"
)


@cache
def _columns(model: type[models.Model], with_pk: bool) -> tuple[tuple[_Column, ...], str, str]:
    """The model's insertable columns and their statements: INSERT ... SELECT * FROM UNNEST(...)
    (Django's own PostgreSQL bulk form: one array parameter per column) for several rows, and
    INSERT ... VALUES (...) for one (one value per column: no array to build or quote)."""
    opts = model._meta
    fields = [f for f in opts.concrete_fields if not f.generated and (with_pk or f is not opts.pk)]
    quote = connection.ops.quote_name
    # Parameters stripped from the types, as Django strips them (varchar[], not varchar(50)[]).
    arrays = ", ".join(
        _JSON_ROWS if type(f) is models.JSONField else f"(%s)::{str(f.db_type(connection)).split('(')[0]}[]"
        for f in fields
    )
    head = f"INSERT INTO {quote(opts.db_table)} ({', '.join(quote(str(f.column)) for f in fields)})"
    values = ", ".join(["%s"] * len(fields))
    return tuple(_column(f) for f in fields), f"{head} SELECT * FROM UNNEST({arrays})", f"{head} VALUES ({values})"


class _Compiled(Exception):
    """A value only Django's compiler can place (an expression): compile the model's rows with it."""


def _json_rows(model_field: models.JSONField, values: list[Any]) -> str:
    """_JSON_ROWS's parameter: the values as the field would encode each (its encoder)."""
    if any(hasattr(value, "resolve_expression") for value in values):
        raise _Compiled  # Value(None, JSONField()) (JSON null) and other expressions: Django's compiler
    prepared = [None if value is None else model_field.get_prep_value(value) for value in values]
    return json.dumps(prepared, cls=model_field.encoder)


def _insert_arrays(model: type[models.Model], objs: Sequence[models.Model], with_pk: bool) -> tuple[str, list[Any]]:
    columns, rows_sql, row_sql = _columns(model, with_pk)
    arrays: list[Any] = []
    several = len(objs) > 1
    for column in columns:
        as_is, attname, model_field = column.as_is, column.attname, column.field
        if column.pre_save:
            values = [model_field.pre_save(obj, True) for obj in objs]
        else:
            values = [getattr(obj, attname) for obj in objs]
        if column.json and several:
            arrays.append(_json_rows(cast(models.JSONField, model_field), values))
            continue
        if as_is is None or not all(value is None or as_is(value) for value in values):
            # The whole column through the field, as bulk_create prepares it: one array holds
            # values of one kind (Django wraps integers it prepares, for instance).
            if any(hasattr(value, "resolve_expression") for value in values):
                raise _Compiled
            values = [model_field.get_db_prep_save(value, connection) for value in values]
        arrays.append(values)
    if len(objs) == 1:
        return row_sql, [values[0] for values in arrays]
    return rows_sql, arrays


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
        try:
            sql, arrays = _insert_arrays(model, objs, with_pk=not without_pk)
        except _Compiled:
            fields = [f for f in opts.concrete_fields if not f.generated and (not without_pk or f is not opts.pk)]
            query = InsertQuery(model)
            query.insert_values(fields, objs)
            for sql, sql_params in query.get_compiler(connection=connection).as_sql():
                statements.append(sql)
                params.extend(sql_params)
        else:
            statements.append(sql)
            params.extend(arrays)
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

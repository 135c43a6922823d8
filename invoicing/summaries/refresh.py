"""The refresh every day summary shares (the MRR rows and the invoice day rows here, the money
collected in payments.analytics): triggers mark days dirty; the next reader recomputes those
days' rows under an advisory lock, then clears only the marks it read."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from typing import Any

from django.db import connection, transaction


def dirty_days_refresh(
    *,
    dirty_table: str,
    row_table: str,
    lock: int,
    rebuild: Callable[[list[date]], None],
    day_column: str = "issuing_date",
    days_of: Callable[[set[date]], Iterable[date]] | None = None,
    stale: tuple[str, list[Any]] | None = None,
    reset: Callable[[Any], None] | None = None,
) -> int:
    """Recompute the dirty days of `row_table` with `rebuild(days)` (which inserts their rows);
    the number of days recomputed. `days_of` maps the marked days to the rows' days (a UTC day
    to the local days it overlaps); `stale` is an SQL condition (with its parameters) under which
    every row is out of date, and `reset(cursor)` then empties the rows and marks every day.
    Table and column names come from the models' metadata, never input."""
    stale_sql, stale_params = stale or ("FALSE", [])
    with connection.cursor() as cursor:
        # Nothing dirty (the usual read): no transaction, no lock.
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {dirty_table}) OR ({stale_sql})", stale_params)
        if not cursor.fetchone()[0]:
            return 0
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock])
            if stale is not None and reset is not None:
                cursor.execute(f"SELECT {stale_sql}", stale_params)
                if cursor.fetchone()[0]:
                    reset(cursor)
            cursor.execute(f"SELECT id, {day_column} FROM {dirty_table}")
            dirty = cursor.fetchall()
            if not dirty:
                return 0
            marked = {day for _, day in dirty}
            days = sorted(days_of(marked) if days_of is not None else marked)
            cursor.execute(f"DELETE FROM {row_table} WHERE {day_column} = ANY(%s)", [days])
        rebuild(days)
        with connection.cursor() as cursor:
            # Only the rows read: a change committed meanwhile keeps its own row for the next reader.
            cursor.execute(f"DELETE FROM {dirty_table} WHERE id = ANY(%s)", [[pk for pk, _ in dirty]])
    return len(days)

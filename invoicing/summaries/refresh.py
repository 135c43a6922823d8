"""The refresh both invoicing summaries share: the triggers mark issuing days dirty; the next
reader recomputes those days' rows under an advisory lock, then clears only the marks it read."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from django.db import connection, transaction


def dirty_days_refresh(*, dirty_table: str, row_table: str, lock: int, rebuild: Callable[[list[date]], None]) -> int:
    """Recompute the dirty issuing days of `row_table` with `rebuild(days)` (which inserts their
    rows); the number of days recomputed. Table names come from the models' metadata, never input."""
    with connection.cursor() as cursor:
        # Nothing dirty (the usual read): no transaction, no lock.
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {dirty_table})")
        if not cursor.fetchone()[0]:
            return 0
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock])
            cursor.execute(f"SELECT id, issuing_date FROM {dirty_table}")
            dirty = cursor.fetchall()
            if not dirty:
                return 0
            days = sorted({day for _, day in dirty})
            cursor.execute(f"DELETE FROM {row_table} WHERE issuing_date = ANY(%s)", [days])
        rebuild(days)
        with connection.cursor() as cursor:
            # Only the rows read: a change committed meanwhile keeps its own row for the next reader.
            cursor.execute(f"DELETE FROM {dirty_table} WHERE id = ANY(%s)", [[pk for pk, _ in dirty]])
    return len(days)

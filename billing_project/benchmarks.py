"""What the benchmarks share (manage.py bench_*): their statistics, gathered as production has them."""

from __future__ import annotations

from django.db import connection


def analyze_filled_tables() -> list[str]:
    """ANALYZE the tables holding rows, and only those (returns them).

    An empty table analyzed says "0 rows" and keeps saying it while a run fills it where
    autovacuum is off (as on the machine the benchmarks were measured on): its foreign key
    checks and triggers are then planned for an empty table (sequential scans, the wrong index)
    and a run turns quadratic. A table never analyzed is planned from its real size instead, as
    a production database's analyzed tables are."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables WHERE n_live_tup > 0")
        tables = [table for (table,) in cursor.fetchall()]
        for table in tables:
            cursor.execute(f"ANALYZE {table}")
    return tables

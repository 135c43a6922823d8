"""Statement-level triggers on the events table that keep the usage rollups honest, whatever
writes the events (ingestion, COPY, the ORM): an event written below its (subscription, code)
pending watermark marks its hour dirty; a deleted or changed event voids that pair's rollups
(their definition is cleared, the reads fall back to the raw events, the fold rebuilds them).

One statement per INSERT, not per row, and the join with the watermarks only sees events older
than the current hour (no watermark is ever at or past it), so live ingestion pays a filter over
its own rows. PostgreSQL only: SQLite reads the raw events."""

from django.db import migrations

FORWARD = """
CREATE FUNCTION metrics_event_mark_late() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Sorted, so that two writers marking the same hours lock them in the same order.
    INSERT INTO metrics_usagerollupdirty (external_subscription_id, code, bucket_start, generation)
    SELECT n.external_subscription_id, n.code, date_bin('1 hour', n.timestamp, TIMESTAMPTZ '1970-01-01 00:00:00+00'), 1
    FROM new_events n
    JOIN metrics_usagewatermark w ON w.external_subscription_id = n.external_subscription_id AND w.code = n.code
    WHERE n.timestamp < date_trunc('hour', clock_timestamp() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
      AND n.timestamp < w.pending_until
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (external_subscription_id, code, bucket_start)
    DO UPDATE SET generation = metrics_usagerollupdirty.generation + 1;
    RETURN NULL;
END
$$;

CREATE FUNCTION metrics_event_void_rollups() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE metrics_usagewatermark w SET definition = NULL, updated_at = clock_timestamp()
    FROM (SELECT DISTINCT external_subscription_id, code FROM old_events) o
    WHERE w.external_subscription_id = o.external_subscription_id AND w.code = o.code
      AND w.definition IS NOT NULL;
    RETURN NULL;
END
$$;

CREATE TRIGGER metrics_event_mark_late AFTER INSERT ON metrics_event
    REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION metrics_event_mark_late();
CREATE TRIGGER metrics_event_void_on_delete AFTER DELETE ON metrics_event
    REFERENCING OLD TABLE AS old_events FOR EACH STATEMENT EXECUTE FUNCTION metrics_event_void_rollups();
CREATE TRIGGER metrics_event_void_on_update AFTER UPDATE ON metrics_event
    REFERENCING OLD TABLE AS old_events FOR EACH STATEMENT EXECUTE FUNCTION metrics_event_void_rollups();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS metrics_event_mark_late ON metrics_event;
DROP TRIGGER IF EXISTS metrics_event_void_on_delete ON metrics_event;
DROP TRIGGER IF EXISTS metrics_event_void_on_update ON metrics_event;
DROP FUNCTION IF EXISTS metrics_event_mark_late();
DROP FUNCTION IF EXISTS metrics_event_void_rollups();
"""


def forward(apps, schema_editor):  # noqa: ANN001, ANN201 - migration signature
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):  # noqa: ANN001, ANN201 - migration signature
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0004_usage_rollups"),
    ]

    operations = [migrations.RunPython(forward, backward)]

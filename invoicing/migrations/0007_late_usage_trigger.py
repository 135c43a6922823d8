"""A statement-level trigger on the events table that marks late usage: an event whose timestamp
is before its subscription's billed-through instant (the end of its latest finalized usage
period) upserts the subscription's LateUsageMark, one row per subscription per batch.

Live ingestion pays one filter over its own rows: the join with invoicing_billedthrough only
sees events older than the newest billed-through instant of all (an index's last entry), which
no event of a current period is. PostgreSQL only: elsewhere the run looks for late events itself."""

from django.db import migrations

FORWARD = """
CREATE FUNCTION invoicing_event_mark_late_usage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO invoicing_lateusagemark (external_subscription_id, earliest_timestamp, generation, created_at)
    SELECT n.external_subscription_id, min(n.timestamp), 1, clock_timestamp()
    FROM new_events n
    JOIN invoicing_billedthrough b ON b.external_subscription_id = n.external_subscription_id
    WHERE n.timestamp < (SELECT max(billed_until) FROM invoicing_billedthrough)
      AND n.timestamp < b.billed_until
    GROUP BY 1
    ORDER BY 1
    ON CONFLICT (external_subscription_id) DO UPDATE
    SET earliest_timestamp = LEAST(invoicing_lateusagemark.earliest_timestamp, EXCLUDED.earliest_timestamp),
        generation = invoicing_lateusagemark.generation + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER invoicing_event_mark_late_usage AFTER INSERT ON metrics_event
    REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION invoicing_event_mark_late_usage();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS invoicing_event_mark_late_usage ON metrics_event;
DROP FUNCTION IF EXISTS invoicing_event_mark_late_usage();
"""


def forward(apps, schema_editor):  # noqa: ANN001, ANN201 - migration signature
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):  # noqa: ANN001, ANN201 - migration signature
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [
        ("invoicing", "0006_late_usage_corrections"),
        ("metrics", "0006_merge_0004_change_history_0005_usage_rollup_triggers"),
    ]

    operations = [migrations.RunPython(forward, backward)]

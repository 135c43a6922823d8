"""The subscription-fee trigger of the MRR summary (0006) reads its invoice by primary key only.

0006's lookup, `WHERE id = NEW.invoice_id AND status = 'finalized'`, gave the planner two indexes
to choose from: the primary key and `invoice_issued_idx` (status, issuing_date). PL/pgSQL caches
a generic plan per session, and on a table without statistics (a new install, autovacuum off) it
chose the status index with the id as a filter: every finalized invoice read for each fee
inserted. A billing run of 10,000 subscriptions spent 0.3 ms in the trigger per invoice at its
start and 3.3 ms at its end (auto_explain, 2026-12-02). By id alone, only the primary key serves;
the status is tested on the row read."""

from django.db import migrations

BY_ID = """
CREATE OR REPLACE FUNCTION invoicing_mrr_mark_fee() RETURNS trigger AS $$
DECLARE
    day date;
    state text;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.fee_type = 'subscription' AND OLD.invoice_id IS NOT NULL THEN
        SELECT issuing_date, status INTO day, state FROM invoicing_invoice WHERE id = OLD.invoice_id;
        IF state = 'finalized' THEN
            INSERT INTO invoicing_mrrdirtyday (issuing_date) VALUES (day);
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.fee_type = 'subscription' AND NEW.invoice_id IS NOT NULL THEN
        SELECT issuing_date, status INTO day, state FROM invoicing_invoice WHERE id = NEW.invoice_id;
        IF state = 'finalized' THEN
            INSERT INTO invoicing_mrrdirtyday (issuing_date) VALUES (day);
        END IF;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""

# 0006's body, restored on the way back.
WITH_STATUS = """
CREATE OR REPLACE FUNCTION invoicing_mrr_mark_fee() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.fee_type = 'subscription' AND OLD.invoice_id IS NOT NULL THEN
        INSERT INTO invoicing_mrrdirtyday (issuing_date)
        SELECT issuing_date FROM invoicing_invoice WHERE id = OLD.invoice_id AND status = 'finalized';
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.fee_type = 'subscription' AND NEW.invoice_id IS NOT NULL THEN
        INSERT INTO invoicing_mrrdirtyday (issuing_date)
        SELECT issuing_date FROM invoicing_invoice WHERE id = NEW.invoice_id AND status = 'finalized';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            with schema_editor.connection.cursor() as cursor:
                cursor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("invoicing", "0016_lineage_indexes"),
    ]

    operations = [
        migrations.RunPython(_on_postgresql(BY_ID), _on_postgresql(WITH_STATUS)),
    ]

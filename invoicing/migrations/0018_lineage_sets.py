"""An original fee's lineage becomes one row (FeeEventSet: its events' ids) instead of a row per
event; the rows written so far for original fees (no correction) move into their fees' sets.
FeeEvent keeps the corrections' rows."""

import django.contrib.postgres.fields
import django.db.models.deletion
from django.db import migrations, models


def move_original_rows(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # the lineage is PostgreSQL's: nothing was written elsewhere
    schema_editor.execute(
        "INSERT INTO invoicing_feeeventset (fee_id, event_ids) "
        "SELECT root_fee_id, array_agg(event_id ORDER BY event_id) FROM invoicing_feeevent "
        "WHERE correction_id IS NULL AND fee_id = root_fee_id GROUP BY root_fee_id"
    )
    schema_editor.execute(
        "DELETE FROM invoicing_feeevent WHERE correction_id IS NULL AND fee_id = root_fee_id"
    )


def restore_original_rows(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "INSERT INTO invoicing_feeevent (fee_id, root_fee_id, event_id, correction_id) "
        "SELECT fee_id, fee_id, unnest(event_ids), NULL FROM invoicing_feeeventset"
    )


class Migration(migrations.Migration):

    dependencies = [
        ('invoicing', '0017_mrr_fee_trigger_by_id'),
    ]

    operations = [
        migrations.CreateModel(
            name='FeeEventSet',
            fields=[
                ('fee', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='+', serialize=False, to='invoicing.fee')),
                ('event_ids', django.contrib.postgres.fields.ArrayField(base_field=models.BigIntegerField(), size=None)),
            ],
        ),
        migrations.RunPython(move_original_rows, restore_original_rows),
    ]

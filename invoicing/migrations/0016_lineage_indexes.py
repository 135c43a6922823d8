"""The lineage table's single-column foreign key indexes go (fee_event_fee_idx and the unique
constraint lead with fee_id and root_fee_id; correction_id gets a partial index over the rows
that have one). Only the indexes are dropped: AlterField would drop and re-add the foreign keys,
validating them over the whole table."""

import django.db.models.deletion
from django.db import migrations, models


def drop_single_column_indexes(apps, schema_editor):
    model = apps.get_model("invoicing", "FeeEvent")
    table = model._meta.db_table
    columns = {"fee_id", "root_fee_id", "correction_id"}
    with schema_editor.connection.cursor() as cursor:
        constraints = schema_editor.connection.introspection.get_constraints(cursor, table)
    for name, info in constraints.items():
        single = len(info["columns"]) == 1 and info["columns"][0] in columns
        if single and info["index"] and not info["unique"] and not info["primary_key"] and not info["foreign_key"]:
            schema_editor.execute(schema_editor._delete_index_sql(model, name))


class Migration(migrations.Migration):

    dependencies = [
        ('invoicing', '0015_merge_credit_note_drafts_day_summary_wallet_alerts'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_single_column_indexes, migrations.RunPython.noop)],
            state_operations=[
            migrations.AlterField(
                model_name='feeevent',
                name='correction',
                field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='invoicing.correction'),
            ),
            migrations.AlterField(
                model_name='feeevent',
                name='fee',
                field=models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='lineage', to='invoicing.fee'),
            ),
            migrations.AlterField(
                model_name='feeevent',
                name='root_fee',
                field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='invoicing.fee'),
            ),
            ],
        ),
        migrations.AddIndex(
            model_name='feeevent',
            index=models.Index(condition=models.Q(('correction__isnull', False)), fields=['correction'], name='fee_event_correction_idx'),
        ),
    ]

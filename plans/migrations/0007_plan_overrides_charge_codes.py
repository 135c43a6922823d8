"""Overrides (plans.parent, charges.parent), plan metadata, and charge codes. Existing charges get
their metric's code, with _2, _3... for a plan's further charges on one metric, oldest first (as
Lago's backfill, app/jobs/database_migrations/backfill_charges_code_job.rb), before the unique
constraint is added."""

import django.db.models.deletion
from django.db import migrations, models


def fill_charge_codes(apps, schema_editor):
    Charge = apps.get_model("plans", "Charge")
    seen: dict[tuple, int] = {}
    rows = Charge.objects.select_related("billable_metric").order_by("plan_id", "created_at", "id")
    for charge in rows.iterator():
        key = (charge.plan_id, charge.billable_metric.code)
        seen[key] = seen.get(key, 0) + 1
        rank = seen[key]
        charge.code = key[1] if rank == 1 else f"{key[1]}_{rank}"
        charge.save(update_fields=["code"])


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0006_merge_0004_change_history_0005_usage_rollup_triggers"),
        ("plans", "0006_merge_change_history_and_recorded_at"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="plan",
            name="plan_code_live_unique",
        ),
        migrations.AddField(
            model_name="charge",
            name="code",
            field=models.CharField(default="", max_length=255),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="charge",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="children",
                to="plans.charge",
            ),
        ),
        migrations.AddField(
            model_name="historicalcharge",
            name="code",
            field=models.CharField(default="", max_length=255),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="historicalcharge",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="plans.charge",
            ),
        ),
        migrations.AddField(
            model_name="historicalplan",
            name="metadata",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="historicalplan",
            name="minimum_commitment_override",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="historicalplan",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="plans.plan",
            ),
        ),
        migrations.AddField(
            model_name="plan",
            name="metadata",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="plan",
            name="minimum_commitment_override",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="plan",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="children",
                to="plans.plan",
            ),
        ),
        migrations.RunPython(fill_charge_codes, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="charge",
            constraint=models.UniqueConstraint(
                condition=models.Q(("deleted_at__isnull", True)),
                fields=("plan", "code"),
                name="charge_code_live_unique",
            ),
        ),
        migrations.AddConstraint(
            model_name="plan",
            constraint=models.UniqueConstraint(
                condition=models.Q(("deleted_at__isnull", True), ("parent__isnull", True)),
                fields=("code",),
                name="plan_code_live_parent_unique",
            ),
        ),
    ]

"""Set metrics' new `has_pay_in_advance_charges` flag from the charges that exist already
(plans' services keep it from now on)."""

from django.db import migrations


def sync_flags(apps, schema_editor):
    BillableMetric = apps.get_model("metrics", "BillableMetric")
    Charge = apps.get_model("plans", "Charge")
    priced = Charge.objects.filter(pay_in_advance=True, deleted_at__isnull=True).values("billable_metric_id")
    BillableMetric.objects.filter(pk__in=priced).update(has_pay_in_advance_charges=True)


class Migration(migrations.Migration):
    dependencies = [
        ("plans", "0002_subscription_downgrade_at"),
        ("metrics", "0003_billable_metric_pay_in_advance_flag"),
    ]

    operations = [migrations.RunPython(sync_flags, migrations.RunPython.noop)]

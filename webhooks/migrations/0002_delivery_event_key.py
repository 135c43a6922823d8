"""One delivery per (event, endpoint), enforced by the database: each delivery names the event
it announces. Existing rows each announced their own event: their key is their unique key."""

from django.db import migrations, models
from django.db.models.functions import Cast


def backfill(apps, schema_editor):
    Delivery = apps.get_model("webhooks", "WebhookDelivery")
    Delivery.objects.filter(event_key__isnull=True).update(event_key=Cast("unique_key", models.CharField()))


class Migration(migrations.Migration):
    dependencies = [("webhooks", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="webhookdelivery", name="event_key", field=models.CharField(max_length=200, null=True)
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="webhookdelivery", name="event_key", field=models.CharField(max_length=200)
        ),
        migrations.AddConstraint(
            model_name="webhookdelivery",
            constraint=models.UniqueConstraint(
                fields=("event_key", "endpoint"), name="webhook_one_delivery_per_event_endpoint"
            ),
        ),
    ]

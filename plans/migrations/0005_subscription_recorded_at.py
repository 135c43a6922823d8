"""Subscription.recorded_at: when Tollgate was told of the subscription. Existing rows take
their created_at (the instant their row was written, the best record there is)."""

import django.utils.timezone
from django.db import migrations, models
from django.db.models import F


def copy_created_at(apps, schema_editor):
    apps.get_model("plans", "Subscription").objects.update(recorded_at=F("created_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("plans", "0004_pinned_currency_choices"),
    ]

    operations = [
        migrations.AddField(
            model_name="subscription",
            name="recorded_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.RunPython(copy_created_at, migrations.RunPython.noop),
    ]

"""Keep the invoice's customer on each payment (filled from the invoice for existing rows)."""

import django.db.models.deletion
from django.db import migrations, models


def fill_customer(apps, schema_editor):
    Payment = apps.get_model("payments", "Payment")
    Invoice = apps.get_model("invoicing", "Invoice")
    Payment.objects.filter(customer__isnull=True).update(
        customer_id=models.Subquery(Invoice.objects.filter(pk=models.OuterRef("invoice_id")).values("customer_id")[:1])
    )


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0001_initial"),
        ("invoicing", "0001_initial"),
        ("payments", "0002_stripe_attempt_number_required"),
    ]

    operations = [
        migrations.AddField(
            model_name="payment",
            name="customer",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="payments",
                to="customers.customer",
            ),
        ),
        migrations.RunPython(fill_customer, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="payment",
            name="customer",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="payments", to="customers.customer"
            ),
        ),
        migrations.AddIndex(
            model_name="payment",
            index=models.Index(fields=["customer", "-created_at"], name="payments_pa_custome_a935a8_idx"),
        ),
    ]

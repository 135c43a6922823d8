"""Refunds of credit notes through a provider (one row per payment refunded)."""

import django.db.models.deletion
import uuid
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("invoicing", "0002_billing_documents"),
        ("payments", "0003_payment_customer"),
    ]

    operations = [
        migrations.CreateModel(
            name="Refund",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ("provider", models.CharField(choices=[("stripe", "Stripe"), ("manual", "Manual")], max_length=16)),
                (
                    "status",
                    models.CharField(
                        choices=[("pending", "Pending"), ("succeeded", "Succeeded"), ("failed", "Failed")],
                        default="pending",
                        max_length=16,
                    ),
                ),
                ("amount", models.DecimalField(decimal_places=6, max_digits=20)),
                ("currency", models.CharField(max_length=3)),
                ("provider_refund_id", models.CharField(blank=True, max_length=255)),
                ("idempotency_key", models.CharField(max_length=255)),
                ("failure_code", models.CharField(blank=True, max_length=255)),
                ("failure_reason", models.TextField(blank=True)),
                ("refunded_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "credit_note",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="refunds", to="invoicing.creditnote"
                    ),
                ),
                (
                    "payment",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="refunds", to="payments.payment"
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at"],
                "indexes": [models.Index(fields=["status", "updated_at"], name="payments_re_status_b7998f_idx")],
                "constraints": [
                    models.CheckConstraint(condition=models.Q(("amount__gt", 0)), name="refund_amount_positive"),
                    models.UniqueConstraint(
                        fields=("credit_note", "payment"), name="refund_one_row_per_note_and_payment"
                    ),
                    models.UniqueConstraint(
                        condition=models.Q(("provider_refund_id", ""), _negated=True),
                        fields=("provider", "provider_refund_id"),
                        name="refund_provider_refund_id_unique",
                    ),
                    models.UniqueConstraint(fields=("idempotency_key",), name="refund_idempotency_key_unique"),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("status", "succeeded"), _negated=True),
                            ("refunded_at__isnull", False),
                            _connector="OR",
                        ),
                        name="refund_succeeded_has_refunded_at",
                    ),
                ],
            },
        ),
    ]

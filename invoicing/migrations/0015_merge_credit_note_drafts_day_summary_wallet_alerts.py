# Joins three forks of this stop: draft credit notes (late usage), the console's invoice day summary, wallet alerts.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("invoicing", "0014_console_invoice_day_summary"),
        ("invoicing", "0014_credit_note_draft_status"),
        ("invoicing", "0014_wallet_alerts"),
    ]

    operations = []

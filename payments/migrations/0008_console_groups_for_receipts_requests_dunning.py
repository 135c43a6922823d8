"""The console's roles take the permissions of the new models (receipts, payment requests, dunning
campaigns, the e-mail outbox): 0005's function again, which tops the groups up."""

from importlib import import_module

from django.db import migrations

_groups = import_module("payments.migrations.0005_finance_console_groups")


def top_up_groups(apps, schema_editor):
    _groups.create_groups(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0007_payment_requests_and_dunning"),
        ("invoicing", "0006_document_email_outbox"),
    ]

    operations = [migrations.RunPython(top_up_groups, migrations.RunPython.noop)]

"""Tops the console's roles up with the permissions of the models added since 0005 (features,
privileges and entitlements: plans 0007), so a Finance Manager edits features and a Finance Viewer
sees them. Data only; the function is 0005's, which only ever adds permissions."""

from importlib import import_module

from django.db import migrations

_groups = import_module("payments.migrations.0005_finance_console_groups")


def top_up(apps, schema_editor):
    _groups.create_groups(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0008_console_groups_for_receipts_requests_dunning"),
        ("plans", "0008_merge_entitlements_and_overrides"),
    ]

    operations = [migrations.RunPython(top_up, migrations.RunPython.noop)]

"""The finance console's three roles, as groups (data only; re-running it tops the groups up).

- Finance Manager: every permission of the billing apps (every billing action).
- Finance Viewer: every `view_` permission of the billing apps (dashboard and exports included),
  nothing that changes data.
- Support: customers, invoices, their fees and credit notes, read-only.

Lives in payments, the rightmost billing app, because it names every billing app's permissions.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

BILLING_APPS = ["customers", "metrics", "plans", "invoicing", "payments"]
SUPPORT = [
    ("customers", "view_customer"),
    ("invoicing", "view_invoice"),
    ("invoicing", "view_fee"),
    ("invoicing", "view_creditnote"),
]


def create_groups(apps, schema_editor):
    # Permissions are made after migrations (post_migrate): make them now, for a fresh database.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    billing = Permission.objects.filter(content_type__app_label__in=BILLING_APPS)
    manager, _ = Group.objects.get_or_create(name="Finance Manager")
    manager.permissions.add(*billing)
    viewer, _ = Group.objects.get_or_create(name="Finance Viewer")
    viewer.permissions.add(*billing.filter(codename__startswith="view_"))
    support, _ = Group.objects.get_or_create(name="Support")
    for app_label, codename in SUPPORT:
        support.permissions.add(*Permission.objects.filter(content_type__app_label=app_label, codename=codename))


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["Finance Manager", "Finance Viewer", "Support"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("customers", "0001_initial"),
        ("metrics", "0003_billable_metric_pay_in_advance_flag"),
        ("plans", "0004_pinned_currency_choices"),
        ("invoicing", "0003_pay_in_advance_charges"),
        ("payments", "0004_refund"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]

from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The customer portal: a signed, expiring page where one customer sees its documents, usage
    and wallets, edits its billing details and pays. Rightmost beside webhooks: no app imports it."""

    name = "portal"
    default_auto_field = "django.db.models.BigAutoField"

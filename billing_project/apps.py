"""The ground floor as an installed app, with no models: it hosts project-wide commands."""

# `setup_periodic_tasks` reads each AppConfig's `periodic_tasks` through the app registry.

from django.apps import AppConfig


class BillingProjectConfig(AppConfig):
    name = "billing_project"
    verbose_name = "Tollgate"

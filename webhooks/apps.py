from django.apps import AppConfig

from billing_project.periodic import PeriodicTaskSpec


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    periodic_tasks = [
        PeriodicTaskSpec(
            name="webhooks: sweep lost deliveries",
            task="webhooks.tasks.sweep_deliveries",
            minute="*",
            description="every minute: pending deliveries overdue (task lost) get their task again",
        ),
        PeriodicTaskSpec(
            name="webhooks: events errors digest",
            task="webhooks.tasks.announce_events_errors",
            minute="2",
            description="every hour at :02 UTC: events.errors for the last full hour's events that bill nothing",
        ),
        PeriodicTaskSpec(
            name="webhooks: subscription termination alerts",
            task="webhooks.tasks.announce_termination_alerts",
            minute="5",
            hour="6",
            description="every day at 06:05 UTC: subscription.termination_alert 45 and 15 days before ending_at",
        ),
    ]

    def ready(self) -> None:
        from . import receivers

        receivers.connect()

from django.apps import AppConfig

from billing_project.periodic import PeriodicTaskSpec


class MetricsConfig(AppConfig):
    name = "metrics"
    verbose_name = "Usage metrics"

    periodic_tasks = [
        PeriodicTaskSpec(
            name="metrics: fold usage rollups",
            task="metrics.tasks.fold_usage_rollups",
            minute="*/10",
            description="every 10 minutes: fold the hours closed 5 minutes ago into the usage rollups and "
            "refold hours that received late events (skipped while another fold runs)",
        )
    ]

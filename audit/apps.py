from django.apps import AppConfig

from billing_project.periodic import PeriodicTaskSpec


class AuditConfig(AppConfig):
    """Who did what: the API's activity and request logs. The rightmost app: it reads every
    other app's audit rows and no app imports it."""

    name = "audit"
    verbose_name = "Audit logs"
    default_auto_field = "django.db.models.BigAutoField"

    periodic_tasks = [
        PeriodicTaskSpec(
            name="audit: prune API logs",
            task="audit.tasks.prune_api_logs",
            minute="17",
            hour="3",
            description="every day at 03:17 UTC: API logs past TOLLGATE_API_LOG_RETENTION_DAYS deleted in batches",
        )
    ]

    def ready(self) -> None:
        from simple_history.signals import pre_create_historical_record

        from . import history

        pre_create_historical_record.connect(history.name_the_api_key, dispatch_uid="audit-history-api-key")

"""(Re)create the celery-beat schedule rows from the `periodic_tasks` each AppConfig declares,
read through the app registry (the ground floor imports no app)."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from billing_project.periodic import PeriodicTaskSpec


def declared_periodic_tasks() -> list[PeriodicTaskSpec]:
    specs: list[PeriodicTaskSpec] = []
    for config in apps.get_app_configs():
        specs.extend(getattr(config, "periodic_tasks", []))
    return specs


class Command(BaseCommand):
    help = "Create or update the celery-beat periodic tasks declared by the apps; disable stale ones."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        specs = declared_periodic_tasks()
        names = set()
        for spec in specs:
            crontab, _ = CrontabSchedule.objects.get_or_create(
                minute=spec.minute,
                hour=spec.hour,
                day_of_week=spec.day_of_week,
                day_of_month=spec.day_of_month,
                month_of_year=spec.month_of_year,
                timezone="UTC",
            )
            PeriodicTask.objects.update_or_create(
                name=spec.name,
                defaults={
                    "task": spec.task,
                    "crontab": crontab,
                    "interval": None,
                    "enabled": True,
                    "description": spec.description,
                },
            )
            names.add(spec.name)
            self.stdout.write(f"scheduled {spec.name}: {spec.task} ({spec.description})")
        stale = PeriodicTask.objects.exclude(name__in=names).exclude(name__startswith="celery.")
        disabled = stale.filter(enabled=True).update(enabled=False)
        if not specs:
            self.stdout.write("no periodic tasks declared yet")
        if disabled:
            self.stdout.write(f"disabled {disabled} periodic task(s) no longer declared in code")

"""Periodic (celery-beat) tasks are declared in code, next to the app that owns them."""

# An app lists them on its AppConfig as `periodic_tasks = [PeriodicTaskSpec(...), ...]`;
# `python manage.py setup_periodic_tasks` (re)creates the django-celery-beat rows from them.

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PeriodicTaskSpec:
    name: str  # unique, human readable: shown in the admin's periodic tasks list
    task: str  # dotted Celery task name
    minute: str = "*"
    hour: str = "*"
    day_of_week: str = "*"
    day_of_month: str = "*"
    month_of_year: str = "*"
    description: str = ""  # what the crontab means, in words

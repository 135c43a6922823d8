"""Project-level checks: migrations are complete, /health answers, unknown API paths are JSON."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_models_and_migrations_agree():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db
def test_health_answers_when_database_answers(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_unknown_api_path_is_json_404(anon_api, db):
    response = anon_api.get("/api/v1/nothing_here")
    assert response.status_code == 404
    assert response.json() == {"status": 404, "error": "Not Found", "code": "resource_not_found"}


def test_currency_choices_come_from_the_pinned_list_not_from_babel():
    """A babel release renamed currencies and so changed every `*_currency` field's choices (a
    fresh clone's makemigrations check failed). The choices are now (code, code) from our list."""
    from billing_project.currencies import CURRENCY_CODES, MINOR_UNIT_DIGITS
    from billing_project.money import decimal_places, is_currency, round_amount
    from plans.models import Plan

    field = Plan._meta.get_field("amount_currency")
    assert list(field.choices) == [(code, code) for code in CURRENCY_CODES]
    assert {"USD", "EUR", "JPY", "GBP", "BHD", "CLF"} <= set(CURRENCY_CODES)
    assert (decimal_places("JPY"), decimal_places("USD"), decimal_places("BHD")) == (0, 2, 3)
    assert round_amount(Decimal("1.0005"), "BHD") == Decimal("1.001")
    # Metals, testing codes and withdrawn currencies are not billable.
    assert not any(is_currency(code) for code in ("XAU", "XTS", "XXX", "DEM", "usd", ""))
    assert len(MINOR_UNIT_DIGITS) == len(CURRENCY_CODES)

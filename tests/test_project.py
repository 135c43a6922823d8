"""Project-level checks: migrations are complete, /health answers, unknown API paths are JSON."""

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
    assert response.json() == {"status": 404, "error": "Not Found", "code": "not_found"}

"""Production-safe settings: with DEBUG off, `check --deploy` has nothing to say, cookies are
secure, http is redirected, HSTS is on; admin logins are throttled by django-axes. With DEBUG on
(`make demo`, the tests) plain http keeps working."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client, override_settings

SHOW = (
    "from django.conf import settings as s; import json; print(json.dumps({k: getattr(s, k, None) for k in "
    "['SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_SSL_REDIRECT', 'SECURE_HSTS_SECONDS', "
    "'SECURE_PROXY_SSL_HEADER', 'AXES_ENABLED']}))"
)


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


PRODUCTION = {"DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "billing.example.com"}


def test_check_deploy_reports_nothing_in_a_production_configuration():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_defaults_are_the_safe_ones_and_the_proxy_header_comes_from_the_environment():
    shown = _manage("shell", "-c", SHOW, **PRODUCTION, SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https")

    assert json.loads(shown.stdout.splitlines()[-1]) == {
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "AXES_ENABLED": True,
    }


def test_debug_keeps_plain_http_working_for_the_demo():
    shown = _manage("shell", "-c", SHOW, DEBUG="true")

    assert json.loads(shown.stdout.splitlines()[-1]) == {
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 0,
        "SECURE_PROXY_SSL_HEADER": None,
        "AXES_ENABLED": False,
    }


@pytest.mark.django_db
@override_settings(AXES_ENABLED=True, AXES_FAILURE_LIMIT=3)
def test_repeated_failed_admin_logins_lock_the_user_out_from_that_address_until_axes_reset():
    User.objects.create_superuser("finance", "finance@example.com", "right-password-123")
    client = Client(REMOTE_ADDR="203.0.113.7")

    def login(password: str, address: str = "203.0.113.7") -> int:
        response = client.post(
            "/admin/login/?next=/admin/", {"username": "finance", "password": password}, REMOTE_ADDR=address
        )
        return response.status_code

    assert [login("wrong") for _ in range(2)] == [200, 200]  # the form again, with an error
    assert login("wrong") == 429  # the third failure locks the pair out
    assert login("right-password-123") == 429  # even the right password, from that address
    assert login("right-password-123", address="198.51.100.9") == 302  # another address is not locked

    call_command("axes_reset", verbosity=0)
    client.logout()
    assert login("right-password-123") == 302

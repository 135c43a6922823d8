"""Every business-rule code an app raises is listed in its error_codes.py (or is shared, in
billing_project.errors.ErrorCode): the API's codes are stable and findable in one place."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from django.conf import settings

from billing_project.errors import ErrorCode

APPS = {
    "customers": "CustomersErrorCode",
    "metrics": "MetricsErrorCode",
    "plans": "PlansErrorCode",
    "invoicing": "InvoicingErrorCode",
    "payments": "PaymentsErrorCode",
}
# The code literal of a raised domain error: Error(None, "code"), NotAllowedError("code"),
# PaymentError("code", ...), Unprocessable(code="code"), Error(code="code"). NotFound errors
# take a resource name (their code is "<resource>_not_found").
RAISED = re.compile(
    r"raise (?!\w*NotFound|AssertionError)\w*(?:Error|Unprocessable)\((?:None, |code=)?\"(?P<code>[a-z_]+)\""
    r"|raise (?!\w*NotFound)\w*(?:Error|Unprocessable)\([^)]*\bcode=\"(?P<keyword>[a-z_]+)\""
)


@pytest.mark.parametrize("app", APPS)
def test_raised_codes_are_listed_in_the_apps_error_codes(app):
    enum = getattr(importlib.import_module(f"{app}.error_codes"), APPS[app])
    known = {code.value for code in enum} | {code.value for code in ErrorCode}
    raised = set()
    for path in (Path(settings.BASE_DIR) / app).rglob("*.py"):
        if "migrations" in path.parts or "management" in path.parts:
            continue
        for match in RAISED.finditer(path.read_text()):
            raised.add(match.group("code") or match.group("keyword"))

    assert raised - known == set()

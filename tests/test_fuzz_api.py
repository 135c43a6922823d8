"""Schemathesis over the whole OpenAPI schema (/api/v1/schema/): a bounded, deterministic fuzz
pass in the test suite. Every operation gets a few positive and negative examples (valid and
invalid by the schema); `not_a_server_error` must hold for every answer: zero 5xx."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from tests.factories.customers import make_customer
from tests.factories.metrics import make_metric
from tests.factories.plans import make_plan

pytestmark = [pytest.mark.django_db(transaction=True)]

# Per operation and generation mode: about 70 operations x 2 modes x 4 = ~560 requests, under a
# minute. FUZZ_EXAMPLES raises it for a longer hunt (the pass used 30).
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "4"))


@pytest.fixture
def seeded(api_key) -> str:
    """A few rows for generated ids to land on now and then."""
    make_customer(external_id="cust_1")
    make_metric(code="api_calls")
    make_plan(code="startup")
    return api_key.raw


def test_no_operation_answers_a_server_error(seeded, capsys):
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application())
    headers = {"Authorization": f"Bearer {seeded}"}
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    operations = 0

    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        strategy = st.one_of(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )

        @settings(
            max_examples=EXAMPLES * 2,
            derandomize=True,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def fuzz(case: Any) -> None:
            # Negative cases may also mangle the Authorization header: always send the real key, so
            # that requests reach the views instead of stopping at a 401.
            case.headers = {**(case.headers or {}), **headers}
            response = case.call()
            statuses[response.status_code] += 1
            try:
                case.validate_response(response, checks=[not_a_server_error])
            except (Exception, BaseExceptionGroup) as error:  # collected: the assertion below lists them all
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {error}"[:400])

        fuzz()

    server_errors = sum(count for status, count in statuses.items() if status >= 500)
    with capsys.disabled():
        print(
            f"\nschemathesis: {sum(statuses.values())} requests over {operations} operations, "
            f"{server_errors} 5xx; statuses {dict(sorted(statuses.items()))}"
        )
    assert not failures, "\n".join(failures)

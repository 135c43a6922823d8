"""Billable metric expressions: the parser, the evaluator, evaluate_expression, and ingestion
writing the computed property (in SQL on PostgreSQL, held equal to the Python evaluator)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metrics.aggregation import aggregate
from metrics.expressions import (
    ExpressionEvaluationError,
    ExpressionEvent,
    ExpressionSyntaxError,
    expression_parse,
    expression_stored_value,
    unix_seconds,
)
from metrics.models import BillableMetric, Event

EVENT = ExpressionEvent("storage", 1_700_000_000, {"value": 10.4, "units": 2, "user": "u1", "app": 7, "n": " 3 "})


def value(expression: str, event: ExpressionEvent = EVENT) -> str:
    return expression_stored_value(expression_parse(expression), event)


# --- the language -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # lago-api spec/services/billable_metrics/evaluate_expression_service_spec.rb: 21.0
        ("round(event.properties.value * event.properties.units)", "21"),
        # lago-doc guide/billable-metrics/sql-expressions.mdx, CEIL's examples
        ("CEIL(14.2345)", "15"),
        ("CEIL(14.2345, 0)", "15"),
        ("CEIL(14.2345, 2)", "14.24"),
        ("CEIL(14.2345, -1)", "20"),
        # lago-expression expression-core/src/evaluate.rs tests: round 12.5 -> 13, 12.345 at 2 -> 12.35,
        # ceil 12.351 at 1 -> 12.4, floor 12.3 -> 12
        ("ROUND(12.5)", "13"),
        ("Round(12.345, 2)", "12.35"),
        ("ceil(12.351, 1)", "12.4"),
        ("FLOOR(12.3)", "12"),
        ("floor(-1.5)", "-2"),
        ("round(-2.5)", "-3"),  # half away from zero
        ("ROUND(1250, -2)", "1300"),
        ("ROUND(1.5, 3)", "1.500"),
        ("ROUND(2.567, 1.9)", "2.6"),  # digits truncate to an integer
        ("CONCAT(event.properties.user, '-', event.properties.app)", "u1-7"),
        ("concat(1.50, '|', 0.0000001)", "1.50|0.0000001"),  # plain decimal notation
        ("LEAST(event.properties.value, 10.0)", "10.0"),
        ("GREATEST(2, 2.0, 1)", "2.0"),  # the last of equal maximums
        ("LEAST(2.0, 2, 3)", "2.0"),  # the first of equal minimums
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("10 - 4 - 3", "3"),  # left-associative
        ("2 - -1", "3"),
        ("-event.properties.n * 2", "-6"),  # " 3 " reads as a number
        ("1 / 3", "0.33333333333333333333"),  # 20 places, half up
        ("2 / 3", "0.66666666666666666667"),
        ("-7 / 2", "-3.5"),
        ("4 / 2", "2"),
        ("0 * -1.00", "0.00"),  # no negative zero
        ("event.timestamp", "1700000000"),
        ("event.code", "storage"),
        ("'it''s'", None),  # not a string: refused below
    ],
)
def test_worked_examples(expression, expected):
    if expected is None:
        with pytest.raises(ExpressionSyntaxError):
            expression_parse(expression)
        return
    assert value(expression) == expected


@pytest.mark.parametrize(
    ("expression", "position"),
    [
        ("", 0),
        ("1 +", 3),
        ("round(1", 7),
        ("round(1, 2, 3)", 13),
        ("sqrt(4)", 0),
        ("event.properties.a.b", 0),
        ("event.propertie.a", 0),
        ("1e3", 1),
        ("(1 + 2", 6),
        ("1 $ 2", 2),
        ("event.properties.9a", 0),
        ("CONCAT()", 7),
        ("LeAsT(1, 2)", 0),  # Lago spells functions lower, UPPER or Capitalised only
    ],
)
def test_syntax_errors_say_where(expression, position):
    with pytest.raises(ExpressionSyntaxError) as error:
        expression_parse(expression)
    assert error.value.position == position


@pytest.mark.parametrize(
    ("expression", "properties"),
    [
        ("event.properties.missing + 1", {}),
        ("event.properties.a + 1", {"a": "abc"}),
        ("event.properties.a + 1", {"a": None}),
        ("event.properties.a + 1", {"a": [1]}),
        ("event.properties.a * 2", {"a": True}),  # a boolean is the string "true"
        ("1 / event.properties.a", {"a": 0}),
        ("-'x'", {}),
        ("ROUND(1, 5000)", {}),
        ("LEAST(1, 'a')", {}),
    ],
)
def test_no_value(expression, properties):
    with pytest.raises(ExpressionEvaluationError):
        value(expression, ExpressionEvent("c", 0, properties))


def test_booleans_are_strings():
    assert value("CONCAT(event.properties.a)", ExpressionEvent("c", 0, {"a": True})) == "true"


def test_unix_seconds_truncate_towards_zero():
    assert unix_seconds(datetime(2023, 11, 14, 22, 13, 20, 999000, tzinfo=UTC)) == 1_700_000_000
    assert unix_seconds(datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)) == 0


# --- evaluate_expression and metrics with an expression ------------------------------------------


@pytest.mark.django_db
def test_evaluate_expression_answers_lagos_shape(api):
    response = api.post(
        "/api/v1/billable_metrics/evaluate_expression",
        {
            "expression": "round(event.properties.value * event.properties.units)",
            "event": {"code": "test_code", "timestamp": 1_700_000_000, "properties": {"value": 10.4, "units": 2}},
        },
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"expression_result": {"value": "21"}}

    now = api.post("/api/v1/billable_metrics/evaluate_expression", {"expression": "event.timestamp", "event": {}})
    assert abs(int(now.json()["expression_result"]["value"]) - int(datetime.now(UTC).timestamp())) <= 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "details"),
    [
        ({"event": {}}, {"expression": ["value_is_mandatory"]}),
        ({"expression": "round(", "event": {}}, {"expression": ["invalid_expression"]}),
        ({"expression": "event.properties.a * 2", "event": {"properties": {"a": "x"}}}, {"event": ["invalid_event"]}),
        ({"expression": "1", "event": "nope"}, {"event": ["invalid_event"]}),
        ({"expression": "1", "event": {"timestamp": "yesterday"}}, {"event": ["invalid_event"]}),
    ],
)
def test_evaluate_expression_refusals(api, body, details):
    response = api.post("/api/v1/billable_metrics/evaluate_expression", body)
    assert response.status_code == 422, response.content
    assert response.json()["error_details"] == details


@pytest.mark.django_db
def test_a_bad_expression_is_refused_with_its_position(api):
    response = api.post(
        "/api/v1/billable_metrics",
        {
            "billable_metric": {
                "name": "Storage",
                "code": "storage",
                "aggregation_type": "sum_agg",
                "field_name": "gb_hours",
                "expression": "event.properties.gb * (event.properties.hours",
            }
        },
    )
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["error_details"] == {"expression": ["invalid_expression"]}
    assert body["expression_error"] == {
        "message": "expected ')'",
        "position": 45,
    }  # the end: the 45-character text lacks its ")"
    assert not BillableMetric.objects.exists()


@pytest.mark.django_db
def test_count_takes_no_expression(api):
    response = api.post(
        "/api/v1/billable_metrics",
        {"billable_metric": {"name": "Calls", "code": "calls", "aggregation_type": "count_agg", "expression": "1"}},
    )
    assert response.status_code == 422
    assert response.json()["error_details"] == {"expression": ["value_is_invalid"]}


def _storage_metric(api, expression="event.properties.gb * event.properties.replicas", aggregation="sum_agg"):
    response = api.post(
        "/api/v1/billable_metrics",
        {
            "billable_metric": {
                "name": "Storage",
                "code": "storage",
                "aggregation_type": aggregation,
                "field_name": "gb_total",
                "expression": expression,
            }
        },
    )
    assert response.status_code == 200, response.content
    assert response.json()["billable_metric"]["expression"] == expression
    return BillableMetric.objects.get(code="storage")


def _event(transaction_id, properties, code="storage", timestamp=1_700_000_000):
    return {
        "transaction_id": transaction_id,
        "external_subscription_id": "sub_1",
        "code": code,
        "timestamp": timestamp,
        "properties": properties,
    }


@pytest.mark.django_db
def test_ingestion_computes_the_field_and_aggregation_sums_it(api):
    metric = _storage_metric(api)
    assert metric.expression_ast == {"op": "*", "l": {"p": "gb"}, "r": {"p": "replicas"}}

    one = api.post("/api/v1/events", {"event": _event("t1", {"gb": 1.5, "replicas": 3})})
    assert one.status_code == 200, one.content
    assert one.json()["event"]["properties"] == {"gb": 1.5, "replicas": 3, "gb_total": "4.5"}
    batch = api.post(
        "/api/v1/events/batch",
        {
            "events": [
                _event("t2", {"gb": "2", "replicas": 2, "gb_total": 999}),  # the client's value is replaced
                _event("t3", {"other": 1}, code="not_a_metric"),  # other codes are untouched
            ]
        },
    )
    assert batch.status_code == 200, batch.content
    assert [e["properties"] for e in batch.json()["events"]] == [
        {"gb": "2", "replicas": 2, "gb_total": "4"},
        {"other": 1},
    ]
    assert Event.objects.get(transaction_id="t2").properties["gb_total"] == "4"
    assert Event.objects.get(transaction_id="t3").properties == {"other": 1}

    # 4.5 + 4 over the period, read by the ordinary sum aggregation.
    units = aggregate(
        metric,
        external_subscription_ids=["sub_1"],
        from_datetime=datetime(2023, 11, 1, tzinfo=UTC),
        to_datetime=datetime(2023, 12, 1, tzinfo=UTC),
    ).units
    assert units == Decimal("8.5")

    # A replay of t2 (same payload) is answered with the stored event, not refused.
    replay = api.post("/api/v1/events", {"event": _event("t2", {"gb": "2", "replicas": 2, "gb_total": 999})})
    assert replay.status_code == 200, replay.content
    assert replay.json()["event"]["properties"]["gb_total"] == "4"
    assert Event.objects.count() == 3


@pytest.mark.django_db
def test_an_event_without_a_value_is_refused_and_its_batch_stores_nothing(api):
    _storage_metric(api)
    single = api.post("/api/v1/events", {"event": _event("t1", {"gb": 1})})
    assert single.status_code == 422, single.content
    assert single.json()["error_details"] == {"expression": ["expression_evaluation_failed"]}

    batch = api.post(
        "/api/v1/events/batch",
        {
            "events": [
                _event("t2", {"gb": 1, "replicas": 1}),
                _event("t3", {"gb": "lots", "replicas": 1}),
                _event("t4", {"gb": 1, "replicas": 2}),
            ]
        },
    )
    assert batch.status_code == 422, batch.content
    assert batch.json()["error_details"] == {"1": {"expression": ["expression_evaluation_failed"]}}
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_unique_count_over_a_concatenation(api):
    # lago-doc sql-expressions.mdx: seats counted over CONCAT(user_id, '-', app_id)
    metric = _storage_metric(
        api, expression="CONCAT(event.properties.user_id, '-', event.properties.app_id)", aggregation="unique_count_agg"
    )
    pairs = [("u1", "a"), ("u1", "b"), ("u1", "a"), ("u2", "a")]
    api.post(
        "/api/v1/events/batch",
        {"events": [_event(f"t{i}", {"user_id": u, "app_id": a}) for i, (u, a) in enumerate(pairs)]},
    )
    units = aggregate(
        metric,
        external_subscription_ids=["sub_1"],
        from_datetime=datetime(2023, 11, 1, tzinfo=UTC),
        to_datetime=datetime(2023, 12, 1, tzinfo=UTC),
    ).units
    assert units == 3


@pytest.mark.django_db
def test_deleted_metrics_compute_nothing(api):
    _storage_metric(api)
    assert api.delete("/api/v1/billable_metrics/storage").status_code == 200
    response = api.post("/api/v1/events", {"event": _event("t1", {"gb": 1})})
    assert response.status_code == 200
    assert response.json()["event"]["properties"] == {"gb": 1}


# --- the SQL evaluator equals the Python one ------------------------------------------------------

_NAMES = ["a", "b", "c"]
_property_values = st.one_of(
    st.integers(-(10**6), 10**6),
    st.decimals(min_value=-(10**6), max_value=10**6, places=4, allow_nan=False).map(lambda d: float(d)),
    st.decimals(min_value=-(10**6), max_value=10**6, places=6, allow_nan=False).map(str),
    st.sampled_from(["x", "", " 7 ", "1e3", "-0", ".5", "5.", "1.50e1", "true"]),
    st.booleans(),
    st.none(),
)
_leaves = st.one_of(
    st.decimals(min_value=0, max_value=10**4, places=3, allow_nan=False).map(lambda d: {"n": str(d)}),
    st.sampled_from(_NAMES).map(lambda name: {"p": name}),
    st.sampled_from([{"v": "timestamp"}, {"v": "code"}, {"s": "k"}, {"n": "0"}, {"n": "2"}, {"n": "0.5"}]),
)


def _extend(children):
    return st.one_of(
        st.builds(
            lambda op, left, right: {"op": op, "l": left, "r": right}, st.sampled_from("+-*/"), children, children
        ),
        children.map(lambda node: {"neg": node}),
        st.builds(
            lambda f, a, d: {"f": f, "a": [a] if d is None else [a, d]},
            st.sampled_from(["round", "ceil", "floor"]),
            children,
            st.one_of(st.none(), st.sampled_from([{"n": "0"}, {"n": "2"}, {"neg": {"n": "1"}}]), children),
        ),
        st.builds(
            lambda f, args: {"f": f, "a": args},
            st.sampled_from(["least", "greatest", "concat"]),
            st.lists(children, min_size=1, max_size=3),
        ),
    )


_trees = st.recursive(_leaves, _extend, max_leaves=8)


@pytest.mark.postgres
@pytest.mark.django_db
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tree=_trees,
    properties=st.dictionaries(st.sampled_from(_NAMES), _property_values, max_size=3),
    moment=st.integers(-(10**9), 4 * 10**9).map(lambda ms: datetime.fromtimestamp(ms / 1000, UTC)),
)
def test_sql_evaluator_equals_python(tree, properties, moment):
    event = ExpressionEvent("code_x", unix_seconds(moment), properties)
    try:
        expected = expression_stored_value(tree, event)
    except ExpressionEvaluationError:
        expected = None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tollgate_expression_eval(%s::jsonb, %s::jsonb, %s, %s) #>> '{}'",
            [json.dumps(tree), json.dumps(properties), "code_x", moment],
        )
        actual = cursor.fetchone()[0]
    assert actual == expected

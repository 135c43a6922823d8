"""POST /events, POST /events/batch, GET /events and GET /events/{transaction_id}."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from metrics.models import Event, event_lago_id
from tests.factories.metrics import event_payload, make_event

pytestmark = pytest.mark.django_db

REPLAYED = "Idempotent-Replayed"


def post_event(api, **fields):
    return api.post("/api/v1/events", {"event": event_payload(**fields)})


def post_batch(api, events):
    return api.post("/api/v1/events/batch", {"events": events})


def details(response):
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["status"] == 422
    assert body["code"] == "validation_errors"
    return body["error_details"]


# --- one event ---


def test_an_event_is_stored_and_answered_in_lagos_shape(api):
    response = post_event(
        api,
        transaction_id="tx_1",
        external_subscription_id="sub_42",
        code="storage",
        timestamp=1650893379,
        properties={"gb": 10, "region": "eu"},
        precise_total_amount_cents="1234.56",
    )

    assert response.status_code == 200, response.content
    assert REPLAYED not in response.headers
    event = Event.objects.get()
    body = response.json()["event"]
    assert body == {
        "lago_id": event_lago_id(event.id),
        "transaction_id": "tx_1",
        "lago_customer_id": None,
        "code": "storage",
        "timestamp": "2022-04-25T13:29:39.000Z",
        "precise_total_amount_cents": "1234.56",
        "properties": {"gb": 10, "region": "eu"},
        "lago_subscription_id": None,
        "external_subscription_id": "sub_42",
        "created_at": body["created_at"],
    }
    assert datetime.fromisoformat(body["created_at"]) > timezone.now() - timedelta(minutes=1)
    assert event.timestamp == datetime(2022, 4, 25, 13, 29, 39, tzinfo=UTC)
    assert event.precise_total_amount_cents == Decimal("1234.56")


def test_an_exact_replay_answers_the_stored_event_and_stores_nothing(api):
    first = post_event(api, transaction_id="tx_1", timestamp=1700000000.5, properties={"gb": 1, "tags": ["a"]})

    again = post_event(api, transaction_id="tx_1", timestamp="1700000000.500", properties={"tags": ["a"], "gb": 1})

    assert again.status_code == 200
    assert again.headers[REPLAYED] == "true"
    assert again.json() == first.json()
    assert Event.objects.count() == 1


def test_a_replay_without_timestamp_is_still_a_replay(api):
    first = post_event(api, transaction_id="tx_1", timestamp=None)
    again = post_event(api, transaction_id="tx_1", timestamp=None)

    assert again.status_code == 200
    assert again.headers[REPLAYED] == "true"
    assert again.json()["event"]["timestamp"] == first.json()["event"]["timestamp"]


@pytest.mark.parametrize(
    "change",
    [
        {"properties": {"gb": 11}},
        {"properties": {"gb": True}},  # 1 == True in Python, not in JSON
        {"code": "other"},
        {"timestamp": 1700000001},
        {"precise_total_amount_cents": "1"},
    ],
)
def test_the_same_transaction_id_with_another_payload_is_refused_and_changes_nothing(api, change):
    post_event(api, transaction_id="tx_1", timestamp=1700000000, properties={"gb": 1})

    response = post_event(api, transaction_id="tx_1", **{"timestamp": 1700000000, "properties": {"gb": 1}, **change})

    assert details(response) == {"transaction_id": ["value_already_exist"]}
    event = Event.objects.get()
    assert (event.properties, event.code, event.precise_total_amount_cents) == ({"gb": 1}, "api_calls", None)


def test_the_same_transaction_id_on_another_subscription_is_another_event(api):
    assert post_event(api, transaction_id="tx_1", external_subscription_id="a").status_code == 200
    assert post_event(api, transaction_id="tx_1", external_subscription_id="b").status_code == 200
    assert Event.objects.count() == 2


def test_lago_clients_nulls_mean_absent_and_unknown_keys_are_ignored(api):
    before = timezone.now().replace(microsecond=0)
    body = {
        "event": {
            "transaction_id": "tx_1",
            "external_subscription_id": "sub_1",
            "code": "api_calls",
            "timestamp": None,
            "properties": None,
            "precise_total_amount_cents": None,
            "external_customer_id": "cust_1",
            "organization_id": "x",
        }
    }

    response = api.post("/api/v1/events", body)

    assert response.status_code == 200, response.content
    event = Event.objects.get()
    assert event.properties == {}
    assert before <= event.timestamp <= timezone.now()
    assert event.timestamp.microsecond % 1000 == 0  # millisecond precision


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (1650893379, "2022-04-25T13:29:39.000Z"),
        (1650893379.123, "2022-04-25T13:29:39.123Z"),  # not .122 (binary float)
        ("1650893379", "2022-04-25T13:29:39.000Z"),
        ("1650893379.12", "2022-04-25T13:29:39.120Z"),
        ("1650893379.1239", "2022-04-25T13:29:39.124Z"),
        (0, "1970-01-01T00:00:00.000Z"),
        (-1.5, "1969-12-31T23:59:58.500Z"),
        (1650893379.1235, "2022-04-25T13:29:39.124Z"),  # sub-millisecond: rounded half-up
        (1650893379.0004, "2022-04-25T13:29:39.000Z"),
        ("1.65e9", "2022-04-15T05:20:00.000Z"),
    ],
)
def test_timestamps_are_unix_seconds_with_milliseconds(api, timestamp, expected):
    response = post_event(api, timestamp=timestamp)

    assert response.status_code == 200, response.content
    assert response.json()["event"]["timestamp"] == expected


@pytest.mark.parametrize(
    "timestamp", ["abc", "2022-04-25T13:29:39Z", "", " ", True, [], {}, "NaN", "inf", 1e300, 10**20]
)
def test_an_unreadable_timestamp_is_invalid_format(api, timestamp):
    response = post_event(api, timestamp=timestamp)

    assert details(response) == {"timestamp": ["invalid_format"]}
    assert not Event.objects.exists()


def test_missing_identifiers_are_mandatory(api):
    response = api.post("/api/v1/events", {"event": {"timestamp": 1, "code": ""}})

    assert details(response) == {
        "transaction_id": ["value_is_mandatory"],
        "external_subscription_id": ["value_is_mandatory"],
        "code": ["value_is_mandatory"],
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("transaction_id", ["a"]),
        ("transaction_id", "x" * 256),
        ("transaction_id", "nul\x00byte"),
        ("code", {"a": 1}),
        ("external_subscription_id", 1.5),
        ("properties", ["gb", 1]),
        ("properties", "gb=1"),
        ("properties", {"text": "nul\x00"}),
        ("precise_total_amount_cents", "abc"),
        ("precise_total_amount_cents", 10**30),
        ("precise_total_amount_cents", True),
    ],
)
def test_invalid_values(api, field, value):
    assert details(post_event(api, **{field: value})) == {field: ["value_is_invalid"]}
    assert not Event.objects.exists()


def test_a_numeric_identifier_is_read_as_text(api):
    response = post_event(api, transaction_id=12345)

    assert response.status_code == 200
    assert Event.objects.get().transaction_id == "12345"


def test_a_number_too_large_for_a_float_in_properties_is_refused_not_a_500(api):
    response = api.post(
        "/api/v1/events",
        b'{"event": {"transaction_id": "t", "external_subscription_id": "s", "code": "c", "properties": {"v": 1e400}}}',
        content_type="application/json",
    )

    assert details(response) == {"properties": ["value_is_invalid"]}


def test_a_lone_surrogate_is_refused_not_a_500(api):
    response = api.post(
        "/api/v1/events",
        b'{"event": {"transaction_id": "t", "external_subscription_id": "s", "code": "c",'
        b' "properties": {"v": "\\ud800"}}}',
        content_type="application/json",
    )

    assert details(response) == {"properties": ["value_is_invalid"]}
    assert not Event.objects.exists()


def test_bad_bodies_are_400(api):
    assert api.post("/api/v1/events", {"events": {}}).status_code == 400
    assert api.post("/api/v1/events", {"event": "x"}).status_code == 400
    response = api.post("/api/v1/events", b"{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["status"] == 400


def test_events_need_an_api_key(anon_api):
    response = anon_api.post("/api/v1/events", {"event": event_payload()})

    assert response.status_code == 401
    assert response.json() == {"status": 401, "error": "Unauthorized"}


# --- batches ---


def test_a_batch_stores_every_event_and_answers_them_in_order(api):
    events = [event_payload(transaction_id=f"tx_{i}", properties={"i": i}) for i in range(3)]

    response = post_batch(api, events)

    assert response.status_code == 200, response.content
    assert [e["transaction_id"] for e in response.json()["events"]] == ["tx_0", "tx_1", "tx_2"]
    assert [e["properties"]["i"] for e in response.json()["events"]] == [0, 1, 2]
    assert Event.objects.count() == 3
    assert REPLAYED not in response.headers


@pytest.mark.parametrize(
    ("body", "code"), [({"events": []}, "no_events"), ({}, "no_events"), ({"events": {"a": 1}}, "no_events")]
)
def test_an_empty_batch(api, body, code):
    assert details(api.post("/api/v1/events/batch", body)) == {"events": [code]}


def test_at_most_100_events(api):
    assert post_batch(api, [event_payload() for _ in range(100)]).status_code == 200

    response = post_batch(api, [event_payload() for _ in range(101)])

    assert details(response) == {"events": ["too_many_events"]}
    assert Event.objects.count() == 100


def test_one_invalid_event_refuses_the_batch_with_errors_by_index(api):
    events = [event_payload(), event_payload(timestamp="soon", code=None), event_payload(), "not an event"]

    response = post_batch(api, events)

    assert details(response) == {
        "1": {"code": ["value_is_mandatory"], "timestamp": ["invalid_format"]},
        "3": {"event": ["value_is_invalid"]},
    }
    assert not Event.objects.exists()


def test_a_conflicting_duplicate_refuses_the_whole_batch(api):
    post_event(api, transaction_id="tx_old", properties={"gb": 1})
    events = [event_payload(transaction_id="tx_new"), event_payload(transaction_id="tx_old", properties={"gb": 2})]

    response = post_batch(api, events)

    assert details(response) == {"1": {"transaction_id": ["value_already_exist"]}}
    assert list(Event.objects.values_list("transaction_id", flat=True)) == ["tx_old"]


def test_replays_inside_a_batch_are_skipped(api):
    stored = post_event(api, transaction_id="tx_old", timestamp=1700000000).json()["event"]
    events = [
        event_payload(transaction_id="tx_old", timestamp=1700000000),
        event_payload(transaction_id="tx_new", timestamp=1700000000),
        event_payload(transaction_id="tx_new", timestamp=1700000000),
    ]

    response = post_batch(api, events)

    assert response.status_code == 200, response.content
    assert REPLAYED not in response.headers  # something new was stored
    answered = response.json()["events"]
    assert answered[0] == stored
    assert answered[1] == answered[2]
    assert Event.objects.count() == 2


def test_a_different_payload_twice_inside_a_batch_is_refused(api):
    events = [event_payload(transaction_id="tx_1", properties={"a": 1}), event_payload(transaction_id="tx_1")]

    assert details(post_batch(api, events)) == {"1": {"transaction_id": ["value_already_exist"]}}
    assert not Event.objects.exists()


def test_a_retried_batch_answers_200_and_stores_nothing(api):
    events = [event_payload(timestamp=1700000000 + i) for i in range(5)]
    first = post_batch(api, events)

    again = post_batch(api, events)

    assert again.status_code == 200
    assert again.headers[REPLAYED] == "true"
    assert again.json() == first.json()
    assert Event.objects.count() == 5


def test_a_batch_with_a_lone_surrogate_names_its_event(api):
    body = (
        b'{"events": [{"transaction_id": "a", "external_subscription_id": "s", "code": "c"},'
        b' {"transaction_id": "b\\udc00", "external_subscription_id": "s", "code": "c"}]}'
    )

    response = api.post("/api/v1/events/batch", body, content_type="application/json")

    assert details(response) == {"1": {"transaction_id": ["value_is_invalid"]}}
    assert not Event.objects.exists()


# --- reading ---


def test_find_an_event_by_transaction_id(api):
    first = make_event(transaction_id="tx_1", external_subscription_id="a", timestamp=datetime(2026, 1, 1, tzinfo=UTC))
    second = make_event(transaction_id="tx_1", external_subscription_id="b", timestamp=datetime(2026, 1, 2, tzinfo=UTC))

    found = api.get("/api/v1/events/tx_1")
    assert found.status_code == 200
    assert found.json()["event"]["lago_id"] == event_lago_id(first.id)
    chosen = api.get("/api/v1/events/tx_1", {"external_subscription_id": "b"})
    assert chosen.json()["event"]["lago_id"] == event_lago_id(second.id)
    assert chosen.json()["event"]["timestamp"] == "2026-01-02T00:00:00.000Z"

    missing = api.get("/api/v1/events/tx_2")
    assert missing.status_code == 404
    assert missing.json() == {"status": 404, "error": "Not Found", "code": "event_not_found"}


def test_list_events_newest_first_with_filters_and_pages(api):
    day = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(5):
        make_event(
            transaction_id=f"a{i}", code="calls", external_subscription_id="s1", timestamp=day + timedelta(days=i)
        )
    make_event(transaction_id="b", code="storage", external_subscription_id="s1", timestamp=day)
    make_event(transaction_id="c", code="calls", external_subscription_id="s2", timestamp=day)

    everything = api.get("/api/v1/events").json()
    assert [e["transaction_id"] for e in everything["events"]] == ["c", "b", "a4", "a3", "a2", "a1", "a0"]
    assert everything["meta"] == {
        "current_page": 1,
        "next_page": None,
        "prev_page": None,
        "total_pages": 1,
        "total_count": 7,
    }

    page = api.get(
        "/api/v1/events",
        {
            "code": "calls",
            "external_subscription_id": "s1",
            "timestamp_from": "2026-01-02T00:00:00Z",
            "timestamp_to": "2026-01-04T00:00:00Z",  # inclusive, as Lago
            "per_page": 2,
            "page": 2,
        },
    ).json()
    assert [e["transaction_id"] for e in page["events"]] == ["a1"]
    assert page["meta"] == {"current_page": 2, "next_page": None, "prev_page": 1, "total_pages": 2, "total_count": 3}


def test_list_refuses_an_unreadable_date(api):
    assert details(api.get("/api/v1/events", {"timestamp_from": "yesterday"})) == {"timestamp_from": ["invalid_date"]}


@pytest.mark.postgres
def test_total_count_beyond_the_cap_is_an_estimate(api, monkeypatch):
    from metrics import selectors

    monkeypatch.setattr(selectors.capped_count, "__defaults__", (3,))
    for i in range(6):
        make_event(timestamp=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=i))

    meta = api.get("/api/v1/events", {"per_page": 2}).json()["meta"]

    assert meta["total_count"] >= 4  # the planner's estimate, never below the cap + 1
    assert selectors.capped_count(Event.objects.all(), limit=10) == 6  # exact below the cap


def test_the_hand_built_answer_equals_the_serializer(api):
    from metrics.api.serializers import events_json, serialize_event
    from metrics.ingestion import stored_event

    post_batch(
        api,
        [
            event_payload(properties={"ünï": "cödé", "n": [1.5, None, True]}, precise_total_amount_cents="0.000001"),
            event_payload(code='quote"and\\slash', precise_total_amount_cents=12),
        ],
    )
    events = [stored_event(e) for e in Event.objects.order_by("id")]

    assert json.loads("[" + events_json(events) + "]") == [serialize_event(e) for e in events]


def test_the_largest_precise_amounts_are_stored_not_a_500(api):
    # 24 digits before the point and 15 after need 39 significant digits (the default context has 28).
    response = post_event(api, precise_total_amount_cents="999999999999999999999999.123456789012345")

    assert response.status_code == 200, response.json()
    if connection.vendor == "postgresql":  # SQLite keeps decimals as floats
        assert Event.objects.get().precise_total_amount_cents == Decimal("999999999999999999999999.123456789012345")

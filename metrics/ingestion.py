"""Usage event ingestion: hand-written validation, idempotent inserts, exact-replay detection."""

# The request path is the hottest code in Tollgate (shared/PERFORMANCE.md: Python competes with
# PostgreSQL for two cores), so events are validated by plain Python rather than DRF serializers,
# and a batch is stored by ONE statement on PostgreSQL (the rows travel as one json parameter):
#
#     INSERT ... SELECT ... FROM json_to_recordset(<rows>) ON CONFLICT (transaction_id,
#     external_subscription_id) DO NOTHING RETURNING id, ...
#
# Rows the insert did not return collided with an event already stored (by an earlier request, or by
# a concurrent one: ON CONFLICT waits for the other transaction, so exactly one row ever exists).
# Only then are the stored copies read back and compared with what was sent: the same payload is an
# exact replay (answered with the stored event, nothing written); a different payload is the 422
# `value_already_exist`, and the whole batch is rolled back. The first copy always wins.
#
# "The same payload" compares code, properties and precise_total_amount_cents; the timestamp only
# when the replay carries one (an event sent without a timestamp is stamped with its reception time,
# which a retry cannot repeat).

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from django.db import DatabaseError, IntegrityError, OperationalError, connection, transaction

from billing_project.after_commit import send_after_commit

from .error_codes import MetricsErrorCode
from .errors import IngestionBusyError, IngestionError
from .expressions import ExpressionEvaluationError, ExpressionEvent, expression_stored_value, unix_seconds
from .models import BillableMetric, Event
from .signals import events_rejected, events_stored

logger = logging.getLogger(__name__)

MAX_BATCH_SIZE = 100
# A deadlock or serialization failure is retried inside the server this many times in all, with
# a jittered backoff from RETRY_BASE_DELAY seconds; then the client gets a 503 with Retry-After.
MAX_ATTEMPTS = 5
RETRY_BASE_DELAY = 0.02
MAX_IDENTIFIER_LENGTH = 255
# numeric(40, 15): 25 digits before the decimal point.
_PRECISE_LIMIT = Decimal("1e25")
_PRECISE_QUANTUM = Decimal("1e-15")
# 25 + 15 digits: the default context's 28 cannot quantize 1e24 to 15 places (a fuzzer's 500).
_PRECISE_CONTEXT = Context(prec=40)
_MS = Decimal(1000)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_MANDATORY = ["value_is_mandatory"]
_INVALID = ["value_is_invalid"]
_INVALID_FORMAT = ["invalid_format"]
_ALREADY_EXIST = ["value_already_exist"]


@dataclass(slots=True)
class EventInput:
    """One validated event, ready to insert."""

    transaction_id: str
    external_subscription_id: str
    code: str
    timestamp: datetime
    timestamp_text: str
    timestamp_given: bool
    properties: dict[str, Any]
    properties_json: str
    precise_total_amount_cents: Decimal | None

    def recordset_row(self) -> str:
        """This event as one JSON object of the insert's json_to_recordset parameter."""
        precise = self.precise_total_amount_cents
        return (
            f'{{"t":{_quote(self.transaction_id)},"s":{_quote(self.external_subscription_id)},'
            f'"c":{_quote(self.code)},"ts":"{self.timestamp_text}","p":{self.properties_json},'
            f'"a":{"null" if precise is None else f"{_quote(str(precise))}"}}}'
        )


@dataclass(slots=True)
class StoredEvent:
    """An event as stored (what the API answers)."""

    id: int
    transaction_id: str
    external_subscription_id: str
    code: str
    timestamp: datetime
    properties: dict[str, Any]
    precise_total_amount_cents: Decimal | None
    created_at: datetime
    # Texts ingestion already encoded (answers reuse them).
    properties_json: str | None = None
    timestamp_text: str | None = None
    # The property a metric expression computed into this event (read back for replays only).
    computed_field: str | None = None


@dataclass(slots=True)
class IngestionResult:
    """The stored events in the order they were sent, and which of them were exact replays."""

    events: list[StoredEvent]
    replayed: list[bool]

    @property
    def all_replayed(self) -> bool:
        return all(self.replayed)


# --- validation (pure) ---------------------------------------------------------------------------


def truncate_to_millisecond(moment: datetime) -> datetime:
    """In UTC, to the millisecond (the precision of an event's timestamp)."""
    return moment.astimezone(UTC).replace(microsecond=moment.microsecond // 1000 * 1000)


def parse_timestamp(value: Any) -> datetime | None:
    """Unix seconds (int, float or numeric string) to an aware UTC datetime with millisecond
    precision (rounded half-up); None when the value cannot be read as one."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int):
            return _EPOCH + timedelta(seconds=value)
        if isinstance(value, float):
            if not math.isfinite(value):
                return None
            # Fast path: a float that is a whole number of milliseconds up to float noise
            # (1650893379.123 is …379.12299990654 in binary: x 1000 rounds to …123).
            milliseconds_float = value * 1000.0
            nearest = round(milliseconds_float)
            if abs(milliseconds_float - nearest) < 1e-3:
                return _EPOCH + timedelta(milliseconds=nearest)
            # Otherwise repr(), the shortest text that reads back as this float, rounded half-up.
            seconds = Decimal(repr(value))
        elif isinstance(value, str):
            seconds = Decimal(value)
            if not seconds.is_finite():
                return None
        else:
            return None
        milliseconds = int((seconds * _MS).to_integral_value(rounding=ROUND_HALF_UP))
        return _EPOCH + timedelta(milliseconds=milliseconds)
    except (InvalidOperation, ValueError, OverflowError):
        return None


def _identifier(value: Any) -> tuple[str | None, list[str] | None]:
    if value is None or value == "":
        return None, _MANDATORY
    if isinstance(value, str):
        if len(value) > MAX_IDENTIFIER_LENGTH or "\x00" in value or not (value.isascii() or _is_utf8(value)):
            return None, _INVALID
        return value, None
    if isinstance(value, int) and not isinstance(value, bool):
        # Lago (Rails params) reads a JSON number as its text.
        return str(value), None
    return None, _INVALID


def _is_utf8(value: Any) -> bool:
    """False for text holding a lone surrogate (valid JSON escapes, not valid UTF-8)."""
    try:
        (value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _precise_amount(value: Any) -> tuple[Decimal | None, bool]:
    if value is None or value == "":
        return None, True
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None, False
    try:
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError):
        return None, False
    if not amount.is_finite() or abs(amount) >= _PRECISE_LIMIT:
        return None, False
    # Stored as numeric(40, 15): quantize here so that a replay compares equal to the stored copy.
    return amount.quantize(_PRECISE_QUANTUM, rounding=ROUND_HALF_UP, context=_PRECISE_CONTEXT), True


# One encoder for every event: json.dumps(..., allow_nan=False) would build a new one per call.
# allow_nan=False: a JSON number too large for a float (1e400) parses as inf, which PostgreSQL's
# jsonb cannot hold.
_encode_properties = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


def _timestamp_text(moment: datetime) -> str:
    """2022-04-29T08:59:51.123Z: the answer's format, which PostgreSQL also reads."""
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_event(raw: Any, received_at: datetime) -> tuple[EventInput | None, dict[str, list[str]] | None]:
    """Validate one event's payload. Keys other than Lago's six are ignored; an explicit null
    means absent. Returns (event, None) or (None, {field: [code]}).

    Written for speed (it runs for every event of every batch): the common case, three short
    ASCII identifiers and an integer or float timestamp, takes the first branch of each check."""
    if type(raw) is not dict:
        if not isinstance(raw, Mapping):
            return None, {"event": _INVALID}
    errors: dict[str, list[str]] = {}
    get = raw.get

    transaction_id = get("transaction_id")
    external_subscription_id = get("external_subscription_id")
    code = get("code")
    if not (
        type(transaction_id) is str
        and type(external_subscription_id) is str
        and type(code) is str
        and 0 < len(transaction_id) <= MAX_IDENTIFIER_LENGTH
        and 0 < len(external_subscription_id) <= MAX_IDENTIFIER_LENGTH
        and 0 < len(code) <= MAX_IDENTIFIER_LENGTH
        and (joined := transaction_id + external_subscription_id + code).isascii()
        and "\x00" not in joined
    ):
        transaction_id, error = _identifier(transaction_id)
        if error:
            errors["transaction_id"] = error
        external_subscription_id, error = _identifier(external_subscription_id)
        if error:
            errors["external_subscription_id"] = error
        code, error = _identifier(code)
        if error:
            errors["code"] = error

    raw_timestamp = get("timestamp")
    if raw_timestamp is None:
        timestamp: datetime | None = received_at
        timestamp_given = False
    else:
        timestamp = parse_timestamp(raw_timestamp)
        timestamp_given = True
        if timestamp is None:
            errors["timestamp"] = _INVALID_FORMAT

    properties = get("properties")
    properties_json = "{}"
    if properties is None:
        properties = {}
    elif type(properties) is not dict:
        errors["properties"] = _INVALID
    elif properties:
        try:
            properties_json = _encode_properties(properties)
        except (ValueError, TypeError, RecursionError):
            errors["properties"] = _INVALID
        else:
            # jsonb refuses NUL characters and lone UTF-16 surrogates (both only reach us escaped).
            if "\\u0000" in properties_json or ("\\ud" in properties_json and not _is_utf8(properties)):
                errors["properties"] = _INVALID

    raw_precise = get("precise_total_amount_cents")
    precise = None
    if raw_precise is not None:
        precise, ok = _precise_amount(raw_precise)
        if not ok:
            errors["precise_total_amount_cents"] = _INVALID

    if errors:
        return None, errors
    return (
        EventInput(
            transaction_id,
            external_subscription_id,
            code,
            timestamp,  # type: ignore[arg-type]  # parsed (not None) whenever there are no errors
            _timestamp_text(timestamp),  # type: ignore[arg-type]  # likewise
            timestamp_given,
            properties,
            properties_json,
            precise,
        ),
        None,
    )


def _canonical(properties: Any) -> str:
    return json.dumps(properties, sort_keys=True)


def is_same_payload(sent: EventInput, stored: StoredEvent) -> bool:
    """Is `sent` an exact replay of `stored`? (See the module docstring for what counts.)"""
    if sent.code != stored.code:
        return False
    if sent.timestamp_given and sent.timestamp != stored.timestamp:
        return False
    if sent.precise_total_amount_cents != stored.precise_total_amount_cents:
        return False
    # Both sides through json's canonical text: it tells 1 from true, which == on dicts does not.
    # A property computed by the metric's expression is the server's, not the client's.
    computed = stored.computed_field
    if computed is not None:
        sent_properties = {k: v for k, v in sent.properties.items() if k != computed}
        stored_properties = {k: v for k, v in stored.properties.items() if k != computed}
        return _canonical(sent_properties) == _canonical(stored_properties)
    return _canonical(sent.properties) == _canonical(stored.properties)


def _same_input(first: EventInput, again: EventInput) -> bool:
    return (
        first.code == again.code
        and (not (first.timestamp_given and again.timestamp_given) or first.timestamp == again.timestamp)
        and first.precise_total_amount_cents == again.precise_total_amount_cents
        and _canonical(first.properties) == _canonical(again.properties)
    )


# --- services ------------------------------------------------------------------------------------


def event_ingest(*, data: Any, received_at: datetime) -> IngestionResult:
    """Store one event (POST /events). Raises IngestionError with {field: [code]}.
    `received_at` stamps the event's created_at (and its timestamp when it has none)."""
    received_at = truncate_to_millisecond(received_at)
    event, errors = parse_event(data, received_at)
    if errors:
        raise IngestionError(errors)
    try:
        return _store([event], received_at)  # type: ignore[list-item]  # no errors: parse_event gave an event
    except IngestionError as error:
        raise IngestionError((error.details or {})["0"]) from None


def events_ingest_batch(*, events: Any, received_at: datetime) -> IngestionResult:
    """Store up to 100 events atomically (POST /events/batch). Raises IngestionError with
    {"events": ["no_events" | "too_many_events"]} or {index: {field: [code]}}."""
    if not isinstance(events, list) or not events:
        raise IngestionError({"events": ["no_events"]})
    if len(events) > MAX_BATCH_SIZE:
        raise IngestionError({"events": ["too_many_events"]})
    received_at = truncate_to_millisecond(received_at)
    parsed: list[EventInput] = []
    errors: dict[str, Any] = {}
    for index, raw in enumerate(events):
        event, event_errors = parse_event(raw, received_at)
        if event_errors:
            errors[str(index)] = event_errors
        else:
            parsed.append(event)  # type: ignore[arg-type]  # no errors: parse_event gave an event
    if errors:
        raise IngestionError(errors)
    return _store(parsed, received_at)


def _store(events: list[EventInput], received_at: datetime) -> IngestionResult:
    """Insert `events` (validated) in one transaction; see the module docstring."""
    # Duplicates inside the request itself: a repeat of the same payload is a replay of the first
    # occurrence; a different payload under the same key is refused like a stored duplicate.
    first_index: dict[tuple[str, str], int] = {}
    repeat_of: dict[int, int] = {}
    errors: dict[str, Any] = {}
    for index, event in enumerate(events):
        key = (event.transaction_id, event.external_subscription_id)
        seen = first_index.get(key)
        if seen is None:
            first_index[key] = index
        elif _same_input(events[seen], event):
            repeat_of[index] = seen
        else:
            errors[str(index)] = {"transaction_id": _ALREADY_EXIST}
    if errors:
        _announce_conflicts(events, errors)
        raise IngestionError(errors)
    # Rows are inserted in ONE canonical order, the unique key's: a transaction waits on a key
    # another one inserted first, and with one order for all, no two can wait on each other (the
    # same events cut into batches in different orders deadlocked). Tuples sort in C.
    unique_indexes = [index for _key, index in sorted(first_index.items())]
    unique = [events[index] for index in unique_indexes]

    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            stored, replayed = _store_once(unique, unique_indexes, received_at)
            break
        except IngestionError as error:
            _announce_conflicts(events, error.details)
            raise
        except OperationalError as error:
            # Retried only as the outermost transaction (inside another, the caller's work would
            # be lost) and only for the failures PostgreSQL asks the client to retry.
            if connection.in_atomic_block or not _is_transient(error):
                raise
            if attempt == MAX_ATTEMPTS:
                logger.warning("ingestion gave up after %s attempts: %s", attempt, error)
                raise IngestionBusyError() from error
            time.sleep(random.uniform(0, RETRY_BASE_DELAY * 2**attempt))

    by_index = dict(zip(unique_indexes, zip(stored, replayed, strict=True), strict=True))
    result_events: list[StoredEvent] = []
    result_replayed: list[bool] = []
    for index in range(len(events)):
        if index in repeat_of:
            result_events.append(by_index[repeat_of[index]][0])
            result_replayed.append(True)
        else:
            stored_event, was_replayed = by_index[index]
            result_events.append(stored_event)
            result_replayed.append(was_replayed)
    return IngestionResult(events=result_events, replayed=result_replayed)


def _announce_conflicts(events: list[EventInput], errors: dict[str, Any]) -> None:
    """events_rejected for the conflicting duplicates among `errors` ({index: {field: [code]}})."""
    rejected = [
        (
            {
                "transaction_id": events[int(index)].transaction_id,
                "external_subscription_id": events[int(index)].external_subscription_id,
                "code": events[int(index)].code,
                "timestamp": events[int(index)].timestamp_text,
                "properties": events[int(index)].properties,
            },
            details,
        )
        for index, details in errors.items()
        if index.isdigit() and details.get("transaction_id") == _ALREADY_EXIST
    ]
    if rejected:
        events_rejected.send_robust(sender=Event, rejected=rejected)


def _store_once(
    unique: list[EventInput], unique_indexes: list[int], received_at: datetime
) -> tuple[list[StoredEvent], list[bool]]:
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                stored, replayed, announced = _insert_postgresql(unique, unique_indexes, received_at)
            else:
                stored, replayed, announced = _insert_generic(unique, unique_indexes, received_at)
            if announced:
                send_after_commit(events_stored, sender=Event, events=announced)
    except DatabaseError as error:
        if not _is_expression_failure(error):
            raise
        # The INSERT evaluated a metric expression that has no value for some event: nothing was
        # stored. Which events, the Python evaluator (the same rules) tells.
        raise IngestionError(_expression_failures(unique, unique_indexes) or _ALL_FAILED) from error
    return stored, replayed


_EXPRESSION_FAILED = {"expression": [MetricsErrorCode.EXPRESSION_EVALUATION_FAILED.value]}
_ALL_FAILED = {"events": [MetricsErrorCode.EXPRESSION_EVALUATION_FAILED.value]}


def _is_expression_failure(error: DatabaseError) -> bool:
    """Raised inside tollgate_expression_text (no value, or a number beyond numeric's range)."""
    diag = getattr(error.__cause__, "diag", None)
    context = getattr(diag, "context", None) or ""
    return "tollgate_expression" in context or "tollgate_expression_failed" in str(error)


def _expression_trees(codes: set[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """{code: (field_name, parsed expression)} of the live metrics among `codes` with one."""
    rows = BillableMetric.live.filter(code__in=codes, expression_ast__isnull=False).values_list(
        "code", "field_name", "expression_ast"
    )
    return {code: (field, tree) for code, field, tree in rows if tree is not None}


def _expression_event(event: EventInput) -> ExpressionEvent:
    return ExpressionEvent(event.code, unix_seconds(event.timestamp), event.properties)


def _expression_failures(
    events: list[EventInput], indexes: list[int], trees: dict[str, tuple[str, dict[str, Any]]] | None = None
) -> dict[str, Any]:
    if trees is None:
        trees = _expression_trees({e.code for e in events})
    errors: dict[str, Any] = {}
    for i, event in enumerate(events):
        if event.code in trees:
            try:
                expression_stored_value(trees[event.code][1], _expression_event(event))
            except ExpressionEvaluationError:
                errors[str(indexes[i])] = _EXPRESSION_FAILED
    return errors


# SQLSTATEs PostgreSQL asks a client to retry: serialization_failure, deadlock_detected.
_TRANSIENT_SQLSTATES = {"40001", "40P01"}


def _is_transient(error: OperationalError) -> bool:
    return getattr(error.__cause__, "sqlstate", None) in _TRANSIENT_SQLSTATES


_TABLE = Event._meta.db_table
# The rows travel as ONE json parameter: psycopg adapts Python lists to arrays in Python code
# (measured: ~3 ms of client CPU per 100 rows), a json text costs ~0.1 ms to build and the
# server parses it in C. created_at is the request's reception time, passed once.
# The last column says whether a new event must be announced (events_stored): its code is a live
# metric's that a pay-in-advance charge prices. The subquery is uncorrelated, so PostgreSQL runs
# it once per statement as a hashed SubPlan over the (small) metrics table: no extra round trip,
# and replays (not returned by ON CONFLICT DO NOTHING) are never announced.
#
# Metric expressions (metrics.expressions) are evaluated by the same statement: an event whose code
# is a live metric's with an expression gets properties[field_name] from tollgate_expression_text
# (metrics migration 0007). The test `c IN (...)` is another hashed SubPlan, so events of other codes
# pay nothing, and no join reorders the rows (they go in in the canonical order). Only events with a
# computed property bring their properties back (the last column), for the answer.
_METRICS = BillableMetric._meta.db_table
_WITH_EXPRESSION = f"SELECT x.code FROM {_METRICS} x WHERE x.expression_ast IS NOT NULL AND x.deleted_at IS NULL"
_INSERT_SQL = f"""
INSERT INTO {_TABLE}
    (transaction_id, external_subscription_id, code, timestamp, properties, precise_total_amount_cents, created_at)
SELECT t, s, c, ts,
    CASE WHEN c IN ({_WITH_EXPRESSION}) THEN p || (
        SELECT jsonb_build_object(x.field_name, tollgate_expression_text(x.expression_ast, p, c, ts))
        FROM {_METRICS} x WHERE x.code = c AND x.expression_ast IS NOT NULL AND x.deleted_at IS NULL
    ) ELSE p END,
    a, %s::timestamptz
FROM json_to_recordset(%s::json) AS r(t varchar, s varchar, c varchar, ts timestamptz, p jsonb, a numeric)
ON CONFLICT (transaction_id, external_subscription_id) DO NOTHING
RETURNING id, transaction_id, external_subscription_id, code IN (
    SELECT m.code FROM {_METRICS} m WHERE m.has_pay_in_advance_charges AND m.deleted_at IS NULL
), CASE WHEN code IN ({_WITH_EXPRESSION}) THEN properties::text END
"""
_EXISTING_SQL = f"""
SELECT id, transaction_id, external_subscription_id, code, timestamp, properties::text,
       precise_total_amount_cents, created_at,
       (SELECT x.field_name FROM {_METRICS} x
        WHERE x.code = e.code AND x.expression_ast IS NOT NULL AND x.deleted_at IS NULL)
FROM {_TABLE} e
WHERE (transaction_id, external_subscription_id) IN (
    SELECT * FROM json_to_recordset(%s::json) AS k(t varchar, s varchar)
)
"""


# What ingestion announces after commit: (external_subscription_id, code, transaction_id) per
# new event of a pay-in-advance code (metrics.signals.events_stored).
Announced = list[tuple[str, str, str]]


def _insert_postgresql(
    events: list[EventInput], indexes: list[int], received_at: datetime
) -> tuple[list[StoredEvent], list[bool], Announced]:
    stored: list[StoredEvent | None] = [None] * len(events)
    announced: Announced = []
    position = {(e.transaction_id, e.external_subscription_id): i for i, e in enumerate(events)}
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_SQL, [received_at, "[" + ",".join([e.recordset_row() for e in events]) + "]"])
        for event_id, transaction_id, external_subscription_id, in_advance, computed in cursor.fetchall():
            i = position[(transaction_id, external_subscription_id)]
            e = events[i]
            if in_advance:
                announced.append((external_subscription_id, e.code, transaction_id))
            stored[i] = StoredEvent(
                id=event_id,
                transaction_id=transaction_id,
                external_subscription_id=external_subscription_id,
                code=e.code,
                timestamp=e.timestamp,
                properties=e.properties if computed is None else json.loads(computed),
                precise_total_amount_cents=e.precise_total_amount_cents,
                created_at=received_at,
                properties_json=e.properties_json if computed is None else computed,
                timestamp_text=e.timestamp_text,
            )
        conflicting = [i for i, s in enumerate(stored) if s is None]
        if not conflicting:
            return stored, [False] * len(events), announced  # type: ignore[return-value]  # no None: all inserted

        # The rare path: read the stored copies. A new statement sees rows committed by the
        # concurrent transactions the insert waited for (READ COMMITTED).
        keys = [{"t": events[i].transaction_id, "s": events[i].external_subscription_id} for i in conflicting]
        cursor.execute(_EXISTING_SQL, [json.dumps(keys)])
        for row in cursor.fetchall():
            i = position[(row[1], row[2])]
            stored[i] = StoredEvent(
                id=row[0],
                transaction_id=row[1],
                external_subscription_id=row[2],
                code=row[3],
                timestamp=row[4],
                properties=json.loads(row[5]),
                precise_total_amount_cents=row[6],
                created_at=row[7],
                computed_field=row[8],
            )
    return (*_judge_conflicts(events, indexes, stored, conflicting), announced)


def _judge_conflicts(
    events: list[EventInput], indexes: list[int], stored: list[StoredEvent | None], conflicting: Sequence[int]
) -> tuple[list[StoredEvent], list[bool]]:
    replayed = [False] * len(events)
    errors: dict[str, Any] = {}
    for i in conflicting:
        existing = stored[i]
        if existing is not None and is_same_payload(events[i], existing):
            replayed[i] = True
        else:
            # existing is None only if the row vanished between the insert and the read (events
            # are never deleted by Tollgate): refuse rather than guess.
            errors[str(indexes[i])] = {"transaction_id": _ALREADY_EXIST}
    if errors:
        raise IngestionError(errors)  # rolls the transaction (and the rows inserted) back
    return stored, replayed  # type: ignore[return-value]  # a None is refused above, so none is left


def _insert_generic(
    events: list[EventInput], indexes: list[int], received_at: datetime
) -> tuple[list[StoredEvent], list[bool], Announced]:
    """Row by row through the ORM: correct on SQLite (the demo database), not fast."""
    stored: list[StoredEvent | None] = []
    conflicting: list[int] = []
    trees = _expression_trees({e.code for e in events})
    failures = _expression_failures(events, indexes, trees) if trees else {}
    if failures:
        raise IngestionError(failures)
    for i, e in enumerate(events):
        properties = e.properties
        if e.code in trees:
            field, tree = trees[e.code]
            properties = {**properties, field: expression_stored_value(tree, _expression_event(e))}
        try:
            with transaction.atomic():
                row = Event.objects.create(
                    transaction_id=e.transaction_id,
                    external_subscription_id=e.external_subscription_id,
                    code=e.code,
                    timestamp=e.timestamp,
                    properties=properties,
                    precise_total_amount_cents=e.precise_total_amount_cents,
                    created_at=received_at,
                )
            stored.append(_stored_from_model(row, properties=properties))
        except IntegrityError:
            existing = Event.objects.filter(
                transaction_id=e.transaction_id, external_subscription_id=e.external_subscription_id
            ).first()
            replay = _stored_from_model(existing) if existing else None
            if replay is not None and replay.code in trees:
                replay.computed_field = trees[replay.code][0]
            stored.append(replay)
            conflicting.append(i)
    stored_events, replayed = _judge_conflicts(events, indexes, stored, conflicting)
    new = [event for event, was_replayed in zip(stored_events, replayed, strict=True) if not was_replayed]
    in_advance = (
        set(
            BillableMetric.live.filter(
                code__in={event.code for event in new}, has_pay_in_advance_charges=True
            ).values_list("code", flat=True)
        )
        if new
        else set()
    )
    announced = [(e.external_subscription_id, e.code, e.transaction_id) for e in new if e.code in in_advance]
    return stored_events, replayed, announced


def _stored_from_model(row: Event, properties: dict[str, Any] | None = None) -> StoredEvent:
    precise = row.precise_total_amount_cents
    return StoredEvent(
        id=row.id,
        transaction_id=row.transaction_id,
        external_subscription_id=row.external_subscription_id,
        code=row.code,
        timestamp=row.timestamp,
        properties=row.properties if properties is None else properties,
        precise_total_amount_cents=(
            None if precise is None else Decimal(precise).quantize(_PRECISE_QUANTUM, context=_PRECISE_CONTEXT)
        ),
        created_at=row.created_at,
    )


def stored_event(row: Event) -> StoredEvent:
    """A model row in the shape the API answers."""
    return _stored_from_model(row)

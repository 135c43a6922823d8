"""Lago's billable-metric expressions: a small safe parser and evaluator (never Python's eval).

The language (lago-doc guide/billable-metrics/sql-expressions.mdx; grammar of getlago/lago-expression
expression-core/src/grammar.pest): numbers (`12`, `1.5`), strings in single quotes, the event's
attributes `event.code`, `event.timestamp` (Unix seconds) and `event.properties.<name>`, the
operators `+ - * /` (the usual precedence, left-associative) with a unary minus, parentheses, and the
functions CONCAT, ROUND, CEIL, FLOOR (value[, digits]), LEAST and GREATEST (written all lower, all
upper or capitalised, as Lago spells them).

Parsing yields a JSON tree (plain dicts and lists) that is stored on the metric (`expression_ast`).
The same tree is evaluated here (SQLite, `evaluate_expression`, and the diagnosis of a refused
batch) and by the PL/pgSQL function `tollgate_expression_eval` (metrics migration) inside
ingestion's INSERT on PostgreSQL. Both follow one set of rules, and a property test holds them equal:
- A value is a number (Decimal, exact) or a string. A property that is a JSON number, or a string
  reading as a number (selectors.NUMERIC_TEXT_PATTERN, the rule aggregation reads numbers by), is a
  number; booleans are the strings "true"/"false"; a missing, null, list or object property fails.
- + - * are exact. / rounds half-up to DIVISION_SCALE decimal places, then drops trailing zeros.
- ROUND rounds half away from zero, CEIL and FLOOR towards +/- infinity, to `digits` places
  (truncated to an integer; negative digits round to tens, hundreds...; the result never has fewer
  than 0 decimal places). LEAST/GREATEST take numbers and answer the first minimum / last maximum.
- CONCAT writes numbers in plain decimal notation (no exponent).
- Arithmetic on a string, a division by zero or digits beyond +/-MAX_DIGITS fail the evaluation.
A number result is stored as its decimal text (a JSON string), as Lago stores a BigDecimal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal, Inexact, localcontext
from typing import Any

from .selectors import NUMERIC_TEXT_PATTERN

Node = dict[str, Any]
Value = Decimal | str

DIVISION_SCALE = 20
MAX_DIGITS = 1000
MAX_LENGTH = 10_000
_EXACT = Context(prec=5000, traps=[Inexact])  # + - * and the scaled division: never rounded
_ROUNDING_CONTEXT = Context(prec=5000)  # ROUND / CEIL / FLOOR round on purpose
_NUMERIC_TEXT = re.compile(NUMERIC_TEXT_PATTERN.replace("\\s", "[ \\t\\n\\r\\f\\v]"))
_FUNCTIONS = {
    spelling: name
    for name in ("concat", "round", "ceil", "floor", "least", "greatest")
    for spelling in (name, name.upper(), name.capitalize())
}
_ROUNDING_FUNCTIONS = {"round", "ceil", "floor"}
_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<number>[0-9]+(?:\.[0-9]+)?)
      | (?P<string>'[^']*')
      | (?P<variable>event\.(?:properties\.[A-Za-z][A-Za-z0-9_]*|timestamp|code))(?![A-Za-z0-9_.])
      | (?P<badvariable>event\.[A-Za-z0-9_.]*)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<punct>[-+*/(),])""",
    re.VERBOSE,
)


class ExpressionSyntaxError(ValueError):
    """The expression does not parse: `position` is the 0-based offset of the offending character."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.message = message
        self.position = position


class ExpressionEvaluationError(ValueError):
    """The expression parsed but cannot be evaluated for this event (a missing property, arithmetic
    on a string, a division by zero)."""


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    position: int


def _tokens(expression: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if match is None:
            raise ExpressionSyntaxError(f"unexpected character {expression[position]!r}", position)
        kind = match.lastgroup or ""
        if kind == "badvariable":
            raise ExpressionSyntaxError("expected event.code, event.timestamp or event.properties.<name>", position)
        if kind != "space":
            tokens.append(_Token(kind, match.group(), position))
        position = match.end()
    tokens.append(_Token("end", "", len(expression)))
    return tokens


class _Parser:
    """Recursive descent over Lago's grammar: expr = atom (op atom)*; atom = "-"? primary."""

    def __init__(self, expression: str) -> None:
        self.tokens = _tokens(expression)
        self.index = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, text: str) -> _Token:
        token = self.peek()
        if token.text != text or token.kind != "punct":
            raise ExpressionSyntaxError(f"expected {text!r}", token.position)
        return self.take()

    def parse(self) -> Node:
        node = self.sum()
        token = self.peek()
        if token.kind != "end":
            raise ExpressionSyntaxError(f"unexpected {token.text!r}", token.position)
        return node

    def sum(self) -> Node:
        node = self.product()
        while self.peek().kind == "punct" and self.peek().text in "+-":
            operator = self.take().text
            node = {"op": operator, "l": node, "r": self.product()}
        return node

    def product(self) -> Node:
        node = self.atom()
        while self.peek().kind == "punct" and self.peek().text in "*/":
            operator = self.take().text
            node = {"op": operator, "l": node, "r": self.atom()}
        return node

    def atom(self) -> Node:
        if self.peek().kind == "punct" and self.peek().text == "-":
            self.take()
            return {"neg": self.primary()}
        return self.primary()

    def primary(self) -> Node:
        token = self.take()
        if token.kind == "number":
            return {"n": token.text}
        if token.kind == "string":
            return {"s": token.text[1:-1]}
        if token.kind == "variable":
            attribute = token.text.removeprefix("event.")
            if attribute.startswith("properties."):
                return {"p": attribute.removeprefix("properties.")}
            return {"v": attribute}
        if token.kind == "name":
            return self.function(token)
        if token.kind == "punct" and token.text == "(":
            node = self.sum()
            self.expect(")")
            return node
        if token.kind == "end":
            raise ExpressionSyntaxError("unexpected end of expression", token.position)
        raise ExpressionSyntaxError(f"unexpected {token.text!r}", token.position)

    def function(self, name: _Token) -> Node:
        function = _FUNCTIONS.get(name.text)
        if function is None:
            raise ExpressionSyntaxError(f"unknown name {name.text!r}", name.position)
        self.expect("(")
        arguments = [self.sum()]
        while self.peek().kind == "punct" and self.peek().text == ",":
            self.take()
            arguments.append(self.sum())
        closing = self.expect(")")
        if function in _ROUNDING_FUNCTIONS and len(arguments) > 2:
            raise ExpressionSyntaxError(f"{function.upper()} takes 1 or 2 arguments", closing.position)
        return {"f": function, "a": arguments}


def expression_parse(expression: str) -> Node:
    """The JSON tree of `expression`; ExpressionSyntaxError (with a position) when it is not valid."""
    if len(expression) > MAX_LENGTH:
        raise ExpressionSyntaxError(f"longer than {MAX_LENGTH} characters", MAX_LENGTH)
    return _Parser(expression).parse()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def unix_seconds(moment: datetime) -> int:
    """`event.timestamp`: whole Unix seconds, truncated towards zero (Lago's Time#to_i; the SQL
    evaluator's trunc(extract(epoch ...)))."""
    microseconds = (moment - _EPOCH) // timedelta(microseconds=1)
    return -(-microseconds // 1_000_000) if microseconds < 0 else microseconds // 1_000_000


@dataclass(frozen=True, slots=True)
class ExpressionEvent:
    code: str
    timestamp: int  # Unix seconds, as Lago passes event.timestamp
    properties: dict[str, Any]


def _plain(value: Decimal) -> Decimal:
    """No negative zero, no positive exponent: the forms PostgreSQL's numeric has."""
    if value.is_zero():
        value = value.copy_abs()
    if value.as_tuple().exponent > 0:  # type: ignore[operator]  # finite numbers only here
        value = value.quantize(Decimal(1), context=_ROUNDING_CONTEXT)  # exact: no fraction
    return value


def number_text(value: Decimal) -> str:
    """A number in plain decimal notation, as PostgreSQL writes numeric."""
    return format(_plain(value), "f")


def _property(properties: dict[str, Any], name: str) -> Value:
    value = properties.get(name)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return _plain(Decimal(str(value)))
    if isinstance(value, str):
        if _NUMERIC_TEXT.match(value):
            return _plain(Decimal(value.strip()))
        return value
    raise ExpressionEvaluationError(f"property {name!r} is missing or not a scalar")


def _number(value: Value) -> Decimal:
    if isinstance(value, str):
        raise ExpressionEvaluationError(f"expected a number, got the string {value!r}")
    return value


def _digits(node: Node | None, event: ExpressionEvent) -> int:
    if node is None:
        return 0
    digits = int(_number(_evaluate(node, event)).to_integral_value(rounding=ROUND_DOWN))
    if abs(digits) > MAX_DIGITS:
        raise ExpressionEvaluationError(f"digits beyond +/-{MAX_DIGITS}")
    return digits


_MODES = {"round": ROUND_HALF_UP, "ceil": ROUND_CEILING, "floor": ROUND_FLOOR}


def _round(function: str, arguments: list[Node], event: ExpressionEvent) -> Decimal:
    value = _number(_evaluate(arguments[0], event))
    digits = _digits(arguments[1] if len(arguments) > 1 else None, event)
    rounded = value.quantize(Decimal(1).scaleb(-digits), rounding=_MODES[function], context=_ROUNDING_CONTEXT)
    return _plain(rounded)


def _divide(dividend: Decimal, divisor: Decimal) -> Decimal:
    if divisor.is_zero():
        raise ExpressionEvaluationError("division by zero")
    # Exact: the integer quotient and remainder of dividend * 10^scale by divisor, then half-up.
    scaled = dividend.scaleb(DIVISION_SCALE, context=_EXACT)
    with localcontext(_EXACT):
        quotient = scaled // divisor  # Decimal's // truncates towards zero, exactly
        remainder = scaled - quotient * divisor
        if 2 * abs(remainder) >= abs(divisor):
            quotient += 1 if (scaled < 0) == (divisor < 0) else -1
    result = quotient.scaleb(-DIVISION_SCALE, context=_EXACT).normalize(context=_EXACT)
    return _plain(result)


def _evaluate(node: Node, event: ExpressionEvent) -> Value:
    if "n" in node:
        return _plain(Decimal(node["n"]))
    if "s" in node:
        return str(node["s"])
    if "p" in node:
        return _property(event.properties, node["p"])
    if "v" in node:
        return event.code if node["v"] == "code" else Decimal(event.timestamp)
    if "neg" in node:
        return _plain(_number(_evaluate(node["neg"], event)).copy_negate())  # exact, whatever the context
    if "op" in node:
        left = _number(_evaluate(node["l"], event))
        right = _number(_evaluate(node["r"], event))
        operator = node["op"]
        with localcontext(_EXACT):
            if operator == "+":
                return _plain(left + right)
            if operator == "-":
                return _plain(left - right)
            if operator == "*":
                return _plain(left * right)
        return _divide(left, right)
    function = node["f"]
    arguments = node["a"]
    if function == "concat":
        return "".join(_text(_evaluate(argument, event)) for argument in arguments)
    if function in _ROUNDING_FUNCTIONS:
        return _round(function, arguments, event)
    numbers = [_number(_evaluate(argument, event)) for argument in arguments]
    chosen = numbers[0]
    for number in numbers[1:]:
        # LEAST keeps the first of equal minimums, GREATEST the last of equal maximums (Rust's
        # Iterator::min / max in lago-expression).
        if (function == "least" and number < chosen) or (function == "greatest" and number >= chosen):
            chosen = number
    return chosen


def _text(value: Value) -> str:
    return value if isinstance(value, str) else number_text(value)


def expression_evaluate(tree: Node, event: ExpressionEvent) -> Value:
    """The value of a parsed expression for `event`; ExpressionEvaluationError when it has none."""
    try:
        return _evaluate(tree, event)
    except (ArithmeticError, OverflowError) as error:  # decimal traps: too many digits to be exact
        raise ExpressionEvaluationError(str(error)) from error


def expression_stored_value(tree: Node, event: ExpressionEvent) -> str:
    """What ingestion writes into properties[field_name]: a number's decimal text, or the string."""
    return _text(expression_evaluate(tree, event))

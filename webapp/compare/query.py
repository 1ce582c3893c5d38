"""The runs table's query language: a small recursive-descent parser compiled to a Django Q.

    cube.steps >= 10 and teacher in (minilm, tiny-bert)
    val/mrr between 0.2 and 0.5
    status = succeeded or tag = best
    not (owner = bob or dataset in ("faq v2", 3)) and date >= 2026-11-01

Grammar (keywords are case-insensitive; NOT binds tighter than AND, AND tighter than OR)::

    query      := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" or_expr ")" | condition
    condition  := field op value
                | field ["not"] "in" "(" value ("," value)* ")"
                | field ["not"] "between" value "and" value
    op         := "=" | "==" | "!=" | "<" | "<=" | ">" | ">=" | "~"   (~ : contains, text fields)

Fields: the run columns ``status``, ``dataset`` (name or id), ``tag``/``tags``, ``owner``,
``name``, ``id``, ``queue``, ``date``/``created``; ``teacher`` (any of the first four
teachers' names); any config key as a dotted path into the run's config (``cube.steps``,
``train.lr``, ``teachers.0.name``,
or explicitly ``config.<path>``); any summary metric (a key with a ``/`` such as
``val/qa_cosine``, or explicitly ``summary.<key>``). Values are numbers, bare words
(``minilm``, ``tiny-bert``, ``2026-11-01``), ``true``/``false``/``null`` or quoted strings.

Every query compiles to one ``Q`` over the JSON fields, so filtering, counting, sorting and
paging all happen in the database (SQLite and PostgreSQL alike); no Python fallback is needed.
Errors are ``QueryError(message, column)`` with a 1-based column.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import reduce
from typing import Any, Union

from django.db.models import Q

# Top-level keys of a run's config snapshot (trainer.config.Config): a bare first segment
# among these makes the field a config path; anything else without a prefix is a metric.
CONFIG_ROOTS = {"task", "seed", "cube", "train", "data", "teachers", "loss", "distill"}
MAX_TEACHERS = 4  # `teacher = x` looks at teachers.0.name … teachers.3.name
KEYWORDS = {"and", "or", "not", "in", "between"}
LITERALS = {"true": True, "false": False, "null": None}
OPERATORS = ("==", "!=", "<=", ">=", "=", "<", ">", "~")


class QueryError(ValueError):
    def __init__(self, message: str, column: int):
        super().__init__(f"column {column}: {message}")
        self.message = message
        self.column = column


# --- tokens -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Token:
    kind: str  # word | number | string | op | lparen | rparen | comma | end
    text: str
    value: Any
    column: int  # 1-based


_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>==|!=|<=|>=|=|<|>|~)
      | (?P<lparen>\()
      | (?P<rparen>\))
      | (?P<comma>,)
      | (?P<word>[A-Za-z0-9_.\-/@:+]+)
    """,
    re.VERBOSE,
)
_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


def tokenize(text: str) -> list[Token]:
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            if text[position] in "\"'":
                raise QueryError("unterminated string", position + 1)
            raise QueryError(f"unexpected character {text[position]!r}", position + 1)
        kind, raw = match.lastgroup, match.group()
        column = position + 1
        position = match.end()
        if kind == "space":
            continue
        if kind == "string":
            tokens.append(Token("string", raw, re.sub(r"\\(.)", r"\1", raw[1:-1]), column))
        elif kind == "word" and _NUMBER.match(raw):
            number = float(raw)
            tokens.append(Token("number", raw, int(number) if number.is_integer() and "." not in raw
                                and "e" not in raw.lower() else number, column))
        else:
            tokens.append(Token(kind, raw, raw, column))
    tokens.append(Token("end", "", None, len(text) + 1))
    return tokens


# --- syntax tree --------------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    kind: str  # status | dataset | tag | owner | name | id | queue | date | teacher | config | metric
    path: tuple[str, ...]  # the JSON path for config (("cube", "steps")) and metric (("val/mrr",))
    text: str
    column: int


@dataclass(frozen=True)
class Compare:
    field: Field
    op: str  # = != < <= > >= ~
    value: Any


@dataclass(frozen=True)
class In:
    field: Field
    values: tuple


@dataclass(frozen=True)
class Between:
    field: Field
    low: Any
    high: Any


@dataclass(frozen=True)
class Not:
    node: "Node"


@dataclass(frozen=True)
class And:
    nodes: tuple


@dataclass(frozen=True)
class Or:
    nodes: tuple


Node = Union[Compare, In, Between, Not, And, Or]

COLUMN_FIELDS = {
    "status": "status", "dataset": "dataset", "tag": "tag", "tags": "tag", "owner": "owner", "name": "name",
    "id": "id", "queue": "queue", "date": "date", "created": "date", "created_at": "date", "teacher": "teacher",
    "teachers.name": "teacher",
}


def resolve_field(text: str, column: int) -> Field:
    """What a field name in a query (or a sort key) refers to."""
    lowered = text.lower()
    if lowered in COLUMN_FIELDS:
        return Field(COLUMN_FIELDS[lowered], (), text, column)
    if "__" in text:
        raise QueryError(f"field {text!r} may not contain '__'", column)
    if lowered.startswith("config."):
        return _config_field(text, text[len("config."):], column)
    for prefix in ("summary.", "metric.", "metrics."):
        if lowered.startswith(prefix) and len(text) > len(prefix):
            return Field("metric", (text[len(prefix):],), text, column)
    if "/" in text:
        return Field("metric", (text,), text, column)
    if text.split(".")[0] in CONFIG_ROOTS:
        return _config_field(text, text, column)
    return Field("metric", (text,), text, column)  # e.g. `lr`, a flat metric key


def _config_field(text: str, path: str, column: int) -> Field:
    parts = tuple(path.split("."))
    if not path or any(part == "" for part in parts):
        raise QueryError(f"bad config path {text!r}", column)
    return Field("config", parts, text, column)


class Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.token
        self.index += 1
        return token

    def at_keyword(self, word: str) -> bool:
        return self.token.kind == "word" and self.token.text.lower() == word

    def expect(self, kind: str, what: str) -> Token:
        if self.token.kind != kind:
            raise QueryError(f"expected {what}, found {self.describe(self.token)}", self.token.column)
        return self.advance()

    @staticmethod
    def describe(token: Token) -> str:
        return "the end of the query" if token.kind == "end" else repr(token.text)

    def parse(self) -> Node:
        if self.token.kind == "end":
            raise QueryError("empty query", 1)
        node = self.or_expr()
        if self.token.kind != "end":
            raise QueryError(f"expected 'and', 'or' or the end of the query, found {self.describe(self.token)}",
                             self.token.column)
        return node

    def or_expr(self) -> Node:
        nodes = [self.and_expr()]
        while self.at_keyword("or"):
            self.advance()
            nodes.append(self.and_expr())
        return nodes[0] if len(nodes) == 1 else Or(tuple(nodes))

    def and_expr(self) -> Node:
        nodes = [self.not_expr()]
        while self.at_keyword("and"):
            self.advance()
            nodes.append(self.not_expr())
        return nodes[0] if len(nodes) == 1 else And(tuple(nodes))

    def not_expr(self) -> Node:
        if self.at_keyword("not"):
            self.advance()
            return Not(self.not_expr())
        if self.token.kind == "lparen":
            self.advance()
            node = self.or_expr()
            self.expect("rparen", "')'")
            return node
        return self.condition()

    def condition(self) -> Node:
        token = self.token
        if token.kind != "word" or token.text.lower() in KEYWORDS:
            raise QueryError(f"expected a field name, found {self.describe(token)}", token.column)
        self.advance()
        field = resolve_field(token.text, token.column)
        negate = False
        if self.at_keyword("not"):
            self.advance()
            negate = True
            if not (self.at_keyword("in") or self.at_keyword("between")):
                raise QueryError(f"expected 'in' or 'between' after 'not', found {self.describe(self.token)}",
                                 self.token.column)
        if self.at_keyword("in"):
            self.advance()
            self.expect("lparen", "'(' after 'in'")
            values = [self.value()]
            while self.token.kind == "comma":
                self.advance()
                values.append(self.value())
            self.expect("rparen", "',' or ')'")
            node: Node = In(field, tuple(values))
        elif self.at_keyword("between"):
            self.advance()
            low = self.value()
            if not self.at_keyword("and"):
                raise QueryError(f"expected 'and' in 'between … and …', found {self.describe(self.token)}",
                                 self.token.column)
            self.advance()
            node = Between(field, low, self.value())
        elif self.token.kind == "op":
            op = self.advance().text
            node = Compare(field, "=" if op == "==" else op, self.value())
        else:
            raise QueryError(f"expected an operator (=, !=, <, <=, >, >=, ~, in, between) after "
                             f"{token.text!r}, found {self.describe(self.token)}", self.token.column)
        return Not(node) if negate else node

    def value(self) -> Any:
        token = self.token
        if token.kind in ("number", "string"):
            return self.advance().value
        if token.kind == "word" and token.text.lower() not in KEYWORDS:
            self.advance()
            return LITERALS.get(token.text.lower(), token.text)
        raise QueryError(f"expected a value, found {self.describe(token)}", token.column)


def parse(text: str) -> Node:
    return Parser(text).parse()


# --- compile to Q -------------------------------------------------------------------------

LOOKUPS = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


def compile_query(text: str) -> Q:
    """The query as a Q over Run; an empty query is everything."""
    if not text or not text.strip():
        return Q()
    return to_q(parse(text))


def to_q(node: Node, negated: bool = False) -> Q:
    """``negated``: the node sits under an odd number of NOTs (see ``_json_q``)."""
    if isinstance(node, And):
        return reduce(operator.and_, [to_q(child, negated) for child in node.nodes])
    if isinstance(node, Or):
        return reduce(operator.or_, [to_q(child, negated) for child in node.nodes])
    if isinstance(node, Not):
        return ~to_q(node.node, not negated)
    if isinstance(node, In):
        return reduce(operator.or_, [_compare(node.field, "=", value, negated) for value in node.values])
    if isinstance(node, Between):
        return _compare(node.field, ">=", node.low, negated) & _compare(node.field, "<=", node.high, negated)
    return _compare(node.field, node.op, node.value, negated)


def _compare(field: Field, op: str, value: Any, negated: bool = False) -> Q:
    if op == "!=":
        return ~_compare(field, "=", value, not negated)
    handler = {"config": _json_q, "metric": _json_q, "date": _date_q, "teacher": _teacher_q, "tag": _tag_q}
    if field.kind in handler:
        return handler[field.kind](field, op, value, negated)
    if field.kind == "id" or (field.kind == "dataset" and isinstance(value, int)):
        if not isinstance(value, int):
            raise QueryError(f"{field.text} needs a whole number, not {value!r}", field.column)
        name = "pk" if field.kind == "id" else "dataset_id"
        return Q(**{name if op == "=" else f"{name}__{_lookup(field, op, text_ok=False)}": value})
    column = {"status": "status", "dataset": "dataset__name", "owner": "owner__username", "name": "name",
              "queue": "queue"}[field.kind]
    text = "" if value is None else str(value)
    if op == "=":
        return Q(**{f"{column}__iexact" if field.kind in ("name", "dataset") else column: text})
    return Q(**{f"{column}__{_lookup(field, op)}": text})


def _lookup(field: Field, op: str, text_ok: bool = True) -> str:
    if op == "~":
        if not text_ok:
            raise QueryError(f"'~' (contains) needs a text field, not {field.text}", field.column)
        return "icontains"
    return LOOKUPS[op]


def _json_q(field: Field, op: str, value: Any, negated: bool = False) -> Q:
    """config__cube__steps__gte=10 / summary__val/mrr__lt=0.5: a native JSON comparison, so
    numbers compare as numbers on SQLite (json_extract) and PostgreSQL (jsonb) alike."""
    root = "config" if field.kind == "config" else "summary"
    path = "__".join((root,) + field.path)
    if op == "=" and value is None:
        return Q(**{f"{path}__isnull": True}) | Q(**{path: None})
    # Under a NOT: "has the key and …", so a comparison with a missing key is false rather
    # than SQL's unknown, and `not …` / `!=` also match the runs that lack the key. Outside a
    # NOT unknown already means no match, and the check would only parse the JSON twice.
    present = Q(**{f"{path}__isnull": False}) if negated else Q()
    if op == "=":
        q = Q(**{path: value})
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            q |= Q(**{path: str(value)})  # a number stored as text still matches
        return present & q
    if op == "~":
        return present & Q(**{f"{path}__icontains": str(value)})
    if value is None or isinstance(value, bool):
        raise QueryError(f"cannot order-compare {field.text} with {value!r}", field.column)
    return present & Q(**{f"{path}__{LOOKUPS[op]}": value})


def _teacher_q(field: Field, op: str, value: Any, negated: bool = False) -> Q:
    """Any of the run's teachers (config.teachers[i].name) matches."""
    return reduce(operator.or_, [
        _json_q(Field("config", ("teachers", str(index), "name"), field.text, field.column), op, value, negated)
        for index in range(MAX_TEACHERS)
    ])


def _tag_q(field: Field, op: str, value: Any, negated: bool = False) -> Q:
    # A subquery, not a join: NOT and OR over a many-to-many join would duplicate or drop rows.
    from webapp.runs.models import Run

    if op not in ("=", "~"):
        raise QueryError("tags support =, !=, ~ and in", field.column)
    lookup = "tags__name" if op == "=" else "tags__name__icontains"
    return Q(pk__in=Run.objects.filter(**{lookup: str(value)}).values("pk"))


def _date_q(field: Field, op: str, value: Any, negated: bool = False) -> Q:
    start, end = _date_range(field, value)
    if op == "=":
        return Q(created_at__gte=start, created_at__lt=end)
    if op in ("<", ">="):
        return Q(**{f"created_at__{LOOKUPS[op]}": start})
    if op in ("<=", ">"):  # `date <= 2026-11-01` includes all of that day
        return Q(**{"created_at__lt" if op == "<=" else "created_at__gte": end})
    raise QueryError("date supports =, !=, <, <=, >, >=, in and between", field.column)


def _date_range(field: Field, value: Any) -> tuple[datetime, datetime]:
    text = str(value)
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text)
            start = datetime.combine(day, time(), tzinfo=timezone.utc)
            return start, start + timedelta(days=1)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise QueryError(f"{field.text} needs a date like 2026-11-01 or 2026-11-01T12:00, not {text!r}",
                         field.column) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment, moment + timedelta(seconds=1)

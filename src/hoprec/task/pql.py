"""Predictive queries: a small language modelled on Kumo's PQL.

A query names what to predict, for whom, and (optionally) for which of them::

    PREDICT LIST_DISTINCT(transactions.product_id, 0, 30, days) RANK TOP 12
    FOR EACH households.household_id
    WHERE COUNT(transactions.*, -90, 0, days) > 0

    PREDICT NEXT(events.item_id) RANK TOP 20 FOR EACH SESSION

:func:`parse` turns text into a frozen :class:`Query` tree and checks the rules
that need no schema (windows, ``RANK TOP``, ``NEXT``/``SESSION`` pairing).
:meth:`Query.validate` then checks every ``table.column`` against a schema.
Every problem is raised as a :class:`PQLError` that carries the 0-based
character offset and shows a caret under the offending spot.
"""

from __future__ import annotations

import datetime
import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["AGGREGATES", "UNIT_SECONDS", "PQLError", "ColumnRef", "Window", "Aggregate", "Literal",
           "Comparison", "InList", "IsNull", "And", "Or", "Not", "Query", "parse"]

UNIT_SECONDS = {"minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}
_UNITS = {**{u: u for u in UNIT_SECONDS}, **{u[:-1]: u for u in UNIT_SECONDS}}
AGGREGATES = ("LIST_DISTINCT", "COUNT", "COUNT_DISTINCT", "SUM", "AVG", "MIN", "MAX", "FIRST", "LAST")
MAX_TOP_K = 10_000
_MAX_LISTED = 12
_KEYWORD_VALUES = {"TRUE": True, "FALSE": False, "NULL": None}


class PQLError(ValueError):
    """A query that cannot be parsed or does not fit the schema.

    ``message`` is the bare reason, ``position`` the 0-based offset into
    ``query``; ``str(error)`` adds the position and a caret display.
    """

    def __init__(self, message: str, position: int, query: str) -> None:
        self.message = message
        self.position = position
        self.query = query
        super().__init__(f"{message} (position {position})\n{_caret(query, position)}")

    def __reduce__(self):
        return (type(self), (self.message, self.position, self.query))


def _caret(query: str, position: int, width: int = 100) -> str:
    """The line of ``query`` holding ``position`` with a ``^`` under it, trimmed to ``width``."""
    start = query.rfind("\n", 0, position) + 1
    end = query.find("\n", position)
    line = query[start : len(query) if end == -1 else end].replace("\t", " ")
    col = position - start
    if col > width - 20:
        cut = col - width // 2
        line, col = "..." + line[cut:], col - cut + 3
    if len(line) > width:
        line = line[: width - 3] + "..."
    return f"  {line}\n  {' ' * col}^"


@dataclass(frozen=True)
class ColumnRef:
    """``table.column``, or ``table.*`` when ``column`` is None."""

    table: str
    column: str | None
    position: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return f"{self.table}.{'*' if self.column is None else self.column}"


@dataclass(frozen=True)
class Window:
    """A time window ``(start, end]`` relative to the prediction time, in ``unit``."""

    start: float
    end: float
    unit: str

    def to_timedelta_pair(self) -> tuple[datetime.timedelta, datetime.timedelta]:
        """The window's bounds as offsets from the prediction time."""
        seconds = UNIT_SECONDS[self.unit]
        return (datetime.timedelta(seconds=self.start * seconds),
                datetime.timedelta(seconds=self.end * seconds))

    def __str__(self) -> str:
        return f"{_number(self.start)}, {_number(self.end)}, {self.unit}"


@dataclass(frozen=True)
class Aggregate:
    """``FUNC(ref, start, end, unit)``; ``func`` is upper-case."""

    func: str
    ref: ColumnRef
    window: Window
    position: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return f"{self.func}({self.ref}, {self.window})"


@dataclass(frozen=True)
class Literal:
    """A string, number, boolean or NULL (None) constant."""

    value: str | int | float | bool | None
    position: int = field(default=0, compare=False)

    def __str__(self) -> str:
        v = self.value
        if v is None or isinstance(v, bool):
            return {None: "NULL", True: "TRUE", False: "FALSE"}[v]
        if isinstance(v, str):
            return "'" + v.replace("'", "''") + "'"
        return _number(v)


class _Condition:
    """Mixin: condition nodes print as canonical PQL."""

    def __str__(self) -> str:
        return _format_condition(self)


@dataclass(frozen=True)
class Comparison(_Condition):
    """``left op right``; ``op`` is one of = != < <= > >= (``<>`` becomes ``!=``)."""

    left: Operand
    op: str
    right: Operand


@dataclass(frozen=True)
class InList(_Condition):
    """``operand [NOT] IN (literal, ...)``."""

    operand: Operand
    values: tuple[Literal, ...]
    negated: bool = False


@dataclass(frozen=True)
class IsNull(_Condition):
    """``operand IS [NOT] NULL``."""

    operand: Operand
    negated: bool = False


@dataclass(frozen=True)
class And(_Condition):
    left: Condition
    right: Condition


@dataclass(frozen=True)
class Or(_Condition):
    left: Condition
    right: Condition


@dataclass(frozen=True)
class Not(_Condition):
    operand: Condition


Operand = ColumnRef | Literal | Aggregate
Condition = Comparison | InList | IsNull | And | Or | Not


@dataclass(frozen=True)
class Query:
    """A parsed predictive query.

    Exactly one of ``target`` (an aggregate over the future) and ``next_ref``
    (a session's next item) is set; ``entity`` is None for ``FOR EACH SESSION``.
    Equality ignores ``text`` and all positions.
    """

    text: str = field(compare=False)
    target: Aggregate | None
    next_ref: ColumnRef | None
    top_k: int | None
    entity: ColumnRef | None
    per_session: bool
    where: Condition | None

    def column_refs(self) -> list[ColumnRef]:
        """Every column reference in the query, in textual order."""
        refs = [r for r in (self.target.ref if self.target else None, self.next_ref, self.entity) if r]
        if self.where is not None:
            _collect_refs(self.where, refs)
        return refs

    def validate(self, tables: Mapping[str, Sequence[str]]) -> None:
        """Check every reference against ``tables`` (table name -> column names).

        Names compare case-sensitively; suggestions also catch case slips.
        """
        for ref in self.column_refs():
            if ref.table not in tables:
                names = sorted(tables)
                hint = _suggest(ref.table, names)
                msg = f"no table {ref.table!r}" + (f"; did you mean {hint}?" if hint else "")
                raise PQLError(f"{msg} (tables: {_listing(names)})", ref.position, self.text)
            columns = list(tables[ref.table])
            if ref.column is not None and ref.column not in columns:
                hint = _suggest(ref.column, columns)
                msg = f"no column {ref.column!r} in {ref.table}" + (
                    f"; did you mean {hint}?" if hint else f" (columns: {_listing(columns)})")
                raise PQLError(msg, _column_position(self.text, ref), self.text)

    def __str__(self) -> str:
        parts = ["PREDICT", str(self.target) if self.target else f"NEXT({self.next_ref})"]
        if self.top_k is not None:
            parts.append(f"RANK TOP {self.top_k}")
        parts.append("FOR EACH " + ("SESSION" if self.per_session else str(self.entity)))
        if self.where is not None:
            parts.append(f"WHERE {self.where}")
        return " ".join(parts)


def _number(v: float) -> str:
    return str(v) if isinstance(v, int) else repr(float(v))


def _format_condition(node: Condition, min_prec: int = 0) -> str:
    """Canonical text of a condition, with parentheses only where precedence needs them."""
    if isinstance(node, Or):
        prec, s = 1, f"{_format_condition(node.left, 1)} OR {_format_condition(node.right, 2)}"
    elif isinstance(node, And):
        prec, s = 2, f"{_format_condition(node.left, 2)} AND {_format_condition(node.right, 3)}"
    elif isinstance(node, Not):
        prec, s = 3, f"NOT {_format_condition(node.operand, 3)}"
    elif isinstance(node, Comparison):
        prec, s = 4, f"{node.left} {node.op} {node.right}"
    elif isinstance(node, InList):
        values = ", ".join(str(v) for v in node.values)
        prec, s = 4, f"{node.operand} {'NOT ' if node.negated else ''}IN ({values})"
    else:
        prec, s = 4, f"{node.operand} IS {'NOT ' if node.negated else ''}NULL"
    return f"({s})" if prec < min_prec else s


def _collect_refs(node: Condition | Operand, out: list[ColumnRef]) -> None:
    if isinstance(node, ColumnRef):
        out.append(node)
    elif isinstance(node, Aggregate):
        out.append(node.ref)
    elif isinstance(node, (And, Or, Comparison)):
        _collect_refs(node.left, out)
        _collect_refs(node.right, out)
    elif isinstance(node, (Not, InList, IsNull)):
        _collect_refs(node.operand, out)


def _suggest(name: str, options: Sequence[str]) -> str | None:
    """The closest option to ``name``, ignoring case, or None."""
    lowered = {o.lower(): o for o in reversed(options)}
    if name.lower() in lowered:
        return lowered[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f", ... ({len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else "")


def _column_position(text: str, ref: ColumnRef) -> int:
    """Offset of the column part of ``ref`` in ``text`` (the ref's own offset if not found)."""
    dot = text.find(".", ref.position)
    if dot < 0:
        return ref.position
    return len(text) - len(text[dot + 1 :].lstrip())


@dataclass(frozen=True)
class _Token:
    kind: str  # ident, number, string, op, punct, eof
    text: str
    position: int
    value: object = None


_TOKEN_RE = re.compile(
    r"(?P<ws>\s+)"
    r"|(?P<number>-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<string>'(?:[^']|'')*'(?!'))"
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op><=|>=|<>|!=|=|<|>)"
    r"|(?P<punct>[(),.*;])"
)


def _tokenize(text: str) -> list[_Token]:
    tokens, i = [], 0
    while i < len(text):
        m = _TOKEN_RE.match(text, i)
        if m is None:
            what = "unterminated string literal" if text[i] == "'" else f"unexpected character {text[i]!r}"
            raise PQLError(what, i, text)
        kind, raw = m.lastgroup, m.group()
        if kind == "number":
            tokens.append(_Token(kind, raw, i, int(raw) if re.fullmatch(r"-?\d+", raw) else float(raw)))
        elif kind == "string":
            tokens.append(_Token(kind, raw, i, raw[1:-1].replace("''", "'")))
        elif kind != "ws":
            tokens.append(_Token(kind, raw, i))
        i = m.end()
    tokens.append(_Token("eof", "", len(text)))
    return tokens


class _Parser:
    """Recursive-descent parser over the token list; one instance per query."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def fail(self, message: str, position: int | None = None) -> PQLError:
        return PQLError(message, self.peek().position if position is None else position, self.text)

    def at(self, text: str, ahead: int = 0) -> bool:
        """Whether the token ``ahead`` is the keyword (any case) or punctuation ``text``."""
        tok = self.peek(ahead)
        return tok.kind in ("ident", "punct") and tok.text.upper() == text

    def accept(self, text: str) -> bool:
        found = self.at(text)
        self.i += found
        return found

    def expect(self, text: str, message: str) -> None:
        if not self.accept(text):
            raise self.fail(message)

    def query(self) -> Query:
        if self.peek().kind == "eof":
            raise self.fail("empty query", 0)
        self.expect("PREDICT", "expected PREDICT at the start of the query")
        target = next_ref = None
        if self.at("NEXT") and self.at("(", 1):
            self.i += 2
            next_ref = self.ref("inside NEXT(...)")
            self.expect(")", "expected ')' after the NEXT column")
        elif self.peek().kind == "ident" and self.peek().text.upper() in AGGREGATES:
            target = self.aggregate(in_target=True)
        else:
            raise self.fail("expected an aggregate such as LIST_DISTINCT(...) or NEXT(...) after PREDICT")
        top_k, rank = None, self.peek()
        if self.accept("RANK"):
            self.expect("TOP", "expected TOP after RANK")
            top_k = self.top_k()
            if target is not None and target.func != "LIST_DISTINCT":
                raise self.fail(f"RANK TOP needs a LIST_DISTINCT(...) or NEXT(...) target, "
                                f"not {target.func}", rank.position)
        elif next_ref is not None or target.func == "LIST_DISTINCT":
            raise self.fail("expected RANK TOP k after the target")
        self.expect("FOR", "expected FOR EACH after the target")
        self.expect("EACH", "expected EACH after FOR")
        ent = self.peek()
        per_session = self.at("SESSION") and not self.at(".", 1)
        entity = None
        if per_session:
            self.i += 1
            if next_ref is None:
                raise self.fail("FOR EACH SESSION needs a NEXT(...) target", ent.position)
        else:
            entity = self.ref("after FOR EACH")
            if next_ref is not None:
                raise self.fail("NEXT(...) predicts within a session; use FOR EACH SESSION",
                                ent.position)
        where = self.condition() if self.accept("WHERE") else None
        self.accept(";")
        if self.peek().kind != "eof":
            raise self.fail(f"unexpected {self.peek().text!r} after the end of the query")
        return Query(self.text, target, next_ref, top_k, entity, per_session, where)

    def top_k(self) -> int:
        tok = self.peek()
        if tok.kind != "number" or not isinstance(tok.value, int) or not 1 <= tok.value <= MAX_TOP_K:
            got = tok.text or "the end of the query"
            raise self.fail(f"RANK TOP needs a whole number k from 1 to {MAX_TOP_K}, got {got}")
        self.i += 1
        return tok.value

    def ref(self, where: str, allow_star: bool = False) -> ColumnRef:
        table = self.peek()
        if table.kind != "ident":
            raise self.fail(f"expected table.column {where}")
        self.i += 1
        self.expect(".", f"expected '.' after {table.text!r} (write table.column)")
        if self.at("*"):
            if not allow_star:
                raise self.fail("'*' is only allowed inside COUNT(...)")
            self.i += 1
            return ColumnRef(table.text, None, table.position)
        if self.peek().kind != "ident":
            raise self.fail(f"expected a column name after '{table.text}.'")
        self.i += 1
        return ColumnRef(table.text, self.peek(-1).text, table.position)

    def number(self, what: str) -> tuple[float, int]:
        tok = self.peek()
        if tok.kind != "number":
            raise self.fail(f"expected a number for {what}")
        self.i += 1
        return tok.value, tok.position

    def aggregate(self, in_target: bool) -> Aggregate:
        head = self.peek()
        func = head.text.upper()
        self.i += 1
        self.expect("(", f"expected '(' after {func}")
        ref = self.ref(f"inside {func}(...)", allow_star=True)
        if ref.column is None and func != "COUNT":
            raise self.fail(f"{func} needs a column, not {ref}; only COUNT takes table.*",
                            ref.position)
        self.expect(",", f"expected ',' after the {func} column")
        start, start_pos = self.number("the window start")
        self.expect(",", "expected ',' after the window start")
        end, end_pos = self.number("the window end")
        self.expect(",", "expected ',' after the window end")
        tok = self.peek()
        if tok.kind != "ident":
            raise self.fail("expected a time unit (minutes, hours, days, weeks) after the window end")
        unit = _UNITS.get(tok.text.lower())
        if unit is None:
            raise self.fail(f"unknown unit {tok.text!r}; valid: {', '.join(UNIT_SECONDS)}")
        self.i += 1
        self.expect(")", f"expected ')' to close {func}(...)")
        agg = Aggregate(func, ref, Window(start, end, unit), head.position)
        if start >= end:
            raise self.fail(f"window start must be before its end, got {_number(start)} >= "
                            f"{_number(end)}", start_pos)
        if in_target and start < 0:
            raise self.fail(f"the target must look at the future (start >= 0, end > 0), got {agg}",
                            start_pos)
        if not in_target and end > 0:
            raise self.fail(f"WHERE may only look at the past (end <= 0), got {agg}", end_pos)
        if not in_target and func == "LIST_DISTINCT":
            raise self.fail("LIST_DISTINCT can only be a target, not compared in WHERE",
                            head.position)
        return agg

    def condition(self, level: int = 0) -> Condition:
        """OR (level 0) binds loosest, then AND (level 1), then NOT and predicates (level 2)."""
        if level == 2:
            return self.negation()
        word, node_type = (("OR", Or), ("AND", And))[level]
        node = self.condition(level + 1)
        while self.accept(word):
            node = node_type(node, self.condition(level + 1))
        return node

    def negation(self) -> Condition:
        if self.accept("NOT"):
            return Not(self.negation())
        opening = self.peek()
        if self.accept("("):
            node = self.condition()
            self.expect(")", f"expected ')' to close the '(' at position {opening.position}")
            return node
        return self.predicate()

    def predicate(self) -> Condition:
        left = self.operand()
        tok = self.peek()
        if tok.kind == "op":
            self.i += 1
            right = self.operand()
            for side in (left, right):
                if isinstance(side, Literal) and side.value is None:
                    raise self.fail("'= NULL' is never true; use IS NULL or IS NOT NULL",
                                    side.position)
            return Comparison(left, "!=" if tok.text == "<>" else tok.text, right)
        if self.accept("IS"):
            negated = self.accept("NOT")
            self.expect("NULL", "expected NULL after IS" + (" NOT" if negated else ""))
            return IsNull(left, negated)
        negated = self.at("NOT") and self.at("IN", 1)
        self.i += negated
        if self.accept("IN"):
            self.expect("(", "expected '(' after IN")
            values = [self.literal("in the IN list")]
            while self.accept(","):
                values.append(self.literal("in the IN list"))
            self.expect(")", "expected ',' or ')' in the IN list")
            for v in values:
                if v.value is None:
                    raise self.fail("NULL cannot be in an IN list; use IS NULL", v.position)
            return InList(left, tuple(values), negated)
        raise self.fail("expected a comparison (=, !=, <, <=, >, >=), IN or IS after the operand")

    def operand(self) -> Operand:
        tok = self.peek()
        if tok.kind in ("string", "number") or (tok.text.upper() in _KEYWORD_VALUES and not self.at(".", 1)):
            return self.literal("")
        if tok.kind == "ident" and tok.text.upper() in AGGREGATES and self.at("(", 1):
            return self.aggregate(in_target=False)
        if tok.kind == "ident":
            return self.ref("in WHERE")
        raise self.fail("expected a column, a literal or an aggregate in WHERE")

    def literal(self, where: str) -> Literal:
        tok = self.peek()
        if tok.kind in ("string", "number"):
            value = tok.value
        elif tok.kind == "ident" and tok.text.upper() in _KEYWORD_VALUES:
            value = _KEYWORD_VALUES[tok.text.upper()]
        else:
            raise self.fail(f"expected a literal ('text', a number, TRUE, FALSE or NULL) {where}")
        self.i += 1
        return Literal(value, tok.position)


def parse(text: str) -> Query:
    """Parse a predictive query; raises :class:`PQLError` on any syntax or rule violation."""
    return _Parser(text).query()

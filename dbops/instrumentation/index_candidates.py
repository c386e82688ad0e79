"""Candidate indexes read off a plan: what a scan filters and sorts on, as PostgreSQL prints it.

Pure logic (no database): a scan's Filter is split into its AND-ed conditions, each classified
(equality, range, a jsonb key lookup `(col ->> 'key')`, containment `@>`, a constant predicate), and
turned into candidates: equality columns then one range column, equality columns then the sort keys of
an `ORDER BY` answered by a Sort, an expression index for jsonb keys, GIN for containment, a partial
index for a constant predicate, and the same with INCLUDE columns when the scan reads only a few.
Whether a candidate is worth anything is not decided here: the planner decides (index_advice).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_KEY_COLUMNS = 3
MAX_INCLUDE_COLUMNS = 4
EQUALITY = ("=", "= ANY", "IS NULL", "bool")
RANGE = ("<", "<=", ">", ">=")

_LITERAL = re.compile(r"'(?:[^']|'')*'")
_MASKED = re.compile(r"\$L(\d+)")
# Casts like ::text, ::character varying, ::timestamp with time zone[] (their words are not columns).
_CAST = re.compile(r'::\s*(?:"[^"]+"|[a-z_]\w*(?:\s+(?:varying|precision|with|without|time|zone)\b)*)(?:\[\])?', re.I)
_REF = r'(?:(?:\w+|"[^"]+")\.)?(?P<{name}>\w+|"(?:[^"]|"")+")'
_PAREN_REF = re.compile(r"\(\s*((?:(?:\w+|\"[^\"]+\")\.)?(?:\w+|\"[^\"]+\")(?:\s*->>\s*\$L\d+)?)\s*\)")
_BOOL = re.compile(rf"^(?P<not>NOT\s+)?{_REF.format(name='col')}$", re.I)
_NULL = re.compile(rf"^{_REF.format(name='col')}\s+IS\s+(?P<not>NOT\s+)?NULL$", re.I)
_COMPARE = re.compile(
    rf"^{_REF.format(name='col')}(?:\s*->>\s*\$L(?P<key>\d+))?\s*(?P<op>=\s*ANY|<=|>=|<>|!=|=|<|>|@>)\s*(?P<rhs>.+)$",
    re.I,
)
_SORT_KEY = re.compile(rf"^{_REF.format(name='col')}(?P<desc>\s+DESC)?(?P<nulls>\s+NULLS\s+(?:FIRST|LAST))?$", re.I)
_QUALIFIED = re.compile(r'(?:\w+|"[^"]+")\.(?:\w+|"[^"]+")')
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")


@dataclass(frozen=True)
class KeyPart:
    """One key of an index: a column, or the text of a jsonb key (`json_key` of `column`)."""

    column: str
    json_key: str | None = None
    descending: bool = False

    @property
    def label(self) -> str:
        if self.json_key is not None:
            return f"({self.column} ->> '{self.json_key}')"
        return self.column + (" DESC" if self.descending else "")

    def sql(self, quote) -> str:
        if self.json_key is not None:
            return f"({quote(self.column)} ->> {sql_literal(self.json_key)})"
        return quote(self.column) + (" DESC" if self.descending else "")


@dataclass(frozen=True)
class Condition:
    """One AND-ed condition of a scan's filter on a column of the scanned table."""

    column: str
    operator: str  # one of EQUALITY, RANGE, "@>", "<>"
    json_key: str | None = None
    literal: str | None = None  # the constant compared to, as SQL ('update', 42, true); None: a parameter
    negated: bool = False  # NOT col, col IS NOT NULL

    @property
    def constant(self) -> bool:
        return self.literal is not None or self.operator in ("IS NULL", "bool")

    def sql(self, quote) -> str:
        """The condition as an index predicate (WHERE of a partial index)."""
        column = quote(self.column)
        if self.operator == "bool":
            return f"NOT {column}" if self.negated else column
        if self.operator == "IS NULL":
            return f"{column} IS {'NOT ' if self.negated else ''}NULL"
        return f"{column} {self.operator} {self.literal}"


@dataclass(frozen=True)
class IndexCandidate:
    table: str
    keys: tuple[KeyPart, ...]
    kind: str  # equality, range, sort, expression, partial, covering, containment
    include: tuple[str, ...] = ()
    predicate: tuple[Condition, ...] = ()
    method: str = "btree"

    @property
    def simulable(self) -> bool:
        return self.method == "btree"  # HypoPG cannot simulate GIN

    @property
    def labels(self) -> list[str]:
        return [key.label for key in self.keys]

    def create_sql(self, quote, *, name: str | None, concurrently: bool = False) -> str:
        words = ["CREATE INDEX"] + (["CONCURRENTLY"] if concurrently else []) + ([quote(name)] if name else [])
        method = " USING gin" if self.method == "gin" else ""
        keys = ", ".join(
            f"{key.sql(quote)} jsonb_path_ops" if self.method == "gin" else key.sql(quote) for key in self.keys
        )
        sql = f"{' '.join(words)} ON {quote(self.table)}{method} ({keys})"
        if self.include:
            sql += f" INCLUDE ({', '.join(quote(column) for column in self.include)})"
        if self.predicate:
            sql += " WHERE " + " AND ".join(condition.sql(quote) for condition in self.predicate)
        return sql


@dataclass
class ScanShape:
    """What one scan of a large table needs from an index."""

    table: str
    conditions: list[Condition] = field(default_factory=list)
    sort_keys: list[KeyPart] = field(default_factory=list)
    output: list[str] | None = None  # columns the scan returns (None: not only plain columns)
    few_values: frozenset[str] = frozenset()  # columns a constant predicate of a partial index may be on


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def split_conjuncts(filter_text: str) -> list[str]:
    """The top-level AND-ed parts of a plan condition (literals masked as $L<n>); an OR at the top
    level is one part that no index candidate comes from."""
    text = _strip_outer(filter_text.strip())
    parts, depth, start, index = [], 0, 0, 0
    while index < len(text):
        char = text[index]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0 and text[index : index + 5].upper() == " AND ":
            parts.append(text[start:index])
            start = index = index + 5
            continue
        index += 1
    parts.append(text[start:])
    return [_strip_outer(part.strip()) for part in parts if part.strip()]


def _strip_outer(text: str) -> str:
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def conditions_parse(filter_text: str, columns: frozenset[str]) -> list[Condition]:
    """The conditions of a Filter on columns of the table; others (ORs, joins, functions) are left out."""
    literals: list[str] = []

    def mask(match: re.Match) -> str:
        literals.append(match.group(0))
        return f"$L{len(literals) - 1}"

    masked = _CAST.sub("", _LITERAL.sub(mask, filter_text))
    found = []
    for part in split_conjuncts(masked):
        previous = None
        while previous != part:  # ((col)) and ((col ->> 'k')) lose their parentheses
            previous, part = part, _strip_outer(_PAREN_REF.sub(r"\1", part))
        condition = _condition(part, literals)
        if condition is not None and condition.column in columns:
            found.append(condition)
    return found


def _condition(part: str, literals: list[str]) -> Condition | None:
    if match := _NULL.match(part):
        return Condition(unquote(match["col"]), "IS NULL", negated=bool(match["not"]))
    if match := _BOOL.match(part):
        if match["col"].upper() in ("TRUE", "FALSE", "NULL"):
            return None
        return Condition(unquote(match["col"]), "bool", negated=bool(match["not"]))
    match = _COMPARE.match(part)
    if match is None:
        return None
    operator = re.sub(r"\s+", " ", match["op"]).upper()
    operator = "<>" if operator == "!=" else operator
    json_key = _literal_text(literals[int(match["key"])]) if match["key"] is not None else None
    rhs = match["rhs"].strip()
    if re.fullmatch(r"\$\d+", rhs):
        literal = None  # a parameter: the plan holds for any value
    elif masked := _MASKED.fullmatch(rhs):
        literal = literals[int(masked[1])]
    elif _NUMBER.match(rhs) or rhs.lower() in ("true", "false"):
        literal = rhs
    elif operator == "= ANY" and _MASKED.search(rhs):
        literal = _MASKED.sub(lambda m: literals[int(m[1])], rhs)
    elif _QUALIFIED.search(rhs) or "SubPlan" in rhs:
        return None  # another column (EXPLAIN VERBOSE qualifies every one): a join, not this table's condition
    else:
        literal = None  # an expression of constants and functions (now() - interval ...): known at run time
    return Condition(unquote(match["col"]), operator, json_key=json_key, literal=literal)


def _literal_text(literal: str) -> str:
    return literal[1:-1].replace("''", "'")


def sort_keys_parse(sort_keys: list[str], columns: frozenset[str]) -> list[KeyPart]:
    """Sort keys as index keys; [] unless every key is a plain column of the table in default null order."""
    parts = []
    for key in sort_keys:
        match = _SORT_KEY.match(_CAST.sub("", key.strip()))
        if match is None or match["nulls"] or unquote(match["col"]) not in columns:
            return []
        parts.append(KeyPart(unquote(match["col"]), descending=bool(match["desc"])))
    return parts


def output_columns(output: list[str] | None, columns: frozenset[str]) -> list[str] | None:
    """The scan's output as plain columns (None when it returns anything else)."""
    if output is None:
        return None
    names = []
    for item in output:
        match = re.fullmatch(_REF.format(name="col"), item.strip())
        if match is None or unquote(match["col"]) not in columns:
            return None
        names.append(unquote(match["col"]))
    return names


def candidates_for(shape: ScanShape, columns: frozenset[str]) -> list[IndexCandidate]:
    """Every candidate index for one scan, simplest first, each definition once."""
    equal = [c for c in shape.conditions if c.operator in EQUALITY]
    ranges = [c for c in shape.conditions if c.operator in RANGE]
    equal_keys = _unique_keys(KeyPart(c.column, c.json_key) for c in equal)
    bases: list[IndexCandidate] = []
    if equal_keys or ranges:
        keys = equal_keys[:MAX_KEY_COLUMNS]
        range_keys = _unique_keys(KeyPart(c.column, c.json_key) for c in ranges)
        keys += [key for key in range_keys if key not in keys][: max(0, MAX_KEY_COLUMNS - len(keys))][:1]
        kind = "expression" if any(k.json_key for k in keys) else ("equality" if equal_keys else "range")
        bases.append(IndexCandidate(shape.table, tuple(keys), kind))
    if shape.sort_keys:
        sort_columns = {key.column for key in shape.sort_keys}
        leading = [key for key in equal_keys if key.column not in sort_columns][: MAX_KEY_COLUMNS - 1]
        bases.append(IndexCandidate(shape.table, tuple(leading + shape.sort_keys), "sort"))
    found = list(bases)
    constants = [
        c
        for c in equal
        if c.constant
        and c.json_key is None
        and c.operator != "= ANY"
        and (c.column in shape.few_values or c.operator in ("IS NULL", "bool"))
    ]
    for base in bases:  # a partial index: the constant conditions move from the key into WHERE
        keys = tuple(key for key in base.keys if key.column not in {c.column for c in constants})
        if constants and keys and keys != base.keys:
            found.append(IndexCandidate(shape.table, keys, "partial", predicate=tuple(constants)))
    output = output_columns(shape.output, columns)
    if output is not None and len(set(output)) < len(columns):
        for candidate in list(found):  # covering: INCLUDE what the scan reads besides the key
            if any(key.json_key for key in candidate.keys):
                continue
            keyed = {key.column for key in candidate.keys}
            filtered = [c.column for c in shape.conditions if c not in candidate.predicate]
            needed = [column for column in dict.fromkeys(output + filtered) if column not in keyed]
            if 0 < len(needed) <= MAX_INCLUDE_COLUMNS:
                found.append(
                    IndexCandidate(
                        shape.table, candidate.keys, "covering", include=tuple(needed), predicate=candidate.predicate
                    )
                )
    for column in dict.fromkeys(c.column for c in shape.conditions if c.operator == "@>" and c.json_key is None):
        found.append(IndexCandidate(shape.table, (KeyPart(column),), "containment", method="gin"))
    return list(dict.fromkeys(found))


def _unique_keys(keys) -> list[KeyPart]:
    return list(dict.fromkeys(keys))

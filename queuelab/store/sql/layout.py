"""A small, deterministic SQL layout for the committed statements (no parser, no dependency).

It keeps SQLAlchemy's tokens and the spacing between them, and only chooses the line breaks:
each clause of a statement (``SELECT``, ``FROM``, ``WHERE``...) starts a line; a subquery is
an indented block, unless it is short; ``AND`` in ``WHERE``, ``HAVING`` and ``ON`` starts a
line; a long list (of columns, assignments, sort keys) puts one item per line; every CTE of
a ``WITH`` starts a line. The same text in gives the same layout out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

INDENT = "    "
WIDTH = 100  # a clause longer than this on one line puts one list item per line
SHORT = 60  # a subquery no longer than this (with its parentheses) stays on its line

_TOKEN = re.compile(
    r"""\s+                      # spacing (kept as one space)
    | '(?:[^']|'')*'            # a string literal
    | "(?:[^"]|"")*"            # a quoted name
    | %\(\w+\)s                 # a pyformat bind, %(name)s
    | \w+                       # a word, a number
    | .                         # anything else, one character
    """,
    re.VERBOSE | re.DOTALL,
)
# Clause keywords, longest first so that FOR UPDATE is not read as UPDATE.
_CLAUSES = sorted(
    (
        tuple(k.split())
        for k in (
            "WITH",
            "SELECT",
            "INSERT INTO",
            "UPDATE",
            "DELETE FROM",
            "SET",
            "VALUES",
            "FROM",
            "JOIN",
            "LEFT OUTER JOIN",
            "WHERE",
            "GROUP BY",
            "HAVING",
            "ORDER BY",
            "LIMIT",
            "FOR UPDATE",
            "ON CONFLICT",
            "RETURNING",
        )
    ),
    key=len,
    reverse=True,
)
_STATEMENTS = {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"}
_LISTS = {"SELECT", "SET", "RETURNING", "GROUP BY", "ORDER BY", "INSERT INTO"}
_CONDITIONS = {"WHERE", "HAVING", "JOIN", "LEFT OUTER JOIN"}


@dataclass(frozen=True, slots=True)
class _Word:
    text: str
    space: bool  # spacing came before it


@dataclass(slots=True)
class _Group:
    """A parenthesised part, without its parentheses."""

    space: bool
    items: list[_Word | _Group] = field(default_factory=list)

    def is_statement(self) -> bool:
        first = self.items[0] if self.items else None
        return isinstance(first, _Word) and first.text in _STATEMENTS


_Item = _Word | _Group


def format_sql(sql: str) -> str:
    """``sql`` laid out one clause a line, subqueries indented."""
    return "\n".join(line.rstrip() for line in _statement(_parse(sql).items, 0))


def _parse(sql: str) -> _Group:
    stack, space = [_Group(False)], False
    for token in _TOKEN.findall(sql):
        if token.isspace():
            space = True
            continue
        if token == "(":
            stack.append(_Group(space))
        elif token == ")":
            if len(stack) == 1:
                raise ValueError(f"unbalanced ')' in {sql!r}")
            done = stack.pop()
            stack[-1].items.append(done)
        else:
            stack[-1].items.append(_Word(token, space))
        space = False
    if len(stack) != 1:
        raise ValueError(f"unbalanced '(' in {sql!r}")
    return stack[0]


def _statement(items: list[_Item], depth: int) -> list[str]:
    """The lines of a statement (or subquery) at ``depth``, one clause a line or more."""
    lines: list[str] = []
    for keyword, body in _clauses(items):
        lines += _clause(keyword, body, depth)
    return lines


def _clauses(items: list[_Item]) -> list[tuple[str, list[_Item]]]:
    """``items`` cut before each clause keyword: (keyword, the items after it)."""
    found: list[tuple[str, list[_Item]]] = [("", [])]
    i = 0
    while i < len(items):
        keyword = _keyword_at(items, i)
        if keyword is None:
            found[-1][1].append(items[i])
            i += 1
        else:
            found.append((" ".join(keyword), []))
            i += len(keyword)
    return [(keyword, body) for keyword, body in found if keyword or body]


def _keyword_at(items: list[_Item], i: int) -> tuple[str, ...] | None:
    for keyword in _CLAUSES:
        words = items[i : i + len(keyword)]
        if len(words) == len(keyword) and all(
            isinstance(w, _Word) and w.text == k for w, k in zip(words, keyword, strict=True)
        ):
            return keyword
    return None


def _clause(keyword: str, body: list[_Item], depth: int) -> list[str]:
    pad = INDENT * depth
    if keyword == "WITH":  # one CTE a line
        return _joined(_split(body, ","), pad + "WITH ", pad, ",")
    if keyword in _CONDITIONS:  # one condition a line
        return _joined(_split(body, "AND"), f"{pad}{keyword} ", pad + INDENT + "AND ", "")
    one = _inline(body, depth)
    items = _split(body, ",")
    long = len(one) > 1 or len(pad + keyword + " " + one[0]) > WIDTH
    if keyword in _LISTS and len(items) > 1 and long:  # one item a line
        return [pad + keyword, *_joined(items, pad + INDENT, pad + INDENT, ",")]
    return _continued(pad + (keyword + " " if keyword else ""), one, "")


def _joined(parts: list[list[_Item]], first: str, lead: str, sep: str) -> list[str]:
    """Each part on a line of its own: the first after ``first``, the others after ``lead``;
    ``sep`` ends every part but the last."""
    lines: list[str] = []
    for n, part in enumerate(parts):
        start = first if n == 0 else lead
        depth = (len(start) - len(start.lstrip(" "))) // len(INDENT)
        lines += _continued(start, _inline(part, depth), sep if n < len(parts) - 1 else "")
    return lines


def _continued(start: str, pieces: list[str], end: str) -> list[str]:
    """``pieces`` (a first line's text, then whole lines) after ``start``, ``end`` appended."""
    lines = [start + pieces[0], *pieces[1:]]
    lines[-1] += end
    return lines


def _split(items: list[_Item], word: str) -> list[list[_Item]]:
    """``items`` cut at each top-level ``word`` (a comma, AND), which is dropped."""
    parts: list[list[_Item]] = [[]]
    for item in items:
        if isinstance(item, _Word) and item.text == word:
            parts.append([])
        else:
            parts[-1].append(item)
    return [part for part in parts if part]


def _inline(items: list[_Item], depth: int) -> list[str]:
    """``items`` as text: the rest of the current line, then any whole lines a long subquery
    needs (its block at ``depth + 1``, its closing parenthesis at ``depth``)."""
    pieces = [""]
    for n, item in enumerate(items):
        gap = " " if item.space and n > 0 else ""
        if isinstance(item, _Word):
            pieces[-1] += gap + item.text
            continue
        inner = _inline(item.items, depth)
        if item.is_statement() and (len(inner) > 1 or len(inner[0]) + 2 > SHORT):
            block = _statement(item.items, depth + 1)
            pieces[-1] += gap + "("
            pieces += [*block, INDENT * depth + ")"]
            continue
        pieces[-1] += gap + "(" + inner[0]
        pieces += inner[1:]
        pieces[-1] += ")"
    return pieces

"""The SQL of the store: numbered migrations (`NNNN_name.sql`) and named queries.

Both are split the same way: what both engines run as written is in this folder, what an
engine writes its own way in `<engine>/`. A migration both engines run unchanged is one
file here (`0009_consumed_messages.sql`); one written per engine is a file in each
engine's folder (`<engine>/0001_initial.sql`). A migration is recorded by its name alone
(the file name without `.sql`), wherever it stands, and a name stands in one place only.

`queries.sql` holds the queries both engines share, `<engine>/queries.sql` the ones an
engine writes its own way (row locks, the claim lock, a few plans); a name is defined
once per engine. Each block begins with a `-- name: <name>` line; the text up to the
next such line is the query (comment lines dropped).

A piece of SQL that several queries share to the letter (the filters and paging of the
delivery lists) is written once, in a block that begins with `-- fragment: <name>`, and
stands in each of them as a line `-- include: <name>`: the include line is replaced by
the fragment's lines as written (comment lines dropped), before anything else is done
with the query. A fragment is not a query, includes no other fragment, and a fragment
name, like a query name, is defined once per engine. A line that starts `-- include`
in any other form is an error, not a comment: dropped, it would leave its SQL out.

Parameters are named (`:name`). The shared queries are written in PostgreSQL's dialect,
kept to what SQLite runs too after two rewrites that `compile_queries` makes for it:

- a list parameter, `= ANY(:ids::text[])` or `<> ALL(:ids::text[])`, becomes `IN` or
  `NOT IN (SELECT value FROM json_each(:ids))` (SQLite gets lists as JSON text);
- casts of parameters (`:name::bigint`, which PostgreSQL needs to type a parameter that
  is only tested with IS NULL) are dropped.

Booleans are written `= TRUE` / `= FALSE`, which SQLite reads as 1 / 0 (so its partial
indexes still match) and PostgreSQL simplifies to the plain column. Then each `:name`
becomes the driver's numbered placeholder; all this happens once, at load.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

ENGINES = ("sqlite", "postgres")
SHARED_FILE = "queries.sql"
# The line that begins a block: a query (`name`) or a piece of queries (`fragment`).
_BLOCK_LINE = re.compile(r"^-- (name|fragment): (\w+)\s*$", re.MULTILINE)
_INCLUDE_LINE = re.compile(r"^[ \t]*-- include: (\w+)[ \t]*$", re.MULTILINE)
# Any line meant as an include, well formed or not: a malformed one must not pass for a
# comment, dropped with the comments and its fragment's SQL (filters, a LIMIT) left out.
_INCLUDE_INTENT = re.compile(r"^[ \t]*--[ \t]*include\b.*$", re.MULTILINE)
_MIGRATION_FILE = re.compile(r"^\d{4}_\w+\.sql$")
# A string literal (left alone) or a named parameter; `::type` casts are neither.
_PARAMETER = re.compile(r"'(?:[^']|'')*'|(?<![:\w]):([A-Za-z_]\w*)")
# The numbered placeholder of each engine's driver.
PLACEHOLDERS = {"sqlite": "?{}", "postgres": "${}"}
# SQLite's forms of PostgreSQL's list parameters, and the parameter casts it drops.
_SQLITE_REWRITES = (
    (re.compile(r"= ANY\((:\w+)::text\[\]\)"), r"IN (SELECT value FROM json_each(\1))"),
    (re.compile(r"<> ALL\((:\w+)::text\[\]\)"), r"NOT IN (SELECT value FROM json_each(\1))"),
    (re.compile(r"(?<![:\w])(:\w+)::\w+(?:\[\])?"), r"\1"),
)


@dataclass(frozen=True, slots=True)
class Query:
    """A query ready for the driver: its SQL with numbered placeholders, and the
    parameter name of each number (the first is number 1)."""

    name: str
    sql: str
    parameters: tuple[str, ...]

    def bind(self, values: Mapping[str, object]) -> tuple[object, ...]:
        """The values in placeholder order; every parameter must be given, and nothing else."""
        try:
            # Runs for every row written: one pass, the checks only when it fails.
            bound = tuple([values[p] for p in self.parameters])
        except KeyError:
            bound = None
        if bound is None or len(values) != len(self.parameters):
            missing = sorted(set(self.parameters) - set(values))
            unknown = sorted(set(values) - set(self.parameters))
            raise TypeError(f"query {self.name!r}: missing {missing}, unknown {unknown}")
        return bound


def _folder(engine: str) -> resources.abc.Traversable:
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}")
    return resources.files(__name__).joinpath(engine)


def _parse(text: str, origin: str, queries: dict[str, str], fragments: dict[str, str]) -> None:
    """Add the blocks of `text` as written: queries still with their include lines."""
    parts = _BLOCK_LINE.split(text)
    # parts: [preamble, kind1, name1, body1, kind2, name2, body2, ...]
    for kind, name, body in zip(parts[1::3], parts[2::3], parts[3::3], strict=True):
        into = queries if kind == "name" else fragments
        if name in into:
            raise ValueError(f"{kind} {name!r} is defined twice ({origin})")
        into[name] = body


def _strip_comment_lines(body: str) -> str:
    return "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("--"))


def _fragment_lines(name: str, body: str) -> str:
    """A fragment's SQL as it stands in a query: its lines as written, without comment
    lines and the blank lines around them."""
    if _INCLUDE_INTENT.search(body):
        raise ValueError(f"fragment {name!r} includes another fragment")
    return _strip_comment_lines(body).strip("\n")


def _query_text(name: str, body: str, fragments: Mapping[str, str]) -> str:
    """A query's SQL: its include lines replaced by their fragments, comment lines dropped."""

    def include(match: re.Match[str]) -> str:
        fragment = match.group(1)
        if fragment not in fragments:
            raise ValueError(f"query {name!r} includes an unknown fragment {fragment!r}")
        return fragments[fragment]

    text = _INCLUDE_LINE.sub(include, body)
    malformed = _INCLUDE_INTENT.search(text)
    if malformed:
        line = malformed.group(0).strip()
        raise ValueError(f"query {name!r} has an include line not `-- include: <name>`: {line!r}")
    return _strip_comment_lines(text).strip().rstrip(";")


def read_queries(*files: tuple[str, str]) -> dict[str, str]:
    """The named queries of query files (each as its origin, for errors, and its text)
    together, their fragments included; ValueError when a name is defined twice or a
    fragment is unknown."""
    queries: dict[str, str] = {}
    fragments: dict[str, str] = {}
    for origin, text in files:
        _parse(text, origin, queries, fragments)
    pieces = {name: _fragment_lines(name, body) for name, body in fragments.items()}
    return {name: _query_text(name, body, pieces) for name, body in queries.items()}


def load_queries(engine: str) -> dict[str, str]:
    """The named queries of an engine, with their `:name` parameters: the shared ones
    and the engine's own."""
    shared = resources.files(__name__).joinpath(SHARED_FILE).read_text(encoding="utf-8")
    own = _folder(engine).joinpath(SHARED_FILE).read_text(encoding="utf-8")
    return read_queries((SHARED_FILE, shared), (f"{engine}/{SHARED_FILE} and {SHARED_FILE}", own))


def compile_query(name: str, sql: str, placeholder: str) -> Query:
    """`sql` with each `:name` replaced by `placeholder` numbered by first appearance."""
    parameters: list[str] = []

    def number(match: re.Match[str]) -> str:
        parameter = match.group(1)
        if parameter is None:
            return match.group(0)
        if parameter not in parameters:
            parameters.append(parameter)
        return placeholder.format(parameters.index(parameter) + 1)

    return Query(name, _PARAMETER.sub(number, sql), tuple(parameters))


def sqlite_dialect(sql: str) -> str:
    """A query of the shared dialect as SQLite runs it (see the module docstring)."""
    for pattern, replacement in _SQLITE_REWRITES:
        sql = pattern.sub(replacement, sql)
    return sql


def compile_queries(engine: str) -> dict[str, Query]:
    """The named queries of an engine, ready for its driver."""
    placeholder = PLACEHOLDERS[engine]
    queries = load_queries(engine)
    if engine == "sqlite":
        queries = {name: sqlite_dialect(sql) for name, sql in queries.items()}
    return {name: compile_query(name, sql, placeholder) for name, sql in queries.items()}


def read_migrations(*folders: resources.abc.Traversable) -> list[tuple[str, str]]:
    """The migrations (name, SQL) of the folders together, in order; ValueError when a
    name stands in more than one of them."""
    scripts: dict[str, str] = {}
    for folder in folders:
        for path in folder.iterdir():
            if not _MIGRATION_FILE.match(path.name):
                continue
            name = path.name.removesuffix(".sql")
            if name in scripts:
                raise ValueError(f"migration {name!r} is written twice ({path.name})")
            scripts[name] = path.read_text("utf-8")
    return sorted(scripts.items())


def load_migrations(engine: str) -> list[tuple[str, str]]:
    """The migrations of an engine as (name, SQL), in order: the shared ones and the
    engine's own."""
    return read_migrations(resources.files(__name__), _folder(engine))

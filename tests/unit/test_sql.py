"""The named queries: `:name` parameters compiled once per engine, SQLite's rewrites of
the shared dialect, the same parameters for a query name on both engines, and fragments
included where queries name them; the migrations: the shared ones and an engine's own,
in one order."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from orderhooks.store.sql import (
    ENGINES,
    compile_queries,
    compile_query,
    load_queries,
    read_migrations,
    read_queries,
    sqlite_dialect,
)


def test_parameters_are_numbered_by_first_appearance_and_reused() -> None:
    sql = "SELECT * FROM t WHERE a = :b AND (:c::bigint IS NULL OR c < :c) AND d = :b"
    query = compile_query("q", sql, "${}")
    assert query.sql == "SELECT * FROM t WHERE a = $1 AND ($2::bigint IS NULL OR c < $2) AND d = $1"
    assert query.parameters == ("b", "c")
    assert query.bind({"c": 2, "b": 1}) == (1, 2)


def test_string_literals_and_casts_are_not_parameters() -> None:
    query = compile_query("q", "SELECT ':x', 'it''s :y', now()::text, :z", "?{}")
    assert query.sql == "SELECT ':x', 'it''s :y', now()::text, ?1"
    assert query.parameters == ("z",)


@pytest.mark.parametrize(
    ("values", "problem"),
    [({"a": 1}, r"missing \['b'\]"), ({"a": 1, "b": 2, "c": 3}, r"unknown \['c'\]")],
)
def test_binding_wants_every_parameter_and_nothing_else(
    values: dict[str, object], problem: str
) -> None:
    query = compile_query("q", "SELECT :a, :b", "?{}")
    with pytest.raises(TypeError, match=problem):
        query.bind(values)


def test_sqlite_gets_lists_as_json_and_no_parameter_casts() -> None:
    sql = (
        "SELECT * FROM t WHERE id = ANY(:ids::text[]) AND (:scope::text[] IS NULL OR "
        "NOT EXISTS (SELECT 1 FROM a WHERE a.x <> ALL(:scope::text[]))) AND n = :n::bigint"
        " AND m::text = 'y'"
    )
    assert sqlite_dialect(sql) == (
        "SELECT * FROM t WHERE id IN (SELECT value FROM json_each(:ids)) AND (:scope IS NULL OR "
        "NOT EXISTS (SELECT 1 FROM a WHERE a.x NOT IN (SELECT value FROM json_each(:scope))))"
        " AND n = :n AND m::text = 'y'"
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_no_positional_placeholders_are_written(engine: str) -> None:
    for name, sql in load_queries(engine).items():
        assert "?" not in sql and "$" not in sql, name


def test_a_query_takes_the_same_parameters_on_both_engines() -> None:
    sqlite, postgres = compile_queries("sqlite"), compile_queries("postgres")
    for name in sqlite.keys() & postgres.keys():
        assert set(sqlite[name].parameters) == set(postgres[name].parameters), name


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_shared_and_own_migrations_come_in_one_order(tmp_path: Path) -> None:
    shared = _write(tmp_path / "shared", {"0002_b.sql": "B", "queries.sql": "-- name: q"})
    own = _write(tmp_path / "own", {"0001_a.sql": "A", "0003_c.sql": "C", "notes.txt": ""})
    assert read_migrations(shared, own) == [("0001_a", "A"), ("0002_b", "B"), ("0003_c", "C")]


def test_a_migration_name_stands_in_one_place_only(tmp_path: Path) -> None:
    shared = _write(tmp_path / "shared", {"0001_a.sql": "A"})
    own = _write(tmp_path / "own", {"0001_a.sql": "A"})
    with pytest.raises(ValueError, match="0001_a"):
        read_migrations(shared, own)


def test_an_engine_writes_its_own_migration_only_where_the_engines_differ() -> None:
    # A migration both engines run as written is one shared file (so the two cannot drift).
    folders = [resources.files("orderhooks.store.sql").joinpath(engine) for engine in ENGINES]
    sqlite, postgres = (dict(read_migrations(folder)) for folder in folders)
    for name in sqlite.keys() & postgres.keys():
        assert sqlite[name] != postgres[name], name


def test_a_fragment_stands_in_each_query_that_includes_it_as_written() -> None:
    shared = (
        "-- fragment: page\n-- Why it is shared.\n  AND b = :b\nORDER BY id\nLIMIT :limit\n\n"
        "-- name: q\nSELECT * FROM t\nWHERE a = :a\n  -- include: page\n"
    )
    own = "-- name: r\nSELECT * FROM u\nWHERE c = :c\n  -- include: page\n"
    assert read_queries(("shared", shared), ("own", own)) == {
        "q": "SELECT * FROM t\nWHERE a = :a\n  AND b = :b\nORDER BY id\nLIMIT :limit",
        "r": "SELECT * FROM u\nWHERE c = :c\n  AND b = :b\nORDER BY id\nLIMIT :limit",
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("-- name: q\nSELECT 1\n-- include: nowhere\n", "unknown fragment 'nowhere'"),
        ("-- fragment: f\nAND a\n-- fragment: f\nAND b\n", "fragment 'f' is defined twice"),
        ("-- fragment: f\n-- include: g\n-- fragment: g\nAND b\n", "fragment 'f' includes"),
        # A misspelt include line is no comment: dropped as one, it left its SQL out.
        ("-- fragment: f\nAND b\n-- name: q\nSELECT 1\n-- include: f;\n", "query 'q' has an"),
        ("-- fragment: f\nAND b\n-- name: q\nSELECT 1\n  --include: f\n", "query 'q' has an"),
    ],
)
def test_a_fragment_is_known_defined_once_and_includes_none_and_an_include_is_well_formed(
    text: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        read_queries(("queries.sql", text))

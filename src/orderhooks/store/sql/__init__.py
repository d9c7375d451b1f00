"""The SQL of each engine: numbered migrations (`NNNN_name.sql`) and named queries.

`queries.sql` holds blocks that each begin with a `-- name: <name>` line; the text up
to the next such line is the query (comments included, which both engines ignore).
"""

from __future__ import annotations

import re
from importlib import resources

ENGINES = ("sqlite", "postgres")
_NAME_LINE = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_MIGRATION_FILE = re.compile(r"^\d{4}_\w+\.sql$")


def _folder(engine: str) -> resources.abc.Traversable:
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}")
    return resources.files(__name__).joinpath(engine)


def load_queries(engine: str) -> dict[str, str]:
    """The named queries of an engine."""
    text = _folder(engine).joinpath("queries.sql").read_text(encoding="utf-8")
    parts = _NAME_LINE.split(text)
    # parts: [preamble, name1, body1, name2, body2, ...]
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice for {engine}")
        queries[name] = _strip_comment_lines(body).strip().rstrip(";")
    return queries


def _strip_comment_lines(body: str) -> str:
    return "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("--"))


def load_migrations(engine: str) -> list[tuple[str, str]]:
    """The migrations of an engine as (name, SQL), in order."""
    folder = _folder(engine)
    names = sorted(p.name for p in folder.iterdir() if _MIGRATION_FILE.match(p.name))
    return [(name.removesuffix(".sql"), folder.joinpath(name).read_text("utf-8")) for name in names]

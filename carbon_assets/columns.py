"""The data dictionary: what each column of every tabular asset means, for the Dagster UI.

One source: the warehouse's SQL files describe their tables' columns (COMMENT ON COLUMN), and
the lake's Parquet tables share those columns, so their descriptions are read from the same
files. Only the columns the lake has and the warehouse does not are described here.
"""

from __future__ import annotations

import functools
import re
from importlib.resources import files

import pyarrow as pa
from dagster import TableColumn, TableColumnConstraints, TableSchema

# The package data the warehouse applies (the repository's top-level sql/ links there).
SQL_FILES = files("carbon_assets.warehouse") / "sql"
DAILY, HALF_HOURLY = "carbon_intensity_daily", "carbon_intensity_halfhourly"

LAKE_ONLY = {
    "timestamp": 'UTC start of the half-hour period (the API\'s "from").',
    "extra_fuels": "Shares of fuels the API sent beyond the nine known ones, {fuel: percent}; "
    "NULL when none (nearly always).",
    "missing_fuels": "Known fuels the API left out of this half-hour's mix; NULL when none.",
    "fetched_at": "When the API answer behind this row was fetched (lineage).",
    "conflicting_versions": "How many different versions of this region's half-hour the API "
    "sent (the latest fetch's is kept); NULL when all copies agreed or there was one.",
}

_CREATE = re.compile(
    r"CREATE TABLE IF NOT EXISTS \w+\.(?P<table>\w+) \((?P<body>.*?)\n\);", re.DOTALL
)
_COLUMN = re.compile(r"^\s+(?P<name>[a-z_]+)\s+(?P<type>[A-Z]+(?: ?\(\d+, ?\d+\))?)(?P<rest>.*)$")
_COMMENT = re.compile(
    r"COMMENT ON COLUMN\s+\w+\.(?P<table>\w+)\.(?P<column>\w+)\s+IS\s+"
    r"'(?P<text>(?:[^']|'')*)'\s*;",
    re.IGNORECASE,
)


def _sql_texts() -> list[str]:
    paths = sorted(SQL_FILES.iterdir(), key=lambda p: p.name)
    return [path.read_text() for path in paths if path.name.endswith(".sql")]


@functools.cache
def sql_descriptions() -> dict[str, dict[str, str]]:
    """{table: {column: description}} from the SQL files, in order (a later comment wins)."""
    described: dict[str, dict[str, str]] = {}
    for text in _sql_texts():
        for match in _COMMENT.finditer(text):
            comment = match["text"].replace("''", "'")
            described.setdefault(match["table"], {})[match["column"]] = comment
    return described


def sql_table_schema(table: str, key: tuple[str, ...]) -> TableSchema:
    """A warehouse table's columns for `dagster/column_schema`: names, SQL types and NOT NULL
    from its CREATE TABLE, descriptions from its comments."""
    for text in _sql_texts():
        for created in _CREATE.finditer(text):
            if created["table"] != table:
                continue
            columns = []
            for line in created["body"].splitlines():
                if (match := _COLUMN.match(line)) is None or match["name"] == "constraint":
                    continue
                columns.append(
                    TableColumn(
                        name=match["name"],
                        type=match["type"],
                        description=description(match["name"], table),
                        constraints=TableColumnConstraints(
                            nullable="NOT NULL" not in match["rest"],
                            other=["primary key"] if match["name"] in key else [],
                        ),
                    )
                )
            return TableSchema(columns=columns)
    raise KeyError(f"no CREATE TABLE for {table} in the SQL files")


def description(column: str, *tables: str) -> str:
    """The column's description from the first of `tables` that has it, else the lake's own."""
    for table in tables:
        if text := sql_descriptions().get(table, {}).get(column):
            return text
    if column in LAKE_ONLY:
        return LAKE_ONLY[column]
    raise KeyError(f"no description for column {column!r} (tables {tables})")


def arrow_table_schema(
    schema: pa.Schema,
    *tables: str,
    key: tuple[str, ...] = (),
    aliases: dict[str, str] | None = None,
) -> TableSchema:
    """A Parquet table's columns for `dagster/column_schema`, described by `tables`' comments
    (`aliases` names the table column a lake column matches, e.g. timestamp -> period_start)."""
    aliases = aliases or {}
    return TableSchema(
        columns=[
            TableColumn(
                name=field.name,
                type=str(field.type),
                description=description(aliases.get(field.name, field.name), *tables),
                constraints=TableColumnConstraints(
                    nullable=field.name not in key and field.nullable,
                    other=["primary key"] if field.name in key else [],
                ),
            )
            for field in schema
        ]
    )

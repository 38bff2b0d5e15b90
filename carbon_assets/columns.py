"""The data dictionary: what each column of every tabular asset means, for the Dagster UI.

One source: the warehouse's SQL files (warehouse/sql/) define the tables' columns (CREATE TABLE,
then ALTER TABLE ... ADD COLUMN in later files) and describe them (COMMENT ON COLUMN; a later
comment wins), and the lake's Parquet tables share those columns, so their descriptions are
read from the same files. Only the columns the lake has and the warehouse does not are
described here.

The files are read statement by statement, as the migration runner applies them. A statement
that could change a table's columns in a way this reader does not follow (DROP or RENAME
COLUMN, a column added inside a DO block) is an error naming the file, never skipped: the
dictionary must not drift from the applied schema.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib.resources import files

import pyarrow as pa
from dagster import TableColumn, TableColumnConstraints, TableSchema

# The package data the warehouse applies (the repository's top-level sql/ links there).
SQL_FILES = files("carbon_assets.warehouse") / "sql"

LAKE_ONLY = {
    "timestamp": 'UTC start of the half-hour period (the API\'s "from").',
    "extra_fuels": "Shares of fuels the API sent beyond the nine known ones, {fuel: percent}; "
    "NULL when none (nearly always).",
    "missing_fuels": "Known fuels the API left out of this half-hour's mix; NULL when none.",
    "conflicting_versions": "How many different versions of this region's half-hour the API "
    "sent (the latest fetch's is kept); NULL when all copies agreed or there was one.",
}


@dataclass(frozen=True)
class SqlColumn:
    """A column as the SQL files define it."""

    name: str
    type: str
    nullable: bool
    primary_key: bool


class SchemaFileError(ValueError):
    """A statement of the SQL files the data dictionary cannot follow."""


# A statement's pieces: comments, quoted text, dollar-quoted bodies, the ';' that ends it.
_TOKEN = re.compile(r"--[^\n]*|'(?:[^']|'')*'|(\$\w*\$).*?\1|;|[^-'$;]+|.", re.DOTALL)
_NAME = r"(?:\w+\.)?(?P<table>\w+)"
_KEYWORDS = re.DOTALL | re.IGNORECASE
_CREATE_TABLE = re.compile(
    rf"CREATE TABLE (?:IF NOT EXISTS )?{_NAME} ?\((?P<body>.*)\)$", _KEYWORDS
)
_ALTER_TABLE = re.compile(
    rf"ALTER TABLE (?:IF EXISTS )?(?:ONLY )?{_NAME} (?P<actions>.*)$", _KEYWORDS
)
_ADD_COLUMN = re.compile(r"ADD (?:COLUMN )?(?:IF NOT EXISTS )?(?P<definition>.*)$", _KEYWORDS)
_COLUMN = re.compile(
    r"(?P<name>[a-z_][a-z0-9_]*) (?P<type>[A-Z]+(?: PRECISION| VARYING)?(?: ?\(\d+(?:, ?\d+)?\))?)"
    r"(?P<rest>.*)$",
    re.DOTALL,
)
_COMMENT_ON_COLUMN = re.compile(
    r"COMMENT ON COLUMN (?:\w+\.)?(?P<table>\w+)\.(?P<column>\w+) IS '(?P<text>(?:[^']|'')*)'$",
    _KEYWORDS,
)
# Statements that leave every table's columns as they are.
_NO_COLUMN_CHANGE = re.compile(
    r"(CREATE SCHEMA|CREATE (UNIQUE )?INDEX|COMMENT ON (SCHEMA|TABLE|CONSTRAINT|INDEX) )"
)
_CONSTRAINT_ACTION = re.compile(
    r"((ADD|DROP|VALIDATE|ALTER) CONSTRAINT|ADD (CHECK|UNIQUE|PRIMARY KEY|FOREIGN KEY))\b"
)
_TABLE_CONSTRAINT = re.compile(r"(CONSTRAINT|PRIMARY KEY|UNIQUE|CHECK|FOREIGN KEY|EXCLUDE)\b")


def statements(text: str) -> list[str]:
    """The SQL statements of a file, comments dropped and whitespace collapsed (outside quotes)."""
    found, current = [], ""
    for match in _TOKEN.finditer(text):
        token = match[0]
        if token == ";":
            found.append(current.strip())
            current = ""
        elif token.startswith(("'", "$")):
            current += token
        else:
            words = " " if token.startswith("--") else re.sub(r"\s+", " ", token)
            current += words[1:] if current.endswith(" ") and words.startswith(" ") else words
    found.append(current.strip())
    return [statement for statement in found if statement]


def top_level_parts(text: str) -> list[str]:
    """`text` split at the commas outside parentheses and quotes."""
    parts, depth, current = [], 0, []
    for match in _TOKEN.finditer(text):
        for char in [match[0]] if match[0].startswith(("'", "$")) else match[0]:
            if char == "," and depth == 0:
                parts.append("".join(current).strip())
                current = []
                continue
            depth += {"(": 1, ")": -1}.get(char, 0)
            current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def _column(definition: str, where: str) -> SqlColumn:
    if (match := _COLUMN.match(definition)) is None:
        raise SchemaFileError(f"{where}: cannot read the column definition {definition[:80]!r}")
    rest = match["rest"].upper()
    primary_key = "PRIMARY KEY" in rest
    return SqlColumn(
        name=match["name"],
        type=match["type"],
        nullable="NOT NULL" not in rest and not primary_key,
        primary_key=primary_key,
    )


def read_schema(texts: dict[str, str]) -> tuple[dict, dict]:
    """({table: {column: SqlColumn}}, {table: {column: description}}) of SQL files
    ({file name: text}) applied in name order. SchemaFileError on a statement that could
    change columns in a way this reader does not follow."""
    tables: dict[str, dict[str, SqlColumn]] = {}
    described: dict[str, dict[str, str]] = {}
    for name in sorted(texts):
        for statement in statements(texts[name]):
            where = f"sql/{name}"
            head = statement.upper()
            if created := _CREATE_TABLE.match(statement):
                columns = tables.setdefault(created["table"], {})
                for part in top_level_parts(created["body"]):
                    if not _TABLE_CONSTRAINT.match(part.upper()):
                        column = _column(part, where)
                        columns.setdefault(column.name, column)  # IF NOT EXISTS: the first wins
            elif altered := _ALTER_TABLE.match(statement):
                for action in top_level_parts(altered["actions"]):
                    if _CONSTRAINT_ACTION.match(action.upper()):
                        continue
                    if (added := _ADD_COLUMN.match(action)) is None:
                        raise SchemaFileError(
                            f"{where}: the data dictionary cannot follow {action[:80]!r} on "
                            f"{altered['table']} (it reads ADD COLUMN and constraint changes)"
                        )
                    column = _column(added["definition"], where)
                    if altered["table"] not in tables:
                        raise SchemaFileError(
                            f"{where}: {altered['table']} is altered before it is created"
                        )
                    tables[altered["table"]].setdefault(column.name, column)
            elif commented := _COMMENT_ON_COLUMN.match(statement):
                text = commented["text"].replace("''", "'")
                described.setdefault(commented["table"], {})[commented["column"]] = text
            elif head.startswith("DO "):
                if re.search(r"\bCOLUMN\b", head):
                    raise SchemaFileError(
                        f"{where}: a DO block that touches columns cannot be read; change "
                        "columns with plain ALTER TABLE statements"
                    )
            elif not _NO_COLUMN_CHANGE.match(head):
                raise SchemaFileError(
                    f"{where}: the data dictionary cannot read {statement[:80]!r}"
                )
    return tables, described


@functools.cache
def applied_schema() -> tuple[dict, dict]:
    """read_schema of the warehouse's SQL files."""
    texts = {
        path.name: path.read_text() for path in SQL_FILES.iterdir() if path.name.endswith(".sql")
    }
    return read_schema(texts)


def sql_descriptions() -> dict[str, dict[str, str]]:
    """{table: {column: description}} from the SQL files (a later comment wins)."""
    return applied_schema()[1]


def sql_table_schema(table: str, key: tuple[str, ...]) -> TableSchema:
    """A warehouse table's columns for `dagster/column_schema`: names, SQL types and NOT NULL
    from its CREATE TABLE and later ADD COLUMNs, descriptions from its comments."""
    columns = applied_schema()[0].get(table)
    if columns is None:
        raise KeyError(f"no CREATE TABLE for {table} in the SQL files")
    return TableSchema(
        columns=[
            TableColumn(
                name=column.name,
                type=column.type,
                description=description(column.name, table),
                constraints=TableColumnConstraints(
                    nullable=column.nullable and column.name not in key,
                    other=["primary key"] if column.name in key else [],
                ),
            )
            for column in columns.values()
        ]
    )


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
    """A Parquet table's columns for `dagster/column_schema`, described by the comments of the
    warehouse tables named `tables` (`aliases` names the table column a lake column matches,
    e.g. timestamp -> period_start)."""
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

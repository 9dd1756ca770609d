"""One chunk of rows into a SQL table, by mode: ``copy``, ``insert`` or ``upsert``.

``insert`` and ``upsert`` hand the whole chunk to the driver's own ``executemany``
(psycopg 3 pipelines it; sqlite3 loops in C) with one statement text, compiled once
per table and column set by SQLAlchemy (so quoting, bind casts and ``ON CONFLICT``
are SQLAlchemy's) and then cached: no per-row SQL, and no per-row parameter
processing unless a column needs it (JSON, custom types). On PostgreSQL the rows go
in blocks of multi-row VALUES (:mod:`baton.items.sql_blocks`). ``copy`` loads
plain rows with PostgreSQL's COPY and takes the ``insert`` path for anything else.

:func:`write_rows` is the public face: users' own writers call it inside
``write(items)`` on the connection they were bound to, so that ``upsert`` makes a
re-written chunk idempotent for them too.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any, Literal, get_args

from sqlalchemy import Boolean, Connection, MetaData, Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import NoSuchTableError
from sqlalchemy.sql.dml import Insert

from baton.core.errors import BatonError, InvalidDefinition
from baton.items.sql_blocks import in_blocks
from baton.items.sql_copy import copy_columns, copy_rows

WriteMode = Literal["copy", "insert", "upsert"]
MODES: tuple[str, ...] = get_args(WriteMode)


@dataclasses.dataclass(frozen=True)
class RowMode:
    """How a chunk goes in; ``update=None`` means every written non-conflict column."""

    mode: str = "copy"
    conflict: tuple[str, ...] = ()
    update: tuple[str, ...] | None = None

    @classmethod
    def of(cls, mode: str, conflict: Sequence[str] | None, update: Sequence[str] | None) -> RowMode:
        """The checked mode (no table needed): refused with a one-line message."""
        if mode not in MODES:
            raise InvalidDefinition(
                f"SQL writer: mode must be copy, insert or upsert, not {mode!r}"
            )
        if mode == "upsert" and not conflict:
            raise InvalidDefinition(
                "SQL writer: mode 'upsert' needs 'conflict': the columns of a primary key "
                "or unique constraint"
            )
        if mode != "upsert" and (conflict or update is not None):
            raise InvalidDefinition("SQL writer: 'conflict' and 'update' go with mode 'upsert'")
        for arg, cols in (("conflict", conflict), ("update", update)):
            if isinstance(cols, str):
                raise InvalidDefinition(f"SQL writer: '{arg}' is a list of columns, not {cols!r}")
        return cls(mode, tuple(conflict or ()), None if update is None else tuple(update))

    def check_table(self, table: Table, *, reflected: bool) -> None:
        """The named columns exist; on a reflected table, ``conflict`` is its primary key
        or one of its unique constraints or indexes (what ON CONFLICT needs)."""
        unknown = [c for c in (*self.conflict, *(self.update or ())) if c not in table.c]
        if unknown:
            raise InvalidDefinition(
                f"SQL writer: table '{table.name}' has no column {', '.join(map(repr, unknown))}"
            )
        if reflected and self.conflict and frozenset(self.conflict) not in _unique_keys(table):
            raise InvalidDefinition(
                f"SQL writer: table '{table.name}' has no primary key or unique constraint "
                f"on ({', '.join(self.conflict)}), which 'conflict' needs"
            )

    def updated(self, columns: Sequence[str]) -> tuple[str, ...]:
        if self.update is not None:
            return self.update
        return tuple(c for c in columns if c not in self.conflict)


def _unique_keys(table: Table) -> set[frozenset[str]]:
    keys = {frozenset(c.name for c in table.primary_key.columns)}
    keys |= {
        frozenset(c.name for c in con.columns)  # type: ignore[attr-defined]
        for con in table.constraints
        if type(con).__name__ == "UniqueConstraint"
    }
    keys |= {frozenset(c.name for c in ix.columns) for ix in table.indexes if ix.unique}
    return keys


def as_row(item: Any) -> Mapping[str, Any]:
    if isinstance(item, Mapping):
        return item
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return dataclasses.asdict(item)
    if hasattr(item, "_asdict"):
        return item._asdict()  # type: ignore[no-any-return]
    raise BatonError(f"SQL writer needs dict-like items, got {type(item).__name__}")


def write_rows(
    connection: Connection,
    table: Table | str,
    rows: Sequence[Any],
    *,
    mode: WriteMode = "insert",
    conflict: Sequence[str] | None = None,
    update: Sequence[str] | None = None,
) -> None:
    """Write ``rows`` (dicts, dataclasses or named tuples; the first row's keys are the
    columns) into ``table`` on ``connection``, in its transaction, with one driver
    ``executemany`` (or one COPY). ``upsert`` inserts or, on a ``conflict`` with an
    existing row, updates ``update`` (default: every other written column; ``[]``:
    leave the row as it is) -- so writing the same chunk twice leaves it once.
    A table given by name is reflected on every call: pass a ``Table`` in a loop."""
    how = RowMode.of(mode, conflict, update)
    reflected = isinstance(table, str)
    if isinstance(table, str):
        table = reflect(connection, table)
    how.check_table(table, reflected=reflected)
    write_chunk(connection, table, how, [as_row(r) for r in rows])


def reflect(bind: Any, name: str) -> Table:
    try:
        return Table(name, MetaData(), autoload_with=bind)
    except NoSuchTableError:
        raise BatonError(f"SQL writer: no table '{name}'") from None


def write_chunk(
    conn: Connection, table: Table, how: RowMode, rows: Sequence[Mapping[str, Any]]
) -> None:
    """The chunk in the caller's transaction (the checkpoint's, when bound)."""
    if not rows:
        return
    if how.mode == "copy":
        plain = copy_columns(conn, table, rows)
        if plain is not None:
            copy_rows(conn, table, plain, rows)
            return
    columns = tuple(rows[0])
    unknown = [k for k in columns if k not in table.c]
    if unknown:
        raise BatonError(f"SQL writer: table '{table.name}' has no column {unknown[0]!r}")
    plan = _plan(conn.dialect, table, how, columns)
    if plan.sql is None:  # a Python-side default only SQLAlchemy can compute
        conn.execute(plan.statement, list(rows))
        return
    params = plan.parameters(rows)
    keys = [plan.names.index(c) for c in how.conflict if c in plan.names]
    if not plan.positional or conn.dialect.name != "postgresql" or len(keys) < len(how.conflict):
        conn.exec_driver_sql(plan.sql, params)  # type: ignore[arg-type]
        return
    for sql, sets in in_blocks(plan.sql, params, distinct=keys):
        conn.exec_driver_sql(sql, sets)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class _Plan:
    """A compiled chunk statement and how to turn rows into its driver parameters."""

    statement: Insert
    sql: str | None  # None: SQLAlchemy must execute it (callable defaults, odd names)
    names: tuple[str, ...]  # parameter names in statement order
    positional: bool
    as_is: bool  # the rows themselves are the parameters (named style, nothing to add)
    constants: Mapping[str, Any]  # scalar Python-side defaults of omitted columns
    processors: Mapping[str, Callable[[Any], Any]]
    lenient: frozenset[str]  # Boolean columns: processed only when a value is not a bool

    def parameters(self, rows: Sequence[Mapping[str, Any]]) -> Sequence[Any]:
        procs = dict(self.processors)
        for k in self.lenient:
            if all(type(r[k]) is bool or r[k] is None for r in rows):
                procs.pop(k)
        if self.as_is and not procs:
            return rows
        if self.positional and not procs and not self.constants:
            if len(self.names) == 1:
                return [(r[self.names[0]],) for r in rows]
            return list(map(itemgetter(*self.names), rows))  # tuples, built in C
        get = [_getter(n, self.constants, procs) for n in self.names]
        if self.positional:
            return [tuple(g(r) for g in get) for r in rows]
        return [{n: g(r) for n, g in zip(self.names, get, strict=True)} for r in rows]


def _getter(
    name: str, constants: Mapping[str, Any], procs: Mapping[str, Callable[[Any], Any]]
) -> Callable[[Mapping[str, Any]], Any]:
    if name in constants:
        value = constants[name]
        return lambda _r: value
    proc = procs.get(name)
    if proc is None:
        return lambda r: r[name]
    return lambda r: proc(r[name])


@functools.lru_cache(maxsize=128)
def _plan(dialect: Dialect, table: Table, how: RowMode, columns: tuple[str, ...]) -> _Plan:
    stmt = _statement(dialect, table, how, columns)
    compiled = stmt.compile(dialect=dialect, column_keys=list(columns))
    prefetch = [*compiled.insert_prefetch, *compiled.update_prefetch]
    if compiled.escaped_bind_names or any(
        c.default is None or not c.default.is_scalar for c in prefetch
    ):
        return _Plan(stmt, None, (), False, False, {}, {}, frozenset())
    constants = {c.key: c.default.arg for c in prefetch}  # type: ignore[union-attr]
    if compiled.positional:
        names = tuple(compiled.positiontup or ())
    else:
        names = tuple(dict.fromkeys(compiled.bind_names.values()))
    processors: dict[str, Callable[[Any], Any]] = {}
    lenient = set()
    for key in columns:
        kind = table.c[key].type
        proc = kind.dialect_impl(dialect).bind_processor(dialect)
        if proc is not None:
            processors[key] = proc
            if isinstance(kind, Boolean):
                lenient.add(key)
    sql = str(compiled)
    positional = compiled.positional
    if not positional and dialect.paramstyle == "pyformat":
        # psycopg reorders a dict into a list for every row in Python; tuples built
        # in C by itemgetter go straight to its dumpers (as a hand-written loop's do)
        order = _PYFORMAT.findall(sql)
        if order and len(set(order)) == len(order):
            sql, names, positional = _PYFORMAT.sub("%s", sql), tuple(order), True
    as_is = not positional and not constants
    return _Plan(stmt, sql, names, positional, as_is, constants, processors, frozenset(lenient))


_PYFORMAT = re.compile(r"%\(([^)]+)\)s")


def _statement(dialect: Dialect, table: Table, how: RowMode, columns: Sequence[str]) -> Insert:
    if how.mode != "upsert":
        return insert(table)
    if dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
    else:
        raise BatonError(
            f"SQL writer: mode 'upsert' needs PostgreSQL or SQLite, not {dialect.name}"
        )
    stmt = dialect_insert(table)
    update = how.updated(columns)
    if not update:
        return stmt.on_conflict_do_nothing(index_elements=list(how.conflict))
    return stmt.on_conflict_do_update(
        index_elements=list(how.conflict), set_={c: stmt.excluded[c] for c in update}
    )

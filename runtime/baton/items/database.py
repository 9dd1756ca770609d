"""SQL reader (keyset paging, restartable) and SQL writer (bulk insert in the
checkpoint transaction: exactly-once output across crashes).

Both default to the job repository's own database; give ``url`` to use another one
(the writer is then at-least-once: its transaction is not the checkpoint's).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any

from sqlalchemy import Boolean, Connection, Engine, MetaData, Table, insert, select, text
from sqlalchemy.exc import DBAPIError, NoSuchTableError

from baton.core.errors import BatonError, InvalidDefinition
from baton.items.protocols import RunningStep
from baton.repository.engine import make_engine, normalize_url


def _engine(step: RunningStep | None, url: str | None) -> Engine:
    if url:
        if step is not None and normalize_url(url) == step.engine.url.render_as_string(False):
            return step.engine
        return make_engine(url)
    if step is None:
        raise InvalidDefinition("SQL reader/writer needs a 'url' or a running step")
    return step.engine


def _row(item: Any) -> Mapping[str, Any]:
    if isinstance(item, Mapping):
        return item
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return dataclasses.asdict(item)
    if hasattr(item, "_asdict"):
        return item._asdict()  # type: ignore[no-any-return]
    raise BatonError(f"SqlWriter needs dict-like items, got {type(item).__name__}")


class SqlReader:
    """Reads ``table`` (or a select over it) in pages ordered by a unique ``key``.

    The cursor is the last key read, so a restart continues after it without
    re-scanning, and concurrent inserts of larger keys are picked up.
    """

    name = "sql"

    def __init__(
        self,
        table: str,
        key: str = "id",
        *,
        columns: Sequence[str] | None = None,
        where: str | None = None,
        page_size: int = 1000,
        url: str | None = None,
        step: RunningStep | None = None,
        name: str | None = None,
    ):
        self.table_name = table
        self.key_column = key
        self.columns = list(columns) if columns else None
        self.where = where
        self.page_size = page_size
        self.engine = _engine(step, url)
        if name:
            self.name = name
        self._last: Any = None
        self._page: Iterator[dict[str, Any]] = iter(())
        self._exhausted = False

    @property
    def key(self) -> str:
        return f"{self.name}.last.key"

    def open(self, context: MutableMapping[str, Any]) -> None:
        self._last = context.get(self.key)
        try:
            self.table = Table(self.table_name, MetaData(), autoload_with=self.engine)
        except NoSuchTableError:
            raise BatonError(f"SqlReader: no table '{self.table_name}'") from None
        if self.key_column not in self.table.c:
            raise BatonError(
                f"SqlReader: table '{self.table_name}' has no column '{self.key_column}'"
            )

    def _fetch(self) -> list[dict[str, Any]]:
        key = self.table.c[self.key_column]
        cols = [self.table.c[c] for c in self.columns] if self.columns else [self.table]
        q = select(*cols).order_by(key).limit(self.page_size)
        if self.columns and self.key_column not in self.columns:
            q = q.add_columns(key)
        if self._last is not None:
            q = q.where(key > self._last)
        if self.where:
            q = q.where(text(self.where))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def read(self) -> Any:
        row = next(self._page, None)
        if row is None and not self._exhausted:
            rows = self._fetch()
            self._exhausted = len(rows) < self.page_size
            self._page = iter(rows)
            row = next(self._page, None)
        if row is not None:
            self._last = row[self.key_column]
        return row

    def update(self, context: MutableMapping[str, Any]) -> None:
        context[self.key] = self._last

    def close(self) -> None:
        self._page = iter(())


class SqlWriter:
    """Bulk-inserts dict items into ``table`` (a name, or a SQLAlchemy ``Table``).

    With the repository's database it writes inside the chunk's checkpoint
    transaction: a chunk's rows and its checkpoint commit together or not at all.
    On PostgreSQL plain rows go in with COPY; anything COPY would treat differently
    from an INSERT (JSON, custom types, Python-side defaults, uneven rows) is inserted.
    Subclasses may set ``table`` as a class attribute; ``create=True`` creates a
    ``Table`` given with its columns if it does not exist.
    """

    table: str | Table | None = None
    create: bool = False
    use_copy: bool = True
    """On PostgreSQL, load plain rows with COPY (several times faster than INSERT)."""

    def __init__(
        self,
        table: str | Table | None = None,
        *,
        url: str | None = None,
        create: bool | None = None,
        step: RunningStep | None = None,
    ):
        self._table_ref = table if table is not None else type(self).table
        if self._table_ref is None:
            raise InvalidDefinition(f"{type(self).__name__} needs a table")
        self.engine = _engine(step, url)
        self._create = self.create if create is None else create
        self._conn: Connection | None = None
        self._table: Table | None = None

    def open(self, context: MutableMapping[str, Any]) -> None:
        ref = self._table_ref
        if isinstance(ref, Table):
            if self._create:
                ref.create(self.engine, checkfirst=True)
            self._table = ref
        else:
            try:
                self._table = Table(str(ref), MetaData(), autoload_with=self.engine)
            except NoSuchTableError:
                raise BatonError(f"SqlWriter: no table '{ref}'") from None
        self._insert = insert(self._table)

    def bind_transaction(self, connection: Any) -> bool:
        if connection is not None and connection.engine is not self.engine:
            return False
        self._conn = connection
        return True

    def write(self, items: list[Any]) -> None:
        if self._table is None:
            raise BatonError("SqlWriter written before open()")
        rows = [_row(i) for i in items]
        if self._conn is not None:
            self._write(self._conn, rows)
            return
        with self.engine.begin() as conn:
            self._write(conn, rows)

    def _write(self, conn: Connection, rows: list[Mapping[str, Any]]) -> None:
        columns = self._copy_columns(conn, rows)
        if columns is None:
            conn.execute(self._insert, rows)
        else:
            self._copy(conn, columns, rows)

    def _copy_columns(self, conn: Connection, rows: list[Mapping[str, Any]]) -> list[str] | None:
        """The columns to COPY, when PostgreSQL's COPY gives exactly what an INSERT
        would: every row has the same plain columns, none needs a bind processor (JSON,
        enums, custom types) and no omitted column has a Python-side default."""
        if conn.dialect.name != "postgresql" or not self.use_copy or not rows:
            return None
        assert self._table is not None
        first = list(rows[0])
        keys = set(first)
        if not all(len(r) == len(first) and r.keys() == keys for r in rows):
            return None
        cols = self._table.c
        if not keys <= set(cols.keys()):
            return None
        if any(c.default is not None for c in cols if c.key not in keys):
            return None
        for k in first:
            kind = cols[k].type
            if isinstance(kind, Boolean):  # its processor only checks for real booleans
                if not all(isinstance(r[k], bool | None) for r in rows):
                    return None
            elif kind.dialect_impl(conn.dialect).bind_processor(conn.dialect) is not None:
                return None
        return first

    def _copy(self, conn: Connection, columns: list[str], rows: list[Mapping[str, Any]]) -> None:
        """Bulk load with COPY, in the caller's transaction (the checkpoint's)."""
        assert self._table is not None
        quote = conn.dialect.identifier_preparer
        sql = (
            f"COPY {quote.format_table(self._table)} "
            f"({', '.join(quote.quote(c) for c in columns)}) FROM STDIN"
        )
        raw = conn.connection.driver_connection
        dbapi = conn.dialect.dbapi
        assert raw is not None and dbapi is not None
        try:
            with raw.cursor() as cur, cur.copy(sql) as copy:
                for r in rows:
                    copy.write_row(tuple(r[c] for c in columns))
        except dbapi.Error as e:
            # The same exception SQLAlchemy raises for a failed INSERT (IntegrityError...).
            raise DBAPIError.instance(sql, None, e, dbapi.Error, dialect=conn.dialect) from e

    def update(self, context: MutableMapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        self._conn = None

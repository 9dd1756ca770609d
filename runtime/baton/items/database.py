"""SQL reader (keyset paging, restartable) and SQL writer (COPY, INSERT or upsert in
the checkpoint transaction: exactly-once output across crashes).

Both default to the job repository's own database; give ``url`` to use another one
(the writer is then at-least-once: its transaction is not the checkpoint's).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, MetaData, Table, select, text
from sqlalchemy.exc import NoSuchTableError

from baton.core.errors import BatonError, InvalidDefinition
from baton.items.protocols import RunningStep
from baton.repository.engine import make_engine, normalize_url

if TYPE_CHECKING:
    from baton.items.sql_modes import RowMode, WriteMode


def _engine(step: RunningStep | None, url: str | None) -> Engine:
    if url:
        if step is not None and _same(url, step.engine):
            return step.engine
        return make_engine(url)
    if step is None:
        raise InvalidDefinition("SQL reader/writer needs a 'url' or a running step")
    return step.engine


def _same(url: str, engine: Engine) -> bool:
    """Whether ``url`` is the database ``engine`` connects to (through a pooler too)."""
    target = normalize_url(url)
    if target == engine.url.render_as_string(False):
        return True
    if engine.dialect.name != "postgresql":
        return False
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from baton.repository.pooling import routed  # PostgreSQL only: not for SQLite steps

    try:
        return routed(make_url(target)) == engine.url
    except (ArgumentError, ValueError):
        return False  # make_engine says what is wrong with it


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
    """Writes dict items into ``table`` (a name, or a SQLAlchemy ``Table``), one chunk
    at a time, by ``mode``:

    - ``copy`` (default): on PostgreSQL plain rows go in with COPY; anything COPY
      would treat differently from an INSERT (JSON, custom types, Python-side
      defaults, uneven rows), and every row on SQLite, is inserted as by ``insert``;
    - ``insert``: one INSERT statement, run by the driver's ``executemany``;
    - ``upsert``: the same with ``ON CONFLICT (conflict) DO UPDATE SET`` the
      ``update`` columns (default: every other written column; ``[]``: DO NOTHING),
      so writing a chunk twice leaves its rows once.

    With the repository's database it writes inside the chunk's checkpoint
    transaction: a chunk's rows and its checkpoint commit together or not at all.
    With its own ``url`` it commits each chunk itself (at-least-once); ``upsert``
    then makes a chunk re-written after a crash idempotent.
    Subclasses may set ``table`` as a class attribute; ``create=True`` creates a
    ``Table`` given with its columns if it does not exist.
    """

    table: str | Table | None = None
    create: bool = False

    def __init__(
        self,
        table: str | Table | None = None,
        *,
        mode: WriteMode = "copy",
        conflict: list[str] | None = None,
        update: list[str] | None = None,
        url: str | None = None,
        create: bool | None = None,
        step: RunningStep | None = None,
    ):
        self._table_ref = table if table is not None else type(self).table
        if self._table_ref is None:
            raise InvalidDefinition(f"{type(self).__name__} needs a table")
        # The write paths load with the first SqlWriter: a step process loads this
        # module for SqlReader alone (the chunk loop knows it), and reads with it.
        from baton.items.sql_modes import RowMode

        self.mode = mode
        self._how: RowMode = RowMode.of(mode, conflict, update)
        self.engine = _engine(step, url)
        self._create = self.create if create is None else create
        self._conn: Connection | None = None
        self._table: Table | None = None

    def open(self, context: MutableMapping[str, Any]) -> None:
        from baton.items.sql_modes import reflect

        ref = self._table_ref
        if isinstance(ref, Table):
            if self._create:
                ref.create(self.engine, checkfirst=True)
            self._table = ref
        else:
            self._table = reflect(self.engine, str(ref))
        self._how.check_table(self._table, reflected=not isinstance(ref, Table))

    def bind_transaction(self, connection: Any) -> bool:
        if connection is not None and connection.engine is not self.engine:
            return False
        self._conn = connection
        return True

    def write(self, items: list[Any]) -> None:
        if self._table is None:
            raise BatonError("SqlWriter written before open()")
        from baton.items.sql_modes import as_row, write_chunk

        # plain dicts are rows as they are (checked in C); anything else is converted
        rows = items if set(map(type, items)) <= {dict} else [as_row(i) for i in items]
        if self._conn is not None:
            write_chunk(self._conn, self._table, self._how, rows)
            return
        with self.engine.begin() as conn:
            write_chunk(conn, self._table, self._how, rows)

    def update(self, context: MutableMapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        self._conn = None

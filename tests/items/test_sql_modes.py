"""The SQL writer's modes (copy, insert, upsert) and ``write_rows``, on SQLite and
PostgreSQL: what lands, what is refused, and that insert/upsert reach the driver as
ONE executemany of one statement text per chunk."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from baton import InvalidDefinition, SqlWriter, write_rows
from baton.core.errors import BatonError
from baton.items.sql_blocks import BLOCK_ROWS, block_rows, block_sql
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    select,
)
from sqlalchemy.exc import IntegrityError

MODES = ["copy", "insert", "upsert"]

meta = MetaData()
keyed = Table(
    "modes_keyed",
    meta,
    Column("n", Integer, primary_key=True, autoincrement=False),
    Column("tag", String(10), nullable=False),
    Column("score", Integer, CheckConstraint("score >= 0"), nullable=True),
)
plain = Table(
    "modes_plain",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("n", Integer, nullable=False),
    Column("flag", Boolean, nullable=False),
    Column("doc", JSON, nullable=True),
    Column("tag", String(10), default="dflt"),  # a scalar Python-side default
)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    e = create_engine(db_url)
    meta.create_all(e)
    yield e
    e.dispose()


def _writer(engine: Engine, table: Table | str, **args: Any) -> SqlWriter:
    w = SqlWriter(table, step=SimpleNamespace(engine=engine), **args)  # type: ignore[arg-type]
    w.open({})
    return w


def _keyed(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(keyed).order_by(keyed.c.n))]


# ---------------------------------------------------------------- refused at construction/open


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"mode": "merge"}, "mode must be copy, insert or upsert, not 'merge'"),
        ({"mode": "upsert"}, "mode 'upsert' needs 'conflict'"),
        ({"mode": "insert", "conflict": ["n"]}, "'conflict' and 'update' go with mode 'upsert'"),
        ({"update": []}, "'conflict' and 'update' go with mode 'upsert'"),
        ({"mode": "upsert", "conflict": "n"}, "'conflict' is a list of columns, not 'n'"),
    ],
)
def test_bad_modes_are_refused_when_the_writer_is_built(args: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidDefinition, match=message):
        SqlWriter("t", url="sqlite://", **args)


def test_columns_are_checked_against_the_table_at_open(engine: Engine) -> None:
    with pytest.raises(InvalidDefinition, match=r"table 'modes_keyed' has no column 'nn'$"):
        _writer(engine, "modes_keyed", mode="upsert", conflict=["nn"])
    with pytest.raises(InvalidDefinition, match=r"has no column 'tga', 'x'$"):
        _writer(engine, keyed, mode="upsert", conflict=["n"], update=["tga", "x"])
    with pytest.raises(InvalidDefinition, match=r"no primary key or unique constraint on \(tag\)"):
        _writer(engine, "modes_keyed", mode="upsert", conflict=["tag"])
    _writer(engine, "modes_keyed", mode="upsert", conflict=["n"], update=["tag"])  # fine


# ---------------------------------------------------------------- what lands


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_applies_column_types_and_scalar_defaults(engine: Engine, mode: str) -> None:
    args = {"conflict": ["id"]} if mode == "upsert" else {}
    w = _writer(engine, plain, mode=mode, **args)
    with engine.connect() as conn, conn.begin():
        w.bind_transaction(conn)
        w.write([{"n": 1, "flag": True, "doc": {"a": [1, 2]}}, {"n": 2, "flag": 0, "doc": None}])
        w.write([{"n": 3, "flag": False, "doc": ["x"], "tag": "given"}])
        w.write([{"n": 4, "flag": True, "doc": None}, {"n": 5, "flag": False, "doc": None}])
        w.bind_transaction(None)
    with engine.connect() as conn:
        got = [(r.n, r.flag, r.doc, r.tag) for r in conn.execute(select(plain).order_by(plain.c.n))]
    assert got == [
        (1, True, {"a": [1, 2]}, "dflt"),
        (2, False, None, "dflt"),
        (3, False, ["x"], "given"),
        (4, True, None, "dflt"),
        (5, False, None, "dflt"),
    ]


def test_upsert_updates_the_chosen_columns_or_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        write_rows(
            conn, keyed, [{"n": 1, "tag": "a", "score": 1}, {"n": 2, "tag": "b", "score": 2}]
        )
    chunk = [{"n": 1, "tag": "A", "score": 10}, {"n": 2, "tag": "B", "score": 20}]
    with engine.begin() as conn:
        write_rows(conn, keyed, chunk, mode="upsert", conflict=["n"], update=["score"])
    assert _keyed(engine) == [(1, "a", 10), (2, "b", 20)]
    with engine.begin() as conn:
        more = [*chunk, {"n": 3, "tag": "c", "score": 3}]
        write_rows(conn, "modes_keyed", more, mode="upsert", conflict=["n"], update=[])
    assert _keyed(engine) == [(1, "a", 10), (2, "b", 20), (3, "c", 3)]  # DO NOTHING
    for _ in range(2):  # the same chunk twice: idempotent, every other column updated
        with engine.begin() as conn:
            write_rows(conn, keyed, chunk, mode="upsert", conflict=["n"])
    assert _keyed(engine) == [(1, "A", 10), (2, "B", 20), (3, "c", 3)]


def test_insert_refuses_a_duplicate_that_upsert_absorbs(engine: Engine) -> None:
    rows = [{"n": 1, "tag": "a"}]
    with engine.begin() as conn:
        write_rows(conn, keyed, rows)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        write_rows(conn, keyed, rows, mode="insert")
    with engine.begin() as conn:
        write_rows(conn, keyed, rows, mode="upsert", conflict=["n"])
    assert _keyed(engine) == [(1, "a", None)]


@pytest.mark.parametrize("mode", ["insert", "upsert"])
def test_a_bad_row_raises_the_sqlalchemy_exception_and_rolls_back(
    engine: Engine, mode: str
) -> None:
    args = {"conflict": ["n"]} if mode == "upsert" else {}
    w = _writer(engine, keyed, mode=mode, **args)
    for bad in ({"n": 2, "tag": None, "score": 2}, {"n": 2, "tag": "x", "score": -1}):
        with pytest.raises(IntegrityError):
            w.write([{"n": 1, "tag": "ok", "score": 1}, bad])  # NOT NULL, then CHECK
    assert _keyed(engine) == []
    with pytest.raises(BatonError, match="dict-like items"):
        w.write([7])
    with pytest.raises(BatonError, match="has no column 'nope'"):
        w.write([{"n": 1, "nope": 1}])


@pytest.mark.parametrize("mode", ["insert", "upsert"])
def test_two_statement_texts_per_table_whatever_the_chunk(engine: Engine, mode: str) -> None:
    """PostgreSQL: one executemany of the 100-row block statement, then the single-row
    statement for the remainder; SQLite: one executemany of the single-row statement."""
    seen: list[tuple[str, bool, int]] = []

    def statement(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, many: bool) -> None:
        seen.append((sql, many, len(params) if many else 1))

    args = {"conflict": ["n"]} if mode == "upsert" else {}
    w = _writer(engine, keyed, mode=mode, **args)
    event.listen(engine, "before_cursor_execute", statement)
    try:
        for start in (0, 1000):
            w.write([{"n": n, "tag": f"t{n}"} for n in range(start, start + 250)])
    finally:
        event.remove(engine, "before_cursor_execute", statement)
    writes = [s for s in seen if s[0].lstrip().upper().startswith("INSERT")]
    if engine.dialect.name == "postgresql":
        assert [(many, n) for _, many, n in writes] == [(True, 2), (True, 50)] * 2
        assert writes[0][0].count("), (") == BLOCK_ROWS - 1
        assert writes[1][0].count("), (") == 0
    else:
        assert [(many, n) for _, many, n in writes] == [(True, 250)] * 2
    assert [w[0] for w in writes[: len(writes) // 2]] == [w[0] for w in writes[len(writes) // 2 :]]
    assert all(("ON CONFLICT" in sql) is (mode == "upsert") for sql, _, _ in writes)
    assert _keyed(engine) == [(n, f"t{n}", None) for n in (*range(250), *range(1000, 1250))]


def test_an_upsert_repeating_a_key_in_a_block_goes_row_by_row(engine: Engine) -> None:
    """A multi-row upsert cannot touch one row twice; row by row, the last one wins."""
    w = _writer(engine, keyed, mode="upsert", conflict=["n"])
    rows = [{"n": n % 60, "tag": f"t{n}"} for n in range(200)]
    w.write(rows)
    last = {r["n"]: r["tag"] for r in rows}
    assert _keyed(engine) == [(n, last[n], None) for n in range(60)]


def test_block_statements_repeat_the_values_group_or_refuse() -> None:
    sql = "INSERT INTO t (a, b) VALUES (%s::NUMERIC(10, 2), now()) ON CONFLICT (a) DO NOTHING"
    assert block_sql(sql, 2) == (
        "INSERT INTO t (a, b) VALUES (%s::NUMERIC(10, 2), now()), (%s::NUMERIC(10, 2), now())"
        " ON CONFLICT (a) DO NOTHING"
    )
    assert block_sql("INSERT INTO t (a) VALUES ('x(', %s)", 2) is None
    assert block_sql("INSERT INTO t DEFAULT VALUES", 2) is None
    assert block_rows(5) == BLOCK_ROWS and block_rows(70_000) == 1 and block_rows(1000) == 65


@pytest.mark.parametrize("mode", MODES)
def test_dicts_dataclasses_and_named_tuples_mix_in_one_chunk(engine: Engine, mode: str) -> None:
    """Plain dicts go in as they are; a chunk holding anything else converts each item."""
    import dataclasses
    from typing import NamedTuple

    @dataclasses.dataclass
    class Row:
        n: int
        tag: str
        score: int | None

    class Tup(NamedTuple):
        n: int
        tag: str
        score: int | None

    args = {"conflict": ["n"]} if mode == "upsert" else {}
    w = _writer(engine, keyed, mode=mode, **args)
    with engine.connect() as conn, conn.begin():
        w.bind_transaction(conn)
        w.write([{"n": 1, "tag": "a", "score": 1}, {"n": 2, "tag": "b", "score": None}])
        w.write([{"n": 3, "tag": "c", "score": 3}, Row(4, "d", 4), Tup(5, "e", None)])
        w.bind_transaction(None)
    with engine.connect() as conn:
        got = [tuple(r) for r in conn.execute(select(keyed).order_by(keyed.c.n))]
    assert got == [(1, "a", 1), (2, "b", None), (3, "c", 3), (4, "d", 4), (5, "e", None)]

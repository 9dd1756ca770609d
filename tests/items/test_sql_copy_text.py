"""COPY's column-wise text path (:func:`baton.items.sql_copy.copy_text`): for any chunk
it either declines or gives byte for byte what psycopg's own ``write_row`` gives, and a
chunk loaded either way reads back the same from PostgreSQL."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

from baton.items.sql_copy import copy_columns, copy_rows, copy_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg._copy_base import TextFormatter
from psycopg.adapt import Transformer
from sqlalchemy import (
    Column,
    Date,
    Float,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    create_engine,
    select,
)

COLUMNS = ["i", "f", "d", "s", "day"]
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "i": st.integers(-(2**63), 2**63 - 1),
    "f": st.floats(allow_nan=True, allow_infinity=True),
    "d": st.decimals(allow_nan=True, allow_infinity=True, places=None),
    "s": st.text(),
    "day": st.dates(),
}


def psycopg_text(rows: list[dict[str, Any]], columns: list[str]) -> bytes:
    """What psycopg's ``Copy.write_row`` sends for these rows."""
    formatter = TextFormatter(Transformer())
    for r in rows:
        formatter.write_row(tuple(r[c] for c in columns))
    return bytes(formatter.end())


def any_value() -> st.SearchStrategy[Any]:
    return st.one_of(*VALUES.values(), st.booleans(), st.none())


@st.composite
def chunks(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Rows of three columns, each of one plain type (maybe with None) or of anything."""
    kinds = draw(st.lists(st.sampled_from([*COLUMNS, "any"]), min_size=3, max_size=3))
    nulls = draw(st.lists(st.booleans(), min_size=3, max_size=3))
    values = [
        any_value() if k == "any" else (st.one_of(VALUES[k], st.none()) if n else VALUES[k])
        for k, n in zip(kinds, nulls, strict=True)
    ]
    rows = draw(st.lists(st.tuples(*values), min_size=1, max_size=20))
    return [dict(zip("abc", r, strict=True)) for r in rows]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(chunks())
def test_copy_text_declines_or_matches_psycopg(rows: list[dict[str, Any]]) -> None:
    text = copy_text(rows, ["a", "b", "c"], "utf-8")
    if text is not None:
        assert text == psycopg_text(rows, ["a", "b", "c"])


def test_plain_columns_take_the_column_path_and_others_decline() -> None:
    day = dt.date(2026, 1, 2)
    plain = [
        {"i": 1, "f": 1.5, "d": Decimal("1E+2"), "s": "é", "day": day},
        {"i": None, "f": -0.0, "d": None, "s": "", "day": None},
    ]
    assert copy_text(plain, COLUMNS, "utf-8") == psycopg_text(plain, COLUMNS)
    assert copy_text([{"x": None}, {"x": None}], ["x"], "utf-8") == b"\\N\n\\N\n"
    for odd in (
        math.inf,
        float("nan"),
        Decimal("NaN"),
        "a\tb",
        "back\\slash",
        "nl\n",
        True,
        dt.datetime(2026, 1, 1),
        b"bytes",
        [1],
    ):
        assert (
            copy_text([{"x": 1 if not isinstance(odd, str) else "a"}, {"x": odd}], ["x"], "utf-8")
            is None
        )
    assert copy_text([{"x": 1}, {"x": 1.0}], ["x"], "utf-8") is None  # mixed types


def test_both_paths_load_the_same_rows(db_url: str) -> None:
    """One chunk of plain rows (column path) and one with a tab in a string (psycopg's
    path) through the SQL writer's COPY read back exactly as written (on SQLite, where
    there is no COPY, the writer declines it)."""
    pg_engine = create_engine(db_url)

    meta = MetaData()
    t = Table(
        "copy_text_paths",
        meta,
        Column("i", Integer, primary_key=True, autoincrement=False),
        Column("f", Float),
        Column("d", Numeric(30, 10)),
        Column("s", Text),
        Column("day", Date),
    )
    meta.drop_all(pg_engine)
    pg_engine.dispose()
    meta.create_all(pg_engine)
    day = dt.date(2026, 3, 4)
    plain = [
        {"i": n, "f": n / 3, "d": Decimal(n) / 7, "s": f"s{n}é", "day": day} for n in range(50)
    ]
    odd = [
        {"i": 100 + n, "f": None, "d": None, "s": f"tab\there{n}\\", "day": None} for n in range(5)
    ]
    assert copy_text(plain, COLUMNS, "utf-8") is not None
    assert copy_text(odd, COLUMNS, "utf-8") is None
    if pg_engine.dialect.name != "postgresql":
        with pg_engine.connect() as conn:
            assert copy_columns(conn, t, plain) is None
        return
    with pg_engine.begin() as conn:
        for rows in (plain, odd):
            cols = copy_columns(conn, t, rows)
            assert cols == COLUMNS
            copy_rows(conn, t, cols, rows)
    with pg_engine.connect() as conn:
        back = [dict(r._mapping) for r in conn.execute(select(t).order_by(t.c.i))]
    assert [r["s"] for r in back] == [r["s"] for r in plain + odd]
    assert [r["f"] for r in back] == [r["f"] for r in plain + odd]
    assert [r["day"] for r in back] == [r["day"] for r in plain + odd]
    assert [r["d"] for r in back[:50]] == [round(r["d"], 10) for r in plain]
    meta.drop_all(pg_engine)
    pg_engine.dispose()

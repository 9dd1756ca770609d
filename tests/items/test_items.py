"""Built-in readers and writers: restart from the saved cursor, truncate-on-reopen for
file writers, keyset paging for the SQL reader, and the SQL writer inside the chunk's
transaction. Real files, real SQLite and PostgreSQL; nothing is mocked."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from baton import (
    BatchJob,
    BatchStatus,
    BatonError,
    CsvReader,
    CsvWriter,
    JobOperator,
    JobRepository,
    JsonLinesReader,
    JsonLinesWriter,
    SqlReader,
    SqlWriter,
)
from baton.repository.engine import make_engine
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
)

# ---------------------------------------------------------------- helpers


def read_all(reader: Any) -> list[Any]:
    out = []
    while (item := reader.read()) is not None:
        out.append(item)
    return out


def read_n(reader: Any, n: int) -> list[Any]:
    return [reader.read() for _ in range(n)]


def commit(writer: Any, items: list[Any], ctx: dict[str, Any]) -> None:
    """What the chunk loop does with a staged (fenced) file writer for one chunk."""
    writer.write(items)
    writer.update(ctx)
    writer.flush_staged()  # inside the checkpoint transaction, after its fence check
    writer.commit_staged()  # the transaction committed


@pytest.fixture
def people_csv(tmp_path: Path) -> Path:
    path = tmp_path / "people.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "name"])
        for i in range(1, 11):
            w.writerow([i, f"person {i}"])
    return path


@pytest.fixture
def events_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps({"seq": i, "kind": "e"}) + "\n" for i in range(1, 8)))
    return path


# ---------------------------------------------------------------- file readers


def test_csv_reader_reads_rows_as_dicts(people_csv: Path) -> None:
    r = CsvReader(people_csv)
    r.open({})
    rows = read_all(r)
    r.close()
    assert len(rows) == 10
    assert rows[0] == {"id": "1", "name": "person 1"}
    assert rows[-1] == {"id": "10", "name": "person 10"}


def test_csv_reader_restarts_after_the_saved_count(people_csv: Path) -> None:
    ctx: dict[str, Any] = {}
    first = CsvReader(people_csv)
    first.open(ctx)
    assert first.estimate_total() is None  # nothing read yet: no basis, and no count
    assert [r["id"] for r in read_n(first, 4)] == ["1", "2", "3", "4"]
    first.update(ctx)
    read_n(first, 2)  # read after the checkpoint: must be read again on restart
    first.close()
    offset = len("id,name\r\n") + sum(len(f"{i},person {i}\r\n") for i in range(1, 5))  # CRLF
    assert ctx == {"csv.read.count": 4, "csv.read.offset": offset, "csv.read.line": 5}

    again = CsvReader(people_csv)
    again.open(ctx)
    assert [r["id"] for r in read_all(again)] == ["5", "6", "7", "8", "9", "10"]
    assert again.estimate_total() == 6  # exact at the end: only what was left
    again.update(ctx)
    assert ctx["csv.read.count"] == 10
    again.close()


def test_csv_reader_without_header_and_with_a_name(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    path.write_text("a;1\nb;2\nc;3\n")
    ctx: dict[str, Any] = {}
    r = CsvReader(path, header=False, delimiter=";", name="plain")
    r.open(ctx)
    assert r.read() == ["a", "1"]
    assert r.estimate_total() == 3  # 4 bytes a record, 8 bytes left
    r.update(ctx)
    r.close()
    assert ctx == {"plain.read.count": 1, "plain.read.offset": 4, "plain.read.line": 1}
    r2 = CsvReader(path, header=False, delimiter=";", name="plain")
    r2.open(ctx)
    assert read_all(r2) == [["b", "2"], ["c", "3"]]


def test_csv_reader_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    r = CsvReader(tmp_path / "nope.csv")
    with pytest.raises(BatonError, match=r"cannot open .*nope\.csv"):
        r.open({})


def test_jsonl_reader_restarts_after_the_saved_count(events_jsonl: Path) -> None:
    ctx: dict[str, Any] = {}
    first = JsonLinesReader(events_jsonl)
    first.open(ctx)
    assert [e["seq"] for e in read_n(first, 3)] == [1, 2, 3]
    first.update(ctx)
    first.close()
    assert ctx["jsonl.read.count"] == 3 and ctx["jsonl.read.line"] == 3

    again = JsonLinesReader(events_jsonl)
    again.open(ctx)
    assert [e["seq"] for e in read_all(again)] == [4, 5, 6, 7]
    assert again.estimate_total() == 4
    again.close()


def test_jsonl_reader_skips_blank_lines_and_names_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"a": 1}\n\n   \n{"a": 2}\nnot json\n')
    r = JsonLinesReader(path)
    r.open({})
    assert r.read() == {"a": 1}
    assert r.read() == {"a": 2}
    with pytest.raises(ValueError, match=r"mixed\.jsonl:5: invalid JSON"):
        r.read()


def test_reader_restart_past_the_end_reads_nothing(events_jsonl: Path) -> None:
    r = JsonLinesReader(events_jsonl)
    r.open({"jsonl.read.count": 99})  # a checkpoint without an offset: by count
    assert r.read() is None
    assert r.estimate_total() == 0


# ---------------------------------------------------------------- file writers


def test_jsonl_writer_truncates_a_crashed_chunk_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "out" / "events.jsonl"  # the folder is created
    ctx: dict[str, Any] = {}
    w = JsonLinesWriter(path)
    w.open(ctx)
    commit(w, [{"n": 1}, {"n": 2}], ctx)  # chunk 1 checkpointed
    w.write([{"n": 3}, {"n": 4}])  # chunk 2 appended, then the process dies
    w.flush_staged()
    w.close()
    assert len(path.read_text().splitlines()) == 4
    assert ctx["jsonl.written.offset"] == len(b'{"n": 1}\n{"n": 2}\n')

    # The restart reopens with the last saved context and redoes chunk 2.
    w2 = JsonLinesWriter(path)
    w2.open(ctx)
    commit(w2, [{"n": 3}, {"n": 4}], ctx)
    commit(w2, [{"n": 5}], ctx)
    w2.close()
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [1, 2, 3, 4, 5]


def test_csv_writer_truncates_a_crashed_chunk_and_keeps_one_header(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    ctx: dict[str, Any] = {}
    w = CsvWriter(path, fields=["id", "name"])
    w.open(ctx)
    commit(w, [{"id": 1, "name": "a"}, {"id": 2, "name": "b", "extra": "ignored"}], ctx)
    w.write([{"id": 3, "name": "c"}])  # not checkpointed
    w.flush_staged()
    w.close()

    w2 = CsvWriter(path, fields=["id", "name"])
    w2.open(ctx)
    commit(w2, [{"id": 3, "name": "c"}, {"id": 4, "name": "d"}], ctx)
    w2.close()
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["id", "name"], ["1", "a"], ["2", "b"], ["3", "c"], ["4", "d"]]


def test_csv_writer_crash_before_the_first_checkpoint_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    w = CsvWriter(path, fields=["id"])
    w.open({})
    w.write([{"id": 1}, {"id": 2}])
    w.flush_staged()
    w.close()  # died before any checkpoint: the saved context is still empty

    ctx: dict[str, Any] = {}
    w2 = CsvWriter(path, fields=["id"])
    w2.open(ctx)
    commit(w2, [{"id": 1}, {"id": 2}], ctx)
    w2.close()
    assert path.read_text().splitlines() == ["id", "1", "2"]


def test_writer_used_before_open_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BatonError, match="before open"):
        JsonLinesWriter(tmp_path / "x.jsonl").write([{"a": 1}])


# ---------------------------------------------------------------- SQL reader

src = Table(
    "src",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("name", String(20)),
    Column("grp", String(1)),
)


@pytest.fixture
def engine(db_url: str) -> Any:
    e = make_engine(db_url)
    yield e
    e.dispose()


@pytest.fixture
def src_table(engine: Engine) -> Table:
    src.metadata.create_all(engine)
    with engine.begin() as conn:
        # Keys with gaps, inserted out of order: the reader orders by key itself.
        ids = [i * 3 for i in range(25, 0, -1)]
        conn.execute(insert(src), [{"id": i, "name": f"n{i}", "grp": "ab"[i % 2]} for i in ids])
    return src


ALL_IDS = [i * 3 for i in range(1, 26)]


def test_sql_reader_pages_through_the_table_in_key_order(db_url: str, src_table: Table) -> None:
    r = SqlReader("src", key="id", page_size=7, url=db_url)
    r.open({})
    rows = read_all(r)
    r.close()
    assert [row["id"] for row in rows] == ALL_IDS
    assert rows[0] == {"id": 3, "name": "n3", "grp": "b"}


def test_sql_reader_restarts_after_the_last_key(db_url: str, src_table: Table) -> None:
    ctx: dict[str, Any] = {}
    r = SqlReader("src", key="id", page_size=4, url=db_url)
    r.open(ctx)
    first = [row["id"] for row in read_n(r, 10)]
    r.update(ctx)
    read_n(r, 3)  # past the checkpoint: lost with the crash
    r.close()
    assert ctx == {"sql.last.key": ALL_IDS[9]}

    again = SqlReader("src", key="id", page_size=4, url=db_url)
    again.open(ctx)
    rest = [row["id"] for row in read_all(again)]
    again.close()
    assert first + rest == ALL_IDS


def test_sql_reader_picks_up_rows_inserted_after_its_cursor(
    db_url: str, engine: Engine, src_table: Table
) -> None:
    r = SqlReader("src", page_size=100, url=db_url)
    ctx: dict[str, Any] = {}
    r.open(ctx)
    read_all(r)
    r.update(ctx)
    r.close()
    with engine.begin() as conn:
        conn.execute(insert(src), [{"id": 1000, "name": "late", "grp": "a"}])
    r2 = SqlReader("src", page_size=100, url=db_url)
    r2.open(ctx)
    assert [row["id"] for row in read_all(r2)] == [1000]


def test_sql_reader_honours_where_and_columns(db_url: str, src_table: Table) -> None:
    ctx: dict[str, Any] = {}
    r = SqlReader("src", columns=["name"], where="grp = 'a'", page_size=3, url=db_url, name="as")
    r.open(ctx)
    first = read_n(r, 4)
    r.update(ctx)
    r.close()
    evens = [i for i in ALL_IDS if i % 2 == 0]
    # Only the asked columns, plus the key the cursor needs.
    assert first == [{"name": f"n{i}", "id": i} for i in evens[:4]]
    assert ctx == {"as.last.key": evens[3]}

    r2 = SqlReader("src", columns=["name"], where="grp = 'a'", page_size=3, url=db_url, name="as")
    r2.open(ctx)
    rest = read_all(r2)
    assert [row["id"] for row in rest] == evens[4:]
    assert all(set(row) == {"name", "id"} for row in rest)


def test_sql_reader_unknown_table_or_key_is_a_clear_error(db_url: str, src_table: Table) -> None:
    with pytest.raises(BatonError, match="no table 'nope'"):
        SqlReader("nope", url=db_url).open({})
    with pytest.raises(BatonError, match="has no column 'uuid'"):
        SqlReader("src", key="uuid", url=db_url).open({})


# ---------------------------------------------------------------- SQL writer

dest = Table("dest", MetaData(), Column("n", Integer, nullable=False), Column("tag", String(10)))


def _count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_sql_writer_rolls_back_with_the_transaction_it_is_bound_to(engine: Engine) -> None:
    w = SqlWriter(dest, create=True, step=SimpleNamespace(engine=engine))  # type: ignore[arg-type]
    w.open({})
    with engine.connect() as conn:
        tx = conn.begin()
        assert w.bind_transaction(conn) is True
        w.write([{"n": 1, "tag": "x"}, {"n": 2, "tag": "y"}])
        assert conn.execute(select(func.count()).select_from(dest)).scalar_one() == 2
        tx.rollback()
        w.bind_transaction(None)
    assert _count(engine, dest) == 0

    with engine.connect() as conn, conn.begin():
        w.bind_transaction(conn)
        w.write([{"n": 3, "tag": "z"}])
        w.bind_transaction(None)
    assert _count(engine, dest) == 1


def test_sql_writer_on_another_engine_keeps_its_own_transactions(
    db_url: str, engine: Engine
) -> None:
    w = SqlWriter(dest, url=db_url, create=True)  # its own engine: at-least-once
    w.open({})
    with engine.connect() as conn:
        tx = conn.begin()
        assert w.bind_transaction(conn) is False
        w.write([{"n": 1}])
        tx.rollback()
    assert _count(engine, dest) == 1  # committed on its own
    w.close()
    w.engine.dispose()


def test_sql_writer_reflects_a_table_by_name_and_refuses_bad_items(
    db_url: str, engine: Engine
) -> None:
    dest.metadata.create_all(engine)
    w = SqlWriter("dest", url=db_url)
    w.open({})
    w.write([{"n": 7, "tag": "named"}])
    assert _count(engine, dest) == 1
    with pytest.raises(BatonError, match="dict-like items"):
        w.write([7])
    with pytest.raises(BatonError, match="no table 'missing'"):
        SqlWriter("missing", url=db_url).open({})
    w.engine.dispose()


# ---------------------------------------------------------------- inside a chunk step

NUMBERS = [{"n": i} for i in range(1, 26)]
FAIL = {"at": 0}


class ChunkOutWriter(SqlWriter):
    """Writes into `chunk_out` in the checkpoint transaction, then fails on demand, so
    the chunk's rows must roll back with its checkpoint."""

    table = Table("chunk_out", MetaData(), Column("n", Integer, nullable=False))
    create = True

    def write(self, items: list[Any]) -> None:
        super().write(items)
        if any(i["n"] == FAIL["at"] for i in items):
            raise RuntimeError(f"injected failure after writing {items[0]['n']}..")


def _chunk_job(name: str, reader: str, writer: str, **chunk: Any) -> BatchJob:
    return BatchJob.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "steps": [{"name": "load", "chunk": {"reader": reader, "writer": writer, **chunk}}]
            },
        }
    )


def test_sql_writer_rows_commit_with_the_checkpoint_exactly_once(repo: JobRepository) -> None:
    job = _chunk_job("sql-once", f"{__name__}:NUMBERS", f"{__name__}:ChunkOutWriter", size=10)
    op = JobOperator(repo, in_process=True)
    FAIL["at"] = 17  # in chunk 2 (11..20), after its rows were inserted
    try:
        failed = op.start(job)
    finally:
        FAIL["at"] = 0
    assert failed.status is BatchStatus.FAILED
    table = ChunkOutWriter.table
    assert isinstance(table, Table)
    assert _count(repo.engine, table) == 10  # chunk 1 only: chunk 2 rolled back

    done = op.restart(failed.id)
    assert done.status is BatchStatus.COMPLETED
    with repo.engine.connect() as conn:
        ns = sorted(conn.execute(select(table.c.n)).scalars())
    assert ns == list(range(1, 26))
    (step,) = repo.step_executions(done.id)
    # Each step execution counts its own work: the restart read only 11..25.
    assert (step.read_count, step.write_count, step.commit_count) == (15, 15, 2)


def test_file_reader_and_writer_restart_inside_a_chunk_step(
    repo: JobRepository, tmp_path: Path
) -> None:
    src_file = tmp_path / "in.jsonl"
    src_file.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(1, 26)))
    out = tmp_path / "out.jsonl"
    job = _chunk_job(
        "files-once",
        "baton.items:JsonLinesReader",
        "baton.items:JsonLinesWriter",
        processor=f"{__name__}:fail_on_demand",
        readerArgs={"path": str(src_file)},
        writerArgs={"path": str(out)},
        size=4,
    )
    op = JobOperator(repo, in_process=True)
    FAIL["at"] = 15  # chunk 4 (13..16) fails while processing
    try:
        failed = op.start(job)
    finally:
        FAIL["at"] = 0
    assert failed.status is BatchStatus.FAILED
    assert [json.loads(x)["n"] for x in out.read_text().splitlines()] == list(range(1, 13))

    done = op.restart(failed.id)
    assert done.status is BatchStatus.COMPLETED
    assert [json.loads(x)["n"] for x in out.read_text().splitlines()] == list(range(1, 26))
    (step,) = repo.step_executions(done.id)
    # The reader resumed at item 13: the restart read (and expected) only the rest.
    assert (step.read_count, step.total_count, step.commit_count) == (13, 13, 4)


def fail_on_demand(item: dict[str, Any]) -> dict[str, Any]:
    if item["n"] == FAIL["at"]:
        raise RuntimeError(f"injected failure at {item['n']}")
    return {"n": item["n"], "double": 2 * item["n"]}


# ---------------------------------------------------------------- SQL writer: column semantics
# Whatever path the writer takes to the driver, these must hold on both backends.

typed = Table(
    "typed_out",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("n", Integer, nullable=False),
    Column("flag", Boolean, nullable=False, default=False),
    Column("doc", JSON, nullable=True),
    Column("tag", String(10), default=lambda: "dflt"),
)


def test_sql_writer_applies_column_types_and_python_defaults(engine: Engine) -> None:
    w = SqlWriter(typed, create=True, step=SimpleNamespace(engine=engine))  # type: ignore[arg-type]
    w.open({})
    with engine.connect() as conn, conn.begin():
        w.bind_transaction(conn)
        w.write([{"n": 1, "flag": True, "doc": {"a": [1, 2]}}, {"n": 2, "flag": 0, "doc": None}])
        w.write([{"n": 3, "flag": False, "doc": ["x"], "tag": "given"}])
        w.bind_transaction(None)
    with engine.connect() as conn:
        rows = conn.execute(select(typed).order_by(typed.c.n)).all()
    assert [(r.n, r.flag, r.doc, r.tag) for r in rows] == [
        (1, True, {"a": [1, 2]}, "dflt"),
        (2, False, None, "dflt"),
        (3, False, ["x"], "given"),
    ]
    assert len({r.id for r in rows}) == 3  # keys generated by the database


def test_sql_writer_rows_with_different_keys(engine: Engine) -> None:
    w = SqlWriter(typed, create=True, step=SimpleNamespace(engine=engine))  # type: ignore[arg-type]
    w.open({})
    # Extra keys of later rows are ignored; a key missing from a later row is an error,
    # never a silent NULL.
    w.write([{"n": 1, "flag": True}, {"n": 2, "flag": False, "unknown": "x"}])
    with pytest.raises(Exception, match="flag"):
        w.write([{"n": 3, "flag": True}, {"n": 4}])
    with engine.connect() as conn:
        assert sorted(conn.execute(select(typed.c.n)).scalars()) == [1, 2]


def test_file_writer_refuses_to_resume_a_file_shorter_than_its_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    ctx: dict[str, Any] = {}
    w = JsonLinesWriter(path)
    w.open(ctx)
    commit(w, [{"n": 1}, {"n": 2}], ctx)
    w.close()

    path.write_text('{"n": 1}\n')  # replaced behind the job's back
    with pytest.raises(BatonError, match="fewer than the 18 written at the last checkpoint"):
        JsonLinesWriter(path).open(ctx)
    path.unlink()  # or deleted
    with pytest.raises(BatonError, match="it has 0 bytes"):
        JsonLinesWriter(path).open(ctx)
    assert not path.exists()


def test_exact_totals_count_records_not_lines(tmp_path: Path) -> None:
    """The progress total: a quoted CSV field spanning lines is one record, blank lines
    are none; after a restart the records already read are not counted again."""
    from baton.items import CsvReader, JsonLinesReader

    csv_file = tmp_path / "multi.csv"
    csv_file.write_text('id,note\n1,"two\nlines"\n\n2,plain\n3,"a,b"\n')
    reader = CsvReader(csv_file)
    reader.open({})
    assert len(list(iter(reader.read, None))) == 3
    assert reader.estimate_total() == 3
    reader.close()
    jsonl = tmp_path / "blank.jsonl"
    jsonl.write_text('{"a": 1}\n\n{"a": 2}\n   \n{"a": 3}')
    lines = JsonLinesReader(jsonl)
    ctx: dict[str, Any] = {}
    lines.open(ctx)
    lines.read()
    lines.update(ctx)
    lines.close()
    again = JsonLinesReader(jsonl)
    again.open(ctx)
    assert [again.read(), again.read(), again.read()] == [{"a": 2}, {"a": 3}, None]
    assert again.estimate_total() == 2
    again.close()

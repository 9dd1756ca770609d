"""File readers restart in O(1): they checkpoint the byte offset of the next record and
``seek`` to it, so a restart reads only the lines after it (asserted on the lines the
reader read, never on timings), for every shape of file: quoted CSV fields spanning
lines, a header, a UTF-8 BOM, CRLF, a last line without a newline, other encodings.
An older count-only checkpoint still restarts (by skipping), a file that changed under
its offset is refused, and the progress total is an estimate that ends exact."""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from baton import BatchStatus, JobOperator, JobRepository
from baton.core.errors import BatonError
from baton.items import CsvReader, JsonLinesReader
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

BOM = codecs.BOM_UTF8

FILES: dict[str, tuple[bytes, dict[str, Any]]] = {
    "csv-multiline-blank": (
        b'id,note\n1,"two\nlines"\n\n2,plain\n3,"a,b"\n4,"x\n\ny"\n',
        {"reader": CsvReader},
    ),
    "csv-bom-crlf-no-final-newline": (
        BOM + b'id,name\r\n1,"x\r\ny"\r\n2,caf\xc3\xa9\r\n3,last',
        {"reader": CsvReader},
    ),
    "csv-latin-1": (
        'id,name\n1,café\n2,"ü\nß"\n3,ñ\n'.encode("latin-1"),
        {"reader": CsvReader, "encoding": "latin-1"},
    ),
    "csv-no-header": (
        b"a;1\nb;2\n\nc;3\n",
        {"reader": CsvReader, "header": False, "delimiter": ";"},
    ),
    "jsonl-crlf-blank-no-final-newline": (
        b'{"a": 1}\r\n\n{"a": "\xc3\xa9"}\r\n  \n{"a": 3}',
        {"reader": JsonLinesReader},
    ),
    "jsonl-bom": (BOM + b'{"a": 1}\n{"a": 2}\n{"a": 3}\n', {"reader": JsonLinesReader}),
}


def reader(path: Path, options: dict[str, Any]) -> Any:
    kwargs = dict(options)
    return kwargs.pop("reader")(path, **kwargs)


def read_all(r: Any) -> list[Any]:
    return list(iter(r.read, None))


def lines_in(data: bytes) -> int:
    """Physical lines in ``data`` (a last one without a newline counts)."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


@pytest.mark.parametrize("name", sorted(FILES))
def test_a_restart_at_every_record_seeks_and_reads_the_rest_once(tmp_path: Path, name: str) -> None:
    data, options = FILES[name]
    path = tmp_path / "in"
    path.write_bytes(data)
    whole = reader(path, options)
    whole.open({})
    expected = read_all(whole)
    whole.close()
    assert len(expected) >= 3
    assert "\ufeff" not in json.dumps(expected)  # a BOM is no part of the first field
    header = 1 if options["reader"] is CsvReader and options.get("header", True) else 0
    for k in range(len(expected) + 1):
        ctx: dict[str, Any] = {}
        first = reader(path, options)
        first.open(ctx)
        head = [first.read() for _ in range(k)]
        first.update(ctx)
        first.read()  # read after the checkpoint: read again on restart
        first.close()
        offset = ctx[f"{first.name}.read.offset"]
        again = reader(path, options)
        again.open(ctx)
        rest = read_all(again)
        again.close()
        assert head + rest == expected, k
        assert again.lines_read == header + lines_in(data[offset:]), k  # seeked
        by_count = reader(path, options)  # a checkpoint from before offsets
        by_count.open({f"{first.name}.read.count": k})
        assert read_all(by_count) == rest, k
        by_count.close()


FIELD = st.text(st.sampled_from(["a", "é", "€", ",", '"', "\n", "\r", " ", "x"]), max_size=6)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.lists(FIELD, min_size=2, max_size=2), min_size=1, max_size=8),
    terminator=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    last_newline=st.booleans(),
)
def test_any_csv_restarts_at_any_record_as_if_never_stopped(
    tmp_path: Path, rows: list[list[str]], terminator: str, bom: bool, last_newline: bool
) -> None:
    """Fields with commas, quotes, CR, LF and non-ASCII text, written by csv itself
    (which leaves a lone CR unquoted: a malformed row, which must come out the same,
    naming the same line, after a restart too)."""
    text = io.StringIO()
    csv.writer(text, lineterminator=terminator).writerows([["k", "v"], *rows])
    data = (BOM if bom else b"") + text.getvalue().encode()
    if not last_newline:
        data = data.removesuffix(terminator.encode())
    path = tmp_path / "any.csv"
    path.write_bytes(data)
    whole = CsvReader(path)
    whole.open({})
    expected = outcomes(whole)
    whole.close()
    for k in range(len(expected) + 1):
        ctx: dict[str, Any] = {}
        first = CsvReader(path)
        first.open(ctx)
        head = outcomes(first, k)
        first.update(ctx)
        first.close()
        again = CsvReader(path)
        again.open(ctx)
        assert head + outcomes(again) == expected
        again.close()


def outcomes(r: Any, n: int | None = None) -> list[Any]:
    """What ``n`` reads (or reads to the end) give: items, or the errors' messages."""
    out: list[Any] = []
    while n is None or len(out) < n:
        try:
            item = r.read()
        except ValueError as e:
            out.append(("error", str(e)))
            continue
        if item is None:
            break
        out.append(item)
    return out


def test_a_restart_names_the_right_line_of_a_bad_record(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n{"a": 3}\nnot json\n{"a": 4}\n')
    ctx: dict[str, Any] = {}
    first = JsonLinesReader(path)
    first.open(ctx)
    first.read(), first.read()
    first.update(ctx)
    first.close()
    again = JsonLinesReader(path)
    again.open(ctx)
    assert again.read() == {"a": 3}
    with pytest.raises(ValueError, match=r"mixed\.jsonl:5: invalid JSON"):
        again.read()
    assert again.read() == {"a": 4}
    assert again.lines_read == 3


def numbers_csv(path: Path, count: int) -> Path:
    """Rows of one width (so a byte-based estimate is exact)."""
    path.write_text("n,note\n" + "".join(f"{i:04d},row {i:04d}\n" for i in range(1, count + 1)))
    return path


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b[: len(b) // 3],  # shorter than the offset
        lambda b: b"n,note\n0,row 0 with a longer note\n" + b[7:],  # shifted under it
    ],
    ids=["shorter", "shifted"],
)
def test_a_file_changed_under_its_offset_is_refused_in_one_line(
    tmp_path: Path, change: Any
) -> None:
    path = numbers_csv(tmp_path / "in.csv", 1000)
    ctx: dict[str, Any] = {}
    r = CsvReader(path)
    r.open(ctx)
    for _ in range(500):
        r.read()
    r.update(ctx)
    r.close()
    path.write_bytes(change(path.read_bytes()))
    with pytest.raises(BatonError) as refused:
        CsvReader(path).open(ctx)
    message = str(refused.value)
    assert "\n" not in message
    assert f"{path} changed since the checkpoint" in message
    assert f"restart offset {ctx['csv.read.offset']} (after 500 records)" in message


def test_the_estimated_total_needs_no_count_and_ends_exact(tmp_path: Path) -> None:
    path = numbers_csv(tmp_path / "in.csv", 1000)
    r = CsvReader(path)
    r.open({})
    assert r.estimate_total() is None and r.lines_read == 1  # only the header read
    for _ in range(100):
        r.read()
    assert r.estimate_total() == 1000  # from the bytes the rows took
    assert r.lines_read == 101  # nothing counted the file
    read_all(r)
    assert r.estimate_total() == 1000
    r.close()


def test_a_job_records_an_estimated_total_that_ends_exact_and_resumes_after_a_skip(
    repo: JobRepository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CSV job with a bad row mid-file skipped, failing later: the restart seeks past
    both (the skip is not redone, no row is read twice), and each execution's total is
    exact at its end: all rows, then the rows left."""
    from baton import BatchJob

    path = numbers_csv(tmp_path / "in.csv", 1000)
    data = path.read_bytes().replace(b"\n0350,row 0350\n", b'\n0350,"bad"quote\n')
    path.write_bytes(data)
    out = tmp_path / "out.jsonl"
    lines_log = tmp_path / "lines.log"
    monkeypatch.setenv("BATON_TEST_LINES_LOG", str(lines_log))
    monkeypatch.setenv("BATON_TEST_FAIL_AT", "700")
    job = BatchJob.model_validate(
        {
            "metadata": {"name": "csv-offsets"},
            "spec": {
                "steps": [
                    {
                        "name": "load",
                        "chunk": {
                            "reader": "filejobs:LinesCsvReader",
                            "processor": "filejobs:numbered",
                            "writer": "baton.items:JsonLinesWriter",
                            "readerArgs": {"path": str(path), "strict": True},
                            "writerArgs": {"path": str(out)},
                            "size": 50,
                            "skip": ["ValueError"],
                            "skipLimit": 5,
                        },
                    }
                ]
            },
        }
    )
    op = JobOperator(repo, in_process=True)
    failed = op.start(job)
    assert failed.status is BatchStatus.FAILED
    (first,) = repo.step_executions(failed.id)
    assert (first.read_count, first.read_skip_count) == (650, 1)  # a skip is no item of a chunk
    assert 900 <= (first.total_count or 0) <= 1100  # estimated, never counted
    monkeypatch.delenv("BATON_TEST_FAIL_AT")
    done = op.restart(failed.id)
    assert done.status is BatchStatus.COMPLETED, done.exit_description
    (second,) = repo.step_executions(done.id)
    assert (second.read_count, second.skip_count, second.total_count) == (349, 0, 349)
    assert [json.loads(x)["n"] for x in out.read_text().splitlines()] == [
        i for i in range(1, 1001) if i != 350
    ]
    (skipped,) = repo.skipped_items(failed.id)
    assert "in.csv:351: malformed CSV" in skipped.error
    resumed_at, lines_read = map(int, lines_log.read_text().split()[-2:])
    assert (resumed_at, lines_read) == (651, 1 + 349)  # the header and the rows left


def test_a_completed_job_records_the_exact_total(repo: JobRepository, tmp_path: Path) -> None:
    from baton import BatchJob

    path = tmp_path / "in.jsonl"
    rows = (json.dumps({"n": i, "pad": "x" * (i % 97)}) + "\n" for i in range(1, 778))
    path.write_text("".join(rows))  # widths vary: the estimate moves, the end is exact
    job = BatchJob.model_validate(
        {
            "metadata": {"name": "jsonl-total"},
            "spec": {
                "steps": [
                    {
                        "name": "load",
                        "chunk": {
                            "reader": "baton.items:JsonLinesReader",
                            "writer": "baton.items:ListWriter",
                            "readerArgs": {"path": str(path)},
                            "size": 100,
                        },
                    }
                ]
            },
        }
    )
    e = JobOperator(repo, in_process=True).start(job)
    assert e.status is BatchStatus.COMPLETED, e.exit_description
    (step,) = repo.step_executions(e.id)
    assert (step.read_count, step.total_count) == (777, 777)

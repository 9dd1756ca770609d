"""Keeps bench/chunk_throughput.py from rotting: it runs end to end with tiny numbers
on each backend, and the statements per chunk of its 1st and last execution match.
No timing is asserted."""

from __future__ import annotations

from types import ModuleType

import pytest
from conftest import load_bench


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench("chunk_throughput")


def test_bench_runs_and_statements_per_chunk_do_not_grow(bench: ModuleType, db_url: str) -> None:
    lines: list[str] = []
    result = bench.run_bench(
        db_url, rows=40, repeat=2, chunk_size=10, history=4, history_rows=30, say=lines.append
    )
    bench.report(result, say=lines.append)

    assert result.first.chunks == result.last.chunks == 3
    assert result.first.statements_per_chunk is not None
    assert result.first.per_chunk == result.last.per_chunk
    assert result.same_statements_per_chunk
    # The SQL writer's rows travel in the checkpoint transaction: one INSERT per chunk.
    if db_url.startswith("postgresql"):  # plain rows go in with COPY, not a statement
        assert result.first.insert_style == "COPY (no SQL statement event) (x3)"
        assert result.first.per_chunk == {1: 3}
    else:
        assert "1 executemany of 10 rows" in result.first.insert_style
    assert result.modes == ("copy", "insert", "upsert")
    assert all(len(result.seconds[side]) == 2 for side in ("hand", *result.modes))
    assert all(r > 0 for m in result.modes for r in result.pair_ratios(m))
    text = "\n".join(lines)
    assert "statements per chunk: execution 1 =" in text
    assert "Baton / hand-written psycopg executemany throughput" in text
    assert all(f"  {m} " in text for m in result.modes)


def test_bench_command_line(
    bench: ModuleType, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = bench.main(
        [
            "--db-url",
            sqlite_url,
            "--rows",
            "20",
            "--chunk-size",
            "10",
            "--repeat",
            "1",
            "--history",
            "2",
            "--history-rows",
            "20",
            "--modes",
            "insert,upsert",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "->  same" in out
    assert "  insert " in out and "  upsert " in out and "  copy " not in out


def test_bench_rejects_partial_chunks_and_unknown_modes(bench: ModuleType) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--rows", "15", "--chunk-size", "10"])
    with pytest.raises(SystemExit):
        bench.main(["--modes", "copy,merge"])

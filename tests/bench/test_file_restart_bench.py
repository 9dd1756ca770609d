"""Keeps bench/file_restart.py from rotting: tiny numbers, each backend, end to end; the
restarts resume where the failure left them. No timing is asserted."""

from __future__ import annotations

from conftest import load_bench


def test_the_restart_bench_runs_and_restarts_resume(db_url: str) -> None:
    bench = load_bench("file_restart")
    lines: list[str] = []
    result = bench.run_bench(db_url, rows=300, repeat=1, chunk_size=20, say=lines.append)
    bench.report(result, say=lines.append)
    assert [t.rows for t in result.full] == [300]
    # failing at row 270 leaves the chunk 261..280 uncommitted: 40 rows left
    assert [t.rows for t in result.offset] == [t.rows for t in result.count] == [40]
    text = "\n".join(lines)
    assert "offset restart: 40 rows left" in text and "count restart: 40 rows left" in text

"""Keeps bench/checkpoint_connections.py from rotting: it runs end to end with tiny
numbers on PostgreSQL, and what it counts is what the settings promise (no timing is
asserted): ``release`` opens connections per chunk, ``keep`` none after the first."""

from __future__ import annotations

import pytest
from conftest import PG_URL, load_bench


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="BATON_TEST_PG_URL not set (use make test)")
def test_bench_runs_and_counts_connections_per_chunk() -> None:
    bench = load_bench("checkpoint_connections")
    lines: list[str] = []
    sides = bench.in_database(
        None, PG_URL, lambda url: bench.run_bench(url, chunks=6, size=5, repeat=2)
    )
    bench.report(sides, say=lines.append)
    by_name = {s.name: s for s in sides}
    assert set(by_name) == {"keep", "keep, unprepared", "release"}
    assert by_name["keep"].connects == 0  # the connection made before the step is reused
    assert by_name["release"].connects >= 6  # at least one per chunk
    assert by_name["keep"].statements == by_name["release"].statements
    assert lines[0].split() == ["side", "ms/chunk", "x", "keep", "stmts/chunk", "connects/chunk"]

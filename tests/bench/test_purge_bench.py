"""Keeps bench/purge.py from rotting: both sizes purge everything on each backend, in
bounded batches, while the writer's checkpoints keep committing. No timing is asserted."""

from __future__ import annotations

import pytest
from conftest import load_bench


def test_purge_bench_runs_at_reduced_size(db_url: str) -> None:
    bench = load_bench("purge")
    lines: list[str] = []
    result = bench.run_bench(
        db_url, steps=600, small=60, per_instance=20, batch=10, say=lines.append
    )
    bench.report(result, say=lines.append)
    assert (result.small["steps"], result.large["steps"]) == (60, 600)
    assert (result.small["instances"], result.large["instances"]) == (3, 30)
    assert result.large["skippedItems"] == 30
    assert 3 <= result.large["batches"] <= 4  # scans of 10 ids, one of them the writer's
    assert result.during and result.baseline  # the writer committed all along
    assert result.memory_ratio > 0 and result.latency_ratio > 0 and result.batch_ratio > 0
    text = "\n".join(lines)
    assert "peak RSS growth large/small" in text
    assert "max commit latency during purge / longest purge batch" in text


def test_purge_bench_command_line(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench("purge")
    result = bench.run_bench(sqlite_url, steps=40, small=20, per_instance=10, batch=5)
    assert result.large["instances"] == 4
    assert "peak RSS" in capsys.readouterr().out

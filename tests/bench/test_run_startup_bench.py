"""Keeps bench/run_startup.py from rotting: one round of every kind runs end to end
(the `baton run`s complete, or the bench exits) and the ratios are printed. No timing
is asserted."""

from __future__ import annotations

import pytest
from conftest import load_bench

pytestmark = pytest.mark.slow


def test_bench_runs_every_kind_and_reports_ratios() -> None:
    bench = load_bench("run_startup")
    lines: list[str] = []
    result = bench.run_bench(1, say=lines.append)
    ratios = bench.report(result, say=lines.append)
    assert all(len(v) == 1 for v in result.wall.values())
    assert all(r > 0 for r in ratios.values())
    assert "baton run / python -c pass" in "\n".join(lines)

"""Keeps bench/step_startup.py from rotting: it runs end to end with tiny numbers (the
units really complete, the counter really counts) and prints its ratios. No timing is
asserted."""

from __future__ import annotations

from types import ModuleType

import pytest
from conftest import load_bench

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench("step_startup")


def test_bench_runs_pod_units_and_counts_their_statements(bench: ModuleType, db_url: str) -> None:
    lines: list[str] = []
    result = bench.run_bench(db_url, processes=3, parallel=3, repeat=1, count=1, say=lines.append)
    bench.report(result, say=lines.append, verbose=True)

    assert result.command[:2] == ["baton", "step"]  # the operator's pod command
    assert len(result.step) == len(result.bare) == 1
    assert all(r > 0 for r in result.pair_ratios)
    text = "\n".join(lines)
    assert "step process / `python -c 'import baton'`" in text
    (count,) = result.counts
    if db_url.startswith("postgresql"):
        # SQLAlchemy's first-connect setup, then open + finish; no migration check of
        # its own (no pg_class or Alembic query)
        assert count.transactions == 3, count.sql
        assert count.connections == 1
        assert not any("pg_class" in s for s in count.sql), count.sql
        assert result.server_transactions and all(t > 0 for t in result.server_transactions)


def test_bench_command_line_rejects_too_few_processes(bench: ModuleType) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--processes", "2", "--count", "3"])


def test_bench_against_an_old_tree_runs_its_step_process_in_the_same_run(
    bench: ModuleType, db_url: str
) -> None:
    lines: list[str] = []
    with bench.old_runtime("HEAD") as old:
        assert (old / "baton" / "step" / "entry.py").is_file()  # HEAD's runtime/, exported
        (unit,) = bench.with_runtime([bench.Unit(["baton", "step"], {"A": "1"})], old)
        assert unit.env == {"A": "1", "PYTHONPATH": str(old)}
        result = bench.run_bench(
            db_url, processes=3, parallel=3, repeat=1, count=1, old=old, say=lines.append
        )
    bench.report(result, say=lines.append)
    assert len(result.step) == len(result.bare) == len(result.old) == 1
    assert len(result.old_counts) == 1
    wall, cpu = result.old_ratios
    assert wall > 0 and cpu > 0
    assert "this tree's step process / the old tree's (--against)" in "\n".join(lines)

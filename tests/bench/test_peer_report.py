"""bench/peer's pure part: which statements count as a job repository's, the order of
the interleaved runs, the Baton/Spring ratios and the printed table. No timing."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

PEER = Path(__file__).resolve().parents[2] / "bench" / "peer"


@pytest.fixture(scope="module")
def report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("peer_report", PEER / "report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["peer_report"] = module
    spec.loader.exec_module(module)
    return module


STATS = [
    ("UPDATE baton_step_execution SET read_count=$1 WHERE id = $2 RETURNING status", 100),
    ("SELECT version_num FROM baton_alembic_version", 1),
    ('COPY "peer_out_copy" ("id", "customer") FROM STDIN', 100),
    ("INSERT INTO peer_out_spring (id, customer) VALUES ($1, $2)", 100),
    ("UPDATE BATCH_STEP_EXECUTION set START_TIME = $1 where STEP_EXECUTION_ID = $2", 100),
    ("UPDATE BATCH_STEP_EXECUTION_CONTEXT SET SHORT_CONTEXT = $1", 100),
    ("select nextval($1) -- BATCH_JOB_SEQ", 1),
    ("SELECT pg_stat_statements_reset()", 1),
    ("BEGIN", 300),
    ("COMMIT", 300),
]


def test_repository_statements_are_those_naming_the_sides_tables(report: ModuleType) -> None:
    assert report.repository_statements(STATS, "baton") == 101
    assert report.repository_statements(STATS, "spring") == 201
    assert report.repository_statements([("SELECT 1 FROM my_baton_table", 5)], "baton") == 0


def test_sides_alternate_abba(report: ModuleType) -> None:
    sides = ["spring", "baton-copy", "baton-insert"]
    order = [report.side_order(sides, i) for i in range(3)]
    assert order == [sides, sides[::-1], sides]


def _results(report: ModuleType) -> object:
    r = report.Results(rows=100_000)
    r.runs += [
        report.Run("spring", 8.0, 9.0, 100, 300, 6.0),
        report.Run("baton-copy", 4.0, 5.0, 100, 110, 3.0),
        report.Run("spring", 10.0, 11.0, 100, 300, 8.0),
        report.Run("baton-copy", 6.0, 7.0, 100, 110, 5.0),
        report.Run("baton-insert", 9.0, 10.0, 100, 110, 7.0),
    ]
    r.restarts += [
        report.Restart("spring", 0.8, 2.0, 1.0),
        report.Restart("baton-copy", 2.0, 3.0, 1.5),
    ]
    return r


def test_ratios_are_of_medians_with_the_issue_targets(report: ModuleType) -> None:
    lines = report.ratio_lines(_results(report))
    copy = "Baton default writer (COPY) / Spring Batch 6 throughput: 1.80x"
    copy += " (wall 1.67x, client CPU 1.75x)"
    assert f"{copy}   target >= 1.5" in lines
    assert any(
        line.startswith("Baton INSERT") and "1.00x" in line and ">= 1.0" in line for line in lines
    )
    assert (
        "restart's first new chunk, baton-copy / Spring Batch 6 (time): 2.50   target <= 1.00"
        in lines
    )
    assert "repository statements per chunk, baton-copy: 1.10   target 1" in lines
    assert "repository statements per chunk, spring: 3.00   target ~3" in lines


def test_summary_table(report: ModuleType) -> None:
    rows = report.summary_rows(_results(report))
    assert rows[0] == [
        "spring",
        "9.00 s",
        "10.00 s",
        "7.00 s",
        "11,111",
        "3.00",
        "0.80 s",
        "2.00 s",
    ]
    assert rows[2][0] == "baton-insert" and rows[2][6:] == ["-", "-"]
    text = report.table(report.HEADER, rows).splitlines()
    assert text[0].startswith("| side") and set(text[1]) <= {"|", "-", " "}
    assert len({len(line) for line in text}) == 1  # columns aligned
    assert math.isnan(report.Run("x", 1.0, 1.0, 0, 5).per_chunk)

"""``baton purge`` on both databases: which instances go (old, finished, not restartable
unless asked, not among the newest kept), that everything keyed by them goes with them
and nothing else does, that a dry run changes nothing, and that batches stay bounded.
The selection rules themselves are checked with hypothesis."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from typing import Any

import pytest
from baton.core.counts import Counts
from baton.core.parameters import JobParameter, JobParameters, ParamType
from baton.core.retention import (
    RESTARTABLE,
    Candidate,
    Kept,
    PurgeRule,
    batches,
    parse_duration,
    verdict,
)
from baton.core.status import RUNNING, BatchStatus
from baton.repository import JobRepository
from baton.repository.purge import PurgeOptions, _recheck, purge
from baton.repository.schema import (
    JobExecutionRow,
    JobInstanceRow,
    JobParameterRow,
    PartitionRow,
    SkippedItemRow,
    StepExecutionRow,
)
from conftest import baton
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, update

E, N = JobExecutionRow, JobInstanceRow
NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)
_keys = itertools.count(1)
TABLES = (
    JobInstanceRow,
    JobExecutionRow,
    JobParameterRow,
    StepExecutionRow,
    SkippedItemRow,
    PartitionRow,
)


def instance(
    repo: JobRepository,
    statuses: list[BatchStatus],
    *,
    days_ago: float,
    job: str = "etl",
    namespace: str = "",
    steps: int = 2,
) -> int:
    """An instance with one execution per status (in order, each with ``steps`` step
    executions, one skipped item and a partition), last active ``days_ago``."""
    params = JobParameters((JobParameter("n", ParamType.INT, next(_keys), True),))
    when = NOW - dt.timedelta(days=days_ago)
    instance_id = 0
    for status in statuses:
        e = repo.launch(
            job, {"metadata": {"name": job}}, params, prevent_restart=False, source_dir=None,
            owner=None, namespace=namespace,
        )  # fmt: skip
        instance_id = e.instance_id
        for i in range(steps):
            step = repo.open_step(e, "load", i, worker="test")
            with repo.write() as conn:
                repo.checkpoint(conn, step, Counts(read=3), {"at": 3}, [("read", {"i": i}, "bad")])
            repo.finish_step(step, BatchStatus.COMPLETED, result={"n": i})
        with repo.write() as conn:
            conn.execute(
                update(E)
                .where(E.id == e.id)
                .values(status=status.value, end_time=when, last_updated=when)
            )
    repo.plan_partitions(instance_id, "load", [{"i": i} for i in range(steps)])
    return instance_id


def counts(repo: JobRepository) -> dict[str, int]:
    with repo.write() as conn:
        return {
            t.__tablename__: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in TABLES
        }


def instance_ids(repo: JobRepository) -> set[int]:
    with repo.write() as conn:
        return set(conn.execute(select(N.id)).scalars())


def run(repo: JobRepository, **kw: Any) -> dict[str, Any]:
    options = PurgeOptions(older_than=kw.pop("older_than", dt.timedelta(days=90)), **kw)
    return purge(repo, options, now=NOW).to_json()


def test_old_finished_instances_go_with_every_row_keyed_by_them(repo: JobRepository) -> None:
    done = instance(repo, [BatchStatus.FAILED, BatchStatus.COMPLETED], days_ago=100)
    abandoned = instance(repo, [BatchStatus.ABANDONED], days_ago=200)
    compensated = instance(repo, [BatchStatus.COMPENSATED], days_ago=91)
    recent = instance(repo, [BatchStatus.COMPLETED], days_ago=10)
    before = counts(repo)
    report = run(repo)
    assert instance_ids(repo) == {recent}
    assert {done, abandoned, compensated}.isdisjoint(instance_ids(repo))
    after = counts(repo)
    # 3 instances, 4 executions of 2 steps (with 1 skip each), 1 parameter each
    assert report["instances"] == 3 and report["executions"] == 4
    assert report["steps"] == 8 and report["skippedItems"] == 8 and report["parameters"] == 4
    assert report["partitions"] >= 6
    gone = {k: before[k] - after[k] for k in before}
    assert gone == {
        "baton_job_instance": 3,
        "baton_job_execution": 4,
        "baton_job_execution_param": 4,
        "baton_step_execution": 8,
        "baton_skipped_item": 8,
        "baton_partition": report["partitions"],
    }
    assert after["baton_step_execution"] == 2 and after["baton_job_execution"] == 1
    assert after["baton_partition"] == before["baton_partition"] // 4
    assert report["dryRun"] is False and report["batches"] == 1


def test_restartable_and_running_instances_are_protected(repo: JobRepository) -> None:
    failed = instance(repo, [BatchStatus.FAILED], days_ago=400)
    stopped = instance(repo, [BatchStatus.FAILED, BatchStatus.STOPPED], days_ago=400)
    unknown = instance(repo, [BatchStatus.UNKNOWN], days_ago=400)
    running = instance(repo, [BatchStatus.STARTED], days_ago=400)
    report = run(repo)
    assert instance_ids(repo) == {failed, stopped, unknown, running}
    assert report["instances"] == 0
    assert report["kept"] == {"running": 1, "restartable": 3, "keepLast": 0, "recent": 0}
    report = run(repo, include_restartable=True)
    assert instance_ids(repo) == {running}  # a running instance is never purged
    assert report["instances"] == 3 and report["kept"]["running"] == 1


def test_keep_last_keeps_the_newest_per_namespace_and_job(repo: JobRepository) -> None:
    etl = [instance(repo, [BatchStatus.COMPLETED], days_ago=300) for _ in range(5)]
    other = [instance(repo, [BatchStatus.COMPLETED], days_ago=300, job="x") for _ in range(2)]
    team = [instance(repo, [BatchStatus.COMPLETED], days_ago=300, namespace="a") for _ in range(3)]
    report = run(repo, keep_last=2)
    assert instance_ids(repo) == {*etl[-2:], *other, *team[-2:]}
    assert report["instances"] == 4 and report["kept"]["keepLast"] == 6


def test_job_filter_and_the_cutoff(repo: JobRepository) -> None:
    a = instance(repo, [BatchStatus.COMPLETED], days_ago=3)
    b = instance(repo, [BatchStatus.COMPLETED], days_ago=3, job="other")
    c = instance(repo, [BatchStatus.COMPLETED], days_ago=0.5)
    run(repo, older_than=parse_duration("2d"), job="other")
    assert instance_ids(repo) == {a, c}
    run(repo, older_than=parse_duration("12h"))
    assert instance_ids(repo) == {c}
    assert b not in instance_ids(repo)


def test_a_dry_run_changes_nothing_and_counts_the_same(repo: JobRepository) -> None:
    for days in (100, 120, 5):
        instance(repo, [BatchStatus.FAILED, BatchStatus.COMPLETED], days_ago=days, steps=3)
    before = counts(repo)
    dry = run(repo, dry_run=True, batch=1)
    assert counts(repo) == before
    real = run(repo, batch=1)
    assert dry["dryRun"] is True
    assert {k: v for k, v in dry.items() if k != "dryRun"} == {
        k: v for k, v in real.items() if k != "dryRun"
    }
    assert real["instances"] == 2 and real["batches"] == 2


def test_batches_are_bounded_by_instances_and_rows(repo: JobRepository) -> None:
    for _ in range(7):
        instance(repo, [BatchStatus.COMPLETED], days_ago=100, steps=3)  # 3 steps + 3 skips
    report = purge(
        repo, PurgeOptions(older_than=dt.timedelta(days=1), batch=3, batch_rows=12), now=NOW
    )
    assert report.deleted["instances"] == 7
    assert report.batches == 5  # scans of 3 → batches of 2 + 1 by rows (6 each), 2 + 1, 1
    assert report.largest_batch <= 12


def test_an_instance_restarted_after_it_was_read_is_kept(repo: JobRepository) -> None:
    """The batch reads its instances again inside its own transaction."""
    old = instance(repo, [BatchStatus.COMPLETED], days_ago=100)
    with repo.write() as conn:
        conn.execute(update(E).where(E.instance_id == old).values(status="STARTED"))
    rule = PurgeRule(NOW - dt.timedelta(days=1))
    c = Candidate(old, "", "etl", BatchStatus.COMPLETED, NOW - dt.timedelta(days=100))
    with repo.write() as conn:
        assert _recheck(conn, [c], rule) == []
    assert old in instance_ids(repo)


def test_the_cli_prints_a_line_or_json(db_url: str) -> None:
    repo = JobRepository(db_url)
    try:
        instance(repo, [BatchStatus.COMPLETED], days_ago=1000)
        keep = instance(repo, [BatchStatus.FAILED], days_ago=1000)
    finally:
        repo.dispose()
    out = baton("purge", "--older-than", "90d", "--dry-run", "--json", db=db_url)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["instances"] == 1 and data["dryRun"] is True and data["kept"]["restartable"] == 1
    out = baton("purge", "--older-than", "90d", db=db_url)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("purged 1 instance(s) last active before ")
    assert "kept 1 restartable" in out.stdout and out.stdout.count("\n") == 1
    out = baton("show", str(keep), db=db_url)  # execution id == instance id here
    assert out.returncode == 0, out.stderr
    bad = baton("purge", "--older-than", "90", db=db_url)
    assert bad.returncode == 2 and bad.stderr.startswith("error: baton purge: ")
    assert bad.stderr.count("\n") == 1


# ---------------------------------------------------------------- the pure rules

statuses = st.one_of(st.none(), st.sampled_from(list(BatchStatus)))
candidates = st.builds(
    Candidate,
    id=st.integers(1, 50),
    namespace=st.sampled_from(["", "a"]),
    job=st.sampled_from(["etl", "x"]),
    last_status=statuses,
    last_activity=st.datetimes(
        min_value=dt.datetime(2020, 1, 1),
        max_value=dt.datetime(2030, 1, 1),
        timezones=st.just(dt.UTC),
    ),
    running=st.booleans(),
    rows=st.integers(0, 100),
)
rules = st.builds(
    PurgeRule,
    cutoff=st.just(NOW),
    include_restartable=st.booleans(),
    keep_last=st.integers(0, 3),
    keep_from=st.dictionaries(
        st.tuples(st.sampled_from(["", "a"]), st.sampled_from(["etl", "x"])), st.integers(1, 50)
    ),
)


@given(candidates, rules)
def test_the_rules_never_purge_what_must_stay(c: Candidate, rule: PurgeRule) -> None:
    why = verdict(c, rule)
    if c.running or c.last_status in RUNNING:
        assert why is Kept.RUNNING
    if why is None:
        assert c.last_activity < rule.cutoff
        assert rule.include_restartable or c.last_status not in RESTARTABLE
        if rule.keep_last:
            assert c.id < rule.keep_from.get((c.namespace, c.job), 0)


@given(st.lists(candidates, max_size=30), st.integers(1, 5), st.integers(0, 150))
def test_batches_keep_order_and_bounds(found: list[Candidate], n: int, rows: int) -> None:
    out = batches(found, n, rows)
    assert [c for b in out for c in b] == found
    for b in out:
        assert 1 <= len(b) <= n
        assert len(b) == 1 or sum(c.rows for c in b) <= rows


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90d", 90 * 86400),
        ("12h", 43200),
        ("30m", 1800),
        ("45s", 45),
        ("1d12h", 129600),
        ("2w", 1209600),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "90", "d", "1.5d", "-1d", "1x", "1d 2h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)

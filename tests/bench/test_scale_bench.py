"""bench/operator_scale.py's parts that need no cluster: its jobs are valid BatchJobs,
the step simulator reads the operator's real pod manifest back into a unit and runs
it through the real step runtime (checkpoints counted in the repository), and the
reductions (API request counts, histogram quantiles, rates, verdicts). No timing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from baton import BatchStatus, JobRepository
from baton.flow.partitions import plan_partitions
from baton.spec.manifests import parse_job
from baton_operator.config import OperatorConfig
from baton_operator.manifests import step_job

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
if str(BENCH / "scale") not in sys.path:
    sys.path.insert(0, str(BENCH / "scale"))  # scale_steps, as the simulator has it

from scale import cluster, measure, report, simulator  # noqa: E402


def launched(repo: JobRepository, doc: dict[str, Any], params: dict[str, Any]) -> int:
    """A STARTED execution (partitions planned), as the operator leaves it before it
    creates the step's Job; returns its id."""
    job = parse_job(doc)
    execution = repo.launch(
        job.name,
        job.dump(),
        job.spec.bind(params),
        prevent_restart=False,
        owner="test",
        source_dir=None,
    )
    execution = repo.transition(execution.id, BatchStatus.STARTED, action="start", start=True)
    for step in job.spec.steps:
        if step.partitions is not None:
            plan_partitions(repo, execution, job, step.name)
    return execution.id


def pod_of(execution_id: int, step: str, partitions: tuple[int, ...] | None) -> dict[str, Any]:
    manifest = step_job(
        execution="x", namespace="scale-bench", uid="u", execution_id=execution_id,
        attempt=1, step=step, config=OperatorConfig(), partitions=partitions,
    )  # fmt: skip
    return dict(manifest["spec"]["template"])


def unit_from_manifest(pod: dict[str, Any], index: int) -> tuple[int, str, int | None, str]:
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    annotations = {simulator.INDEX_ANNOTATION: str(index)}
    return simulator.unit_of(list(container["command"]), env, annotations)


def test_the_jobs_are_valid_batch_jobs_placed_on_kwok_nodes() -> None:
    step, fan = (parse_job(doc) for doc in cluster.batch_jobs(7))
    assert step.name == cluster.STEP_JOB and fan.name == cluster.FAN_JOB
    assert fan.spec.step("fan").partitions is not None
    for doc in cluster.batch_jobs(7):
        assert doc["spec"]["template"]["spec"]["nodeSelector"] == {"type": "kwok"}
    (bx,) = cluster.executions("run5", cluster.STEP_JOB, 1, 41, 60, 6)
    assert bx["spec"]["parameters"] == {"n": 41, "seconds": 60, "chunks": 6}
    assert bx["metadata"]["labels"][cluster.RELEASE_LABEL] == cluster.RELEASE_VALUE


def test_simulator_runs_a_pods_unit_through_the_step_runtime(db_url: str) -> None:
    repo = JobRepository(db_url)
    try:
        doc = cluster.batch_jobs(3)[0]
        eid = launched(repo, doc, {"n": 1, "seconds": 0, "chunks": 4})
        unit = unit_from_manifest(pod_of(eid, "work", None), 0)
        assert unit == (eid, "work", None, "step")
        assert simulator.run_unit(db_url, unit) == (0, None)
        (row,) = repo.step_executions(eid)
        assert row.status is BatchStatus.COMPLETED
        assert (row.read_count, row.commit_count) == (4, 4)  # one checkpoint per chunk
    finally:
        repo.dispose()


def test_simulator_takes_the_partition_from_the_completion_index(db_url: str) -> None:
    repo = JobRepository(db_url)
    try:
        doc = cluster.batch_jobs(3)[1]
        eid = launched(repo, doc, {"n": 2, "seconds": 0, "chunks": 2})
        pod = pod_of(eid, "fan", (0, 1, 2))
        unit = unit_from_manifest(pod, 2)
        assert unit == (eid, "fan", 2, "step")
        assert simulator.run_unit(db_url, unit) == (0, None)
        rows = repo.step_executions(eid)
        assert [(r.partition, r.status) for r in rows] == [(2, BatchStatus.COMPLETED)]
        code, error = simulator.run_unit(db_url, (eid + 1000, "fan", 0, "step"))
        assert code != 0 and error  # no such execution: an error line, as the process
    finally:
        repo.dispose()


def test_finished_status_replaces_the_running_state() -> None:
    body = simulator.finished_status(0)["status"]
    assert body["phase"] == "Succeeded"
    (container,) = body["containerStatuses"]
    assert container["state"]["running"] is None
    assert container["state"]["terminated"]["exitCode"] == 0
    assert simulator.finished_status(1)["status"]["phase"] == "Failed"


API_TEXT = """\
# HELP apiserver_request_total Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",resource="jobs",verb="LIST",group="batch"} 10
apiserver_request_total{code="200",resource="jobs",verb="LIST",group="batch",scope="x"} 5
apiserver_request_total{code="200",resource="batchexecutions",verb="GET"} 7
apiserver_request_total{code="200",resource="",verb="GET"} 1
# HELP baton_reconcile_duration_seconds d
# TYPE baton_reconcile_duration_seconds histogram
baton_reconcile_duration_seconds_bucket{le="0.1"} 50
baton_reconcile_duration_seconds_bucket{le="1.0"} 90
baton_reconcile_duration_seconds_bucket{le="+Inf"} 100
baton_reconcile_duration_seconds_count 100
baton_reconcile_duration_seconds_sum 20
"""


def test_api_requests_and_histograms_are_read_from_prometheus_text() -> None:
    api = measure.api_requests(API_TEXT)
    assert api[("LIST", "jobs")] == 15 and api[("GET", "batchexecutions")] == 7
    buckets = measure.histogram_buckets(API_TEXT, measure.RECONCILE_HISTOGRAM)
    assert buckets == {0.1: 50, 1.0: 90, float("inf"): 100}
    assert measure.quantile(buckets, 0.5) == pytest.approx(0.1)
    assert measure.quantile(buckets, 0.7) == pytest.approx(0.1 + 0.9 * 0.5)
    assert measure.quantile(buckets, 0.99) == pytest.approx(1.0)  # in +Inf: the last bound
    assert measure.quantile({}, 0.5) is None
    before = {("LIST", "jobs"): 5.0}
    assert measure.delta(api, before)[("LIST", "jobs")] == 10
    assert measure.per_execution_minute(120, 10, 30) == pytest.approx(24)
    assert measure.per_execution_minute(5, 0, 30) is None


def test_too_many_clients_counts_log_lines_after_an_offset(tmp_path: Path) -> None:
    log = tmp_path / "pg.log"
    log.write_text("FATAL:  sorry, too many clients already\n")
    count, offset = measure.too_many_clients(log, 0)
    assert (count, offset) == (1, log.stat().st_size)
    with log.open("a") as f:
        f.write("LOG: fine\nFATAL:  sorry, too many clients already\n" * 2)
    assert measure.too_many_clients(log, offset)[0] == 2
    assert measure.too_many_clients(tmp_path / "missing.log", 0) == (0, 0)


def phase(name: str, executions: int, api: float, p99: float, rss: float) -> Any:
    return report.PhaseResult(
        name=name, executions=executions, units=1, running=executions, window_s=30,
        api_total=api, api_baton=api / 2, api_jobs=1, api_pods=1, db_operator=api * 2,
        db_steps=5, db_xacts=3, reconciles=10, reconcile_p50=p99 / 2, reconcile_p99=p99,
        rss_mib=rss, cpu_cores=0.5, pg_backends_peak=12, units_ended_in_window=0, api_top={},
    )  # fmt: skip


def test_verdicts_compare_the_two_largest_phases_with_the_targets() -> None:
    flat = [phase("run1", 1, 90, 0.1, 80), phase("run100", 100, 60, 0.2, 100),
            phase("run1000", 1000, 66, 0.4, 200)]  # fmt: skip
    lines = report.verdicts(flat)
    assert "ratios run1000 / run100 (target <= 1.5):" in lines
    assert "  API requests per execution-minute: 1.10 ok" in lines
    assert any("p99 0.400 s (target < 1.0) ok" in line for line in lines)
    assert lines[-1] == "too many clients, all phases: 0 (target 0) ok"
    grown = [phase("run100", 100, 60, 0.2, 100), phase("run1000", 1000, 120, 2.0, 400)]
    text = "\n".join(report.verdicts(grown))
    assert "2.00 NOT MET" in text and "p99 2.000 s (target < 1.0) NOT MET" in text
    assert "RSS 400.0 MiB (target < 300) NOT MET" in text
    header = report.table(flat).splitlines()[0]
    assert "api/e/m" in header and "p99 s" in header

"""The operator in the real cluster, driven with helm and kubectl only (the fixtures
and helpers are in conftest.py and support.py)."""

from __future__ import annotations

import calendar
import json
import os
import signal
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from conftest import Database, Kubectl, Postgres

from .support import (
    RELEASE,
    REPO,
    SYSTEM,
    step_processes,
    wait_condition,
)
from .support import (
    apply_job as _apply_job,
)
from .support import (
    execution as _execution,
)
from .support import (
    jobs as _jobs,
)
from .support import (
    patch as _patch,
)
from .support import (
    rows as _rows,
)
from .support import (
    status as _status,
)
from .support import (
    wait_phase as _wait_phase,
)

pytestmark = pytest.mark.e2e


# ---------------------------------------------------------------- scenarios


def test_crds_explain_and_refuse_bad_manifests(kubectl: Kubectl, ns: str) -> None:
    explain = " ".join(kubectl("explain", "batchexecution.spec").stdout.split())
    assert "snapshotted at launch" in explain and "restart" in explain
    bad = kubectl(
        "-n", ns, "apply", "-f", "-", check=False,
        input=json.dumps({
            "apiVersion": "baton.dev/v1alpha1", "kind": "BatchExecution",
            "metadata": {"name": "bad"},
            "spec": {"job": "x", "parameters": {"flag": [1, 2]}},
        }),
    )  # fmt: skip
    assert bad.returncode != 0 and "a value is a string (at most 4096" in bad.stderr
    # the chart's ValidatingAdmissionPolicy: the list form (Argo's arguments.parameters)
    both = {"configMapKeyRef": {"name": "c", "key": "k"}, "secretKeyRef": {"name": "s", "key": "k"}}
    for params, message in (
        ([{"name": "a", "valueFrom": both}], "exactly one of configMapKeyRef or secretKeyRef"),
        ([{"name": "a", "value": 1}, {"name": "a", "value": 2}], "given more than once"),
        ([{"name": "a"}], "exactly one of value"),
    ):
        refused = kubectl(
            "-n", ns, "apply", "-f", "-", check=False,
            input=json.dumps({
                "apiVersion": "baton.dev/v1alpha1", "kind": "BatchExecution",
                "metadata": {"name": "bad-list"},
                "spec": {"job": "x", "parameters": params},
            }),
        )  # fmt: skip
        assert refused.returncode != 0 and message in refused.stderr, refused.stderr
    _execution(kubectl, ns, "cel", "count-numbers", {"count": 1}, stop=True)
    changed = kubectl(
        "-n", ns, "patch", "bx", "cel", "--type", "merge", "-p",
        '{"spec":{"parameters":{"count":2}}}', check=False,
    )  # fmt: skip
    assert changed.returncode != 0 and "spec.parameters is immutable" in changed.stderr


def test_execution_completes_with_counts(
    kubectl: Kubectl, ns: str, operator: Database, postgres: Postgres
) -> None:
    _apply_job(kubectl, ns, "numbers")
    start = time.monotonic()
    _execution(
        kubectl, ns, "count", "count-numbers", {"count": 3000},
        workingDir="/opt/baton/examples/numbers",
    )  # fmt: skip

    def first_pod_running() -> bool:
        pods = kubectl.pods(ns, "baton.dev/execution=count")
        return any(p["status"].get("phase") in ("Running", "Succeeded") for p in pods)

    kubectl.wait_until("the first step pod", first_pod_running, timeout=120, interval=0.2)
    latency = time.monotonic() - start
    print(f"\nMEASURE apply->first pod running: {latency:.2f}s")
    st = _wait_phase(kubectl, ns, "count", "Completed", "Failed")
    assert st["phase"] == "Completed", st
    print(f"MEASURE apply->Completed (3 steps, 3000 items): {time.monotonic() - start:.2f}s")
    assert (st["readCount"], st["writeCount"], st["progress"]) == (3000, 3000, "100%")
    assert [s["status"] for s in st["steps"]] == ["COMPLETED"] * 3
    assert _rows(postgres, operator, 3000) == (3000, 3000)
    assert _jobs(kubectl, ns) == ["count-1-check", "count-1-load", "count-1-prepare"]
    table = kubectl("-n", ns, "get", "bx").stdout
    assert "Completed" in table and "100%" in table and "count-numbers" in table
    events = kubectl("-n", ns, "get", "events", "--field-selector", "involvedObject.name=count")
    assert "Launched" in events.stdout and "StepStarted" in events.stdout


def test_stop_then_restart_completes_exactly_once(
    kubectl: Kubectl, ns: str, operator: Database, postgres: Postgres
) -> None:
    _apply_job(kubectl, ns, "numbers")
    _execution(
        kubectl, ns, "slow", "count-numbers", {"count": 2500, "delayMs": 8},
        workingDir="/opt/baton/examples/numbers",
    )  # fmt: skip

    def loading() -> bool:
        st = _status(kubectl, ns, "slow")
        load = next((s for s in st.get("steps") or [] if s["name"] == "load"), None)
        return bool(load and load["writeCount"] >= 100)

    kubectl.wait_until("the load step to write", loading, timeout=180, interval=0.5)
    _patch(kubectl, ns, "slow", {"stop": True})
    st = _wait_phase(kubectl, ns, "slow", "Stopped", "Failed", "Completed")
    assert st["phase"] == "Stopped", st
    load = next(s for s in st["steps"] if s["name"] == "load")
    assert load["status"] == "STOPPED" and 0 < load["writeCount"] < 2500
    # the progress agrees with the counts (prepare done, load read/total, check not run)
    assert st["progress"] == f"{(1 + load['readCount'] / 2500) / 3 * 100:.0f}%", st
    # the stopped pod was not retried
    pods = kubectl.pods(ns, "baton.dev/step=load")
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    _patch(kubectl, ns, "slow", {"stop": False, "restart": 1})
    st = _wait_phase(kubectl, ns, "slow", "Completed", "Failed", timeout=300)
    assert st["phase"] == "Completed", st
    assert (st["attempt"], st["observedRestart"]) == (2, 1)
    assert _rows(postgres, operator, 2500) == (2500, 2500)
    assert "slow-2-prepare" not in _jobs(kubectl, ns)  # COMPLETED in attempt 1: skipped


def test_abandon_refuses_restart_and_completed_instance_rejects(
    kubectl: Kubectl, ns: str, operator: Database
) -> None:
    _apply_job(kubectl, ns, "numbers")
    wd = {"workingDir": "/opt/baton/examples/numbers"}
    _execution(kubectl, ns, "done", "count-numbers", {"count": 40}, **wd)
    _wait_phase(kubectl, ns, "done", "Completed")
    _execution(kubectl, ns, "again", "count-numbers", {"count": 40}, **wd)
    st = _wait_phase(kubectl, ns, "again", "Rejected", "Running", "Completed")
    assert st["phase"] == "Rejected"
    cond = next(c for c in st["conditions"] if c["type"] == "Launched")
    assert cond["reason"] == "JobInstanceAlreadyComplete"
    # stop → abandon → a restart bump is refused with a condition
    _execution(kubectl, ns, "ab", "count-numbers", {"count": 30, "delayMs": 300}, **wd)
    _wait_phase(kubectl, ns, "ab", "Running")
    _patch(kubectl, ns, "ab", {"abandon": True})  # wrong state: a condition
    wait_condition(kubectl, ns, "ab", "Abandoned", reason="WrongState")
    _patch(kubectl, ns, "ab", {"stop": True})
    st = _wait_phase(kubectl, ns, "ab", "Abandoned", timeout=180)
    _patch(kubectl, ns, "ab", {"restart": 1})
    wait_condition(kubectl, ns, "ab", "Restarted")
    assert _status(kubectl, ns, "ab")["phase"] == "Abandoned"


def test_partitions_run_as_one_indexed_job(kubectl: Kubectl, ns: str, operator: Database) -> None:
    _apply_job(kubectl, ns, "mapreduce")
    _execution(
        kubectl, ns, "wc", "word-count", {"parts": 8},
        workingDir="/opt/baton/examples/mapreduce",
    )  # fmt: skip
    st = _wait_phase(kubectl, ns, "wc", "Completed", "Failed", timeout=300)
    assert st["phase"] == "Completed", st
    count = next(s for s in st["steps"] if s["name"] == "count")
    assert (count["partitionsTotal"], count["partitionsDone"]) == (8, 8)
    jobs = kubectl.json("-n", ns, "get", "jobs")["items"]
    indexed = [j for j in jobs if j["metadata"]["labels"]["baton.dev/step"] == "count"]
    assert len(indexed) == 1
    assert indexed[0]["spec"]["completionMode"] == "Indexed"
    assert indexed[0]["spec"]["completions"] == 8
    # the repository knows first; the Job controller counts the exits a moment later
    kubectl.wait_until(
        "8 succeeded indexes",
        lambda: (
            kubectl.get("job", indexed[0]["metadata"]["name"], ns)["status"].get("succeeded") == 8
        ),
        timeout=60,
    )


def test_operator_pod_deleted_mid_execution(
    kubectl: Kubectl, ns: str, operator: Database, postgres: Postgres
) -> None:
    _apply_job(kubectl, ns, "numbers")
    _execution(
        kubectl, ns, "survive", "count-numbers", {"count": 1500, "delayMs": 5},
        workingDir="/opt/baton/examples/numbers",
    )  # fmt: skip
    _wait_phase(kubectl, ns, "survive", "Running")
    kubectl("-n", SYSTEM, "delete", "pod", "-l", "app.kubernetes.io/component=operator")
    st = _wait_phase(kubectl, ns, "survive", "Completed", "Failed", timeout=300)
    assert st["phase"] == "Completed", st
    assert _jobs(kubectl, ns) == ["survive-1-check", "survive-1-load", "survive-1-prepare"]
    assert _rows(postgres, operator, 1500) == (1500, 1500)


def test_metrics_match_status(kubectl: Kubectl, ns: str, operator: Database) -> None:
    _apply_job(kubectl, ns, "numbers")
    _execution(
        kubectl, ns, "metered", "count-numbers", {"count": 777},
        workingDir="/opt/baton/examples/numbers",
    )  # fmt: skip
    _wait_phase(kubectl, ns, "metered", "Completed")

    def scrape() -> str:
        return str(
            kubectl(
                "get", "--raw",
                f"/api/v1/namespaces/{SYSTEM}/services/{RELEASE}-metrics:9090/proxy/metrics",
            ).stdout
        )  # fmt: skip

    text = kubectl.wait_until(
        "metrics", lambda: (t := scrape()) and "baton_items_total" in t and t, timeout=60
    )
    assert f'baton_executions{{job="count-numbers",namespace="{ns}",phase="Completed"}} 1.0' in text
    assert "baton_reconcile_duration_seconds_count" in text
    read = [
        line
        for line in text.splitlines()
        if line.startswith('baton_items_total{job="count-numbers",kind="read",step="load"}')
    ]
    assert read and float(read[0].split()[-1]) >= 777


def _local_only(e2e_env: dict[str, str]) -> None:
    if e2e_env.get("E2E_PROVIDER", "local") != "local":
        pytest.skip("needs the step processes on this machine (local provider)")


def test_killed_partition_resumes_from_its_checkpoint(
    kubectl: Kubectl,
    ns: str,
    operator: Database,
    postgres: Postgres,
    e2e_env: dict[str, str],
) -> None:
    """kill -9 of one partition's process (as an OOM kill would): the Job retries that
    index (backoffLimitPerIndex), which resumes from its last committed chunk; every
    row is written exactly once."""
    _local_only(e2e_env)
    kubectl.apply(
        yaml.safe_load((REPO / "examples" / "numbers" / "partitioned.yaml").read_text()), ns
    )
    _execution(
        kubectl, ns, "fan", "count-numbers-fanout", {"count": 4000, "delayMs": 30},
        workingDir="/opt/baton/examples/numbers",
    )  # fmt: skip

    def partition_3_running() -> list[int] | None:
        st = _status(kubectl, ns, "fan")
        if not st.get("jobExecutionId"):
            return None
        return step_processes(st["jobExecutionId"], 3) or None

    kubectl.wait_until("partition 3 running", partition_3_running, timeout=180, interval=0.3)
    time.sleep(5)  # some of its chunks committed (500 items x 30 ms = 15 s per partition)
    pids = partition_3_running()
    assert pids, "partition 3 ended before it could be killed"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    st = _wait_phase(kubectl, ns, "fan", "Completed", "Failed", timeout=300)
    assert st["phase"] == "Completed", st
    load = next(s for s in st["steps"] if s["name"] == "load")
    assert (load["partitionsTotal"], load["partitionsDone"]) == (8, 8)

    def load_job_done() -> dict[str, Any] | None:
        # The repository (the source of truth) may report the last partition done a
        # moment before the Job controller has counted its pod: wait for the Job.
        job = next(
            j
            for j in kubectl.json("-n", ns, "get", "jobs")["items"]
            if j["metadata"]["labels"]["baton.dev/step"] == "load"
        )
        return job if job["status"].get("succeeded") == 8 else None

    job = kubectl.wait_until("the load Job counts 8 succeeded", load_job_done, timeout=60)
    assert job["status"].get("failed", 0) >= 1  # the killed pod, retried
    assert job["status"]["succeeded"] == 8
    assert _rows(postgres, operator, 4000) == (4000, 4000)  # resumed, not redone


def _scrape(kubectl: Kubectl) -> str:
    return str(
        kubectl(
            "get", "--raw",
            f"/api/v1/namespaces/{SYSTEM}/services/{RELEASE}-metrics:9090/proxy/metrics",
        ).stdout
    )  # fmt: skip


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.split()[-1])
    return total


def test_api_writes_do_not_grow_with_partitions(
    kubectl: Kubectl, ns: str, operator: Database
) -> None:
    """Kubernetes API writes of the operator per execution lifecycle: the same for 1
    and for 40 partitions (the Job controller makes the pods, not the operator)."""
    doc = yaml.safe_load((REPO / "examples" / "numbers" / "partitioned.yaml").read_text())
    writes = {}
    for parts in (1, 40):
        doc["metadata"]["name"] = f"fan-{parts}"
        doc["spec"]["steps"][1]["partitions"] = {"count": parts}
        doc["spec"]["steps"][1]["parallelism"] = 20
        kubectl.apply(doc, ns)
        before = _metric(_scrape(kubectl), "baton_kube_writes_total")
        _execution(
            kubectl, ns, f"w{parts}", f"fan-{parts}", {"count": 400},
            workingDir="/opt/baton/examples/numbers",
        )  # fmt: skip
        st = _wait_phase(kubectl, ns, f"w{parts}", "Completed", "Failed", timeout=300)
        assert st["phase"] == "Completed", st
        time.sleep(3)  # the last status patch and events
        writes[parts] = _metric(_scrape(kubectl), "baton_kube_writes_total") - before
    print(f"\nMEASURE operator API writes per lifecycle: {writes}")
    # Progress patches follow the run's duration (one per tick at most), which a loaded
    # machine stretches; one write per partition would add 40: far above this bound.
    assert writes[40] < writes[1] + 40 / 2, writes


def test_fan_out_of_100_partitions_vs_a_bare_indexed_job(
    kubectl: Kubectl, ns: str, operator: Database, postgres: Postgres, project_image: str
) -> None:
    """Wall time of a 100-partition step through the operator vs the same number of
    pods of the same image as a bare Indexed Job (parallelism 20 both): the median of
    FAN_OUT_RUNS interleaved runs (bare, operator, bare, operator, ...) so machine
    drift hits both alike, each run's numbers, and where the operator's time goes."""
    kubectl.apply(_fan_out_job(), ns)
    bare: list[float] = []
    through: list[float] = []
    for run in range(1, FAN_OUT_RUNS + 1):
        bare_job, seconds = _bare_indexed_job(kubectl, ns, f"bare-{run}", project_image, BARE_CODE)
        bare.append(seconds)
        name = f"f100-{run}"
        start = time.monotonic()
        _execution(kubectl, ns, name, "fan-100", {"n": run}, workingDir=EXAMPLE_NUMBERS)
        st = _wait_phase(kubectl, ns, name, "Completed", "Failed", timeout=900)
        through.append(time.monotonic() - start)
        seen = time.time()  # the phase Completed, as this test's 1 s poll saw it
        assert st["phase"] == "Completed", st
        (work,) = st["steps"]
        assert (work["partitionsTotal"], work["partitionsDone"]) == (100, 100), work
        units, ended = _unit_times(postgres, operator, st["jobExecutionId"])
        assert len(units) == 100 and all(u["status"] == "COMPLETED" for u in units.values())
        print(
            f"\nMEASURE fan-out run {run}: bare {bare[-1]:.1f}s, operator {through[-1]:.1f}s,"
            f" ratio {through[-1] / bare[-1]:.2f}"
        )
        print(f"\n{_where_the_time_goes(kubectl, ns, name, units, (ended, seen), bare_job)}")
    b, o = statistics.median(bare), statistics.median(through)
    print(
        f"\nMEASURE 100-partition fan-out, median of {FAN_OUT_RUNS} interleaved runs: "
        f"operator {o:.1f}s, bare Indexed Job {b:.1f}s, ratio {o / b:.2f} "
        f"(runs: bare {[round(s, 1) for s in bare]}, operator {[round(s, 1) for s in through]})"
    )
    # Reported, not asserted: timings on a shared 2-core machine are noise (the target is
    # 1.15; see the README). Every run completing, all 100 units once, is what is checked.


# interleaved pairs (bare, operator); 1 in `make e2e` (CI: each pair is ~4 min on 2 CPUs),
# E2E_FANOUT_RUNS=3 for the median the README reports
FAN_OUT_RUNS = int(os.environ.get("E2E_FANOUT_RUNS", "1"))
EXAMPLE_NUMBERS = "/opt/baton/examples/numbers"
# The baseline loads the runtime the way a step does: `import baton` alone is lazy (it
# loads nothing until a name is used), so every public name is loaded.
BARE_CODE = "from baton import *"


def _fan_out_job() -> dict[str, Any]:
    return {
        "apiVersion": "baton.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": "fan-100"},
        "spec": {
            "parameters": [{"name": "n", "type": "int"}],
            "steps": [
                {
                    "name": "work",
                    "tasklet": "counting:check_partition",
                    "partitions": {"count": 100},
                    "parallelism": 20,
                }
            ],
        },
    }


def _bare_indexed_job(
    kubectl: Kubectl, ns: str, name: str, image: str, code: str
) -> tuple[dict[str, Any], float]:
    """100 pods (parallelism 20) of ``python -c CODE`` as a plain Indexed Job: the
    completed Job and its wall time from apply."""
    bare = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "completionMode": "Indexed",
            "completions": 100,
            "parallelism": 20,
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["python", "-c", code],
                        }
                    ],
                }
            },
        },
    }
    start = time.monotonic()
    kubectl.apply(bare, ns)
    done = kubectl.wait_for_job(ns, name, timeout=900)
    return done, time.monotonic() - start


def _epoch(text: str) -> float:
    """A Kubernetes timestamp (whole seconds, UTC) as epoch seconds."""
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def _unit_times(
    postgres: Postgres, db: Database, execution_id: int
) -> tuple[dict[str, dict[str, Any]], float]:
    """Each unit of the execution by pod name (its worker is POD@NODE): status, and
    when it was opened and ended; and when the execution ended (the repository's
    timestamps, microseconds, written with the node's clock)."""
    out = postgres.sql(
        "SELECT split_part(worker, '@', 1), status, extract(epoch FROM start_time), "
        "extract(epoch FROM end_time) FROM baton_step_execution WHERE job_execution_id = "
        f"{int(execution_id)} AND partition >= 0",
        db.name,
    )
    units = {}
    for line in out.splitlines():
        pod, status, opened, ended = line.split("|")
        units[pod] = {"status": status, "opened": float(opened), "ended": float(ended or "nan")}
    done = postgres.sql(
        "SELECT extract(epoch FROM end_time) FROM baton_job_execution "
        f"WHERE id = {int(execution_id)}",
        db.name,
    )
    return units, float(done)


def _pods(kubectl: Kubectl, ns: str, job: str) -> list[dict[str, float]]:
    """The Job's pods' own timestamps: created, container started and finished."""
    items = kubectl.json("-n", ns, "get", "pods", "-l", f"batch.kubernetes.io/job-name={job}")
    pods = []
    for p in items["items"]:
        states = [c["state"] for c in p["status"].get("containerStatuses") or []]
        if not states or "terminated" not in states[0]:
            continue
        ran = states[0]["terminated"]
        pods.append(
            {
                "name": p["metadata"]["name"],
                "created": _epoch(p["metadata"]["creationTimestamp"]),
                "started": _epoch(ran["startedAt"]),
                "finished": _epoch(ran["finishedAt"]),
            }
        )
    return pods


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def _where_the_time_goes(
    kubectl: Kubectl,
    ns: str,
    name: str,
    units: dict[str, dict[str, Any]],
    finished: tuple[float, float],
    bare_job: dict[str, Any],
) -> str:
    """The operator run's time by stage, beside the bare Job's: apply → Job created;
    the Job's own run; per pod (means; Kubernetes timestamps are whole seconds) created
    → container started → unit opened → unit ended → container exited; and from the
    last unit ended to the execution ended in the repository (``finished[0]``) and to
    the phase Completed seen (``finished[1]``)."""
    bx = kubectl.get("bx", name, ns)
    labels = f"baton.dev/execution={name}"
    (job,) = kubectl.json("-n", ns, "get", "jobs", "-l", labels)["items"]
    job = kubectl.wait_for_job(ns, job["metadata"]["name"], timeout=120)
    pods = _pods(kubectl, ns, job["metadata"]["name"])
    bare_pods = _pods(kubectl, ns, bare_job["metadata"]["name"])
    mine = [(p, units[p["name"]]) for p in pods if p["name"] in units]
    last = max(u["ended"] for u in units.values())
    created = _epoch(job["metadata"]["creationTimestamp"])
    applied = _epoch(bx["metadata"]["creationTimestamp"])

    def ran(j: dict[str, Any]) -> float:
        return _epoch(j["status"]["completionTime"]) - _epoch(j["status"]["startTime"])

    def waited(ps: list[dict[str, float]]) -> float:
        return _mean([p["started"] - p["created"] for p in ps])

    def lived(ps: list[dict[str, float]]) -> float:
        return _mean([p["finished"] - p["started"] for p in ps])

    return (
        f"MEASURE fan-out stages: apply → Job created {created - applied:.0f}s;"
        f" Job ran {ran(job):.0f}s (bare {ran(bare_job):.0f}s); last unit ended → execution ended"
        f" {finished[0] - last:.2f}s → phase Completed seen {finished[1] - finished[0]:.1f}s"
        f" (Job complete {_epoch(job['status']['completionTime']) - last:.0f}s after it)\n"
        f"MEASURE fan-out per pod: created → started {waited(pods):.2f}s"
        f" (bare {waited(bare_pods):.2f}s);"
        f" started → exited {lived(pods):.2f}s (bare {lived(bare_pods):.2f}s) ="
        f" started → unit opened {_mean([u['opened'] - p['started'] for p, u in mine]):.2f}s"
        f" + opened → ended {_mean([u['ended'] - u['opened'] for _, u in mine]):.3f}s"
        f" + ended → exited {_mean([p['finished'] - u['ended'] for p, u in mine]):.2f}s"
    )


def test_operator_memory_with_500_executions(kubectl: Kubectl, ns: str, operator: Database) -> None:
    _apply_job(kubectl, ns, "numbers")
    wd = {"workingDir": "/opt/baton/examples/numbers"}
    _execution(kubectl, ns, "first", "count-numbers", {"count": 11}, **wd)
    _wait_phase(kubectl, ns, "first", "Completed")
    docs = [
        json.dumps(
            {
                "apiVersion": "baton.dev/v1alpha1",
                "kind": "BatchExecution",
                "metadata": {"name": f"dup-{i}"},
                "spec": {"job": "count-numbers", "parameters": {"count": 11}, **wd},
            }
        )
        for i in range(500)
    ]
    kubectl("-n", ns, "apply", "-f", "-", input="\n---\n".join(docs), timeout=300)

    def all_rejected() -> bool:
        items = kubectl.json("-n", ns, "get", "bx")["items"]
        phases = [i.get("status", {}).get("phase") for i in items]
        return phases.count("Rejected") == 500

    kubectl.wait_until("500 executions rejected", all_rejected, timeout=600, interval=3)
    rss = _metric(_scrape(kubectl), "process_resident_memory_bytes") / 2**20
    print(f"\nMEASURE operator RSS with 501 BatchExecutions present: {rss:.0f} MiB")
    assert rss < 512


def test_evicted_pod_continues_in_a_new_pod(
    kubectl: Kubectl, ns: str, operator: Database, postgres: Postgres
) -> None:
    """An evicted step pod (DisruptionTarget) stops at a chunk boundary and exits 9: the
    Job starts a new pod that resumes from the checkpoint, in the same attempt (no stop,
    no restart, no retry spent); the disruption is recorded on the status."""
    _apply_job(kubectl, ns, "numbers")
    _execution(
        kubectl, ns, "evict", "count-numbers", {"count": 2200, "delayMs": 8},
        workingDir="/opt/baton/examples/numbers", autoRestart={"onDisruption": True},
    )  # fmt: skip

    def load_pod() -> str | None:
        st = _status(kubectl, ns, "evict")
        load = next((s for s in st.get("steps") or [] if s["name"] == "load"), None)
        pods = kubectl.pods(ns, "baton.dev/step=load")
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        if load and load["writeCount"] >= 100 and running:
            return str(running[0]["metadata"]["name"])
        return None

    pod = kubectl.wait_until("the load pod writing", load_pod, timeout=180, interval=0.5)
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod, "namespace": ns},
    }
    kubectl(
        "create", "--raw", f"/api/v1/namespaces/{ns}/pods/{pod}/eviction", "-f", "-",
        input=json.dumps(eviction),
    )  # fmt: skip
    st = _wait_phase(kubectl, ns, "evict", "Completed", "Failed", timeout=300)
    assert st["phase"] == "Completed", st
    assert (st["attempt"], st.get("autoRestarts"), st["disruptedPod"]) == (1, None, pod)
    assert st.get("observedRestart", 0) == 0  # no user restart was spent
    assert _rows(postgres, operator, 2200) == (2200, 2200)
    events = kubectl("-n", ns, "get", "events", "--field-selector", "involvedObject.name=evict")
    assert "Disrupted" in events.stdout and "AutoRestarted" not in events.stdout
    load = kubectl.json("-n", ns, "get", "jobs", "-l", "baton.dev/step=load")["items"][0]
    assert load["status"].get("failed", 0) == 0, load["status"]  # exit 9: no retry spent


def test_two_replicas_one_active(
    kubectl: Kubectl,
    ns: str,
    operator: Database,
    helm: Callable[..., Any],
    project_image: str,
    postgres: Postgres,
) -> None:
    """Kopf peering: with two operator replicas both register as peers, one works,
    and an execution completes once, with no duplicate Jobs."""
    try:
        helm(
            "upgrade", RELEASE, str(REPO / "charts" / "baton"), "-n", SYSTEM,
            "--reuse-values", "--set", "operator.replicas=2", "--wait", "--timeout", "180s",
        )  # fmt: skip

        def two_peers() -> bool:
            peering = kubectl.json("get", "clusterkopfpeering", RELEASE)
            return len(peering.get("status") or {}) == 2

        kubectl.wait_until("two Kopf peers", two_peers, timeout=120)
        _apply_job(kubectl, ns, "numbers")
        _execution(
            kubectl, ns, "pair", "count-numbers", {"count": 600},
            workingDir="/opt/baton/examples/numbers",
        )  # fmt: skip
        st = _wait_phase(kubectl, ns, "pair", "Completed", "Failed")
        assert st["phase"] == "Completed", st
        assert _jobs(kubectl, ns) == ["pair-1-check", "pair-1-load", "pair-1-prepare"]
        assert _rows(postgres, operator, 600) == (600, 600)
        logs = kubectl(
            "-n", SYSTEM, "logs", "-l", "app.kubernetes.io/component=operator",
            "--tail=-1", "--prefix",
        ).stdout  # fmt: skip
        created = [line for line in logs.splitlines() if "created Job pair-1-" in line]
        assert len(created) == 3, created  # each Job made once, by one replica
        assert len({line.split("]")[0] for line in created}) == 1, created
    finally:
        helm(
            "upgrade", RELEASE, str(REPO / "charts" / "baton"), "-n", SYSTEM,
            "--reuse-values", "--set", "operator.replicas=1", "--wait", "--timeout", "180s",
        )  # fmt: skip


def test_stale_execution_is_failed_automatically_then_restarts(
    kubectl: Kubectl,
    ns: str,
    operator: Database,
    postgres: Postgres,
    e2e_env: dict[str, str],
) -> None:
    """The step's Job vanishes and its process dies without a word (kill -9): the
    repository still says STARTED. The operator notices, marks the execution FAILED
    (restartable), and a restart resumes from the last checkpoint, exactly once."""
    _local_only(e2e_env)
    _apply_job(kubectl, ns, "numbers")
    _execution(
        kubectl, ns, "stale", "count-numbers", {"count": 2400, "delayMs": 8},
        workingDir="/opt/baton/examples/numbers",
    )  # fmt: skip

    def loading() -> list[int] | None:
        st = _status(kubectl, ns, "stale")
        load = next((s for s in st.get("steps") or [] if s["name"] == "load"), None)
        if not load or load["writeCount"] < 100:
            return None
        return step_processes(st["jobExecutionId"], None) or None

    pids = kubectl.wait_until("the load step writing", loading, timeout=180, interval=0.5)
    kubectl("-n", ns, "delete", "job", "stale-1-load", "--cascade=orphan")
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    st = _wait_phase(kubectl, ns, "stale", "Failed", "Completed", "Stopped", timeout=180)
    assert st["phase"] == "Failed", st
    load = next(s for s in st["steps"] if s["name"] == "load")
    assert load["status"] == "FAILED" and "gone" in (load.get("exitDescription") or ""), load
    events = kubectl("-n", ns, "get", "events", "--field-selector", "involvedObject.name=stale")
    assert "StepLost" in events.stdout
    _patch(kubectl, ns, "stale", {"restart": 1})
    st = _wait_phase(kubectl, ns, "stale", "Completed", "Failed", timeout=300)
    assert st["phase"] == "Completed", st
    assert _rows(postgres, operator, 2400) == (2400, 2400)

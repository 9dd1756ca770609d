"""The operator in the real cluster, driven with helm and kubectl only (the fixtures
and helpers are in conftest.py and support.py)."""

from __future__ import annotations

import json
import os
import signal
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
    kubectl: Kubectl, ns: str, operator: Database, project_image: str
) -> None:
    """Wall time of a 100-partition step through the operator vs the same number of
    pods of the same image as a bare Indexed Job (parallelism 20 both)."""
    job = {
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
    kubectl.apply(job, ns)
    start = time.monotonic()
    _execution(kubectl, ns, "f100", "fan-100", {"n": 1}, workingDir="/opt/baton/examples/numbers")
    st = _wait_phase(kubectl, ns, "f100", "Completed", "Failed", timeout=900)
    operator_seconds = time.monotonic() - start
    assert st["phase"] == "Completed", st
    created = kubectl.get("bx", "f100", ns)["metadata"]["creationTimestamp"]
    name = kubectl.json("-n", ns, "get", "jobs", "-l", "baton.dev/step=work")["items"][0]
    work = kubectl.wait_for_job(ns, name["metadata"]["name"], timeout=120)

    def ts(text: str) -> float:
        return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))

    job_created = ts(work["metadata"]["creationTimestamp"]) - ts(created)
    pods = ts(work["status"]["completionTime"]) - ts(work["status"]["startTime"])
    print(
        f"\nMEASURE fan-out: BatchExecution → Job created {job_created:.0f}s, Job ran {pods:.0f}s"
    )
    # the baseline loads the runtime the way a step does: `import baton` alone is lazy
    # since the restructuring (72 ms against 1.26 s), so it is reported apart
    bare_seconds = _bare_indexed_job(kubectl, ns, "bare-100", project_image, "from baton import *")
    lazy_seconds = _bare_indexed_job(kubectl, ns, "bare-lazy", project_image, "import baton")
    ratio = operator_seconds / bare_seconds
    print(
        f"\nMEASURE 100-partition fan-out: operator {operator_seconds:.1f}s, "
        f"bare Indexed Job {bare_seconds:.1f}s, ratio {ratio:.2f} "
        f"(bare Job of a lazy `import baton`: {lazy_seconds:.1f}s, "
        f"ratio {operator_seconds / lazy_seconds:.2f})"
    )
    # Reported, not asserted: timings on a shared 2-core machine are noise (the target is
    # 1.15; see the README). Both Jobs completing is what this scenario checks.


def _bare_indexed_job(kubectl: Kubectl, ns: str, name: str, image: str, code: str) -> float:
    """Seconds for 100 pods (parallelism 20) of ``python -c CODE`` as a plain Indexed Job."""
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
    kubectl.wait_for_job(ns, name, timeout=900)
    return time.monotonic() - start


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

"""Every flow of the flow engine in the real cluster, as Jobs, driven with kubectl only:
sagas (compensations as their own pods, also on abandon), callbacks, map-reduce,
dynamic partitions, a parallel group with the chain context, time-budgeted
incarnations, concurrency (Queued), the Kueue queue label, the BatchJob's status.

What happened inside is checked the way a user would: ``kubectl get``, the example's
own tables, and the ``baton`` CLI pointed at the repository."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import yaml
from conftest import Database, Kubectl, Postgres

from .support import (
    REPO,
    apply_job,
    execution,
    jobs,
    patch,
    status,
    wait_condition,
    wait_phase,
)

pytestmark = pytest.mark.e2e

EXAMPLES = "/opt/baton/examples"
CY = "SELECT count(*) FROM saga_accounts WHERE \"user\" = 'cy'"


def baton(db: Database, *args: str) -> Any:
    """The ``baton`` CLI on this machine against the cluster's repository (JSON out)."""
    proc = subprocess.run(
        [sys.executable, "-m", "baton", *args, "--db", db.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def job_objects(kubectl: Kubectl, ns: str) -> dict[str, dict[str, Any]]:
    items = kubectl.json("-n", ns, "get", "jobs")["items"]
    return {j["metadata"]["name"]: j for j in items}


def test_saga_compensates_in_reverse_with_pods_and_calls_back(
    kubectl: Kubectl, ns: str, operator: Database, postgres: Postgres
) -> None:
    apply_job(kubectl, ns, "saga")
    wd = {"workingDir": f"{EXAMPLES}/saga"}
    execution(kubectl, ns, "ada", "onboard-user", {"user": "ada"}, **wd)
    execution(kubectl, ns, "bob", "onboard-user", {"user": "bob", "failAt": "init-settings"}, **wd)
    assert wait_phase(kubectl, ns, "ada", "Completed", "Failed")["phase"] == "Completed"
    st = wait_phase(kubectl, ns, "bob", "Compensated", "CompensationFailed", "Failed")
    assert st["phase"] == "Compensated", st
    assert "init-settings" in st["exitDescription"]
    made = job_objects(kubectl, ns)
    assert "ada-1-welcome-done-cb" in made and "ada-1-onboarding-failed-cb" not in made
    comps = sorted(n for n in made if n.startswith("bob-") and n.endswith("-comp"))
    assert comps == ["bob-1-create-account-comp", "bob-1-send-email-comp"], sorted(made)
    for name in [*comps, "bob-1-onboarding-failed-cb"]:
        assert made[name]["metadata"]["labels"]["baton.dev/kind"] in ("compensation", "callback")
        # each ran as its own pod (the Job controller counts it a moment after the
        # repository has recorded the unit's end)
        kubectl.wait_for_job(ns, name, timeout=60)
    # the effects, in the example's own tables: bob's account is gone, he got an apology
    db = operator.name
    assert postgres.sql('SELECT "user" FROM saga_accounts ORDER BY 1', db).split() == ["ada"]
    outbox = postgres.sql("SELECT message FROM saga_outbox WHERE \"user\" = 'bob' ORDER BY id", db)
    assert outbox.splitlines() == ["welcome!", "sorry, your sign-up was rolled back"]
    # compensations ran one after the other, latest step first
    history = baton(operator, "history", "onboard-user", "--json")
    mine = [h for h in history if h["execution"] == st["jobExecutionId"]]
    order = [
        h["step"] for h in sorted(mine, key=lambda h: h["startTime"]) if h["kind"] == "compensation"
    ]
    assert order == ["send-email", "create-account"], mine
    assert all(h["worker"] for h in mine)  # the pod each unit ran in
    table = kubectl("-n", ns, "get", "bx").stdout
    assert "Compensated" in table


def test_abandon_compensates_a_stopped_saga(
    kubectl: Kubectl, ns: str, operator: Database, postgres: Postgres
) -> None:
    apply_job(kubectl, ns, "saga")  # compensateOnAbandon: true
    execution(
        kubectl, ns, "cy", "onboard-user", {"user": "cy", "pauseSeconds": 25},
        workingDir=f"{EXAMPLES}/saga",
    )  # fmt: skip

    def emailing() -> bool:
        steps = {s["name"]: s["status"] for s in status(kubectl, ns, "cy").get("steps") or []}
        return steps.get("create-account") == "COMPLETED" and "send-email" in steps

    kubectl.wait_until("send-email running", emailing, timeout=180, interval=0.5)
    patch(kubectl, ns, "cy", {"stop": True})
    st = wait_phase(kubectl, ns, "cy", "Stopped", "Failed", "Completed", timeout=240)
    assert st["phase"] == "Stopped", st
    assert postgres.sql(CY, operator.name) == "1"
    patch(kubectl, ns, "cy", {"abandon": True})
    st = wait_phase(kubectl, ns, "cy", "Compensated", "CompensationFailed", "Abandoned")
    assert st["phase"] == "Compensated", st
    assert "cy-1-create-account-comp" in job_objects(kubectl, ns)
    assert postgres.sql(CY, operator.name) == "0"
    # an abandoned saga never runs again
    patch(kubectl, ns, "cy", {"restart": 1})
    wait_condition(kubectl, ns, "cy", "Restarted")
    assert status(kubectl, ns, "cy")["phase"] == "Compensated"


def test_map_reduce_from_a_steps_result(kubectl: Kubectl, ns: str, operator: Database) -> None:
    apply_job(kubectl, ns, "mapreduce")
    execution(kubectl, ns, "wc", "word-count", {"parts": 6}, workingDir=f"{EXAMPLES}/mapreduce")
    st = wait_phase(kubectl, ns, "wc", "Completed", "Failed", timeout=300)
    assert st["phase"] == "Completed", st
    count = next(
        j
        for j in job_objects(kubectl, ns).values()
        if j["metadata"]["labels"]["baton.dev/step"] == "count"
    )
    assert (count["spec"]["completions"], count["spec"]["parallelism"]) == (6, 3)
    results = baton(operator, "results", str(st["jobExecutionId"]), "--json")
    assert len([r for r in results if r["step"] == "count"]) == 6
    reduce = next(r for r in results if r["step"] == "reduce")["result"]
    assert reduce["words"] == 3400 and reduce["top"][0] == ["the", 440]


def test_dynamic_partitions_added_at_run_time(
    kubectl: Kubectl, ns: str, operator: Database
) -> None:
    apply_job(kubectl, ns, "discovery")
    execution(kubectl, ns, "inbox", "ingest-inbox", {}, workingDir=f"{EXAMPLES}/discovery")
    st = wait_phase(kubectl, ns, "inbox", "Completed", "Failed", timeout=300)
    assert st["phase"] == "Completed", st
    ingest = next(s for s in st["steps"] if s["name"] == "ingest")
    assert (ingest["partitionsTotal"], ingest["partitionsDone"]) == (5, 5)
    made = [
        j
        for j in job_objects(kubectl, ns).values()
        if j["metadata"]["labels"]["baton.dev/step"] == "ingest"
    ]
    assert sum(j["spec"]["completions"] for j in made) == 5
    assert all(j["spec"]["completionMode"] == "Indexed" for j in made)
    results = baton(operator, "results", str(st["jobExecutionId"]), "--json")
    assert next(r for r in results if r["step"] == "summarize")["result"] == {
        "files": 5,
        "lines": 150,
    }


def test_parallel_group_context_and_time_budget(
    kubectl: Kubectl, ns: str, operator: Database
) -> None:
    """examples/nightly: `load` and `audit` run at once; the chain context reaches the
    report; `load` overruns its 2 s budget and continues in new pods (exit 9)."""
    apply_job(kubectl, ns, "nightly")
    execution(
        kubectl, ns, "night", "nightly", {"run.id": 1, "rows": 800, "delayMs": 8},
        workingDir=f"{EXAMPLES}/nightly", context={"requestedBy": "e2e"},
    )  # fmt: skip
    st = wait_phase(kubectl, ns, "night", "Completed", "Failed", timeout=300)
    assert st["phase"] == "Completed", st
    # The repository knows first; the Job controller records the last incarnation's
    # exit a moment later (its replacements of exit-9 pods back off 10 s, 20 s, ...).
    kubectl.wait_for_job(ns, "night-1-load", timeout=120)
    made = job_objects(kubectl, ns)
    load, audit = made["night-1-load"], made["night-1-audit"]
    # a split: audit started (its Job was made) before load had finished
    assert audit["metadata"]["creationTimestamp"] <= load["status"]["completionTime"]
    assert load["metadata"]["creationTimestamp"] <= audit["status"]["completionTime"]
    execution_id = str(st["jobExecutionId"])
    steps = {s["name"]: s for s in baton(operator, "steps", execution_id)}
    assert steps["load"]["incarnations"] >= 2, steps["load"]
    assert (steps["load"]["readCount"], steps["load"]["writeCount"]) == (800, 800)
    pods = kubectl.pods(ns, "baton.dev/step=load")
    assert len(pods) >= 2  # each incarnation is a pod
    results = baton(operator, "results", execution_id, "--json")
    assert next(r for r in results if r["step"] == "report")["result"] == {
        "batch": "run-1",
        "rows": 800,
    }
    shown = baton(operator, "show", execution_id, "--json")
    assert shown["context"]["requestedBy"] == "e2e" and shown["context"]["audited"] is True


def test_concurrency_queues_and_queue_label(kubectl: Kubectl, ns: str, operator: Database) -> None:
    doc = yaml.safe_load((REPO / "examples" / "nightly" / "job.yaml").read_text())
    doc["spec"]["queue"] = "team-a"  # no Kueue here: the label is set, nothing suspends
    kubectl.apply(doc, ns)
    wd = {"workingDir": f"{EXAMPLES}/nightly"}
    execution(kubectl, ns, "n1", "nightly", {"run.id": 11, "rows": 300, "delayMs": 10}, **wd)
    wait_phase(kubectl, ns, "n1", "Running", "Completed")
    execution(kubectl, ns, "n2", "nightly", {"run.id": 12, "rows": 50}, **wd)
    st = wait_phase(kubectl, ns, "n2", "Queued", "Running", "Completed")
    n1 = status(kubectl, ns, "n1")["phase"]
    if n1 == "Running":  # while n1 runs, n2 waits and has no Jobs
        assert st["phase"] == "Queued", st
        assert not [n for n in jobs(kubectl, ns) if n.startswith("n2-")]
    assert wait_phase(kubectl, ns, "n1", "Completed", "Failed")["phase"] == "Completed"
    assert wait_phase(kubectl, ns, "n2", "Completed", "Failed")["phase"] == "Completed"
    first, second = status(kubectl, ns, "n1"), status(kubectl, ns, "n2")
    assert second["startTime"] >= first["endTime"]  # one at a time, in order
    events = kubectl("-n", ns, "get", "events", "--field-selector", "involvedObject.name=n2")
    assert "Queued" in events.stdout
    for job in job_objects(kubectl, ns).values():
        assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    # the BatchJob's status counts its executions
    bj = kubectl.wait_until(
        "the BatchJob status",
        lambda: (
            (s := kubectl.get("batchjob", "nightly", ns).get("status") or {}).get("phases")
            == {"Completed": 2}
            and s
        ),
        timeout=60,
    )
    assert (bj["executions"], bj["lastExecution"], bj["lastPhase"]) == (2, "n2", "Completed")
    assert "n2" in kubectl("-n", ns, "get", "bj").stdout

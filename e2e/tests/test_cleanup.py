"""Cleanup and retention in the real cluster, through kubectl and the ``baton`` CLI:
step Jobs go after their chart TTL (a succeeded one soon, a failed one kept), while
``baton show`` still answers from the repository; a BatchExecution's TTL deletes it only
once it is terminal, and the deletion marks nothing failed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from conftest import Database, Kubectl

from .support import RELEASE, REPO, SYSTEM, apply_job, execution, install_operator, wait_phase

pytestmark = pytest.mark.e2e

EXAMPLES = "/opt/baton/examples"
SUCCESS_TTL = 5
FAILURE_TTL = 900


def baton(db: Database, *args: str) -> Any:
    """The ``baton`` CLI on this machine against the cluster's repository (JSON out)."""
    proc = subprocess.run(
        [sys.executable, "-m", "baton", *args, "--db", db.url, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def step_jobs(kubectl: Kubectl, ns: str, execution_name: str) -> dict[str, dict[str, Any]]:
    items = kubectl.json("-n", ns, "get", "jobs", "-l", f"baton.dev/execution={execution_name}")
    return {j["metadata"]["name"]: j for j in items["items"]}


def execution_or_none(kubectl: Kubectl, ns: str, name: str) -> dict[str, Any] | None:
    proc = kubectl("-n", ns, "get", "bx", name, "-o", "json", check=False)
    if proc.returncode != 0:
        assert "NotFound" in proc.stderr, proc.stderr
        return None
    return dict(json.loads(proc.stdout))


@pytest.fixture
def short_job_ttls(
    kubectl: Kubectl, helm: Callable[..., Any], project_image: str, operator: Database
) -> Iterator[None]:
    """The session's release with short step-Job TTLs for success, long for failure;
    the chart's defaults again afterwards."""
    helm(
        "upgrade", RELEASE, str(REPO / "charts" / "baton"), "-n", SYSTEM, "--reuse-values",
        "--set", f"stepJobs.ttlSecondsAfterSuccess={SUCCESS_TTL}",
        "--set", f"stepJobs.ttlSecondsAfterFailure={FAILURE_TTL}",
        "--wait", "--timeout", "180s",
    )  # fmt: skip
    kubectl("-n", SYSTEM, "rollout", "status", "deploy/baton", "--timeout=180s", timeout=200)
    try:
        yield
    finally:
        install_operator(kubectl, helm, project_image, operator)


def test_step_jobs_go_after_their_ttl_and_baton_show_still_answers(
    kubectl: Kubectl, ns: str, operator: Database, short_job_ttls: None
) -> None:
    apply_job(kubectl, ns, "numbers")
    apply_job(kubectl, ns, "saga")
    numbers = {"workingDir": f"{EXAMPLES}/numbers"}
    # 301: a count no other scenario writes (rows are counted by count in a shared table)
    execution(kubectl, ns, "nums", "count-numbers", {"count": 301}, **numbers)
    saga = {"workingDir": f"{EXAMPLES}/saga", "backoffLimitPerIndex": 0}
    # a user no other scenario onboards (the saga's tables are shared by the run)
    params = {"user": "cleanup-bob", "failAt": "init-settings"}
    execution(kubectl, ns, "bob", "onboard-user", params, **saga)
    done = wait_phase(kubectl, ns, "nums", "Completed", "Failed")
    assert done["phase"] == "Completed", done
    assert wait_phase(kubectl, ns, "bob", "Compensated", "CompensationFailed")["phase"] == (
        "Compensated"
    )
    # every Job of the completed execution goes (with its pods) once its TTL is up
    kubectl.wait_until("nums's Jobs gone", lambda: not step_jobs(kubectl, ns, "nums"), timeout=120)
    kubectl.wait_until(
        "nums's pods gone", lambda: not kubectl.pods(ns, "baton.dev/execution=nums"), timeout=120
    )
    # the saga's succeeded Jobs go too; its failed step's Job stays for debugging
    kubectl.wait_until(
        "bob's succeeded Jobs gone",
        lambda: list(step_jobs(kubectl, ns, "bob")) == ["bob-1-init-settings"],
        timeout=120,
    )
    failed = step_jobs(kubectl, ns, "bob")["bob-1-init-settings"]
    assert failed["spec"]["ttlSecondsAfterFinished"] == FAILURE_TTL
    assert kubectl.pods(ns, "job-name=bob-1-init-settings")  # its pod, with its logs
    # the resources and the repository still say how it ended
    time.sleep(3)  # a reconcile after the Jobs went would show here
    assert execution_or_none(kubectl, ns, "nums")["status"]["phase"] == "Completed"  # type: ignore[index]
    shown = baton(operator, "show", str(done["jobExecutionId"]))
    assert shown["status"] == "COMPLETED"
    assert [s["status"] for s in shown["steps"]] == ["COMPLETED"] * 3
    assert sum(s["writeCount"] for s in shown["steps"]) == 301


def test_execution_ttl_deletes_it_only_once_it_ended(
    kubectl: Kubectl, ns: str, operator: Database
) -> None:
    doc = yaml.safe_load((REPO / "examples" / "numbers" / "job.yaml").read_text())
    doc["spec"]["ttlStrategy"] = {"secondsAfterSuccess": 3, "secondsAfterFailure": 3600}
    kubectl.apply(doc, ns)
    wd = {"workingDir": f"{EXAMPLES}/numbers"}
    # its own TTL (2 s) is far shorter than its run (~20 s): it must outlive it
    execution(
        kubectl, ns, "slow", "count-numbers", {"count": 200, "delayMs": 100},
        ttlSecondsAfterFinished=2, **wd,
    )  # fmt: skip
    execution(kubectl, ns, "stopped", "count-numbers", {"count": 100, "delayMs": 200}, **wd)
    running = wait_phase(kubectl, ns, "slow", "Running")
    execution_id = running["jobExecutionId"]
    kubectl("-n", ns, "patch", "bx", "stopped", "--type", "merge", "-p", '{"spec":{"stop":true}}')
    seen: list[str] = []
    deadline = time.monotonic() + 240
    while (obj := execution_or_none(kubectl, ns, "slow")) is not None:
        seen.append((obj.get("status") or {}).get("phase", ""))
        assert time.monotonic() < deadline, f"not deleted; phases seen {sorted(set(seen))}"
        time.sleep(0.3)
    # it was never deleted while it ran (for far longer than its TTL), only once Completed
    assert "Running" in seen and seen[-1] == "Completed", sorted(set(seen))
    # the deletion marked nothing failed: the repository says COMPLETED
    shown = baton(operator, "show", str(execution_id))
    assert shown["status"] == "COMPLETED", shown
    assert "deleted" not in shown["exitDescription"]
    kubectl.wait_until("its Jobs gone", lambda: not step_jobs(kubectl, ns, "slow"), timeout=120)
    # a Stopped execution takes the job's failure TTL (an hour): it stays, restartable
    assert wait_phase(kubectl, ns, "stopped", "Stopped")["phase"] == "Stopped"
    time.sleep(6)
    assert execution_or_none(kubectl, ns, "stopped") is not None

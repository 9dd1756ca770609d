"""Job manifests: deterministic names, the exit-code contract, Indexed Jobs."""

from __future__ import annotations

from baton.core.status import ExitCode
from baton_operator.config import OperatorConfig
from baton_operator.manifests import MAX_JOB_NAME, job_name, pod_failure_policy, step_job

CFG = OperatorConfig(image="baton:test", db_secret="db", db_secret_key="url")


def test_job_names_are_deterministic_and_short() -> None:
    assert job_name("orders", 1, "load") == "orders-1-load"
    assert job_name("orders", 1, "load") == job_name("orders", 1, "load")
    assert job_name("orders", 2, "load") != job_name("orders", 1, "load")
    long = job_name("x" * 60, 12, "a-very-long-step-name-indeed")
    assert len(long) <= MAX_JOB_NAME
    assert long == job_name("x" * 60, 12, "a-very-long-step-name-indeed")
    assert long != job_name("x" * 60, 12, "a-very-long-step-name-indeeD".lower() + "x")
    assert job_name("e", 1, "s", (0, 1)) != job_name("e", 1, "s", (2,))


def _rule(action: str) -> list[int]:
    for r in pod_failure_policy()["rules"]:
        if r["action"] == action and "onExitCodes" in r:
            return list(r["onExitCodes"]["values"])
    return []


def test_exit_code_contract() -> None:
    never = _rule("FailIndex")
    assert ExitCode.STOPPED in never and ExitCode.FATAL in never
    assert ExitCode.FAILED not in never  # retryable: counted against backoffLimitPerIndex
    assert ExitCode.DATABASE not in never  # the database may come back
    assert _rule("Ignore") == [ExitCode.CONTINUE]
    first = pod_failure_policy()["rules"][0]
    assert first == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}


def test_plain_step_job() -> None:
    job = step_job(
        execution="bx",
        namespace="ns",
        uid="u-1",
        execution_id=7,
        attempt=2,
        step="load",
        config=CFG,
        backoff_limit_per_index=3,
        working_dir="/opt/code",
    )
    assert job["metadata"]["name"] == "bx-2-load"
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("BatchExecution", "u-1", True)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 1, 1)
    assert spec["backoffLimitPerIndex"] == 3
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    c = pod["containers"][0]
    assert c["command"] == ["baton", "step", "7", "load"]
    assert c["image"] == "baton:test"
    assert c["workingDir"] == "/opt/code"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    db = next(e for e in c["env"] if e["name"] == "BATON_DB_URL")
    assert db["valueFrom"]["secretKeyRef"] == {"name": "db", "key": "url"}
    assert all("value" not in e or "postgres" not in e["value"] for e in c["env"])


def test_partitioned_step_is_an_indexed_job_over_pending_partitions() -> None:
    job = step_job(
        execution="bx",
        namespace="ns",
        uid="u",
        execution_id=7,
        attempt=1,
        step="map",
        config=CFG,
        partitions=(3, 5, 7),
        parallelism=2,
    )
    spec = job["spec"]
    assert (spec["completions"], spec["parallelism"]) == (3, 2)
    c = spec["template"]["spec"]["containers"][0]
    assert c["command"][-1] == "--partition-from-index"
    assert {"name": "BATON_PARTITIONS", "value": "3,5,7"} in c["env"]


def test_step_pods_know_they_run_in_a_pod_and_their_grace_period() -> None:
    """SIGTERM in a pod means "this pod is going away" (the step continues in a new pod
    unless the job is STOPPING); the step also needs the grace period, to exit 9 before
    the kubelet's SIGKILL (137, a counted failure)."""
    job = step_job(
        execution="bx", namespace="ns", uid="u", execution_id=7, attempt=1,
        step="load", config=CFG, partitions=(0, 1), stop_grace_seconds=90,
    )  # fmt: skip
    pod = job["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["BATON_EXECUTOR"] == "kubernetes"
    assert env["BATON_TERMINATION_GRACE_SECONDS"] == str(pod["terminationGracePeriodSeconds"])
    assert pod["terminationGracePeriodSeconds"] == 90
    assert job["spec"]["podReplacementPolicy"] == "Failed"  # the new pod once the old ended


def test_step_pods_connect_as_the_chart_says() -> None:
    """steps.databasePool and pgbouncer.enabled reach the step pods as BATON_DB_POOL and
    BATON_DB_POOLER; unset, neither is there (the runtime's default: keep, direct)."""

    def env(config: OperatorConfig, extra: dict[str, str] | None = None) -> dict[str, str]:
        job = step_job(
            execution="bx", namespace="ns", uid="u", execution_id=7, attempt=1,
            step="load", config=config, extra_env=extra,
        )  # fmt: skip
        container = job["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value") for e in container["env"]}

    assert not {"BATON_DB_POOL", "BATON_DB_POOLER"} & set(env(CFG))
    pooled = OperatorConfig.from_env(
        {"BATON_STEP_DB_POOL": "release", "BATON_STEP_DB_POOLER": "baton-pgbouncer.ops.svc:6432"}
    )
    got = env(pooled)
    assert (got["BATON_DB_POOL"], got["BATON_DB_POOLER"]) == (
        "release",
        "baton-pgbouncer.ops.svc:6432",
    )
    assert env(pooled, {"BATON_DB_POOL": "keep"})["BATON_DB_POOL"] == "keep"  # a job's own wins

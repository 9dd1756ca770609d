"""The execution-id label: new Jobs carry ``baton.dev/execution-id``; Jobs an older
operator made (``baton.dev/job-execution-id``) are still read as the execution's."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from baton_operator.config import OperatorConfig
from baton_operator.k8s.cluster import ApiCluster
from baton_operator.manifests import step_job


def _job(labels: dict[str, str]) -> Any:
    return SimpleNamespace(
        metadata=SimpleNamespace(
            name="bx-1-load",
            labels={"baton.dev/execution": "bx", "baton.dev/step": "load", **labels},
            annotations={},
            deletion_timestamp=None,
        ),
        status=SimpleNamespace(conditions=None, active=1, succeeded=0, failed=0),
    )


def _listed(*jobs: Any) -> list[int]:
    cluster = ApiCluster()
    cluster.batch = SimpleNamespace(list_namespaced_job=lambda *a, **k: SimpleNamespace(items=jobs))
    return [j.execution_id for j in cluster.list_jobs("ns", "bx")]


def test_new_jobs_carry_the_execution_id_label() -> None:
    job = step_job(
        execution="bx", namespace="ns", uid="u", execution_id=7, attempt=1, step="load",
        config=OperatorConfig(),
    )  # fmt: skip
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert labels["baton.dev/execution-id"] == "7"
        assert "baton.dev/job-execution-id" not in labels
        assert labels["baton.dev/execution"] == "bx"


def test_jobs_of_an_older_operator_are_read_by_their_old_label() -> None:
    assert _listed(_job({"baton.dev/job-execution-id": "7"})) == [7]
    assert _listed(_job({"baton.dev/execution-id": "8"})) == [8]
    assert _listed(_job({})) == [0]

"""In the cluster, a BatchExecution whose job's args reference an undeclared parameter
(or do not parse) is refused like a bad parameter: phase Rejected, the Launched
condition saying why, nothing in the repository."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from baton.repository import JobRepository
from baton_operator.config import OperatorConfig
from baton_operator.loop import Controller
from fake import FakeCluster
from sqlalchemy import text

NUMBERS = Path(__file__).resolve().parents[2] / "examples" / "numbers"


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("${params.cuont}", "${params.cuont}: unknown parameter 'cuont' (did you mean 'count'?)"),
        ("at ${context.day", "readerArgs.start: unclosed '${'"),
    ],
)
def test_a_reference_that_cannot_bind_rejects_the_execution(
    repo: JobRepository, value: str, needle: str
) -> None:
    job = yaml.safe_load((NUMBERS / "job.yaml").read_text())
    job["spec"]["steps"][1]["chunk"]["readerArgs"] = {"start": value}
    cluster = FakeCluster()
    cluster.apply_job(job)
    cluster.apply_execution("bound", {"job": "count-numbers", "parameters": {"count": 3}})
    op = Controller(repo, cluster, OperatorConfig(image="baton:test"))
    op.reconcile("default", "bound")
    status = cluster.status("bound")
    assert status["phase"] == "Rejected"
    (cond,) = status["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == (
        "Launched",
        "False",
        "InvalidDefinition",
    )
    assert (
        cond["message"].startswith("step 'load': readerArgs.start: ") and needle in cond["message"]
    )
    assert not cluster.jobs
    with repo.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM baton_job_execution")).scalar_one() == 0
        assert c.execute(text("SELECT count(*) FROM baton_job_instance")).scalar_one() == 0


@pytest.mark.parametrize("own_image", [False, True])
def test_a_misspelt_arg_of_a_baton_component_rejects_the_execution(
    repo: JobRepository, own_image: bool
) -> None:
    """Baton's own components ship in the operator's image too, so their args are checked
    at launch; a step with its own image may carry another Baton, so it is left to
    ``baton validate --image`` and the step."""
    job = yaml.safe_load((NUMBERS / "job.yaml").read_text())
    step = job["spec"]["steps"][1]
    step["chunk"]["writer"] = "baton.items:SqlWriter"
    step["chunk"]["writerArgs"] = {"table": "out", "use_copy": False}
    if own_image:
        step["image"] = "example.com/numbers:2"
    cluster = FakeCluster()
    cluster.apply_job(job)
    cluster.apply_execution("misspelt", {"job": "count-numbers", "parameters": {"count": 3}})
    Controller(repo, cluster, OperatorConfig(image="baton:test")).reconcile("default", "misspelt")
    status = cluster.status("misspelt")
    if own_image:
        assert status["phase"] != "Rejected"
        return
    assert status["phase"] == "Rejected"
    (cond,) = status["conditions"]
    assert cond["reason"] == "InvalidDefinition"
    assert "unknown writerArgs 'use_copy'" in cond["message"]
    assert not cluster.jobs
    with repo.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM baton_job_instance")).scalar_one() == 0

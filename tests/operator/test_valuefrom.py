"""``spec.parameterSources`` through the operator and the FakeCluster: ConfigMap values
are bound like literal parameters; Secret values are checked to exist, never identifying,
stored redacted and never shown; a missing ConfigMap, Secret or key rejects the launch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from baton.core.errors import InvalidParameters
from baton.repository import JobRepository
from baton_operator.config import OperatorConfig
from baton_operator.loop import Controller
from baton_operator.valuefrom import REDACTED, lookups
from fake import FakeCluster

ROOT = Path(__file__).resolve().parents[2]
NUMBERS = ROOT / "examples" / "numbers"
NS = "team-v"
SECRET = "s3cr3t-Pa55word"


@pytest.fixture(autouse=True)
def _importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(NUMBERS))


def job(token_type: str = "string") -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((NUMBERS / "job.yaml").read_text())
    default = "none" if token_type == "string" else 0
    doc["spec"]["parameters"].append({"name": "token", "type": token_type, "default": default})
    return doc


@pytest.fixture
def cluster() -> FakeCluster:
    c = FakeCluster()
    c.apply_job(job(), namespace=NS)
    c.config_maps[(NS, "settings")] = {"count": "30"}
    c.secrets[(NS, "creds")] = {"token": SECRET}
    return c


@pytest.fixture
def op(repo: JobRepository, cluster: FakeCluster) -> Controller:
    return Controller(repo, cluster, OperatorConfig(image="baton:test"))


def settle(op: Controller, cluster: FakeCluster, repo: JobRepository, name: str) -> Any:
    for _ in range(30):
        op.reconcile(NS, name)
        if not cluster.run_jobs(repo):
            op.reconcile(NS, name)
            break
    return cluster.status(name, NS).get("phase")


def source(name: str, kind: str, obj: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {kind: {"name": obj, "key": key}}}


def launched_rejection(cluster: FakeCluster, name: str) -> dict[str, Any]:
    conditions = cluster.status(name, NS)["conditions"]
    return dict(next(c for c in conditions if c["type"] == "Launched"))


def test_configmap_and_secret_sources_are_resolved_once_at_launch(
    op: Controller, cluster: FakeCluster, repo: JobRepository
) -> None:
    spec = {
        "job": "count-numbers",
        "parameterSources": [
            source("count", "configMapKeyRef", "settings", "count"),
            source("token", "secretKeyRef", "creds", "token"),
        ],
    }
    cluster.apply_execution("from-sources", spec, namespace=NS)
    assert settle(op, cluster, repo, "from-sources") == "Completed"
    execution = repo.get_execution(cluster.status("from-sources", NS)["jobExecutionId"])
    params = execution.parameters
    assert params["count"].value == 30 and params["count"].identifying
    assert params["token"].value == REDACTED and not params["token"].identifying
    # the secret is nowhere: not in the repository's parameters, status or events
    jobs = [j.manifest for j in cluster.jobs.values()]
    shown = json.dumps([list(cluster.executions.values()), cluster.events, jobs, params.as_json()])
    assert SECRET not in shown


def test_secret_value_does_not_make_a_new_instance(
    op: Controller, cluster: FakeCluster, repo: JobRepository
) -> None:
    spec = {
        "job": "count-numbers",
        "parameters": {"count": 20},
        "parameterSources": [source("token", "secretKeyRef", "creds", "token")],
    }
    cluster.apply_execution("first", spec, namespace=NS)
    assert settle(op, cluster, repo, "first") == "Completed"
    cluster.secrets[(NS, "creds")] = {"token": "another-one"}
    cluster.apply_execution("second", spec, namespace=NS)
    assert settle(op, cluster, repo, "second") == "Rejected"
    assert launched_rejection(cluster, "second")["reason"] == "JobInstanceAlreadyComplete"


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        (
            [source("count", "configMapKeyRef", "nope", "count")],
            "parameter 'count': ConfigMap 'nope' not found",
        ),
        (
            [source("count", "configMapKeyRef", "settings", "missing")],
            "parameter 'count': ConfigMap 'settings' has no key 'missing'",
        ),
        (
            [
                source("count", "configMapKeyRef", "settings", "count"),
                source("token", "secretKeyRef", "gone", "token"),
            ],
            "parameter 'token': Secret 'gone' not found",
        ),
    ],
)
def test_missing_source_rejects_with_the_reason(
    op: Controller,
    cluster: FakeCluster,
    repo: JobRepository,
    sources: list[dict[str, Any]],
    expected: str,
) -> None:
    cluster.apply_execution("bad", {"job": "count-numbers", "parameterSources": sources}, NS)
    assert settle(op, cluster, repo, "bad") == "Rejected"
    cond = launched_rejection(cluster, "bad")
    assert cond["reason"] == "InvalidParameters"
    assert expected in cond["message"]
    assert repo.executions(job="count-numbers", namespace=NS) == []


def test_secret_parameter_must_be_a_string(repo: JobRepository) -> None:
    cluster = FakeCluster()
    cluster.apply_job(job(token_type="int"), namespace=NS)
    cluster.secrets[(NS, "creds")] = {"token": "12345"}
    op = Controller(repo, cluster, OperatorConfig(image="baton:test"))
    spec = {
        "job": "count-numbers",
        "parameters": {"count": 5},
        "parameterSources": [source("token", "secretKeyRef", "creds", "token")],
    }
    cluster.apply_execution("typed", spec, namespace=NS)
    assert settle(op, cluster, repo, "typed") == "Rejected"
    message = launched_rejection(cluster, "typed")["message"]
    assert "comes from a Secret and must be declared type string" in message
    assert "12345" not in json.dumps([list(cluster.executions.values()), cluster.events])


def test_lookups_need_exactly_one_source_and_unique_names() -> None:
    both: dict[str, Any] = {
        "name": "a",
        "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}},
    }
    both["valueFrom"]["secretKeyRef"] = {"name": "s", "key": "k"}
    with pytest.raises(InvalidParameters, match="exactly one of"):
        lookups({"parameterSources": [both]})
    with pytest.raises(InvalidParameters, match="exactly one of"):
        lookups({"parameterSources": [{"name": "a", "valueFrom": {}}]})
    twice = source("a", "configMapKeyRef", "c", "k")
    with pytest.raises(InvalidParameters, match="'a' is given more than once"):
        lookups({"parameters": {"a": "1"}, "parameterSources": [twice]})
    with pytest.raises(InvalidParameters, match="'a' is given more than once"):
        lookups({"parameterSources": [twice, twice]})
    found = lookups({"parameterSources": [source("b", "secretKeyRef", "s", "k")]})
    assert [(x.parameter, x.secret, x.ref.name, x.ref.key) for x in found] == [
        ("b", True, "s", "k")
    ]


def test_execution_crd_carries_the_admission_rules() -> None:
    """What the API server checks at ``kubectl apply`` (proven against it in e2e)."""
    crd = yaml.safe_load((ROOT / "crds" / "baton.dev_batchexecutions.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    sources = spec["properties"]["parameterSources"]
    assert sources["x-kubernetes-list-map-keys"] == ["name"]
    assert sources["maxItems"] == 64
    item_rules = [r["rule"] for r in sources["items"]["x-kubernetes-validations"]]
    assert item_rules == ["has(self.valueFrom.configMapKeyRef) != has(self.valueFrom.secretKeyRef)"]
    assert [r["rule"] for r in sources["x-kubernetes-validations"]] == ["self == oldSelf"]
    spec_rules = [r["message"] for r in spec["x-kubernetes-validations"]]
    assert "a parameter is given both in parameters and in parameterSources" in spec_rules
    assert "a parameter name has 1 to 255 characters" in spec_rules
    assert "spec.parameterSources is immutable; create a new BatchExecution" in spec_rules

"""``spec.parameters[].valueFrom`` (list and map forms) through the operator and the
FakeCluster: ConfigMap values are bound like literal parameters; Secret values are
checked to exist, never identifying, stored redacted and never shown, and reach the step
by secretKeyRef; a missing ConfigMap, Secret or key rejects the launch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from baton.core.errors import InvalidParameters
from baton.core.parameters import JobParameter, JobParameters, ParamType, secret_env_name, unseal
from baton.repository import JobRepository
from baton_operator.config import OperatorConfig
from baton_operator.loop import Controller
from baton_operator.valuefrom import REDACTED, parse, secret_env
from fake import FakeCluster

ROOT = Path(__file__).resolve().parents[2]
NUMBERS = ROOT / "examples" / "numbers"
NS = "team-v"
SECRET = "s3cr3t-Pa55word"
CREDS = {"name": "creds", "key": "token"}


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


def as_map(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The same parameters in the map form: NAME: VALUE or NAME: {valueFrom: ...}."""
    return {
        e["name"]: e["value"] if "value" in e else {"valueFrom": e["valueFrom"]} for e in entries
    }


FORMS = [pytest.param(lambda es: es, id="list"), pytest.param(as_map, id="map")]


def launched_rejection(cluster: FakeCluster, name: str) -> dict[str, Any]:
    conditions = cluster.status(name, NS)["conditions"]
    return dict(next(c for c in conditions if c["type"] == "Launched"))


@pytest.mark.parametrize("form", FORMS)
def test_configmap_and_secret_sources_are_resolved_once_at_launch(
    op: Controller, cluster: FakeCluster, repo: JobRepository, form: Any
) -> None:
    entries = [
        source("count", "configMapKeyRef", "settings", "count"),
        source("token", "secretKeyRef", "creds", "token"),
        {"name": "delayMs", "value": 0},
    ]
    cluster.apply_execution(
        "from-sources", {"job": "count-numbers", "parameters": form(entries)}, NS
    )
    assert settle(op, cluster, repo, "from-sources") == "Completed"
    execution = repo.get_execution(cluster.status("from-sources", NS)["jobExecutionId"])
    params = execution.parameters
    assert params["count"].value == 30 and params["count"].identifying
    assert params["token"].value == REDACTED and not params["token"].identifying
    # the pods get the secret by reference, never by value
    for j in cluster.jobs.values():
        env = j.manifest["spec"]["template"]["spec"]["containers"][0]["env"]
        ref = next(e for e in env if e["name"] == "BATON_SECRET_PARAM_TOKEN")
        assert ref == {
            "name": "BATON_SECRET_PARAM_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}},
        }
    # the secret is nowhere: not in the repository's parameters, status, events or Jobs
    jobs = [j.manifest for j in cluster.jobs.values()]
    shown = json.dumps([list(cluster.executions.values()), cluster.events, jobs, params.as_json()])
    assert SECRET not in shown


def test_the_step_sees_the_secret_value(
    repo: JobRepository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ctx.params`` in the step process holds the Secret's value (the pod's env from
    the secretKeyRef), while the repository keeps ``<redacted>``."""
    (tmp_path / "usesecret.py").write_text(
        "def use(ctx):\n"
        f"    if ctx.params['token'] != {SECRET!r}:\n"
        "        raise RuntimeError('the step did not get the secret')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cluster = FakeCluster()
    cluster.apply_job(
        {
            "apiVersion": "baton.dev/v1alpha1",
            "kind": "BatchJob",
            "metadata": {"name": "uses-secret"},
            "spec": {
                "parameters": [{"name": "token", "type": "string"}],
                "steps": [{"name": "use", "tasklet": "usesecret:use"}],
            },
        },
        namespace=NS,
    )
    cluster.secrets[(NS, "creds")] = {"token": SECRET}
    op = Controller(repo, cluster, OperatorConfig(image="baton:test"))
    spec = {"job": "uses-secret", "parameters": [source("token", "secretKeyRef", "creds", "token")]}
    cluster.apply_execution("secret-user", spec, NS)
    assert settle(op, cluster, repo, "secret-user") == "Completed"
    execution = repo.get_execution(cluster.status("secret-user", NS)["jobExecutionId"])
    assert execution.parameters["token"].value == REDACTED


def test_secret_value_does_not_make_a_new_instance(
    op: Controller, cluster: FakeCluster, repo: JobRepository
) -> None:
    spec = {
        "job": "count-numbers",
        "parameters": {"count": 20, "token": {"valueFrom": {"secretKeyRef": CREDS}}},
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
    cluster.apply_execution("bad", {"job": "count-numbers", "parameters": sources}, NS)
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
        "parameters": [
            {"name": "count", "value": 5},
            source("token", "secretKeyRef", "creds", "token"),
        ],
    }
    cluster.apply_execution("typed", spec, namespace=NS)
    assert settle(op, cluster, repo, "typed") == "Rejected"
    message = launched_rejection(cluster, "typed")["message"]
    assert "comes from a Secret and must be declared type string" in message
    assert "12345" not in json.dumps([list(cluster.executions.values()), cluster.events])


BOTH = {"configMapKeyRef": {"name": "c", "key": "k"}, "secretKeyRef": {"name": "s", "key": "k"}}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([{"name": "a", "valueFrom": BOTH}], "valueFrom needs exactly one of"),
        ({"a": {"valueFrom": {}}}, "valueFrom needs exactly one of"),
        (
            [{"name": "a", "value": 1}, source("a", "configMapKeyRef", "c", "k")],
            "'a' is given more",
        ),
        ([{"name": "a"}], "'a' needs exactly one of value or valueFrom"),
        ([{"name": "a", "value": 1, "valueFrom": BOTH}], "'a' needs exactly one of value or"),
        ({"a": {"value": 1}}, "parameter 'a': an object value is {valueFrom: ...}"),
        ({"a": [1, 2]}, "parameter 'a': a value is a string, a number, a boolean"),
        ([{"value": 1}], "spec.parameters[0]: name: Field required"),
        ("count=3", "spec.parameters is a map NAME: VALUE or a list"),
        (
            [source("db-pw", "secretKeyRef", "s", "k"), source("db_pw", "secretKeyRef", "s", "j")],
            "share the environment variable BATON_SECRET_PARAM_DB_PW",
        ),
    ],
)
def test_parse_refuses_what_cannot_be_bound(raw: Any, expected: str) -> None:
    with pytest.raises(InvalidParameters) as e:
        parse(raw)
    assert expected in str(e.value)


def test_parse_reads_both_forms_alike() -> None:
    entries = [
        {"name": "n", "value": 3},
        {"name": "flag", "value": True},
        {"name": "ratio", "value": 0.5},
        source("b", "secretKeyRef", "s", "k"),
    ]
    for raw in (entries, as_map(entries)):
        parsed = parse(raw)
        assert parsed.literal == {"n": 3, "flag": "true", "ratio": "0.5"}
        assert [(x.parameter, x.secret, x.ref.name, x.ref.key) for x in parsed.lookups] == [
            ("b", True, "s", "k")
        ]
    assert parse(None) == parse({}) == parse([])
    assert secret_env(entries) == [
        {"name": "BATON_SECRET_PARAM_B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
    ]


def test_unseal_gives_the_step_the_secret_and_nothing_else() -> None:
    params = JobParameters(
        (
            JobParameter("token", ParamType.STRING, REDACTED, False),
            JobParameter("other", ParamType.STRING, REDACTED, False),
            JobParameter("count", ParamType.INT, 3, True),
        )
    )
    env = {secret_env_name("token"): SECRET, secret_env_name("count"): "99"}
    assert unseal(params, env) == {"token": SECRET, "other": REDACTED, "count": 3}


def test_execution_crd_leaves_parameters_to_the_admission_policy() -> None:
    """``spec.parameters`` takes two forms, so the CRD cannot type it and its CEL cannot
    see into it: the chart's ValidatingAdmissionPolicy checks it (proven in e2e)."""
    crd = yaml.safe_load((ROOT / "crds" / "baton.dev_batchexecutions.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["parameters"]["x-kubernetes-preserve-unknown-fields"] is True
    policy = (ROOT / "charts" / "baton" / "templates" / "admission-policy.yaml").read_text()
    assert "spec.parameters is immutable; create a new BatchExecution" in policy
    assert "spec.parameters[]: a parameter is given more than once" in policy

"""Pod template overlays merged into the step Job: order, strategic-merge lists, per-step
overrides, and Baton's contract fields kept (or the overlay refused)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from baton.spec.model import JobSpec
from baton_operator.config import OperatorConfig, step_defaults
from baton_operator.k8s.crdgen import crds
from baton_operator.manifests import step_job
from baton_operator.podtemplate import TemplateError, apply_all, step_image, step_layers
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

CFG = OperatorConfig(image="baton:test", db_secret="db", db_secret_key="url")


def job(cfg: OperatorConfig = CFG, step: str = "work", **kw: Any) -> dict[str, Any]:
    return step_job(
        execution="x", namespace="ns", uid="u", execution_id=7, attempt=1, step=step,
        config=cfg, **kw,
    )  # fmt: skip


def pod(manifest: dict[str, Any]) -> dict[str, Any]:
    t: dict[str, Any] = manifest["spec"]["template"]
    return t


def step_container(p: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = p["spec"]["containers"][0]
    assert c["name"] == "step"
    return c


def env_of(p: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in step_container(p)["env"]}


def test_merge_order_defaults_job_step_execution() -> None:
    cfg = OperatorConfig(
        image="baton:test",
        step_defaults={
            "metadata": {"labels": {"a": "defaults", "b": "defaults"}},
            "spec": {"env": [{"name": "A", "value": "defaults"}], "nodeSelector": {"n": "d"}},
        },
    )
    layer = {"spec": {"env": [{"name": "A", "value": "job"}, {"name": "B", "value": "job"}]}}
    step = {"metadata": {"labels": {"b": "step"}}, "spec": {"env": [{"name": "B", "value": "s"}]}}
    launch = {"spec": {"env": [{"name": "C", "value": "launch"}], "nodeSelector": {"m": "e"}}}
    p = pod(job(cfg, templates=[("job", layer), ("step", step), ("launch", launch)]))
    env = env_of(p)
    assert (env["A"], env["B"], env["C"]) == ("job", "s", "launch")
    names = [e["name"] for e in step_container(p)["env"]]
    assert names[0] == "BATON_DB_URL" and names[-3:] == ["A", "B", "C"]
    assert p["metadata"]["labels"]["a"] == "defaults" and p["metadata"]["labels"]["b"] == "step"
    assert p["spec"]["nodeSelector"] == {"n": "d", "m": "e"}


def test_lists_merge_by_key_and_tolerations_append() -> None:
    a = {
        "spec": {
            "volumes": [{"name": "data", "configMap": {"name": "v1"}}],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            "tolerations": [{"key": "a", "operator": "Exists"}],
            "imagePullSecrets": [{"name": "reg"}],
            "sidecars": [{"name": "proxy", "image": "p:1"}],
        }
    }
    b = {
        "spec": {
            "volumes": [{"name": "data", "configMap": {"name": "v2"}}],
            "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
            "tolerations": [{"key": "b", "operator": "Exists"}],
            "imagePullSecrets": [{"name": "reg"}, {"name": "other"}],
            "sidecars": [{"name": "proxy", "image": "p:2"}],
        }
    }
    p = pod(job(templates=[("a", a), ("b", b)]))["spec"]
    assert p["volumes"] == [
        {"name": "tmp", "emptyDir": {}},
        {"name": "data", "configMap": {"name": "v2"}},
    ]
    mounts = step_container({"spec": p})["volumeMounts"]
    assert mounts[-1] == {"name": "data", "mountPath": "/data", "readOnly": True}
    assert [t["key"] for t in p["tolerations"]] == ["a", "b"]
    assert p["imagePullSecrets"] == [{"name": "reg"}, {"name": "other"}]
    assert [(c["name"], c.get("image")) for c in p["containers"][1:]] == [("proxy", "p:2")]


def test_hardened_defaults_stay_unless_relaxed_explicitly() -> None:
    base = pod(job())
    relaxed = pod(job(templates=[("job", {"spec": {
        "securityContext": {"readOnlyRootFilesystem": False},
        "podSecurityContext": {"runAsUser": 2000},
        "resources": {"limits": {"memory": "2Gi"}},
    }})]))  # fmt: skip
    sc = step_container(relaxed)["securityContext"]
    assert sc["readOnlyRootFilesystem"] is False
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert relaxed["spec"]["securityContext"]["runAsNonRoot"] is True
    assert relaxed["spec"]["securityContext"]["runAsUser"] == 2000
    res = step_container(relaxed)["resources"]
    assert res["limits"] == {"memory": "2Gi"} and res["requests"] == {
        "cpu": "50m",
        "memory": "64Mi",
    }
    assert step_container(base)["securityContext"]["readOnlyRootFilesystem"] is True


SPEC = JobSpec.model_validate(
    {
        "image": "app:1",
        "template": {"spec": {"resources": {"requests": {"cpu": "100m"}}}},
        "steps": [
            {"name": "extract", "tasklet": "m:f"},
            {
                "name": "train",
                "tasklet": "m:g",
                "image": "app-gpu:1",
                "template": {
                    "spec": {
                        "resources": {"limits": {"example.com/gpu": "1"}},
                        "tolerations": [
                            {"key": "example.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                        ],
                    }
                },
            },
            {
                "parallel": [{"name": "p1", "tasklet": "m:f"}],
                "template": {"metadata": {"labels": {"group": "yes"}}},
            },
        ],
        "onFailure": {
            "name": "alert",
            "tasklet": "m:f",
            "template": {"spec": {"priorityClassName": "high"}},
        },
    }
)


def spec_job(step: str) -> dict[str, Any]:
    return pod(job(step=step, image=step_image(SPEC, step), templates=step_layers(SPEC, step)))


def test_one_step_gets_a_gpu_and_a_toleration_the_others_not() -> None:
    train, extract = spec_job("train"), spec_job("extract")
    assert step_container(train)["resources"]["limits"]["example.com/gpu"] == "1"
    assert step_container(train)["resources"]["requests"]["cpu"] == "100m"
    assert train["spec"]["tolerations"][0]["key"] == "example.com/gpu"
    assert step_container(train)["image"] == "app-gpu:1"
    assert "example.com/gpu" not in step_container(extract)["resources"]["limits"]
    assert "tolerations" not in extract["spec"]
    assert step_container(extract)["image"] == "app:1"
    assert step_container(extract)["resources"]["requests"]["cpu"] == "100m"


def test_group_members_and_callbacks_take_their_templates() -> None:
    assert spec_job("p1")["metadata"]["labels"]["group"] == "yes"
    assert spec_job("alert")["spec"]["priorityClassName"] == "high"
    assert "group" not in spec_job("extract")["metadata"]["labels"]


def test_step_defaults_come_from_the_chart_and_are_checked() -> None:
    text = json.dumps({"spec": {"imagePullSecrets": [{"name": "reg"}]}})
    cfg = OperatorConfig.from_env({"BATON_STEP_DEFAULTS": text})
    assert cfg.step_defaults == {"spec": {"imagePullSecrets": [{"name": "reg"}]}}
    assert pod(job(cfg))["spec"]["imagePullSecrets"] == [{"name": "reg"}]
    assert step_defaults("") == {} and step_defaults("{}") == {}
    with pytest.raises(ValidationError):
        step_defaults(json.dumps({"spec": {"env": [{"name": "BATON_DB_URL", "value": "x"}]}}))


@pytest.mark.parametrize(
    "bad",
    [
        {"spec": {"env": [{"name": "BATON_EXECUTOR", "value": "local"}]}},
        {"spec": {"sidecars": [{"name": "step", "image": "evil"}]}},
        {"metadata": {"labels": {"baton.dev/execution": "other"}}},
    ],
)
def test_a_contract_override_is_refused_in_one_line(bad: dict[str, Any]) -> None:
    with pytest.raises(TemplateError) as e:
        job(templates=[("BatchExecution template", bad)])
    assert str(e.value).startswith("BatchExecution template: template: ")
    assert "\n" not in str(e.value)


# --------------------------------------------------------------- hypothesis

NAMES = st.sampled_from(["A", "B", "BATON_DB_URL", "BATON_EXECUTOR", "POD_NAME", "step", "tmp"])
KEYS = st.sampled_from(["team", "baton.dev/step", "baton.dev/execution", "x"])
SCALAR = st.one_of(st.text(max_size=5), st.integers(0, 3), st.booleans())
OBJ = st.dictionaries(
    st.sampled_from(["name", "value", "image", "key", "mountPath"]), SCALAR, max_size=3
)


def named(extra: dict[str, Any]) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(st.builds(lambda n: {"name": n, **extra}, NAMES), max_size=2)


ENV = st.builds(lambda n, v: {"name": n, "value": v}, NAMES, SCALAR)
QUANTITIES = st.dictionaries(st.sampled_from(["cpu", "memory", "x/gpu"]), st.text(max_size=3))
SECURITY = st.dictionaries(st.sampled_from(["readOnlyRootFilesystem", "privileged"]), st.booleans())
SPEC_FIELDS = {
    "env": st.lists(ENV, max_size=4),
    "sidecars": named({"image": "i"}),
    "initContainers": named({}),
    "volumes": named({"emptyDir": {}}),
    "volumeMounts": st.lists(OBJ, max_size=2),
    "tolerations": st.lists(OBJ, max_size=2),
    "resources": st.dictionaries(st.sampled_from(["limits", "requests"]), QUANTITIES),
    "securityContext": SECURITY,
    "nodeSelector": st.dictionaries(KEYS, st.text(max_size=3), max_size=2),
}
LABELS = st.dictionaries(KEYS, st.text(max_size=3), max_size=3)
OVERLAY = st.fixed_dictionaries(
    {},
    optional={
        "metadata": st.fixed_dictionaries({}, optional={"labels": LABELS}),
        "spec": st.fixed_dictionaries({}, optional=SPEC_FIELDS),
    },
)


def contract(p: dict[str, Any]) -> Any:
    c = step_container(p)
    ours = [e for e in c["env"] if e["name"].startswith("BATON_")]
    labels = {k: v for k, v in p["metadata"]["labels"].items() if k.startswith("baton.dev/")}
    steps = [x for x in p["spec"]["containers"] if x["name"] == "step"]
    return c["command"], c["image"], ours, labels, p["spec"]["restartPolicy"], len(steps)


@settings(max_examples=200, deadline=None)
@given(st.lists(OVERLAY, max_size=4))
def test_random_overlays_keep_the_contract_or_are_refused(overlays: list[dict[str, Any]]) -> None:
    base = pod(job())
    before = copy.deepcopy(overlays)
    layers = [(f"layer {i}", o) for i, o in enumerate(overlays)]
    try:
        merged = apply_all(base, layers)
    except TemplateError as e:
        assert "\n" not in str(e) and "template:" in str(e)
        return
    assert contract(merged) == contract(base)
    assert overlays == before  # the overlays are not mutated


# --------------------------------------------------------------- CRD schema


def _template(crd: dict[str, Any], *path: str) -> Any:
    node = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for p in path:
        node = node["properties"][p] if p != "[]" else node["items"]
    return node


def test_crds_carry_the_real_kubernetes_schemas() -> None:
    jobs, executions = crds()["baton.dev_batchjobs.yaml"], crds()["baton.dev_batchexecutions.yaml"]
    tol = _template(jobs, "template", "spec", "tolerations", "[]")
    assert tol["properties"]["operator"]["enum"] == ["Exists", "Equal"]
    step_tol = _template(jobs, "steps", "[]", "template", "spec", "tolerations", "[]")
    assert step_tol["properties"]["effect"]["enum"][1:] == [
        "NoSchedule",
        "PreferNoSchedule",
        "NoExecute",
    ]
    branch = _template(jobs, "steps", "[]", "parallel", "[]", "template", "spec", "volumes", "[]")
    assert "configMap" in branch["properties"] and "persistentVolumeClaim" in branch["properties"]
    assert "envFrom" in _template(jobs, "onFailure", "template", "spec")["properties"]
    limits = _template(executions, "template", "spec", "resources")["properties"]["limits"]
    assert limits["additionalProperties"] == {"x-kubernetes-int-or-string": True}
    rules = _template(executions, "template")["x-kubernetes-validations"]
    assert rules[0]["rule"] == "self == oldSelf"
    text = json.dumps(_template(jobs, "template"))
    assert "$ref" not in text and "preserve-unknown-fields" not in text


def test_the_batchjob_crd_stays_small() -> None:
    """Under kubectl's 256 KiB last-applied annotation (and far under etcd's limit)."""
    from baton_operator.k8s.crdgen import render

    assert len(render()["baton.dev_batchjobs.yaml"].encode()) < 256 * 1024
    assert (
        yaml.safe_load(render()["baton.dev_batchjobs.yaml"])["kind"] == "CustomResourceDefinition"
    )

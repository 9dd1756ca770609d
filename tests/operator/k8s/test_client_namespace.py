"""The cluster commands act in the namespace kubectl would: --namespace, else the
kubeconfig context's (--context, else the current one), else ``default``."""

from __future__ import annotations

from pathlib import Path

import yaml
from baton_operator.k8s.client import default_namespace

CLUSTER = {"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}
USER = {"name": "u", "user": {"token": "t"}}


def kubeconfig(tmp_path: Path, current: str) -> str:
    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [CLUSTER],
                "users": [USER],
                "contexts": [
                    {"name": "a", "context": {"cluster": "c", "user": "u", "namespace": "team-a"}},
                    {"name": "plain", "context": {"cluster": "c", "user": "u"}},
                ],
                "current-context": current,
            }
        )
    )
    return str(path)


def test_the_context_namespace_is_the_default(tmp_path: Path) -> None:
    cfg = kubeconfig(tmp_path, "a")
    assert default_namespace(cfg, None) == "team-a"
    assert default_namespace(cfg, "plain") == "default"
    assert default_namespace(kubeconfig(tmp_path, "plain"), "a") == "team-a"
    assert default_namespace(str(tmp_path / "missing"), None) == "default"

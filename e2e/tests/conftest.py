"""Fixtures of the operator scenarios: one Helm release (namespace baton-system) for
the whole session; each test works in its own namespace, which gets a Secret
``baton-db`` with the repository URL for its step pods (the chart's Secret lives in
the release namespace)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import Database, Kubectl

from .support import RELEASE, SYSTEM, install_operator


@pytest.fixture(scope="session")
def operator(
    kubectl: Kubectl,
    helm: Callable[..., Any],
    project_image: str,
    new_database: Callable[[], Database],
) -> Iterator[Database]:
    """The chart installed (CRDs, RBAC, operator Deployment), ready; yields its database."""
    db = new_database()
    helm("uninstall", RELEASE, "-n", SYSTEM, "--wait", check=False)
    install_operator(kubectl, helm, project_image, db)
    yield db
    if os.environ.get("E2E_KEEP_NAMESPACES") != "1":
        helm("uninstall", RELEASE, "-n", SYSTEM, "--wait", check=False)


@pytest.fixture
def ns(kubectl: Kubectl, namespace: str, operator: Database) -> str:
    kubectl(
        "-n", namespace, "create", "secret", "generic", "baton-db",
        f"--from-literal=url={operator.url}",
    )  # fmt: skip
    return namespace

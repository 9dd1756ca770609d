"""Operator settings, read once from the environment (the Helm chart sets them)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class OperatorConfig:
    image: str = "baton:dev"
    image_pull_policy: str = "IfNotPresent"
    db_secret: str = "baton-db"
    db_secret_key: str = "url"
    poll_seconds: float = 2.0
    progress_seconds: float = 10.0
    metrics_port: int = 9090
    step_cpu_request: str = "50m"
    step_memory_request: str = "64Mi"
    step_memory_limit: str = "512Mi"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> OperatorConfig:
        e = dict(os.environ if env is None else env)
        d = cls()
        return cls(
            image=e.get("BATON_IMAGE", d.image),
            image_pull_policy=e.get("BATON_IMAGE_PULL_POLICY", d.image_pull_policy),
            db_secret=e.get("BATON_DB_SECRET", d.db_secret),
            db_secret_key=e.get("BATON_DB_SECRET_KEY", d.db_secret_key),
            poll_seconds=float(e.get("BATON_POLL_SECONDS", d.poll_seconds)),
            progress_seconds=float(e.get("BATON_PROGRESS_SECONDS", d.progress_seconds)),
            metrics_port=int(e.get("BATON_METRICS_PORT", d.metrics_port)),
            step_cpu_request=e.get("BATON_STEP_CPU_REQUEST", d.step_cpu_request),
            step_memory_request=e.get("BATON_STEP_MEMORY_REQUEST", d.step_memory_request),
            step_memory_limit=e.get("BATON_STEP_MEMORY_LIMIT", d.step_memory_limit),
        )

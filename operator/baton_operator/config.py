"""Operator settings, read once from the environment (the Helm chart sets them)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from baton.core.logformat import log_format
from baton.spec.template import PodTemplate


@dataclass(frozen=True)
class OperatorConfig:
    image: str = "baton:dev"
    image_pull_policy: str = "IfNotPresent"
    # the Secret step pods read the database URL from, in their own namespace (chart:
    # stepSecret.name/key; not the operator's own Secret)
    db_secret: str = "baton-db"
    db_secret_key: str = "url"
    poll_seconds: float = 2.0
    progress_seconds: float = 10.0
    # chart operator.apiQPS/apiBurst: the client-side rate limit of the operator's
    # Kubernetes API requests (controller-runtime's 20/30 by default there)
    api_qps: float = 50.0
    api_burst: int = 100
    # chart operator.retryBaseSeconds/retryMaxSeconds: a failed reconcile's backoff
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    metrics_port: int = 9090
    step_cpu_request: str = "50m"
    step_memory_request: str = "64Mi"
    step_memory_limit: str = "512Mi"
    # chart stepDefaults: the first pod template layer of every step pod
    step_defaults: dict[str, Any] = field(default_factory=dict, hash=False)
    # chart stepJobs.ttlSecondsAfterSuccess/Failure: a step Job's ttlSecondsAfterFinished
    # once it succeeded / failed (None: kept; see reconcile.retention)
    step_ttl_after_success: int | None = None
    step_ttl_after_failure: int | None = None

    @property
    def step_ttl_at_creation(self) -> int | None:
        """A step Job's ttlSecondsAfterFinished before its outcome is known: the longer
        of the two (None when either keeps Jobs), so that no Job goes sooner than its
        outcome allows even if the operator is away when it ends; the operator lowers it
        to the outcome's own when it sees the Job end (see reconcile.retention)."""
        a, b = self.step_ttl_after_success, self.step_ttl_after_failure
        return None if a is None or b is None else max(a, b)

    # chart steps.logFormat: BATON_LOG_FORMAT of the step pods (text or json)
    step_log_format: str = "text"
    # chart logs.urlTemplate: status.logs links (baton_operator.loglinks); "" = none
    logs_url_template: str = ""
    # chart steps.databasePool and pgbouncer: the step pods' BATON_DB_POOL and
    # BATON_DB_POOLER (see baton.repository.pooling); "" = not set
    step_db_pool: str = ""
    step_db_pooler: str = ""

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
            api_qps=float(e.get("BATON_API_QPS", d.api_qps)),
            api_burst=int(e.get("BATON_API_BURST", d.api_burst)),
            retry_base_seconds=float(e.get("BATON_RETRY_BASE_SECONDS", d.retry_base_seconds)),
            retry_max_seconds=float(e.get("BATON_RETRY_MAX_SECONDS", d.retry_max_seconds)),
            metrics_port=int(e.get("BATON_METRICS_PORT", d.metrics_port)),
            step_cpu_request=e.get("BATON_STEP_CPU_REQUEST", d.step_cpu_request),
            step_memory_request=e.get("BATON_STEP_MEMORY_REQUEST", d.step_memory_request),
            step_memory_limit=e.get("BATON_STEP_MEMORY_LIMIT", d.step_memory_limit),
            step_defaults=step_defaults(e.get("BATON_STEP_DEFAULTS", "")),
            step_ttl_after_success=_seconds(e, "BATON_STEP_TTL_AFTER_SUCCESS"),
            step_ttl_after_failure=_seconds(e, "BATON_STEP_TTL_AFTER_FAILURE"),
            step_log_format=log_format(e.get("BATON_STEP_LOG_FORMAT")),
            logs_url_template=e.get("BATON_LOGS_URL_TEMPLATE", d.logs_url_template),
            step_db_pool=e.get("BATON_STEP_DB_POOL", d.step_db_pool),
            step_db_pooler=e.get("BATON_STEP_DB_POOLER", d.step_db_pooler),
        )


def _seconds(env: dict[str, str], name: str) -> int | None:
    """A whole number of seconds ≥ 0, or None when unset or empty."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    value = int(raw)
    if value < 0:
        raise ValueError(f"{name}: expected seconds >= 0, got {raw}")
    return value


def step_defaults(text: str) -> dict[str, Any]:
    """The chart's stepDefaults (JSON), checked like any pod template: a bad one stops
    the operator at start, not every launch."""
    if not text.strip():
        return {}
    return PodTemplate.model_validate(json.loads(text)).dump()

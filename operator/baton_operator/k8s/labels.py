"""The labels and annotations on the operator's Jobs and pods: the contract between the
manifests that write them, the cluster reads that select and decode them, the Kopf
handlers' filters, and users' ``kubectl -l`` (``baton.dev/execution`` above all)."""

from __future__ import annotations

from collections.abc import Mapping

LABEL_EXECUTION = "baton.dev/execution"  # the BatchExecution's name
LABEL_STEP = "baton.dev/step"
LABEL_ATTEMPT = "baton.dev/attempt"
LABEL_EXECUTION_ID = "baton.dev/execution-id"  # the repository's JobExecution id
# What operators before the rename wrote: Jobs made by one still run during an upgrade.
OLD_LABEL_EXECUTION_ID = "baton.dev/job-execution-id"
LABEL_KIND = "baton.dev/kind"
ANNOTATION_PARTITIONS = "baton.dev/partitions"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "baton-operator"


def execution_id_of(labels: Mapping[str, str]) -> int:
    """The JobExecution id a Job's labels name (0: none), under either key."""
    return int(labels.get(LABEL_EXECUTION_ID) or labels.get(OLD_LABEL_EXECUTION_ID) or "0")


def partitions_of(annotations: Mapping[str, str]) -> tuple[int, ...] | None:
    """The partitions a Job runs (its annotation), None for an unpartitioned unit."""
    parts = annotations.get(ANNOTATION_PARTITIONS, "")
    return tuple(int(p) for p in parts.split(",")) if parts else None

"""``BatchExecution.status.logs``: a link per step to where its logs are kept (Loki,
Cloud Logging, Kibana...), from the chart's ``logs.urlTemplate``.

The template's placeholders are replaced by URL-encoded values: ``{namespace}``,
``{execution}`` (the BatchExecution's name), ``{executionId}`` (the JobExecution id),
``{attempt}``, ``{job}`` and ``{step}``. Any other brace is kept as written, since
query languages in URLs use braces of their own (``{app="x"}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from baton.spec.model import BatchJob

PLACEHOLDERS = ("namespace", "execution", "executionId", "attempt", "job", "step")


def render(template: str, values: Mapping[str, object]) -> str:
    """The template with each known placeholder replaced, URL-encoded."""
    out = template
    for name in PLACEHOLDERS:
        if name in values:
            out = out.replace("{" + name + "}", quote(str(values[name]), safe=""))
    return out


def log_links(template: str, job: BatchJob, base: Mapping[str, object]) -> dict[str, str] | None:
    """Step name → link for every step of the job (group members and callbacks
    included); None when no template is configured."""
    if not template.strip():
        return None
    return {s.name: render(template, {**base, "step": s.name}) for s in job.spec.all_steps()}

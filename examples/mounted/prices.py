"""Components of the mounted-prices job: the credential comes from a Secret (envFrom, and
again as the parameter apiToken via valueFrom), the CSV from a ConfigMap mounted at /data
(both set in the BatchJob's spec.template)."""

from __future__ import annotations

import os

from baton import StepContext


def check_credential(ctx: StepContext) -> dict[str, str]:
    """Fail early (and clearly) when the Secret did not reach the pod; never print it."""
    user, token = os.environ.get("PRICES_API_USER"), os.environ.get("PRICES_API_TOKEN")
    if not user or not token:
        raise RuntimeError("PRICES_API_USER/PRICES_API_TOKEN missing: is Secret prices-api there?")
    if ctx.params["apiToken"] != token:  # valueFrom secretKeyRef: the value itself
        raise RuntimeError("parameter apiToken does not hold Secret prices-api's token")
    ctx.context["apiUser"] = user
    return {"apiUser": user, "region": ctx.params["region"]}

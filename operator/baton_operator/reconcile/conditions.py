"""Kubernetes-style conditions on ``.status``: one per type, its transition time kept
while nothing about it changes (so an unchanged condition costs no write)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Literal

from baton_operator.k8s.resources import Condition, iso

Truth = Literal["True", "False", "Unknown"]


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: Truth,
    reason: str,
    message: str,
    now: dt.datetime,
) -> list[Condition]:
    """Conditions with ``type_`` set; its transition time kept when nothing changed."""
    out = [c for c in conditions if c.type != type_]
    old = next((c for c in conditions if c.type == type_), None)
    same = old is not None and (old.status, old.reason, old.message) == (status, reason, message)
    when = old.last_transition_time if same and old else iso(now)
    out.append(
        Condition(
            type=type_, status=status, reason=reason, message=message, last_transition_time=when
        )
    )
    return sorted(out, key=lambda c: c.type)


def without(conditions: Sequence[Condition], *types: str) -> list[Condition]:
    return [c for c in conditions if c.type not in types]


def has_reason(conditions: Sequence[Condition] | None, reason: str) -> bool:
    return any(c.reason == reason for c in conditions or ())

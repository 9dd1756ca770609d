"""The executions an operator owns, by label (chart value ``watch.labelSelector``):
equality-based selectors as kubectl takes them (``a=b,c,!d``), so several releases can
split one cluster. Pure: parsed once at start; Kopf filters the BatchExecution events
with it and the loop checks it for everything else (Job and pod events, the ticker)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Requirement:
    key: str
    value: str | None  # None: the label must be present (any value)
    present: bool = True  # False: ``!key``, the label must be absent


def parse(text: str) -> tuple[Requirement, ...]:
    """``a=b,c,!d`` (also ``a==b``); ValueError for what this does not take (set-based
    ``in``/``notin``, ``!=``)."""
    out: list[Requirement] = []
    for raw in text.split(","):
        term = raw.strip()
        if not term:
            continue
        if "!=" in term or " in " in f" {term} " or "notin" in term or "(" in term:
            raise ValueError(f"label selector {text!r}: only key=value, key and !key are supported")
        if term.startswith("!"):
            out.append(Requirement(_key(term[1:], text), None, present=False))
        elif "=" in term:
            key, _, value = term.replace("==", "=").partition("=")
            out.append(Requirement(_key(key, text), value.strip()))
        else:
            out.append(Requirement(_key(term, text), None))
    return tuple(out)


def _key(key: str, text: str) -> str:
    key = key.strip()
    if not key or any(c.isspace() for c in key):
        raise ValueError(f"label selector {text!r}: bad key {key!r}")
    return key


def matches(selector: tuple[Requirement, ...], labels: Mapping[str, str] | None) -> bool:
    """Whether an object with ``labels`` is selected (an empty selector selects all)."""
    labels = labels or {}
    for r in selector:
        if not r.present:
            if r.key in labels:
                return False
        elif r.key not in labels or (r.value is not None and labels[r.key] != r.value):
            return False
    return True

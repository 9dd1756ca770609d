"""JSON merge patches (RFC 7396): what the operator writes to ``.status`` is the
difference between what it found and what it wants, so an unchanged status costs no
API write and a patch never clobbers fields it does not name."""

from __future__ import annotations

from typing import Any


def status_patch(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch from ``old`` to ``new``: changed keys, nulls for removed ones,
    recursing into objects (a merge patch merges them, not replaces)."""
    old = old or {}
    patch: dict[str, Any] = {}
    for k, v in new.items():
        was = old.get(k)
        if was == v:
            continue
        if isinstance(v, dict) and isinstance(was, dict):
            patch[k] = status_patch(was, v)
        else:
            patch[k] = v
    patch.update({k: None for k in old if k not in new})
    return patch

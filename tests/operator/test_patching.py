"""Status writes are JSON merge patches (RFC 7396)."""

from __future__ import annotations

from baton_operator.patching import status_patch


def test_status_patch_is_a_json_merge_patch() -> None:
    old = {"phase": "Running", "phases": {"Running": 1}, "gone": 1, "same": [1]}
    new = {"phase": "Completed", "phases": {"Completed": 1}, "same": [1]}
    assert status_patch(old, new) == {
        "phase": "Completed",
        "phases": {"Completed": 1, "Running": None},
        "gone": None,
    }

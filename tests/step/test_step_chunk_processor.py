"""The chunk processor's contract, on the chunk's input side itself: one call per chunk;
a failure the policy may skip or retry sends the chunk item by item; any other fails at
once; the output is the chunk (shorter: filtered), never longer, and a list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from baton.core.errors import BatonError
from baton.spec.model import ChunkSpec
from baton.step.components import FaultPolicy
from baton.step.reading import Chunk, process_chunk
from conftest import ROOT


class Doubles:
    """Doubles every number; refuses 13 (ValueError) and 666 (a fatal KeyError); drops
    odd multiples of 5 and maps n % 10 == 7 to None (both filtered)."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def process_chunk(self, items: list[int]) -> list[int]:
        self.calls.append(list(items))
        if 13 in items:
            raise ValueError("13 is unlucky")
        if 666 in items:
            raise KeyError(666)
        return [2 * n if n % 10 != 7 else None for n in items if n % 10 != 5]


def policy(**spec: Any) -> FaultPolicy:
    return FaultPolicy(ChunkSpec.model_validate({"reader": "m:r", "writer": "m:w", **spec}))


def test_a_chunk_is_processed_in_one_call_and_may_filter() -> None:
    p, chunk = Doubles(), Chunk(items=list(range(1, 11)))
    assert process_chunk(p, chunk, policy(), 0) == [2, 4, 6, 8, 12, 16, 18, 20]
    assert p.calls == [list(range(1, 11))]
    assert process_chunk(p, Chunk(), policy(), 0) == []  # no items: no call
    assert len(p.calls) == 1


def test_a_skippable_failure_goes_item_by_item_and_skips_just_the_bad_item() -> None:
    p, chunk = Doubles(), Chunk(items=[11, 12, 13, 14, 15])
    out = process_chunk(p, chunk, policy(skip=["ValueError"], skipLimit=1), 0)
    assert out == [22, 24, 28]  # 13 skipped, 15 filtered
    assert p.calls == [[11, 12, 13, 14, 15], [11], [12], [13], [14], [15]]
    assert chunk.skips == [("process", 13, "ValueError: 13 is unlucky")]


def test_an_error_neither_skipped_nor_retried_fails_at_once() -> None:
    p = Doubles()
    with pytest.raises(KeyError):
        process_chunk(p, Chunk(items=[1, 666, 3]), policy(skip=["ValueError"], skipLimit=5), 0)
    assert p.calls == [[1, 666, 3]]  # no item-by-item pass for a fatal error


def test_a_retryable_error_is_retried_on_its_item() -> None:
    class OnceOnSeven:
        seen = 0

        def process_chunk(self, items: list[int]) -> list[int]:
            if 7 in items and self.seen < 2:
                self.seen += 1
                raise TimeoutError("try again")
            return items

    out = process_chunk(
        OnceOnSeven(), Chunk(items=[6, 7, 8]), policy(retry=["TimeoutError"], retryLimit=1), 0
    )
    assert out == [6, 7, 8]


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (lambda items: [*items, 0], r"returned 3 items for 2; a chunk processor may filter"),
        (lambda items: None, r"returned NoneType; expected a list"),
    ],
)
def test_a_chunk_processor_may_not_add_items_or_return_no_list(result: Any, message: str) -> None:
    class Bad:
        def process_chunk(self, items: list[int]) -> Any:
            return result(items)

    with pytest.raises(BatonError, match=message):
        process_chunk(Bad(), Chunk(items=[1, 2]), policy(), 0)


def test_the_vectorised_example_skips_just_its_bad_rows(repo: Any, tmp_path: Path) -> None:
    """examples/vectorised: a chunk processor (pyarrow where installed, plain Python
    here: tests need no extras) over 10,000 rows, two with an amount that is no number."""
    from baton import BatchStatus, JobOperator, JobRegistry

    job = JobRegistry().load(str(ROOT / "examples" / "vectorised" / "job.yaml")).only()
    out = tmp_path / "eur.jsonl"
    e = JobOperator(repo, in_process=True).start(job, {"rows": 10_000, "output": str(out)})
    assert e.status is BatchStatus.COMPLETED, e.exit_description
    step = {s.step_name: s for s in repo.step_executions(e.id)}["convert"]
    assert (step.process_skip_count, step.read_count, step.commit_count) == (2, 10_000, 10)
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert len(ids) == step.write_count == 10_000 - 2 - step.filter_count
    assert 4_999 not in ids and 9_998 not in ids and ids == sorted(ids)
    assert [(s.phase, s.item["id"]) for s in repo.skipped_items(e.id)] == [
        ("process", "4999"),
        ("process", "9998"),
    ]

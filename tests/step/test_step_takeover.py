"""The fence is a token, not just a status: opening a unit bumps its ``incarnations``,
and a checkpoint commits only for the incarnation that opened it. So when a unit is
resumed by another process while the first one still runs (a revived unit, a second
pod for the same partition), the first one is refused at its next chunk and nothing it
writes after that lands: two processes never write from the same checkpoint."""

from __future__ import annotations

import pytest
from baton import BatchStatus, ExitCode, JobRepository
from conftest import launch_background, out_rows, wait_for_commits


@pytest.mark.slow
def test_a_unit_taken_over_by_another_process_fences_the_first(db_url: str) -> None:
    proc, eid = launch_background(db_url, "-p", "count=3000", env={"BATON_TEST_SLEEP": "0.002"})
    wait_for_commits(db_url, eid, 3)
    repo = JobRepository(db_url)
    try:
        first = next(s for s in repo.step_executions(eid) if s.step_name == "load")
        taken = repo.open_unit(eid, "load", None, worker="elsewhere", admit=lambda e: True)
        assert taken is not None and taken.step.id == first.id
        assert taken.step.incarnations == first.incarnations + 1
        assert taken.step.status is BatchStatus.STARTED  # the row never left STARTED
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode != ExitCode.COMPLETED, stderr
        assert "was ended by someone else" in stderr
        now = next(s for s in repo.step_executions(eid) if s.step_name == "load")
        rows, distinct, _ = out_rows(db_url)
        # every row the first process committed is counted by the checkpoint the new
        # incarnation resumes from, and nothing after the takeover landed
        assert rows == distinct == now.write_count
        assert now.write_count < 3000
    finally:
        repo.dispose()

"""A stop that lands between two steps: the next step's process finds the job STOPPING,
never opens its unit and exits 3 (STOPPED). The local executor must not record that
unit FAILED (the run would end FAILED, exit 1, instead of STOPPED)."""

from __future__ import annotations

from baton import BatchStatus, JobOperator, JobRepository
from baton.core.status import ExitCode, UnitKind
from baton.executors.local import LocalExecutor
from baton.executors.units import UnitKey
from baton.flow.actions import Finish
from baton.flow.engine import next_actions
from baton.flow.state import FlowState
from baton.spec.model import BatchJob

JOB = BatchJob.model_validate(
    {
        "metadata": {"name": "two"},
        "spec": {
            "steps": [
                {"name": "first", "tasklet": "testjobs:prepare"},
                {"name": "check", "tasklet": "testjobs:check_context"},
            ],
            "parameters": [{"name": "count", "type": "int"}],
        },
    }
)


def test_a_unit_that_never_started_because_of_a_stop_is_not_failed(
    repo: JobRepository,
) -> None:
    e = JobOperator(repo, in_process=True).launch(JOB, {"count": 1})
    repo.transition(e.id, BatchStatus.STARTED, action="start", start=True)
    stopping = repo.transition(e.id, BatchStatus.STOPPING, action="stop")
    LocalExecutor(repo)._record_lost(stopping, UnitKey(UnitKind.STEP, "check"), ExitCode.STOPPED)
    assert repo.step_executions(e.id) == []
    state = FlowState.of(stopping, [], {}, {})
    assert next_actions(JOB.spec, state) == [
        Finish(BatchStatus.STOPPED, "stopped before step 'first'")
    ]
    # a unit that crashed (any other code) is still recorded FAILED
    LocalExecutor(repo)._record_lost(stopping, UnitKey(UnitKind.STEP, "check"), 1)
    [check] = repo.step_executions(e.id)
    assert check.status is BatchStatus.FAILED

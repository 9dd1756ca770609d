"""Every failure a user can cause has its own exception, each mapped to one exit code.

The CLI prints ``str(error)`` as a single line, so messages say *what* and *why*.
"""

from __future__ import annotations

from baton.core.status import ExitCode


class BatonError(Exception):
    """Base of all Baton errors a user can cause; carries the CLI exit code."""

    exit_code: ExitCode = ExitCode.INVALID


class InvalidDefinition(BatonError):
    """A manifest or job definition is malformed."""


class UnknownJob(BatonError):
    """No job with that name in the registry or repository."""


class InvalidParameters(BatonError):
    """Unknown, missing or badly typed job parameters."""


class ImportFailed(BatonError):
    """A ``module:attr`` reference could not be imported."""


class NoSuchExecution(BatonError):
    """No job execution with that id."""


class DatabaseUnavailable(BatonError):
    """The job repository cannot be reached."""

    exit_code = ExitCode.DATABASE


class LaunchRejected(BatonError):
    """A launch or restart refused by a restart rule; ``rule`` names the rule."""

    exit_code = ExitCode.REJECTED
    rule = "JobRestart"

    def __init__(self, message: str) -> None:
        super().__init__(f"{self.rule}: {message}")


class JobInstanceAlreadyComplete(LaunchRejected):
    rule = "JobInstanceAlreadyComplete"


class JobExecutionAlreadyRunning(LaunchRejected):
    rule = "JobExecutionAlreadyRunning"


class JobRestartRejected(LaunchRejected):
    rule = "JobRestart"


class InstanceCompensated(LaunchRejected):
    rule = "JobInstanceCompensated"


class UnexpectedJobExecutionState(BatonError):
    """stop/abandon/restart asked of an execution in a state that does not allow it."""

    exit_code = ExitCode.WRONG_STATE


class OptimisticLockingFailure(BatonError):
    """Another process changed the row since it was read; re-read and retry."""

    exit_code = ExitCode.WRONG_STATE


class StepFenced(BatonError):
    """A step process found its unit ended by someone else (declared lost by the
    operator, or recovered): it must stop without committing anything more."""

    exit_code = ExitCode.FATAL


class DatabaseBusy(DatabaseUnavailable):
    """Another process held the repository's write lock longer than the busy timeout
    (SQLite: BATON_DB_BUSY_TIMEOUT); nothing was changed, trying again may work."""


class InvalidSetting(BatonError):
    """An environment setting (BATON_*) has a value Baton cannot use."""


class InvalidContext(BatonError):
    """A value that a job or step context cannot store (and give back as it was): the
    message names the key and the type."""

from __future__ import annotations

from alembic.config import Config
from alembic.script import ScriptDirectory
from baton.repository.engine import MIGRATIONS, _head, normalize_url, redact


def test_head_from_file_names_matches_alembic() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert _head() == ScriptDirectory.from_config(cfg).get_current_head()


def test_urls() -> None:
    assert normalize_url("postgres://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
    assert redact("postgresql+psycopg://u:secret@h/db") == "postgresql+psycopg://u:***@h/db"


def test_transition_rereads_on_a_concurrent_change(tmp_path: object) -> None:
    """Optimistic locking: a change between read and write makes the writer re-decide."""
    import pathlib

    from baton import BatchStatus, JobRepository
    from baton.domain import JobParameters
    from baton.errors import UnexpectedJobExecutionState

    db = f"sqlite:///{pathlib.Path(str(tmp_path)) / 'lock.db'}"
    a, b = JobRepository(db), JobRepository(db)
    e = a.launch(
        "j",
        {"metadata": {"name": "j"}},
        JobParameters(),
        prevent_restart=False,
        source_dir=None,
        owner=None,
    )
    seen: list[BatchStatus] = []

    def decide(current: object) -> BatchStatus:
        status = current.status  # type: ignore[attr-defined]
        seen.append(status)
        if len(seen) == 1:  # another process moves it on after our read
            b.transition(e.id, BatchStatus.STARTED, allowed=[BatchStatus.STARTING], action="start")
        return BatchStatus.STOPPING

    moved = a.transition(
        e.id,
        BatchStatus.STOPPING,
        allowed=[BatchStatus.STARTING, BatchStatus.STARTED],
        action="stop",
        decide=decide,
    )
    assert seen == [BatchStatus.STARTING, BatchStatus.STARTED]  # re-read after the conflict
    assert moved.status is BatchStatus.STOPPING and moved.version == 2
    import pytest

    with pytest.raises(UnexpectedJobExecutionState, match="cannot start execution"):
        b.transition(e.id, BatchStatus.STARTED, allowed=[BatchStatus.STARTING], action="start")

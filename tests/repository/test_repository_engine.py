from __future__ import annotations

from alembic.config import Config
from alembic.script import ScriptDirectory
from baton.repository.engine import (
    MIGRATIONS,
    SCHEMA_REVISION,
    _head,
    make_engine,
    migrate,
    normalize_url,
    redact,
)


def test_head_from_file_names_matches_alembic() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert _head() == ScriptDirectory.from_config(cfg).get_current_head()


def test_schema_revision_is_the_head_of_the_migrations() -> None:
    """A new migration must bump SCHEMA_REVISION, or processes would not migrate to it."""
    assert _head() == SCHEMA_REVISION


def test_a_current_schema_is_checked_without_importing_alembic(db_url: str) -> None:
    import os
    import subprocess
    import sys

    engine = make_engine(db_url)
    migrate(engine)
    engine.dispose()
    code = (
        "import sys\n"
        "from baton.repository.engine import make_engine, migrate\n"
        "migrate(make_engine(sys.argv[1]))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, db_url],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_urls() -> None:
    assert normalize_url("postgres://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
    assert redact("postgresql+psycopg://u:secret@h/db") == "postgresql+psycopg://u:***@h/db"


def test_transition_rereads_on_a_concurrent_change(tmp_path: object) -> None:
    """Optimistic locking: a change between read and write makes the writer re-decide."""
    import pathlib

    from baton import BatchStatus, JobRepository
    from baton.core.errors import UnexpectedJobExecutionState
    from baton.core.parameters import JobParameters

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
            b.transition(e.id, BatchStatus.STARTED, action="start")
        return BatchStatus.STOPPING

    moved = a.transition(
        e.id,
        BatchStatus.STOPPING,
        action="stop",
        decide=decide,
    )
    assert seen == [BatchStatus.STARTING, BatchStatus.STARTED]  # re-read after the conflict
    assert moved.status is BatchStatus.STOPPING and moved.version == 2
    import pytest

    with pytest.raises(UnexpectedJobExecutionState, match="cannot start execution"):
        b.transition(e.id, BatchStatus.STARTED, action="start")

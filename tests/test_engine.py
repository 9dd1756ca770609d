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

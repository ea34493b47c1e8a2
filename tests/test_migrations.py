from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from knowledge.errors import SchemaError
from knowledge.storage.schema import (
    bundled_head,
    current_revision,
    downgrade,
    ensure_schema,
    head_revision,
    metadata,
    stored_revision,
    upgrade,
)

TABLES = {
    "sources", "documents", "chunks", "ingestion_runs", "index_state", "conversations",
    "turns", "feedback", "channel_settings", "processed_events", "admins", "audit_log", "gaps",
}  # fmt: skip


def test_upgrade_creates_every_table_matching_the_models(bare_engine: Engine) -> None:
    upgrade(bare_engine)
    assert set(inspect(bare_engine).get_table_names()) >= TABLES
    with bare_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata()) == []
    assert current_revision(bare_engine) == head_revision(bare_engine)


def test_downgrade_to_base_and_upgrade_again(bare_engine: Engine) -> None:
    upgrade(bare_engine)
    downgrade(bare_engine, "base")
    assert not TABLES & set(inspect(bare_engine).get_table_names())
    upgrade(bare_engine)
    assert set(inspect(bare_engine).get_table_names()) >= TABLES


def test_ensure_schema_upgrades_sqlite_but_asks_for_an_explicit_upgrade_on_postgres(
    bare_engine: Engine,
) -> None:
    if bare_engine.dialect.name == "sqlite":
        ensure_schema(bare_engine)
        assert current_revision(bare_engine) == head_revision(bare_engine)
        return
    try:
        ensure_schema(bare_engine)
    except SchemaError as exc:
        assert "teambot db upgrade" in str(exc)
    else:
        raise AssertionError("an empty PostgreSQL schema must not be used silently")
    assert current_revision(bare_engine) is None


def test_the_quick_version_check_reads_what_alembic_reads(bare_engine: Engine) -> None:
    assert bundled_head() == head_revision(bare_engine)
    assert stored_revision(bare_engine) is None
    upgrade(bare_engine, "0002")
    assert stored_revision(bare_engine) == current_revision(bare_engine) == "0002"
    upgrade(bare_engine)
    assert stored_revision(bare_engine) == current_revision(bare_engine) == bundled_head()

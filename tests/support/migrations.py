"""Run a data migration's code again, for tests of what it writes."""

from django.db import connection
from django.db.migrations import RunPython
from django.db.migrations.loader import MigrationLoader


def migration_code_rerun(app: str, name: str, *, times: int = 2) -> None:
    """Run the migration's RunPython code on its own historical models, `times` times.

    A transactional test's flush may have emptied the (reused) test database since it was
    migrated; running twice also checks the code does not add a second row."""
    loader = MigrationLoader(connection)
    assert (app, name) in loader.applied_migrations
    apps = loader.project_state((app, name)).apps
    for operation in loader.get_migration(app, name).operations:
        if isinstance(operation, RunPython):
            for _ in range(times):
                operation.code(apps, None)

"""Alembic environment: Lockgate hands over an open connection (see ``store/migrate.py``)."""

from __future__ import annotations

from alembic import context

from lockgate.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `lockgate db upgrade` or lockgate.store.migrate")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

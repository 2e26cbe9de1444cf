"""Alembic environment: runs on the connection Concord hands over (see storage.db)."""

from alembic import context

from concord.storage.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - Concord always passes its own connection
    raise RuntimeError("Concord migrations run through storage.db, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

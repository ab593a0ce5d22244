"""Alembic environment: migrations run on the connection that `backend.db.migrate` hands over."""

from alembic import context
from sqlmodel import SQLModel

import backend.models  # noqa: F401  (registers every table on the metadata)

target_metadata = SQLModel.metadata
connection = context.config.attributes.get("connection")
if connection is None:  # `alembic revision --autogenerate` from the command line
    from backend.config import get_settings
    from backend.db import make_engine

    connection = make_engine(get_settings().effective_database_url).connect()

context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

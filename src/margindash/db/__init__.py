"""Storage: engine and sessions, table definitions, Alembic migrations."""

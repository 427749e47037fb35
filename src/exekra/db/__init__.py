"""Database layer: declarative base, engine/session factory, Alembic migrations."""

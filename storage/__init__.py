"""The study store: SQLAlchemy models, Alembic migrations, opening and backing up studies.

The only package that talks SQL. A study is a SQLite file (``*.concord``) or a
PostgreSQL URL; both run the same models and migrations.
"""

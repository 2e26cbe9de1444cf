"""Shared fixtures: every storage and service test runs on SQLite and, when
CONCORD_TEST_PG holds a server URL, on PostgreSQL too."""

from __future__ import annotations

import contextlib
import os
import uuid

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

PG_URL = os.environ.get("CONCORD_TEST_PG")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path, monkeypatch):
    """Keep tests away from the developer's config, data and coder name."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("CONCORD_CODER", raising=False)
    monkeypatch.setenv("CONCORD_BUSY_TIMEOUT_MS", "500")


def _pg_admin_engine():
    url = make_url(PG_URL).set(drivername="postgresql+psycopg", database="postgres")
    return create_engine(url, isolation_level="AUTOCOMMIT")


def fresh_pg_url() -> str:
    name = f"concord_test_{uuid.uuid4().hex[:12]}"
    return make_url(PG_URL).set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)


def _team_logins(url: str) -> list[str]:
    """The people's logins of a team study (concord team setup), read before its database goes."""
    engine = create_engine(make_url(PG_URL).set(drivername="postgresql+psycopg", database=make_url(url).database))
    try:
        with engine.connect() as conn:
            if not conn.exec_driver_sql("SELECT to_regnamespace('concord_team') IS NOT NULL").scalar():
                return []
            return list(conn.exec_driver_sql("SELECT db_role FROM coders WHERE db_role IS NOT NULL").scalars())
    except DBAPIError:
        return []  # no such database (never created, or already dropped)
    finally:
        engine.dispose()


def drop_pg_database(url: str) -> None:
    """Drop a test database, and the cluster-wide roles `concord team setup` made for it."""
    from concord.storage.team_sql import team_roles

    name = make_url(url).database
    logins = _team_logins(url)
    engine = _pg_admin_engine()
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for role in [*logins, *team_roles(name).all]:
            # A login another test database still uses stays: that database's teardown drops it.
            with contextlib.suppress(DBAPIError):
                conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def study_target(request, tmp_path):
    """Where a new study can be created: a file path, or a fresh PostgreSQL database URL."""
    if request.param == "sqlite":
        yield str(tmp_path / "study.concord")
        return
    url = fresh_pg_url()
    yield url
    drop_pg_database(url)


@pytest.fixture
def backend(study_target) -> str:
    return "postgresql" if "://" in study_target else "sqlite"


# -- the differential blind test's count, in the summary -------------------------------------------


class BlindSummary:
    """tests/test_blind_differential.py records, per test, how many read paths it tried and how many
    leaked (a user property "blind_read_paths" = "what|tried|leaked"); the controller prints them."""

    def __init__(self):
        self.rows: list[tuple[str, int, int]] = []

    def pytest_runtest_logreport(self, report):
        if report.when != "teardown":
            return
        for key, value in report.user_properties:
            if key == "blind_read_paths":
                what, tried, leaked = str(value).rsplit("|", 2)
                self.rows.append((what, int(tried), int(leaked)))

    def pytest_terminal_summary(self, terminalreporter):
        if not self.rows:
            return
        terminalreporter.section("differential blind test")
        for what, tried, leaked in sorted(self.rows):
            terminalreporter.write_line(f"{what}: {tried} read paths tried, {leaked} leaked")
        tried, leaked = sum(row[1] for row in self.rows), sum(row[2] for row in self.rows)
        terminalreporter.write_line(f"differential blind test: {tried} read paths tried, {leaked} leaked")


def pytest_configure(config):
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(BadInputSummary(), "concord-bad-input-summary")
        config.pluginmanager.register(BlindSummary(), "concord-blind-summary")


class BadInputSummary:
    """The bad-input suite (tests/test_fuzz_importers.py) records, per test, how many inputs it tried
    and how many ended in a traceback or changed a study; the totals are printed at the end of the
    run. Under xdist the user properties travel with each report to the controller."""

    KEYS = ("fuzz_cases", "tracebacks", "partial_imports")

    def __init__(self):
        self.totals = dict.fromkeys(self.KEYS, 0)
        self.seen = False

    def pytest_runtest_logreport(self, report):
        if report.when != "teardown":  # the teardown report carries everything the test recorded
            return
        for key, value in report.user_properties:
            if key in self.totals:
                self.totals[key] += int(value)
                self.seen = True

    def pytest_terminal_summary(self, terminalreporter):
        if not self.seen:
            return
        totals = self.totals
        terminalreporter.section("bad input")
        terminalreporter.write_line(
            f"bad input: {totals['fuzz_cases']} cases tried, {totals['tracebacks']} tracebacks, "
            f"{totals['partial_imports']} partial imports"
        )

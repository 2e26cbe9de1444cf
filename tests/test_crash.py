"""A writer killed with SIGKILL mid-run loses no committed change and leaves no corruption."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select, text

from concord.storage.audit_chain import verify_chain
from concord.storage.db import open_study
from concord.storage.models import AuditEvent, Coding
from tests.factories import make_study

ROOT = Path(__file__).resolve().parents[1]


def test_kill_dash_nine_mid_write_loses_nothing_committed(study_target, backend):
    make_study(study_target).close()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    writer = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "crash_writer.py"), study_target],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    committed = []
    try:
        while len(committed) < 60:
            line = writer.stdout.readline()
            assert line, writer.stderr.read()
            committed.append(int(line))
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    store = open_study(study_target)
    try:
        if backend == "sqlite":
            with store.engine.connect() as conn:
                assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
                assert conn.execute(text("PRAGMA foreign_key_check")).fetchall() == []
        with store.reader() as session:
            stored = set(session.scalars(select(Coding.id)))
            audited = session.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "coding.apply")
            )
        assert set(committed) <= stored
        # Every stored coding was written with its audit event in one transaction.
        assert audited == len(stored)
        # ... and each event was chained onto the one before it: the kill leaves no broken link.
        with store.reader() as session:
            assert verify_chain(session).intact
    finally:
        store.close()

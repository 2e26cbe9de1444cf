"""The differential blind test: nothing a blind coder can run depends on what the blind hides.

Three studies are built from the demo (coders alex and kim, supervisor sam), with marker strings
planted in what alex must never see (kim's memos and inductive codes, the supervisor's renames and
splits of kim's codes, a blinded attribute):

* ``full``: the study as it is;
* ``no-other``: a copy without kim's work (codings, memos, inductive codes and their history, reading
  progress, undo steps, kim's audit events) and without the consensus made from it;
* ``changed``: a copy where every blinded attribute, every questionnaire score, and every session's and
  dyad's number, key and date is different.

Every read path alex has (each CLI command and subcommand that reads, found by walking the click tree,
with its options and every export format; every workbench screen) runs on all three. Any difference in
exit code, stdout, stderr or written files is a leak, and so is a marker in any output. A command that
is neither listed here as a read nor as a write (with the reason) fails the test: a new command is
covered from the day it is added.

The number of read paths tried and of leaks found is printed in the test summary (tests/conftest.py, BlindSummary).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, delete, inspect, select, text, update
from sqlalchemy.engine import make_url

from concord.app.cli import main
from concord.storage.models import Base, Code, Coder, Transcript

CODER = "alex"
OTHER = "kim"
LEAD = "sam"
MARKERS = ("KIMSECRET", "BLINDSECRET")
VARIANTS = ("full", "no-other", "changed")
SIZE = (120, 40)

# -- the command tree ------------------------------------------------------------------------------

S = "{study}"
O = "{out}"  # noqa: E741 - a placeholder, read as "out"
AS = ("--as", CODER)


@dataclass(frozen=True)
class Read:
    """How to run one reading command as the blind coder: its argument lists, and the options it
    has that no variant sets, each with the reason."""

    variants: tuple[tuple[str, ...], ...]
    unvaried: dict[str, str] = field(default_factory=dict)


REFUSED = "the command refuses a blind coder before it reads this option"
TUI = "an option of the workbench, which test_workbench_is_blind opens"

# Filled in by _reads() once the demo's codebook keys and code ids are known.
BOOKS = ("alliance-ruptures", "cbt-alliance-themes", "inductive", "ipr-relationship-formation")


def _reads(code_probes: list[str]) -> dict[tuple[str, ...], Read]:
    exports = {}
    for kind, suffixes in (
        ("frequencies", (".csv", ".xlsx", ".docx", ".json")),
        ("representativeness", (".csv", ".xlsx", ".docx", ".json")),
        ("excerpts", (".docx", ".md", ".html")),
    ):
        variants = []
        for suffix in suffixes:
            for layer in (CODER, "consensus", OTHER):
                variants.append((S, "--out", f"{O}/{kind}-{layer}{suffix}", "--layer", layer, *AS))
        # The options every export shares: what a layer covers, uncovered transcripts, code labels.
        variants.append(
            (
                S,
                "--out",
                f"{O}/{kind}-coded{suffixes[0]}",
                "--layer",
                CODER,
                "--covered",
                "coded",
                "--include-uncoded",
                *AS,
            )
        )
        variants.append(
            (S, "--out", f"{O}/{kind}-labels{suffixes[0]}", "--layer", CODER, "--labels", "publication", *AS)
        )
        exports[kind] = variants
    return {
        ("status",): Read(((S, *AS), (S, "--format", "json", *AS), (S, "--format", "csv", *AS), (S,))),
        ("audit",): Read(
            (
                (S, *AS, "--format", "json"),
                (S, *AS, "--limit", "7"),
                (S, *AS, "--action", "code.split", "--format", "csv"),
                (S, *AS, "--action", "coding.apply", "--format", "json"),
                (S, *AS, "--action", "code.edit"),
                (S, *AS, "--verify"),
                (S, *AS, "--head"),
                (S, *AS, "--verify", "--expect", "1:00ff:1"),
                (S, *AS, "--checkpoint", "--reason", "probe"),
                (S, "--format", "json"),
            )
        ),
        ("agreement",): Read(
            (
                (S, *AS),
                (S, *AS, "--format", "json", "--statistic", "alpha", "--unit", "span", "--overlap", "0.4"),
                (
                    S,
                    *AS,
                    "--transcripts",
                    "S01,S02",
                    "--coders",
                    f"{CODER},{OTHER}",
                    "--phase",
                    "independent",
                    "--code",
                    "stagnation",
                    "--speaker",
                    "client",
                    "--uncoded",
                    "category",
                    "--bootstrap",
                    "50",
                    "--seed",
                    "3",
                    "--format",
                    "csv",
                ),
                (S, *AS, "--group", "therapeutic direction", "--statistic", "percent", "--without-suggested"),
            )
        ),
        ("backup",): Read(((S, f"{O}/copy.concord", *AS),)),
        ("attribute", "list"): Read(((S, *AS), (S, "S01", *AS, "--format", "json"), (S, "--format", "csv"))),
        ("scores",): Read(((S, *AS), (S, *AS, "--instrument", "WAI-SR", "--format", "json"), (S, "--format", "csv"))),
        ("handout",): Read(
            (
                (S, "--coder", CODER, "--out", f"{O}/work.concord", *AS),
                (S, "--coder", OTHER, "--out", f"{O}/other.concord", "--login", CODER, "--identity", "trusted", *AS),
                (S, "--refresh", f"{O}/work.concord", "--format", "json", *AS),
            )
        ),
        ("collect",): Read(((S, f"{O}/work.concord", "--coder", CODER, "--format", "json", *AS),)),
        ("coder", "list"): Read(((S,), (S, "--format", "json"))),
        ("codebook", "list"): Read(((S,), (S, "--format", "json"), (S, "--format", "csv"))),
        ("codebook", "show"): Read(
            tuple((S, book, *AS, "--format", fmt) for book in BOOKS for fmt in ("table", "json"))
            + tuple((S, book, "--brief", *AS) for book in BOOKS)
            + ((S, "inductive"),)
        ),
        ("codebook", "export"): Read(
            tuple((S, book, "--out", f"{O}/{book}{suffix}", *AS) for book in BOOKS for suffix in (".yaml", ".qdc"))
        ),
        ("codebook", "history"): Read(
            tuple((S, probe, *AS) for probe in code_probes)
            + tuple((S, probe, *AS, "--format", "json") for probe in code_probes[:3])
        ),
        ("codebook", "versions"): Read(
            tuple((S, book, *AS, "--format", "json") for book in BOOKS)
            + ((S, "inductive", "--show", "1", *AS), (S, "inductive", *AS, "--format", "csv"), (S, "nope", *AS))
        ),
        ("codebook", "suggest-merges"): Read(
            ((S, *AS), (S, *AS, "--threshold", "0.3", "--format", "json"), (S, *AS, "--review"))
        ),
        ("consensus",): Read(
            (
                (S, *AS, "--list"),
                (S, *AS, "--list", "--all", "--format", "json", "--transcripts", "S01"),
                (S, *AS, "--list", "--verbose"),
                (S, *AS, "--list", "--unit", "span", "--overlap", "0.4", "--present", f"{CODER},{OTHER}"),
                (S, *AS, "--accept-agreed"),
                (S, *AS, "--decisions", f"{O}/missing.csv"),
            ),
            unvaried={"--keys": TUI, "--theme": TUI},
        ),
        ("export", "frequencies"): Read(
            tuple(exports["frequencies"])
            + (
                (S, "--out", f"{O}/f-group.csv", "--layer", CODER, "--by", "group", *AS),
                (S, "--out", f"{O}/f-session.csv", "--layer", CODER, "--by", "session", "--count", "words", *AS),
                (S, "--out", f"{O}/f-dyad.json", "--layer", CODER, "--by", "dyad", "--measures", "WAI-SR", *AS),
                (
                    S,
                    "--out",
                    f"{O}/f-wide.csv",
                    "--layer",
                    CODER,
                    "--wide",
                    "--codebook",
                    "inductive",
                    "--group-attribute",
                    "modality",
                    "--count",
                    "presence",
                    *AS,
                ),
            )
        ),
        ("export", "representativeness"): Read(
            tuple(exports["representativeness"])
            + (
                (S, "--out", f"{O}/r-sub.csv", "--layer", CODER, "--level", "subtheme", "--wide", *AS),
                (
                    S,
                    "--out",
                    f"{O}/r-book.json",
                    "--layer",
                    CODER,
                    "--codebook",
                    "cbt-alliance-themes",
                    "--group-attribute",
                    "modality",
                    *AS,
                ),
            )
        ),
        ("export", "excerpts"): Read(
            tuple(exports["excerpts"])
            + (
                (
                    S,
                    "--out",
                    f"{O}/e-memos.html",
                    "--layer",
                    CODER,
                    "--memos",
                    "--context",
                    "1",
                    "--codes",
                    "stagnation",
                    "--group-attribute",
                    "modality",
                    "--group-label",
                    "{value} setting",
                    "--codebook",
                    "cbt-alliance-themes",
                    *AS,
                ),
                (S, "--out", f"{O}/e-all.md", "--layer", CODER, "--memos", "--context", "2", "--all-codes", *AS),
            )
        ),
        ("export", "qdpx"): Read(
            ((S, "--out", f"{O}/project.qdpx", *AS), (S, "--out", f"{O}/p.qdpx", "--format", "json"))
        ),
        ("pseudonyms", "list"): Read(
            ((S, *AS), (S, *AS, "--format", "json"), (S, *AS, "--register", f"{O}/names.csv"))
        ),
        ("cooccurrence",): Read(
            tuple(
                (S, "--layer", layer, *AS, "--format", fmt)
                for layer in (CODER, "consensus", OTHER)
                for fmt in ("table", "json")
            )
            + (
                (S, "--layer", CODER, "--covered", "coded", "--within", "overlap", "--format", "csv", *AS),
                (S, "--layer", CODER, "--covered", "coded", "--within", "2", "--directed", "--statistic", "c", *AS),
                (S, "--layer", CODER, "--include-uncoded", "--by", "group", *AS),
                (S, "--layer", CODER, "--covered", "coded", "--by", "modality", "--format", "json", *AS),
                (
                    S,
                    "--layer",
                    CODER,
                    "--covered",
                    "coded",
                    "--level",
                    "theme",
                    "--codes",
                    "stagnation",
                    "--all-codes",
                    "--codebook",
                    "cbt-alliance-themes",
                    "--labels",
                    "publication",
                    "--statistic",
                    "jaccard",
                    *AS,
                ),
                (S, "--layer", CODER, "--covered", "coded", "--out", f"{O}/co.xlsx", "--plot", f"{O}/co.png", *AS),
                (S, "--layer", CODER, "--covered", "coded", "--out", f"{O}/co.json", "--format", "csv", *AS),
            )
        ),
        ("query",): Read(
            tuple(
                (S, "exploring AND NOT stagnation", "--layer", layer, "--covered", "coded", *AS, "--format", fmt)
                for layer in (CODER, "consensus", OTHER)
                for fmt in ("table", "json", "csv")
            )
            + (
                (S, "no such code OR stagnation", "--layer", CODER, *AS),
                (S, "stagnation AND (exploring", "--layer", CODER, *AS),
                (S, "stagnation FOLLOWED BY exploring WITHIN 3", "--layer", CODER, "--include-uncoded", *AS),
                (
                    S,
                    "stagnation",
                    "--layer",
                    CODER,
                    "--covered",
                    "coded",
                    "--within",
                    "overlap",
                    "--speaker",
                    "client",
                    *AS,
                ),
                (S, "stagnation OR exploring", "--layer", CODER, "--covered", "coded", "--within", "2", *AS),
                (S, "stagnation", "--layer", CODER, "--covered", "coded", "--where", "group=high", *AS),
                (S, "stagnation", "--layer", CODER, "--covered", "coded", "--where", "modality!=online", *AS),
                (
                    S,
                    "stagnation OR exploring",
                    "--layer",
                    CODER,
                    "--covered",
                    "coded",
                    "--report",
                    f"{O}/query.docx",
                    "--context",
                    "1",
                    "--group-attribute",
                    "modality",
                    "--group-label",
                    "{value} setting",
                    "--codebook",
                    "cbt-alliance-themes",
                    "--labels",
                    "publication",
                    *AS,
                ),
                (S, "stagnation", "--layer", CODER, "--covered", "coded", "--report", f"{O}/query.md", *AS),
            )
        ),
        ("export", "scores-link"): Read(
            tuple(
                (S, "--instrument", "WAI-SR", "--layer", layer, "--out", f"{O}/link-{layer}{suffix}", *AS)
                for layer in (CODER, "consensus")
                for suffix in (".md", ".xlsx")
            )
            + ((S, "--instrument", "nope", "--layer", CODER, "--covered", "coded", "--out", f"{O}/link.docx", *AS),),
            unvaried=dict.fromkeys(
                (
                    "--respondent",
                    "--subscale",
                    "--per",
                    "--level",
                    "--codes",
                    "--kind",
                    "--correction",
                    "--codebook",
                    "--include-uncoded",
                    "--labels",
                ),
                REFUSED,
            ),
        ),
        ("export", "memos"): Read(
            tuple(
                (S, "--out", f"{O}/memos-{by}{suffix}", "--by", by, *AS)
                for by in ("code", "transcript", "coder")
                for suffix in (".md", ".html", ".docx")
            )
            + ((S, "--out", f"{O}/memos.md"),)
        ),
        # The assistant is switched on in build_full: alex's suggestions are really computed, from alex's codings.
        ("suggest",): Read(
            (
                (S, *AS, "--transcript", "S01", "--format", "json"),
                (S, *AS, "--transcript", "S03", "--threshold", "0.3", "--per-turn", "1"),
                (S, *AS, "--transcript", "S02", "--format", "csv"),
            )
        ),
        # Without a switch it prints the setting and the methods paragraph (counts of alex's own codings);
        # the switches are refused to a coder.
        ("assistant",): Read(
            (
                (S, *AS),
                (S, *AS, "--format", "json"),
                (S, *AS, "--on"),
                (S, *AS, "--off", "--min-codings", "5", "--learn-from", "consensus"),
            )
        ),
        ("select-sessions",): Read(
            (
                (S, "--alliance", "WAI-SR", "--outcome", "BDI-II", *AS),
                (S, "--alliance", "WAI-SR,WAI-S-DEMO", "--outcome", "BDI-II", "--detrend", "--alpha", "0.2", *AS),
                (S, "--alliance", "WAI-SR", "--outcome", "BDI-II", "--format", "json", "--apply", "probe", *AS),
                (S, "--alliance", "WAI-SR,WAI-S-DEMO", "--outcome", "BDI-II", "--alliance-scale", "z", *AS),
                (
                    S,
                    "--alliance",
                    "WAI-SR,WAI-S-DEMO",
                    "--outcome",
                    "BDI-II",
                    "--alliance-scale",
                    "z",
                    "--fallback",
                    "2",
                    "--include-wrong-direction",
                    *AS,
                ),
            )
        ),
    }


# Commands that change a study or make one, and why the differential test does not run them as reads.
WRITES = {
    ("init",): "creates a new study",
    ("demo",): "builds the demo study",
    ("restore",): "loads a backup file into a new study; reads no study as a person",
    ("team", "setup"): "installs PostgreSQL team mode; for a database administrator (tests/test_team_postgres.py)",
    ("team", "login"): "creates a database login; for a database administrator (tests/test_team_postgres.py)",
    ("coder", "add"): "adds a person; setup rights (tests/test_identity.py)",
    ("coder", "role"): "changes a role; setup rights (tests/test_identity.py)",
    ("codebook", "add"): "adds a codebook; setup rights",
    ("codebook", "import"): "adds a codebook from a file; setup rights",
    ("codebook", "category"): "theme development; supervisors",
    ("codebook", "edit"): "theme development; supervisors",
    ("codebook", "merge"): "theme development; supervisors",
    ("codebook", "move"): "theme development; supervisors",
    ("codebook", "split"): "theme development; supervisors",
    ("unblind",): "ends the blind; supervisors",
    ("import", "transcripts"): "stores transcripts; --dry-run needs the same setup rights (tests/test_blind_leaks.py)",
    ("import", "measures"): "stores scores; --dry-run needs the same setup rights (tests/test_blind_leaks.py)",
    ("import", "codings"): "stores codings; --dry-run needs the same setup rights (tests/test_blind_leaks.py)",
    ("import", "qdpx"): "stores a project; --dry-run needs the same setup rights (tests/test_blind_leaks.py)",
    ("pseudonyms", "review"): "decides each suspect word and rewrites transcripts; setup rights",
    ("pseudonyms", "apply"): "pseudonymises the stored transcripts again; setup rights",
    ("code",): "the coding workbench itself: every screen is read by test_workbench_is_blind",
    ("attribute", "set"): "changes an attribute; setup rights (tests/test_real_data_import.py)",
    ("attribute", "unset"): "removes an attribute; setup rights (tests/test_real_data_import.py)",
    ("speakers",): "lists and fixes speaker roles; setup rights, listing too (tests/test_real_data_import.py)",
}


def command_tree() -> list[tuple[tuple[str, ...], click.Command]]:
    """Every leaf command, resolved through each group's get_command (the CLI loads commands lazily)."""
    found = []

    def walk(command: click.Command, path: tuple[str, ...], parent: click.Context | None) -> None:
        ctx = click.Context(command, info_name=path[-1] if path else "concord", parent=parent)
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                walk(command.get_command(ctx, name), (*path, name), ctx)
        else:
            found.append((path, command))

    walk(main, (), None)
    return found


def test_every_command_is_a_read_or_a_write():
    reads = _reads(["1"])
    tree = dict(command_tree())
    unclassified = [" ".join(path) for path in tree if path not in reads and path not in WRITES]
    assert not unclassified, f"classify these commands as reads or writes in {__file__}: {unclassified}"
    assert not set(reads) & set(WRITES)
    gone = [" ".join(path) for path in [*reads, *WRITES] if path not in tree]
    assert not gone, f"listed but no longer commands: {gone}"
    for path, read in reads.items():
        used = {word for variant in read.variants for word in variant if word.startswith("--")}
        for param in tree[path].params:
            longs = [opt for opt in param.opts if opt.startswith("--")]
            if not longs or longs[0] == "--help":
                continue
            assert set(longs) & used or longs[0] in read.unvaried, (
                f"concord {' '.join(path)} {longs[0]}: no variant uses it and no reason is given"
            )


# -- building the three studies --------------------------------------------------------------------


def _engine(target: str):
    if "://" in target:
        return create_engine(target)
    return create_engine(f"sqlite:///{target}")


def build_full(target: str) -> None:
    """The demo, with kim's secrets planted, the supervisor's theme work on them, and a consensus."""
    from concord.app.demo.build import build_study
    from concord.services.codebooks import edit_code, split_code
    from concord.services.codes import create_inductive_code
    from concord.services.coding import add_memo, apply_code
    from concord.services.consensus import accept_agreed
    from concord.services.transcripts import get_transcript, record_progress
    from concord.services.workspace import Workspace
    from concord.storage.models import Attribute

    build_study(target)
    kim, sam = Workspace.open(target, OTHER), Workspace.open(target, LEAD)
    try:
        with sam.store.reader() as session:
            alex_codes = session.scalars(
                select(Code.name).join(Coder, Coder.id == Code.creator_id).where(Coder.name == CODER)
            ).all()
        s01 = get_transcript(kim, "S01")
        turn = s01.turns[2]
        secret = create_inductive_code(kim, "KIMSECRET code")
        apply_code(kim, s01.id, secret.id, turn.char_start, turn.char_end, memo="KIMSECRET coding memo")
        # A name alex uses too: looking it up must not say "several codes are named ...".
        twin = create_inductive_code(kim, alex_codes[0])
        apply_code(kim, s01.id, twin.id, turn.char_start, turn.char_end)
        merged = create_inductive_code(kim, "KIMSECRET to merge")
        apply_code(kim, s01.id, merged.id, s01.turns[3].char_start, s01.turns[3].char_end)
        add_memo(kim, "transcript", s01.id, "KIMSECRET transcript memo")
        add_memo(kim, "code", secret.id, "KIMSECRET code memo")
        record_progress(kim, s01.id, turns_reviewed=5, last_offset=turn.char_start)
        edit_code(sam, secret.id, name="KIMSECRET renamed", definition="KIMSECRET definition")
        split_code(sam, secret.id, ["KIMSECRET split a", "KIMSECRET split b"])
        from concord.services.codebooks import merge_codes

        merge_codes(sam, merged.id, "stagnation")
        from concord.services.assistant import set_assistant

        set_assistant(sam, on=True)
        accept_agreed(sam, transcripts=("S02",), present=(LEAD, CODER, OTHER))
        with sam.store.session() as session:
            session.add(
                Attribute(
                    target_kind="transcript", target_id=s01.id, name="note", value="BLINDSECRET note", blinded=True
                )
            )
    finally:
        kim.close()
        sam.close()


def _copy(source: str, dest: str) -> None:
    if "://" in source:
        engine = create_engine(make_url(source).set(database="postgres"), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{make_url(dest).database}" TEMPLATE "{make_url(source).database}"')
        engine.dispose()
    else:
        shutil.copyfile(source, dest)


def _unguarded(conn) -> None:
    """Let a test copy be edited behind Concord's back: the audit log's guards and foreign keys off."""
    if conn.dialect.name == "postgresql":
        # The audit log's guard fires even in replica mode, so the copy loses its triggers outright.
        for table, name in conn.exec_driver_sql(
            "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND n.nspname = 'public'"
        ).all():
            conn.exec_driver_sql(f'DROP TRIGGER "{name}" ON "{table}"')
        conn.exec_driver_sql("SET session_replication_role = replica")
    else:
        for (name,) in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'").all():
            conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
        conn.exec_driver_sql("PRAGMA foreign_keys = OFF")


def remove_other_work(target: str) -> None:
    engine = _engine(target)
    tables = Base.metadata.tables
    with engine.begin() as conn:
        _unguarded(conn)
        other = conn.scalar(select(Coder.id).where(Coder.name == OTHER))
        codes = tables["codes"]
        theirs = [
            row.id
            for row in conn.execute(
                select(codes.c.id).where(codes.c.origin != "deductive", codes.c.creator_id == other)
            ).all()
        ]
        for name in ("consensus_sources", "consensus_decisions"):
            if name in tables:
                conn.execute(delete(tables[name]))
        conn.execute(delete(tables["codings"]).where(tables["codings"].c.phase == "consensus"))
        for table in tables.values():
            if "coder_id" in table.c:
                conn.execute(delete(table).where(table.c.coder_id == other))
        conn.execute(delete(tables["code_changes"]).where(tables["code_changes"].c.code_id.in_(theirs)))
        conn.execute(delete(codes).where(codes.c.id.in_(theirs)))
        audit = tables["audit_log"]
        conn.execute(
            delete(audit).where(
                (audit.c.actor == OTHER)
                | (audit.c.entity == "consensus")
                | ((audit.c.entity == "code") & audit.c.entity_id.in_(theirs))
            )
        )
        # Merges of kim's codes name their source in the details: those events go too.
        for row in conn.execute(select(audit.c.id, audit.c.details).where(audit.c.action == "code.merge")).all():
            details = row.details if isinstance(row.details, dict) else json.loads(row.details or "{}")
            if details.get("source_id") in theirs:
                conn.execute(delete(audit).where(audit.c.id == row.id))
    engine.dispose()


def change_blinded(target: str) -> None:
    engine = _engine(target)
    tables = Base.metadata.tables
    with engine.begin() as conn:
        _unguarded(conn)
        attributes = tables["attributes"]
        for row in conn.execute(select(attributes.c.id, attributes.c.value).where(attributes.c.blinded)).all():
            swapped = {"high": "low", "low": "high"}.get(row.value, f"{row.value} changed")
            conn.execute(update(attributes).where(attributes.c.id == row.id).values(value=swapped))
        scores = tables["questionnaire_scores"]
        for row in conn.execute(select(scores.c.id, scores.c["items"], scores.c.subscales, scores.c.total)).all():
            items = row.items if isinstance(row.items, dict) else json.loads(row.items or "{}")
            subscales = row.subscales if isinstance(row.subscales, dict) else json.loads(row.subscales or "{}")
            conn.execute(
                update(scores)
                .where(scores.c.id == row.id)
                .values(
                    items={k: (v + 1 if isinstance(v, int | float) else v) for k, v in items.items()},
                    subscales={k: (v + 2 if isinstance(v, int | float) else v) for k, v in subscales.items()},
                    total=None if row.total is None else row.total + 3,
                )
            )
        sessions = tables["sessions"]
        conn.execute(update(sessions).values(number=sessions.c.number + 1000, held_on=None))
        dyads = tables["dyads"]
        conn.execute(update(dyads).values(key=dyads.c.key + "x"))
    engine.dispose()


@dataclass
class Trio:
    targets: dict[str, str]
    folders: dict[str, Path]
    since: datetime
    probes: list[str]


@pytest.fixture
def trio(study_target, tmp_path) -> Trio:
    from tests.conftest import drop_pg_database, fresh_pg_url

    postgres = "://" in study_target
    folders = {name: tmp_path / name for name in VARIANTS}
    for folder in folders.values():
        (folder / "out").mkdir(parents=True)
    full = study_target if postgres else str(folders["full"] / "study.concord")
    build_full(full)
    targets = {"full": full}
    for name in VARIANTS[1:]:
        targets[name] = fresh_pg_url() if postgres else str(folders[name] / "study.concord")
        _copy(full, targets[name])
    remove_other_work(targets["no-other"])
    change_blinded(targets["changed"])
    engine = _engine(full)
    with engine.connect() as conn:
        top = conn.scalar(select(Code.id).order_by(Code.id.desc()).limit(1))
        names = conn.execute(
            select(Code.name).join(Coder, Coder.id == Code.creator_id).where(Coder.name == CODER)
        ).scalars()
        twin = next(iter(names))
    engine.dispose()
    probes = [str(n) for n in range(1, top + 3)] + [
        "KIMSECRET renamed",
        "KIMSECRET split a",
        twin,
        "stagnation",
        "none such",
    ]
    yield Trio(targets, folders, datetime.now(UTC), probes)
    if postgres:
        for name in VARIANTS[1:]:
            drop_pg_database(targets[name])


# -- comparing -------------------------------------------------------------------------------------

_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}:?\d{2}|Z)?")


def normalise(data: str, trio: Trio, variant: str) -> str:
    """The same study under another name, and clocks read after the copies were made, read alike."""
    data = data.replace(trio.targets[variant], "<STUDY>").replace(str(trio.folders[variant]), "<DIR>")
    data = (
        data.replace(make_url(trio.targets[variant]).database or "\0", "<DB>")
        if "://" in trio.targets[variant]
        else data
    )

    def stamp(match: re.Match) -> str:
        try:
            when = datetime.fromisoformat(match.group(0).replace("Z", "+00:00"))
        except ValueError:
            return match.group(0)
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        return "<NOW>" if when >= trio.since else match.group(0)

    return _STAMP.sub(stamp, data)


def file_text(path: Path) -> str:
    """A written file as text to compare: a zip (xlsx, docx, qdpx) member by member, without the
    members that only hold the time of writing."""
    raw = path.read_bytes()
    if zipfile.is_zipfile(io.BytesIO(raw)):
        parts = []
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            for name in sorted(archive.namelist()):
                if name in ("docProps/core.xml",):
                    continue
                parts.append(f"== {name}\n{archive.read(name).decode('utf-8', 'replace')}")
        return "\n".join(parts)
    if path.suffix in (".png",):
        return f"png of {len(raw)} bytes"
    if raw.startswith(b"SQLite format 3"):
        return f"a SQLite file of {len(raw)} bytes"
    return raw.decode("utf-8", "replace")


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    files: dict[str, str]

    def shown(self) -> str:
        return "\n".join([self.stdout, self.stderr, *self.files.values()])


def run_read(trio: Trio, variant: str, args: tuple[str, ...], monkeypatch) -> Outcome:
    folder = trio.folders[variant]
    out = folder / "out"
    for child in out.iterdir():
        child.unlink() if child.is_file() else shutil.rmtree(child)
    words = [a.replace(S, trio.targets[variant]).replace(O, str(out)) for a in args]
    monkeypatch.chdir(folder)
    result = CliRunner().invoke(main, words, catch_exceptions=True)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"concord {' '.join(words)} crashed on {variant}") from result.exception
    files = {
        str(p.relative_to(out)): normalise(file_text(p), trio, variant) for p in sorted(out.rglob("*")) if p.is_file()
    }
    return Outcome(
        result.exit_code, normalise(result.stdout, trio, variant), normalise(result.stderr, trio, variant), files
    )


def _first_difference(a: str, b: str) -> str:
    for number, (left, right) in enumerate(zip(a.splitlines(), b.splitlines(), strict=False), 1):
        if left != right:
            return f"line {number}: {left[:160]!r} != {right[:160]!r}"
    return f"lengths {len(a)} != {len(b)}"


def compare(outcomes: dict[str, Outcome], echoed: tuple[str, ...] = ()) -> list[str]:
    """What differs between the variants, and every marker shown (leaving out the words of the
    command itself, which an error message may repeat)."""
    problems = []
    full = outcomes["full"]
    for variant in VARIANTS[1:]:
        other = outcomes[variant]
        if other.code != full.code:
            problems.append(f"exit code {full.code} on full, {other.code} on {variant}")
        for part in ("stdout", "stderr"):
            if getattr(other, part) != getattr(full, part):
                problems.append(
                    f"{part} differs on {variant}: {_first_difference(getattr(full, part), getattr(other, part))}"
                )
        if set(other.files) != set(full.files):
            problems.append(f"written files differ on {variant}: {sorted(full.files)} vs {sorted(other.files)}")
        for name in set(other.files) & set(full.files):
            if other.files[name] != full.files[name]:
                problems.append(
                    f"{name} differs on {variant}: {_first_difference(full.files[name], other.files[name])}"
                )
    for variant, outcome in outcomes.items():
        shown = outcome.shown()
        for word in echoed:
            shown = shown.replace(word, "")
        for marker in MARKERS:
            if marker in shown:
                problems.append(f"{marker} shown on {variant}")
    return problems


def _report(record_property, kind: str, backend: str, tried: int, leaks: list[str]) -> None:
    """Counted into the run's summary by tests/conftest.py (BlindSummary), also under xdist."""
    record_property("blind_read_paths", f"{kind} ({backend})|{tried}|{len(leaks)}")


def test_cli_reads_are_blind(trio, backend, monkeypatch, record_property):
    monkeypatch.delenv("CONCORD_CODER", raising=False)
    reads = _reads(trio.probes)
    tree = dict(command_tree())
    leaks, tried = [], 0
    for path, read in reads.items():
        assert path in tree
        for args in read.variants:
            outcomes = {variant: run_read(trio, variant, (*path, *args), monkeypatch) for variant in VARIANTS}
            tried += 1
            for problem in compare(outcomes, echoed=args):
                leaks.append(f"concord {' '.join(path)} {' '.join(args)}: {problem}")
    _report(record_property, "CLI read paths", backend, tried, leaks)
    assert not leaks, f"{len(leaks)} of {tried} read paths leak:\n" + "\n".join(leaks)


# -- the workbench ---------------------------------------------------------------------------------


def screen_text(app) -> str:
    """What the screen shows; on a transcript, every line of the transcript view too (as the view draws
    it, gutter marks included), so that no part of a transcript goes unread below the fold."""
    strips = list(app.screen._compositor.render_strips())
    view = getattr(app.screen, "view", None)
    layout = getattr(view, "layout_index", None)
    if layout is not None:
        strips += [view._build_line(y, None, None) for y in range(layout.line_count)]
    return "\n".join("".join(segment.text for segment in strip).rstrip() for strip in strips)


async def _settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def workbench_screens(target: str) -> list[tuple[str, str]]:
    """Every screen alex can reach, as (what was done, the screen's text)."""
    from textual.widgets import DataTable

    from concord.app.tui.app import make_app

    shots: list[tuple[str, str]] = []
    app = make_app(target, CODER)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)

        async def shot(label: str) -> None:
            await _settle(pilot)
            shots.append((label, screen_text(app)))

        await shot("overview")
        for key in ("c", "g", "R", "T"):
            await pilot.press(key)
            await shot(f"overview {key}")
            if app.screen is not overview_screen(app):
                await pilot.press("escape")
                await _settle(pilot)

        async def back_to_overview() -> None:
            for _ in range(6):
                if app.screen is overview_screen(app):
                    return
                await pilot.press("escape")
                await _settle(pilot)

        await pilot.press("F")
        await _settle(pilot)
        for word in ("the", "low"):
            await pilot.press(*word)
            await shot(f"search {word!r}")
            await pilot.press("ctrl+f")
            await shot(f"search {word!r} fuzzy")
            await pilot.press("ctrl+f", *["backspace"] * len(word))
        await back_to_overview()
        table = app.screen.query_one("#transcripts", DataTable)
        for row in range(table.row_count):
            table.move_cursor(row=row)
            await pilot.press("enter")
            await _settle(pilot)
            # Whether the codebook panel's first highlight reaches the status line before or after the
            # transcript has loaded varies from run to run. With nothing selected, i (in vivo code) only
            # says how to select: the status line then reads the same every time.
            app.screen.view.focus()
            await _settle(pilot)
            await pilot.press("i")
            name = f"transcript row {row}"
            for turn in range(4):
                await pilot.press("o")
                await shot(f"{name} overlay {turn + 1}")
            # The picker, find and help look the same from every transcript: opened from the first only.
            dialogs = (("c", "code picker"), ("m", "memo"), ("f", "find"), ("question_mark", "help"))
            for key, label in dialogs if row == 0 else dialogs[1:2]:
                await pilot.press(key)
                await shot(f"{name} {label}")
                await pilot.press("escape")
                await _settle(pilot)
            await pilot.press("q")
            await _settle(pilot)
            await back_to_overview()
    return shots


def overview_screen(app):
    from concord.app.tui.screens.overview import OverviewScreen

    return next((s for s in app.screen_stack if isinstance(s, OverviewScreen)), None)


async def test_workbench_is_blind(trio, backend, record_property):
    screens = {variant: await workbench_screens(trio.targets[variant]) for variant in VARIANTS}
    leaks = []
    labels = [label for label, _ in screens["full"]]
    for variant in VARIANTS[1:]:
        if [label for label, _ in screens[variant]] != labels:
            leaks.append(f"alex reaches other screens on {variant}")
    tried = len(labels)
    for index, label in enumerate(labels):
        outcomes = {
            variant: Outcome(0, normalise(screens[variant][index][1], trio, variant), "", {})
            for variant in VARIANTS
            if index < len(screens[variant])
        }
        if len(outcomes) == len(VARIANTS):
            leaks += [f"workbench {label}: {problem}" for problem in compare(outcomes)]
    _report(record_property, "workbench screens", backend, tried, leaks)
    assert tried > 20
    assert not leaks, f"{len(leaks)} leaks in {tried} screens:\n" + "\n".join(leaks)


def test_the_copies_differ_where_they_should(trio):
    """The differential test is only as good as its copies: check they really lack or change what they should."""
    counts = {}
    for variant, target in trio.targets.items():
        engine = _engine(target)
        with engine.connect() as conn:
            other = conn.scalar(select(Coder.id).where(Coder.name == OTHER))
            counts[variant] = (
                conn.scalar(text("SELECT count(*) FROM codings WHERE coder_id = :c"), {"c": other}),
                conn.scalar(text("SELECT count(*) FROM memos WHERE coder_id = :c"), {"c": other}),
                conn.scalar(text("SELECT count(*) FROM audit_log WHERE actor = :c"), {"c": OTHER}),
                tuple(conn.execute(text("SELECT value FROM attributes WHERE blinded ORDER BY id")).scalars()),
                tuple(conn.execute(text("SELECT total FROM questionnaire_scores ORDER BY id")).scalars()),
                conn.scalar(select(Transcript.id).where(Transcript.key == "S01")),
            )
        assert inspect(engine).has_table("codings")
        engine.dispose()
    assert counts["full"][0] > 90 and counts["full"][1] >= 4 and counts["full"][2] > 0
    assert counts["no-other"][:3] == (0, 0, 0)
    assert counts["changed"][:3] == counts["full"][:3]
    assert counts["changed"][3] != counts["full"][3] and counts["changed"][4] != counts["full"][4]
    assert counts["no-other"][3:] == counts["full"][3:]
    assert "BLINDSECRET note" in counts["full"][3]


def test_the_comparison_catches_what_a_supervisor_may_see(trio, monkeypatch):
    """The same runs as the supervisor, who is not blind, must differ and show the markers: otherwise the
    comparison could not see a leak."""
    found = {}
    for args in (
        ("status", S, "--as", LEAD, "--format", "json"),
        ("codebook", "show", S, "inductive", "--as", LEAD),
        ("export", "frequencies", S, "--out", f"{O}/f.csv", "--layer", CODER, "--by", "group", "--as", LEAD),
        ("audit", S, "--as", LEAD, "--action", "code.split"),
    ):
        outcomes = {variant: run_read(trio, variant, args, monkeypatch) for variant in VARIANTS}
        found[args[0]] = compare(outcomes)
    assert all(found.values()), found
    assert any("KIMSECRET shown" in problem for problem in found["codebook"])
    assert any("changed" in problem for problem in found["export"])

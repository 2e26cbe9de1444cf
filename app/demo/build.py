"""Building the demo study from the shipped material, headless, through the services only.

``ensure_demo`` is what `concord demo` calls: it reuses a complete demo study, or builds one into
a temporary file next to the target and moves it into place with ``os.replace`` once every step
has succeeded, so an interrupted build leaves no half-made study where the demo is looked for.
"""

from __future__ import annotations

import csv
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from concord.storage.errors import ConcordError, InputError
from concord.storage.resources import package_path

MATERIAL = package_path("concord.app.demo", "material")
DEMO_FILENAME = "demo.concord"
DEMO_TITLE = "Concord demo: working alliance in CBT sessions"
CODEBOOKS = ("cbt-alliance-themes", "ipr-relationship-formation", "alliance-ruptures", "inductive")
# (answers table, instrument): the therapist's WAI-S is scored by the demo's own total-only definition.
MEASURES = (("wai-sr.csv", "wai-sr"), ("wai-s-demo.csv", "wai-s-demo.yaml"), ("bdi-ii.csv", "bdi-ii"))
SUPERVISOR = "sam"
TUI_CODER = "alex"
# The demo opens on a session the coder has half coded, so a newcomer lands in the work itself.
FIRST_TRANSCRIPT = "S02"
_BUILDING_SUFFIX = ".building"
# A leftover build file this old belongs to no running build (a build takes seconds).
_STALE_SECONDS = 600

Progress = Callable[[str], None]


def _quiet(step: str) -> None:
    return None


def default_directory() -> Path:
    import platformdirs

    return platformdirs.user_data_path("concord") / "demo"


def demo_path(directory: str | Path | None = None) -> Path:
    return Path(directory or default_directory()).expanduser() / DEMO_FILENAME


# -- what the material holds -------------------------------------------------------------------


@dataclass(frozen=True)
class MaterialCounts:
    """What a complete demo study holds, read from the material itself."""

    turns: dict[str, int]  # transcript key -> turns
    kinds: dict[str, str]  # transcript key -> session | ipr
    replayed_turns: int
    people: dict[str, str]  # name -> role
    codings: dict[str, int]  # coder -> codings (deductive and inductive)
    memos: dict[str, int]  # coder -> memos on transcripts and turns (not counting coding memos)
    forms: dict[str, int]  # answers table -> questionnaire forms
    sessions: int  # sessions with questionnaire answers
    dyads: int

    @property
    def transcripts(self) -> int:
        return len(self.turns)

    @property
    def total_turns(self) -> int:
        return sum(self.turns.values())


def _rows(name: str) -> list[dict[str, str]]:
    path = MATERIAL / name
    with open(path, newline="", encoding="utf-8") as handle:
        return [{key: (value or "").strip() for key, value in row.items()} for row in csv.DictReader(handle)]


def _instrument(reference: str) -> str:
    """A bundled instrument id, or a definition file in the material folder."""
    return str(MATERIAL / reference) if reference.endswith(".yaml") else reference


@lru_cache(maxsize=1)
def material_counts() -> MaterialCounts:
    from concord.analysis.scoring import load_instrument
    from concord.importers.codings_table import read_codings
    from concord.importers.manifest import parse_manifest_transcripts, read_manifest
    from concord.importers.measures_table import read_measures

    parsed = parse_manifest_transcripts(read_manifest(MATERIAL / "manifest.csv"))
    turns = {transcript.key: len(transcript.turns) for _, transcript in parsed}
    kinds = {transcript.key: entry.kind for entry, transcript in parsed}
    replayed = sum(turn.replayed for _, transcript in parsed for turn in transcript.turns)
    codings = Counter(row.coder for row in read_codings(MATERIAL / "codings.csv"))
    codings.update(row.coder for row in read_codings(MATERIAL / "inductive-codings.csv"))
    forms, sessions, dyads = {}, set(), set()
    for table, instrument in MEASURES:
        rows = read_measures(MATERIAL / table, load_instrument(_instrument(instrument)))
        forms[table] = len(rows)
        sessions.update((row.dyad, row.session) for row in rows)
        dyads.update(row.dyad for row in rows)
    return MaterialCounts(
        turns=turns,
        kinds=kinds,
        replayed_turns=replayed,
        people={row["name"]: row["role"] for row in _rows("people.csv")},
        codings=dict(sorted(codings.items())),
        memos=dict(sorted(Counter(row["coder"] for row in _rows("memos.csv")).items())),
        forms=forms,
        sessions=len(sessions),
        dyads=len(dyads),
    )


# -- building ----------------------------------------------------------------------------------


def build_study(target: str | Path, progress: Progress = _quiet) -> None:
    """Build the demo study at ``target``, a path where no study exists yet.

    Every step goes through the services and importers, as the CLI's commands would.
    """
    from concord.services.importing import import_codings, import_measures, import_transcripts
    from concord.services.study import add_coder, init_study
    from concord.services.workspace import Workspace

    progress("creating the study with the bundled codebooks")
    # Trusted: the tour switches between alex, kim and sam with --as on one machine.
    setup = init_study(
        str(target), title=DEMO_TITLE, blind=True, language="en", codebooks=CODEBOOKS, identity_mode="trusted"
    )
    try:
        # Supervisors come last: once a study has one, adding people takes a supervisor.
        for row in sorted(_rows("people.csv"), key=lambda row: row["role"] in ("supervisor", "admin")):
            add_coder(setup, row["name"], row["role"])
        lead = Workspace(setup.store, SUPERVISOR)
        progress("importing the transcripts (already pseudonymised)")
        import_transcripts(lead, [], manifest=str(MATERIAL / "manifest.csv"), pseudonymize=False)
        progress("importing the questionnaires")
        for table, instrument in MEASURES:
            import_measures(lead, str(MATERIAL / table), _instrument(instrument), create_sessions=True)
        progress("importing the coders' codings")
        import_codings(lead, str(MATERIAL / "codings.csv"))
        _coders_own_work(setup.store)
    finally:
        setup.close()


def _coders_own_work(store) -> None:
    """Inductive codes, memos and reading progress: made as each coder, as in the workbench."""
    from concord.importers.codings_table import read_codings
    from concord.services.codes import create_inductive_code
    from concord.services.coding import add_memo, apply_code
    from concord.services.dto import TranscriptDetail, TurnInfo
    from concord.services.transcripts import get_transcript, record_progress, set_done
    from concord.services.workspace import Workspace

    workspaces: dict[str, Workspace] = {}
    details: dict[tuple[str, str], TranscriptDetail] = {}

    def as_coder(name: str) -> Workspace:
        return workspaces.setdefault(name, Workspace(store, name))

    def transcript(name: str, key: str) -> TranscriptDetail:
        if (name, key) not in details:
            details[(name, key)] = get_transcript(as_coder(name), key)
        return details[(name, key)]

    def turn(name: str, key: str, number: int, path: Path, line: int) -> TurnInfo:
        found = [t for t in transcript(name, key).turns if t.number == number]
        if not found:
            raise InputError(f"transcript {key!r} has no turn {number}", str(path), line)
        return found[0]

    inductive_path = MATERIAL / "inductive-codings.csv"
    for row in read_codings(inductive_path):
        workspace = as_coder(row.coder)
        code = create_inductive_code(workspace, row.code)
        place = turn(row.coder, row.transcript, row.turn, inductive_path, row.line)
        start = place.char_start + (row.start or 0)
        end = place.char_start + row.end if row.end is not None else place.char_end
        apply_code(workspace, transcript(row.coder, row.transcript).id, code.id, start, end, memo=row.memo)

    for line, row in enumerate(_rows("memos.csv"), start=2):
        detail = transcript(row["coder"], row["transcript"])
        if row["turn"]:
            target = turn(row["coder"], row["transcript"], int(row["turn"]), MATERIAL / "memos.csv", line)
            add_memo(as_coder(row["coder"]), "turn", target.id, row["text"])
        else:
            add_memo(as_coder(row["coder"]), "transcript", detail.id, row["text"])

    for line, row in enumerate(_rows("progress.csv"), start=2):
        detail = transcript(row["coder"], row["transcript"])
        reviewed = int(row["turns_reviewed"])
        last = turn(row["coder"], row["transcript"], reviewed, MATERIAL / "progress.csv", line)
        record_progress(as_coder(row["coder"]), detail.id, turns_reviewed=reviewed, last_offset=last.char_start)
        if row["done"].casefold() in ("yes", "true", "1"):
            set_done(as_coder(row["coder"]), detail.id)


# -- checking and describing a built demo -----------------------------------------------------


@dataclass(frozen=True)
class DemoSummary:
    transcripts: int
    session_transcripts: int
    ipr_interviews: int
    turns: int
    replayed_turns: int
    codes: int
    codings: dict[str, int]
    memos: dict[str, int]
    done: dict[str, int]
    people: dict[str, str]
    forms: dict[str, int]
    sessions: int
    dyads: int


def _open_as_supervisor(path: Path):
    from concord.services.workspace import Workspace

    return Workspace.open(str(path), SUPERVISOR)


def incomplete_reason(path: Path) -> str | None:
    """Why the demo study at ``path`` is not complete, or None when it is.

    Raises ConcordError when the file there is not the demo at all, which must not be replaced.
    """
    from concord.services.study import list_coders
    from concord.services.transcripts import list_transcripts
    from concord.storage.errors import NotFound

    if path.stat().st_size == 0:
        return "the study file is empty"
    expected = material_counts()
    try:
        workspace = _open_as_supervisor(path)
    except ConcordError as exc:
        raise ConcordError(
            f"{path} exists but is not a demo study ({exc}); remove it or choose another --dir"
        ) from None
    try:
        if workspace.settings().title != DEMO_TITLE:
            raise ConcordError(
                f"{path} holds another study ({workspace.settings().title!r}), not the demo; choose another --dir"
            )
        try:
            coders = {coder.name: coder.role for coder in list_coders(workspace)}
            transcripts = {summary.key: summary.turns for summary in list_transcripts(workspace)}
        except NotFound:
            return f"it has no supervisor {SUPERVISOR!r}"
    finally:
        workspace.close()
    missing_people = [name for name, role in expected.people.items() if coders.get(name) != role]
    if missing_people:
        return f"people missing: {', '.join(missing_people)}"
    if transcripts != expected.turns:
        return (
            f"it holds {len(transcripts)} transcripts with {sum(transcripts.values())} turns,"
            f" not {expected.transcripts} with {expected.total_turns}"
        )
    return None


def describe(path: Path) -> DemoSummary:
    """What the demo study holds, as its supervisor sees it."""
    from concord.services.coding import list_memos
    from concord.services.study import list_coders, study_status
    from concord.services.transcripts import get_transcript, list_transcripts

    expected = material_counts()
    with _open_as_supervisor(path) as workspace:
        status = study_status(workspace)
        summaries = list_transcripts(workspace)
        replayed = sum(
            turn.replayed
            for summary in summaries
            if summary.kind == "ipr"
            for turn in get_transcript(workspace, summary.id).turns
        )
        memos = Counter(memo.coder for memo in list_memos(workspace))
        done = Counter(progress.coder for summary in summaries for progress in summary.others if progress.done)
        people = {coder.name: coder.role for coder in list_coders(workspace)}
    return DemoSummary(
        transcripts=status["transcripts"],
        session_transcripts=sum(summary.kind == "session" for summary in summaries),
        ipr_interviews=sum(summary.kind == "ipr" for summary in summaries),
        turns=status["turns"],
        replayed_turns=replayed,
        codes=status["codes"],
        codings={name: count for name, count in status["codings"].items() if count},
        memos=dict(sorted(memos.items())),
        done=dict(sorted(done.items())),
        people=people,
        forms=dict(expected.forms),
        sessions=expected.sessions,
        dyads=expected.dyads,
    )


# -- the whole step: reuse, or build and move into place ---------------------------------------


@dataclass(frozen=True)
class DemoResult:
    path: Path
    action: str  # built | reused | rebuilt
    reason: str | None
    seconds: float
    summary: DemoSummary = field(compare=False)


def _sqlite_files(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("", "-wal", "-shm", "-journal")]


def _remove(path: Path) -> None:
    for candidate in _sqlite_files(path):
        candidate.unlink(missing_ok=True)


def _builder_gone(candidate: Path) -> bool:
    """A leftover build file whose build is no longer running."""
    pid_text = candidate.name[: -len(_BUILDING_SUFFIX)].rsplit(".", 1)[-1]
    if os.name == "posix" and pid_text.isdigit():
        try:
            os.kill(int(pid_text), 0)  # signal 0 only asks whether the process exists
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return int(pid_text) == os.getpid()
    try:
        return time.time() - candidate.stat().st_mtime > _STALE_SECONDS
    except FileNotFoundError:
        return False


def _clear_leftovers(target: Path) -> None:
    for candidate in target.parent.glob(f".{target.name}.*{_BUILDING_SUFFIX}"):
        if _builder_gone(candidate):
            _remove(candidate)


def ensure_demo(
    directory: str | Path | None = None, *, rebuild: bool = False, progress: Progress = _quiet
) -> DemoResult:
    """The demo study, reused when complete, else built from scratch; never half-built in place."""
    started = time.perf_counter()
    target = demo_path(directory)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConcordError(f"{target.parent}: cannot create the demo folder ({exc.strerror})") from None
    _clear_leftovers(target)
    reason = None
    if target.exists():
        # Raises for a file that is not the demo: that is never replaced, not even with rebuild.
        problem = incomplete_reason(target)
        if problem is None and not rebuild:
            return DemoResult(target, "reused", None, time.perf_counter() - started, describe(target))
        reason = "asked to rebuild" if rebuild else problem
    building = target.with_name(f".{target.name}.{os.getpid()}{_BUILDING_SUFFIX}")
    _remove(building)
    try:
        build_study(building, progress)
        leftovers = [p.name for p in _sqlite_files(building)[1:] if p.exists()]
        if leftovers:
            raise ConcordError(f"the demo study was not closed cleanly ({', '.join(leftovers)} remain)")
        # Side files of the old study would be read as part of the new one.
        for side in _sqlite_files(target)[1:]:
            side.unlink(missing_ok=True)
        os.replace(building, target)
    except BaseException:
        _remove(building)
        raise
    action = "rebuilt" if reason else "built"
    return DemoResult(target, action, reason, time.perf_counter() - started, describe(target))

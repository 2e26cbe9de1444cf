"""The name register of a study, the review of what pseudonymising left, and re-pseudonymising
transcripts already in the study.

Real names never go into the study. They live in files beside the register, outside the study:

- the register itself (real name -> pseudonym, and the allow-list of words kept as they are);
- the review list (`<register>.review.json`): the suspects an import left in the text, each with
  its transcript, its place in the stored text and the line around it. `concord pseudonyms
  review` takes them one by one: replace (the word goes into the register and out of the text),
  or keep (it goes on the allow-list and is never flagged again).

Re-pseudonymising runs the pseudonymiser again over stored transcripts with the register as it is
now, and moves everything that points into the text with it: turn ranges, non-verbal marks,
codings (and their undo steps), consensus decisions and reading positions. A coding on
"Emma said no" is still on "Person-3 said no" afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from concord.services.audit import record
from concord.services.rights import require_setup_rights
from concord.services.workspace import Workspace
from concord.storage.errors import ConcordError, InputError
from concord.storage.models import Coding, ConsensusDecision, EditStep, Study, Transcript, TranscriptProgress, Turn

if TYPE_CHECKING:
    from concord.importers.name_register import NameRegister
    from concord.importers.pseudonymize import PseudonymResult
    from concord.importers.qdpx import ParsedProject

REVIEW_SUFFIX = ".review.json"


# -- where the files that hold real names go --------------------------------------------------------


def default_register_path(workspace: Workspace) -> Path:
    """Outside the study: in the user's data folder, named after the study."""
    import platformdirs

    digest = hashlib.sha256(workspace.store.display_name.encode()).hexdigest()[:10]
    stem = Path(workspace.store.display_name.split("/")[-1]).stem or "study"
    return platformdirs.user_data_path("concord") / "registers" / f"{stem}-{digest}.names.csv"


def register_path_for(workspace: Workspace, register_path: str | None = None) -> Path:
    path = Path(register_path or workspace.settings().pseudonym_register or default_register_path(workspace))
    refuse_inside_study(workspace, path, "the name register")
    return path


def refuse_inside_study(workspace: Workspace, path: str | os.PathLike[str], what: str) -> None:
    """A file that holds real names must not be the study or one of its own files (its journal,
    its write-ahead log, its backups): whoever may read the study would read the names too."""
    target = workspace.store.target
    if "://" in target:
        return  # a PostgreSQL study has no files here
    study = Path(target).resolve()
    candidate = Path(path).expanduser().resolve()
    sidecars = {study, *(study.with_name(study.name + suffix) for suffix in ("-wal", "-shm", "-journal"))}
    if candidate in sidecars or candidate.name.startswith(study.name + "."):
        raise ConcordError(f"{what} {path} would be written inside the study {target}; keep it outside the study")


def write_report(workspace: Workspace, path: str | os.PathLike[str], text: str) -> None:
    """The import's pseudonymisation report lists every real name: written like the register."""
    from concord.importers.name_register import write_private

    refuse_inside_study(workspace, path, "the report")
    write_private(path, text)


def review_path(register_path: str | os.PathLike[str]) -> Path:
    path = Path(register_path)
    return path.with_name(path.name + REVIEW_SUFFIX)


# -- the review list -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewItem:
    study: str  # the study's display name: one register may serve several studies
    transcript: str  # the transcript's key
    start: int  # the suspect's range in the stored (pseudonymised) text
    end: int
    token: str
    reason: str
    line: int
    context: str

    @property
    def ident(self) -> tuple[str, str, int, str]:
        return (self.study, self.transcript, self.start, self.token)


def read_review(path: str | os.PathLike[str]) -> list[ReviewItem]:
    path = Path(path)
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [ReviewItem(**item) for item in data.get("items", [])]
    except (ValueError, TypeError, AttributeError) as exc:
        raise InputError(f"the review list is not readable ({exc}); delete it to start again", str(path)) from exc


def write_review(path: str | os.PathLike[str], items: Sequence[ReviewItem]) -> None:
    from concord.importers.name_register import write_private

    content = json.dumps({"items": [asdict(item) for item in items]}, ensure_ascii=False, indent=1)
    write_private(path, content + "\n")


def add_review_items(register_path: str | os.PathLike[str], items: Iterable[ReviewItem]) -> int:
    path = review_path(register_path)
    current = read_review(path)
    known = {item.ident for item in current}
    fresh = [item for item in items if item.ident not in known]
    if fresh:
        write_review(path, current + fresh)
    return len(fresh)


def suspect_items(study: str, key: str, result: PseudonymResult, language: str) -> list[ReviewItem]:
    """Review items for the suspects of one pseudonymising result, at their place in its new text."""
    from concord.importers.pseudonymize import map_offset

    items = []
    for suspect in result.suspects:
        start = map_offset(result.offset_map, suspect.start)
        end = map_offset(result.offset_map, suspect.end)
        items.append(
            ReviewItem(
                study, key, start, end, suspect.token, suspect.reason, suspect.line, _context(result.text, start, end)
            )
        )
    return items


def _context(text: str, start: int, end: int, width: int = 50) -> str:
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    before = text[max(line_start, start - width) : start]
    after = text[end : min(line_end, end + width)]
    return f"{before}>>{text[start:end]}<<{after}".replace("\t", " ").replace("\r", "")


def pending(workspace: Workspace, register_path: str | None = None) -> tuple[Path, list[ReviewItem]]:
    """The register's path and the suspects of this study still waiting for a decision."""
    require_setup_rights(workspace)
    path = register_path_for(workspace, register_path)
    study = workspace.store.display_name
    return path, [item for item in read_review(review_path(path)) if item.study == study]


# -- decisions -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    item: ReviewItem
    action: str  # replace | keep
    kind: str = "person"  # what a replaced word is: person | place | organisation


@dataclass
class ReviewOutcome:
    replaced: int = 0
    kept: int = 0
    transcripts: list[str] | None = None
    replacements: int = 0


def apply_decisions(
    workspace: Workspace, decisions: Sequence[Decision], register_path: str | None = None, nlp_name: str | None = None
) -> ReviewOutcome:
    """Record each decision in the register (a pseudonym, or the allow-list), then re-pseudonymise the
    transcripts that held a replaced word, with that word forced out at its place; decided items
    leave the review list and the others move with their text."""
    from concord.importers.name_register import NameRegister

    require_setup_rights(workspace)
    path = register_path_for(workspace, register_path)
    outcome = ReviewOutcome(transcripts=[])
    if not decisions:
        return outcome
    with NameRegister.locked(path, create=True) as register:
        forced: dict[str, list[tuple[int, int]]] = {}
        for decision in decisions:
            if decision.action == "keep":
                register.add(decision.item.token, "keep")
                outcome.kept += 1
            elif decision.action == "replace":
                register.add(decision.item.token, decision.kind)
                forced.setdefault(decision.item.transcript, []).append((decision.item.start, decision.item.end))
                outcome.replaced += 1
            else:
                raise ConcordError(f"unknown review decision {decision.action!r}")
        register.save()
        decided = {decision.item.ident for decision in decisions}
        moved = {}
        if forced:
            results = repseudonymize(
                workspace, register, keys=sorted(forced), forced=forced, nlp_name=nlp_name, save_register=False
            )
            moved = {key: result for key, result in results.items() if result is not None}
            outcome.transcripts = sorted(moved)
            outcome.replacements = sum(len(result.replacements) for result in moved.values())
            register.save()
        _update_review(path, workspace.store.display_name, decided, moved)
    return outcome


def _update_review(
    register_path: Path,
    study: str,
    decided: set[tuple[str, str, int, str]],
    moved: Mapping[str, PseudonymResult | None],
) -> None:
    from concord.importers.pseudonymize import map_offset

    path = review_path(register_path)
    items = []
    for item in read_review(path):
        if item.ident in decided:
            continue
        result = moved.get(item.transcript) if item.study == study else None
        if result is not None:
            start, end = map_offset(result.offset_map, item.start), map_offset(result.offset_map, item.end)
            if result.text[start:end] != item.token:
                continue  # the word went with the re-pseudonymising
            item = ReviewItem(item.study, item.transcript, start, end, item.token, item.reason, item.line, item.context)
        items.append(item)
    write_review(path, items)


# -- re-pseudonymising stored transcripts --------------------------------------------------------------


def repseudonymize(
    workspace: Workspace,
    register: NameRegister,
    *,
    keys: Sequence[str] | None = None,
    forced: dict[str, list[tuple[int, int]]] | None = None,
    nlp_name: str | None = None,
    save_register: bool = True,
) -> dict[str, PseudonymResult | None]:
    """Pseudonymise stored transcripts again with `register` as it is now; every offset into their
    text moves with it. Returns, per transcript key, the result (None where nothing changed)."""
    from concord.importers.pseudonymize import (
        load_pipeline,
        map_offset,
        pipeline_for,
        pipeline_label,
        pseudonymize,
        pseudonymize_label,
    )
    from concord.importers.speakers import DEFAULT_LABEL_ROLES
    from concord.services.importing import _pipeline

    require_setup_rights(workspace)
    settings = workspace.settings()
    forced = forced or {}
    results: dict[str, PseudonymResult | None] = {}
    with workspace.store.session() as session:
        query = select(Transcript).order_by(Transcript.key)
        if keys is not None:
            query = query.where(Transcript.key.in_(list(keys)))
        transcripts = list(session.scalars(query))
        missing = sorted(set(keys or ()) - {t.key for t in transcripts})
        if missing:
            raise ConcordError(f"no transcript {', '.join(missing)} in the study")
        for transcript in transcripts:
            turns = list(session.scalars(select(Turn).where(Turn.transcript_id == transcript.id)))
            text = transcript.text
            protected = []
            for turn in turns:
                if " ".join(turn.speaker_label.split()).casefold() in DEFAULT_LABEL_ROLES:
                    protected.append((text.rfind("\n", 0, turn.char_start) + 1, turn.char_start))
            name = pipeline_for(transcript.language, nlp_name, settings.nlp_pipeline)
            nlp, has_ner = _pipeline(name, transcript.language, load_pipeline)
            spans = [(s, e) for s, e in forced.get(transcript.key, ()) if 0 <= s < e <= len(text)]
            result = pseudonymize(
                text,
                register=register,
                nlp=nlp,
                has_ner=has_ner,
                language=transcript.language,
                protected=_outside(protected, spans),
                forced=spans,
            )
            labels_changed = False
            for turn in turns:
                label = pseudonymize_label(turn.speaker_label, register=register, language=transcript.language)
                if label != turn.speaker_label:
                    turn.speaker_label = label[:120]
                    labels_changed = True
            if not result.replacements:
                results[transcript.key] = None
                continue

            def moved(offset: int, result: PseudonymResult = result) -> int:
                return map_offset(result.offset_map, offset)

            transcript.text = result.text
            for turn in turns:
                turn.char_start, turn.char_end = moved(turn.char_start), moved(turn.char_end)
                turn.nonverbal = [[moved(a), moved(b)] for a, b in (turn.nonverbal or [])]
            for coding in session.scalars(select(Coding).where(Coding.transcript_id == transcript.id)):
                coding.start_offset, coding.end_offset = moved(coding.start_offset), moved(coding.end_offset)
            for decision in session.scalars(
                select(ConsensusDecision).where(ConsensusDecision.transcript_id == transcript.id)
            ):
                decision.unit_start, decision.unit_end = moved(decision.unit_start), moved(decision.unit_end)
            for progress in session.scalars(
                select(TranscriptProgress).where(TranscriptProgress.transcript_id == transcript.id)
            ):
                progress.last_offset = moved(min(progress.last_offset, len(text)))
            for step in session.scalars(select(EditStep).where(EditStep.transcript_id == transcript.id)):
                step.payload = _moved_payload(step.payload, moved)
            results[transcript.key] = result
            record(
                session,
                workspace.actor_label,
                "transcript.repseudonymize",
                "transcript",
                transcript.id,
                key=transcript.key,
                replacements=len(result.replacements),
                labels_changed=labels_changed,
                pipeline=pipeline_label(nlp, name),
            )
        if save_register:
            register.save()
        study = session.get(Study, 1)
        if study is None:
            raise ConcordError("not a Concord study (no study settings)")
        if study.pseudonym_register != str(register.path):
            study.pseudonym_register = str(register.path)
    return results


def _outside(protected: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Protected ranges, less any that a forced span overlaps (a reviewer's decision wins)."""
    return [(a, b) for a, b in protected if not any(s < b and e > a for s, e in spans)]


def _moved_payload(payload: dict[str, Any], moved: Callable[[int], int]) -> dict[str, Any]:
    if not isinstance(payload, dict):
        return payload
    updated = dict(payload)
    for side in ("before", "after"):
        values = updated.get(side)
        if isinstance(values, dict) and "start_offset" in values and "end_offset" in values:
            values = dict(values)
            values["start_offset"] = moved(values["start_offset"])
            values["end_offset"] = moved(values["end_offset"])
            updated[side] = values
    return updated


def repseudonymize_study(
    workspace: Workspace,
    *,
    keys: Sequence[str] | None = None,
    register_path: str | None = None,
    nlp_name: str | None = None,
) -> dict[str, Any]:
    """`concord pseudonyms apply`: the whole study (or some transcripts) again, under the register's lock."""
    from concord.importers.name_register import NameRegister

    path = register_path_for(workspace, register_path)
    with NameRegister.locked(path, create=True) as register:
        before = len(register)
        results = repseudonymize(workspace, register, keys=keys, nlp_name=nlp_name)
        added = len(register) - before
    return {"results": results, "new_register_entries": added, "register": str(path)}


# -- REFI-QDA projects -----------------------------------------------------------------------------------


@dataclass
class ProjectPseudonyms:
    """How a REFI-QDA project's sources were pseudonymised: for the importer to move what points
    into their texts (turns, selections) and to pseudonymise what it reads later (keys, labels)."""

    register: NameRegister
    language: str
    results: dict[str, PseudonymResult]
    original_lengths: dict[str, int]

    def label(self, text: str | None, file_name: bool = False) -> str | None:
        from concord.importers.pseudonymize import pseudonymize_label

        if not text:
            return text
        return pseudonymize_label(text, register=self.register, language=self.language, file_name=file_name)

    def moved(self, source_key: str, offset: int) -> int:
        from concord.importers.pseudonymize import map_offset

        result = self.results.get(source_key)
        return offset if result is None else map_offset(result.offset_map, offset)


def pseudonymize_project(
    workspace: Workspace, project: ParsedProject, register: NameRegister, nlp_name: str | None = None
) -> ProjectPseudonyms:
    """Pseudonymise a read REFI-QDA project in place, before anything of it is stored: the source
    texts (selections move with them), source names, variable values, notes and case names."""
    import re
    from dataclasses import replace

    from concord.importers.pseudonymize import load_pipeline, pipeline_for, pseudonymize
    from concord.importers.speakers import DEFAULT_LABEL_ROLES
    from concord.services.importing import _pipeline

    settings = workspace.settings()
    language = settings.language
    name = pipeline_for(language, nlp_name, settings.nlp_pipeline)
    nlp, has_ner = _pipeline(name, language, load_pipeline)
    done = ProjectPseudonyms(register, language, {}, {})
    labels = re.compile(r"(?m)^[ \t]*([^\W\d_][^\n:]{0,40}?)[ \t]*:")
    for index, source in enumerate(project.sources):
        protected = [
            (match.start(), match.end())
            for match in labels.finditer(source.text)
            if " ".join(match.group(1).split()).casefold() in DEFAULT_LABEL_ROLES
        ]
        result = pseudonymize(
            source.text, register=register, nlp=nlp, has_ner=has_ner, language=language, protected=protected
        )
        done.results[source.key] = result
        done.original_lengths[source.key] = len(source.text)
        selections = tuple(
            replace(
                selection,
                start=None if selection.start is None else done.moved(source.key, selection.start),
                end=None if selection.end is None else done.moved(source.key, selection.end),
                name=done.label(selection.name),
                description=done.label(selection.description),
            )
            for selection in source.selections
        )
        project.sources[index] = replace(
            source,
            text=result.text,
            name=done.label(source.name, file_name=True),
            file_stem=done.label(source.file_stem, file_name=True),
            selections=selections,
            values=tuple(replace(value, value=done.label(value.value)) for value in source.values),
        )
    project.notes = {
        key: replace(note, text=done.label(note.text) or "", name=done.label(note.name))
        for key, note in project.notes.items()
    }
    project.cases = [
        replace(
            case,
            name=done.label(case.name),
            values=tuple(replace(value, value=done.label(value.value)) for value in case.values),
        )
        for case in project.cases
    ]
    return done

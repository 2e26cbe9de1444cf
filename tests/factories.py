"""Small studies built straight through the models, for tests of the services above them."""

from __future__ import annotations

import uuid

from concord.services.study import add_coder, init_study
from concord.services.workspace import Workspace
from concord.storage.models import (
    Attribute,
    Code,
    Codebook,
    Dyad,
    Participant,
    QuestionnaireScore,
    TherapySession,
    Transcript,
    Turn,
)

SESSION_TEXT = [
    ("T", "therapist", "How has the week been since we last met?"),
    ("P", "client", "Hard. (sighs) I kept thinking about what Anna said /.../ it never ends."),
    ("T", "therapist", "What did you notice in yourself when that thought came?"),
    ("P", "client", "That I wanted to give up. But I did the homework, um-hm, some of it."),
]


def build_transcript_text(turns=SESSION_TEXT) -> tuple[str, list[tuple[str, str, int, int]]]:
    lines, spans, offset = [], [], 0
    for label, role, utterance in turns:
        prefix = f"{label}: "
        start = offset + len(prefix)
        lines.append(prefix + utterance)
        spans.append((label, role, start, start + len(utterance)))
        offset += len(prefix) + len(utterance) + 1
    return "\n".join(lines), spans


def make_study(target: str, *, blind: bool = True) -> Workspace:
    """A study with coders ann and bob, supervisor sue, one session transcript with a
    blinded group attribute and a WAI-SR score, and a two-pole codebook."""
    workspace = init_study(target, title="Test study", blind=blind)
    # The supervisor comes last: once a study has one, adding people takes --as SUPERVISOR.
    for name, role in (("ann", "coder"), ("bob", "coder"), ("sue", "supervisor")):
        add_coder(workspace, name, role)
    text, spans = build_transcript_text()
    with workspace.store.session() as session:
        client = Participant(pseudonym="C01", role="client")
        therapist = Participant(pseudonym="T01", role="therapist")
        session.add_all([client, therapist])
        session.flush()
        dyad = Dyad(key="1", client_id=client.id, therapist_id=therapist.id)
        session.add(dyad)
        session.flush()
        therapy = TherapySession(dyad_id=dyad.id, number=5, modality="in person")
        session.add(therapy)
        session.flush()
        transcript = Transcript(
            key="S-A", kind="session", session_id=therapy.id, language="en", text=text, source_name="s-a.txt"
        )
        session.add(transcript)
        session.flush()
        for number, (label, role, start, end) in enumerate(spans, 1):
            session.add(
                Turn(
                    transcript_id=transcript.id,
                    number=number,
                    speaker_role=role,
                    speaker_label=label,
                    char_start=start,
                    char_end=end,
                    nonverbal=[],
                )
            )
        session.add_all(
            [
                Attribute(target_kind="session", target_id=therapy.id, name="group", value="high", blinded=True),
                Attribute(
                    target_kind="transcript", target_id=transcript.id, name="transcriber", value="kb", blinded=False
                ),
                QuestionnaireScore(
                    session_id=therapy.id,
                    instrument="WAI-SR",
                    respondent="client",
                    items={str(i): 4 for i in range(1, 13)},
                    subscales={"task": 16, "bond": 16, "goal": 16},
                    total=48,
                ),
            ]
        )
        book = Codebook(key="cbt-test", title="Test themes", version="1", origin="test")
        session.add(book)
        session.flush()
        theme = Code(codebook_id=book.id, guid=str(uuid.uuid4()), name="Therapeutic direction", origin="deductive")
        session.add(theme)
        session.flush()
        for position, (name, hotkey) in enumerate((("Moving forward", "1"), ("Stagnation", "2"))):
            session.add(
                Code(
                    codebook_id=book.id,
                    parent_id=theme.id,
                    guid=str(uuid.uuid4()),
                    name=name,
                    hotkey=hotkey,
                    position=position,
                    origin="deductive",
                )
            )
    return workspace


def as_person(workspace: Workspace, name: str | None) -> Workspace:
    """The same open study, acting as someone else."""
    return Workspace(workspace.store, name)

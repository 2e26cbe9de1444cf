"""The MIBot counselling conversations (real public data kept beside the repository) as one turn table.

Integration tests import real transcripts nobody on the team wrote: this writes them as a turn
table CSV with columns transcript, turn, speaker, text (one row per utterance, counsellor ->
therapist, client -> client). The data lives in ../shared/data/mibot/ and is not in the repository.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

SPEAKER_ROLES = {"counsellor": "therapist", "client": "client"}
TABLE_COLUMNS = ("transcript", "turn", "speaker", "text")


def mibot_dir() -> Path:
    """Where the MIBot data is: $CONCORD_MIBOT_DIR, else shared/data/mibot beside the repository."""
    configured = os.environ.get("CONCORD_MIBOT_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "mibot"


def mibot_transcripts_dir() -> Path:
    return mibot_dir() / "transcripts"


def mibot_missing_reason() -> str | None:
    """Why MIBot tests must skip, or None when the transcripts are there."""
    folder = mibot_transcripts_dir()
    if not folder.is_dir():
        return f"MIBot data not found at {folder} (set CONCORD_MIBOT_DIR or place shared/data/mibot beside the repo)"
    if not any(folder.glob("*.json")):
        return f"no MIBot transcripts (*.json) in {folder}"
    return None


def read_mibot_utterances(path: Path) -> tuple[str, list[tuple[str, str]]]:
    """(participant id, [(role, text), ...]) of one conversation file, in file order."""
    conversation = json.loads(path.read_text(encoding="utf-8"))
    participant = conversation["participant_id"]
    utterances = []
    for position, utterance in enumerate(conversation["utterances"], start=1):
        speaker = utterance["speaker"]
        if speaker not in SPEAKER_ROLES:
            raise ValueError(f"{path.name}: utterance {position} has unknown speaker {speaker!r}")
        utterances.append((SPEAKER_ROLES[speaker], utterance["text"]))
    return participant, utterances


def write_mibot_turn_table(out_csv: Path, transcripts_dir: Path | None = None) -> dict[str, int]:
    """Write every conversation into one CSV turn table; returns {transcript key: utterance count}."""
    folder = transcripts_dir or mibot_transcripts_dir()
    counts: dict[str, int] = {}
    with open(out_csv, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(TABLE_COLUMNS)
        for path in sorted(folder.glob("*.json")):
            participant, utterances = read_mibot_utterances(path)
            for turn, (role, text) in enumerate(utterances, start=1):
                writer.writerow((participant, turn, role, text))
            counts[participant] = len(utterances)
    return counts

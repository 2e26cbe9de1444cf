"""Rules the coding workbench follows, kept out of the screens so they can be tested headless.

- Which codebook's hotkeys are live in a transcript, and remembering that choice per coder and
  transcript (a small state file, see ``WorkbenchState``).
- One letter per codebook, for the margin marks: a digit means a different code in every codebook.
- Speakers shown by role, positions shown as turn and words (coders do not think in characters).
- The one-line hint when a code meant for some speakers is applied to another's turn.
- Shortening a name in the middle, so both its start and its distinguishing end stay readable.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from concord.services.dto import CodeInfo, TurnInfo

if TYPE_CHECKING:
    from concord.services.workspace import Workspace

STATE_ENV = "CONCORD_STATE_DIR"
ELLIPSIS = "…"
# How the workbench names each speaker role (the transcript's own label is shown beside it at the cursor).
ROLE_NAMES: dict[str, str] = {
    "therapist": "therapist",
    "client": "client",
    "interviewer": "interviewer",
    "other": "other",
}
_WORD = re.compile(r"\w+(?:['’\-]\w+)*")


# -- which codebook's hotkeys are live ---------------------------------------------------------


def hotkey_books(codes: Iterable[CodeInfo]) -> list[str]:
    """Codebooks that give some code a hotkey, in the study's order."""
    return list(dict.fromkeys(code.codebook for code in codes if code.hotkey))


def choose_hotkey_book(codes: Sequence[CodeInfo], *, kind: str, remembered: str | None) -> str | None:
    """The codebook whose hotkeys fire when a transcript opens: the one the coder last used there,
    else an IPR codebook for an IPR interview, else the first with hotkeys."""
    books = hotkey_books(codes)
    if remembered in books:
        return remembered
    if kind == "ipr":
        ipr = [book for book in books if "ipr" in book.casefold()]
        if ipr:
            return ipr[0]
    return books[0] if books else None


def next_hotkey_book(books: Sequence[str], current: str | None) -> str | None:
    if not books:
        return None
    index = books.index(current) + 1 if current in books else 0
    return books[index % len(books)]


def code_for_hotkey(codes: Iterable[CodeInfo], book: str | None, key: str) -> CodeInfo | None:
    """The code a key applies: only the active codebook's hotkeys fire."""
    if book is None:
        return None
    return next((code for code in codes if code.hotkey == key and code.codebook == book), None)


def book_letters(books: Iterable[str]) -> dict[str, str]:
    """A different capital letter for each codebook: the first letter of its name that is still free,
    else the first free letter of the alphabet (so two 'cbt-…' books get C and B, never C twice)."""
    letters: dict[str, str] = {}
    taken: set[str] = set()
    for book in dict.fromkeys(books):
        candidates = [ch.upper() for ch in book if ch.isalpha() and ch.isascii()]
        candidates += [chr(code) for code in range(ord("A"), ord("Z") + 1)]
        letter = next((ch for ch in candidates if ch not in taken), "?")
        letters[book] = letter
        taken.add(letter)
    return letters


# -- remembering the active codebook -------------------------------------------------------------


def state_dir() -> Path:
    """$CONCORD_STATE_DIR, else the user state folder (platformdirs)."""
    override = os.environ.get(STATE_ENV)
    if override:
        return Path(override)
    import platformdirs

    return platformdirs.user_state_path("concord", appauthor=False)


class WorkbenchState:
    """Per-study, per-coder workbench choices that are not research data (the active codebook per
    transcript). One JSON file per study uid in the user state folder.

    Why a file and not the database: transcript_progress has no free column, the edit-step payloads
    are the undo journal (pruned when a new step is taken), the audit log is append-only, and no
    migration may be added for a preference. A lost or unreadable file only means the workbench
    starts with its default codebook again, so errors reading it are ignored; writing is atomic.
    """

    def __init__(self, study_uid: str, coder: str, folder: Path | None = None) -> None:
        self.path = (folder or state_dir()) / "workbench" / f"{_safe(study_uid)}.json"
        self.coder = coder

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def hotkey_book(self, transcript_id: int) -> str | None:
        coder = self._read().get("coders", {}).get(self.coder, {})
        value = coder.get("hotkey_books", {}).get(str(transcript_id)) if isinstance(coder, dict) else None
        return value if isinstance(value, str) else None

    def remember_hotkey_book(self, transcript_id: int, book: str) -> None:
        data = self._read()
        coders = data.setdefault("coders", {})
        books = coders.setdefault(self.coder, {}).setdefault("hotkey_books", {})
        books[str(transcript_id)] = book
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".workbench-", suffix=".json")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=1, sort_keys=True)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "study"


# -- speakers and positions ------------------------------------------------------------------------


def role_name(role: str) -> str:
    return ROLE_NAMES.get(role, role)


def speaker_text(turn: TurnInfo) -> str:
    """'therapist (T)': the role, then the transcript's own label when it says something else."""
    name = role_name(turn.speaker_role)
    label = turn.speaker_label.strip()
    if not label or label.casefold() == name.casefold():
        return name
    return f"{name} ({label})"


def _words(text: str, start: int, end: int) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _WORD.finditer(text, start, end)]


def word_range(text: str, turn: TurnInfo, start: int, end: int) -> tuple[int, int] | None:
    """Which words of a turn [start, end) touches, numbered from 1 (None: it holds no word)."""
    words = _words(text, turn.char_start, turn.char_end)
    touched = [index for index, (a, b) in enumerate(words, 1) if a < end and b > start]
    if not touched:
        return None
    return touched[0], touched[-1]


def word_at(text: str, turn: TurnInfo, offset: int) -> int:
    """The number of the word at (or just before) an offset in a turn; 0 before the first word."""
    words = _words(text, turn.char_start, turn.char_end)
    number = 0
    for index, (a, _) in enumerate(words, 1):
        if a <= offset:
            number = index
    return number


def count_words(text: str, start: int, end: int) -> int:
    return len(_WORD.findall(text, start, end))


def describe_span(text: str, turns: Sequence[TurnInfo], start: int, end: int) -> str:
    """A span as a coder reads it: 'turn 12', 'turn 12, words 3–9', 'turns 4–6'."""
    inside = [turn for turn in turns if turn.char_start < max(end, start + 1) and turn.char_end > start]
    if not inside:
        return "outside the turns"
    if len(inside) > 1:
        return f"turns {inside[0].number}–{inside[-1].number}"
    turn = inside[0]
    words = word_range(text, turn, start, end)
    total = count_words(text, turn.char_start, turn.char_end)
    if words is None or (words == (1, total) and start <= turn.char_start and end >= turn.char_end):
        return f"turn {turn.number}"
    first, last = words
    return f"turn {turn.number}, word {first}" if first == last else f"turn {turn.number}, words {first}–{last}"


def turns_of_span(turns: Sequence[TurnInfo], start: int, end: int) -> list[TurnInfo]:
    return [turn for turn in turns if turn.char_start < max(end, start + 1) and turn.char_end > start]


# -- speaker hints ---------------------------------------------------------------------------------


def speakers_for(
    code: CodeInfo, codes: Mapping[int, CodeInfo], declared: Mapping[int, tuple[str, ...]]
) -> tuple[str, ...] | None:
    """The speaker roles a code is meant for: its own applies_to, else the nearest group's above it."""
    seen: set[int] = set()
    current: CodeInfo | None = code
    while current is not None and current.id not in seen:
        seen.add(current.id)
        if current.id in declared:
            return declared[current.id]
        current = codes.get(current.parent_id) if current.parent_id is not None else None
    return None


def speaker_hint(
    code: CodeInfo,
    codes: Mapping[int, CodeInfo],
    declared: Mapping[int, tuple[str, ...]],
    coded_turns: Sequence[TurnInfo],
) -> str | None:
    """A one-line hint when a code meant for some speakers was applied to none of their turns (the
    coding stands: codebooks describe, coders decide)."""
    meant = speakers_for(code, codes, declared)
    if not meant or not coded_turns:
        return None
    roles = list(dict.fromkeys(turn.speaker_role for turn in coded_turns))
    if any(role in meant for role in roles):
        return None
    wanted = " or ".join(role_name(role) for role in meant)
    got = " and ".join(role_name(role) for role in roles)
    return f"note: “{code.name}” is meant for {wanted} turns; this is {got}"


# -- fitting names ----------------------------------------------------------------------------------


def truncate_middle(text: str, width: int) -> str:
    """The text cut to `width` characters by taking out its middle ('focus on…problem area')."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    if width == 1:
        return ELLIPSIS
    keep = width - 1
    head = (keep + 1) // 2
    tail = keep - head
    return text[:head].rstrip() + ELLIPSIS + (text[len(text) - tail :].lstrip() if tail else "")


# -- where the study's codebooks say which speakers a code is for -----------------------------------


def declared_speakers(codes: Iterable[CodeInfo]) -> dict[int, tuple[str, ...]]:
    """{code id: applies_to} for the codes that declare speakers themselves (``speakers_for`` walks
    up the tree for the rest). The codebook's ``applies_to`` reaches CodeInfo from codes.applies_to;
    read with getattr so a study store from before that column simply gives no hints."""
    declared: dict[int, tuple[str, ...]] = {}
    for code in codes:
        roles = getattr(code, "applies_to", None)
        if roles:
            declared[code.id] = tuple(roles)
    return declared


def workbench_state(workspace: Workspace) -> WorkbenchState:
    """The state file of this study (by its uid, so a copied or moved study file keeps its choices)
    for the acting coder."""
    from sqlalchemy import select

    from concord.storage.models import Study

    with workspace.store.reader() as session:
        uid = session.scalar(select(Study.study_uid).where(Study.id == 1))
    if not uid:
        import hashlib

        uid = "path-" + hashlib.sha256(str(workspace.store.target).encode()).hexdigest()[:16]
    return WorkbenchState(uid, workspace.require_actor().name)

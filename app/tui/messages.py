"""Messages the workbench's widgets send up to their screens and to the app."""

from __future__ import annotations

from textual.message import Message

from concord.services.dto import TranscriptSummary


class OpenTranscript(Message):
    """The coder chose a transcript in the overview."""

    def __init__(self, summary: TranscriptSummary) -> None:
        super().__init__()
        self.summary = summary


class CodeChosen(Message):
    """A code was chosen in the codebook panel: apply it at the cursor."""

    def __init__(self, code_id: int) -> None:
        super().__init__()
        self.code_id = code_id


class CodeHighlighted(Message):
    """The codebook panel's highlight moved to a code (or off codes, None); ``by_user`` is False when
    the panel moved it itself (on loading, or to follow a jump)."""

    def __init__(self, code_id: int | None, by_user: bool = True) -> None:
        super().__init__()
        self.code_id = code_id
        self.by_user = by_user

"""Which file formats the table exports write, told by extension; light enough for the CLI to load at start."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from concord.storage.errors import ConcordError

FORMATS = (".csv", ".xlsx", ".docx", ".json")


def format_of(path: str | os.PathLike, allowed: Sequence[str] = FORMATS) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in allowed:
        raise ConcordError(
            f"{path}: cannot tell the format from the extension {suffix or '(none)'!r}; use one of {', '.join(allowed)}"
        )
    return suffix

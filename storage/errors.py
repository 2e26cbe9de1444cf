"""Errors every layer raises; the CLI turns them into one line on stderr and exit 2."""

from __future__ import annotations


class ConcordError(Exception):
    """An error the user can act on: the message is shown as it is."""

    exit_code = 2


class InputError(ConcordError):
    """Unusable input: names the file and line (or row/column) and what is wrong."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        self.detail = message
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")


class PermissionDenied(ConcordError):
    """The acting person's role or the blind does not allow this."""


class NotFound(ConcordError):
    """A named thing (study, coder, transcript, code) does not exist."""


class Conflict(ConcordError):
    """A change the study's own rules refuse (a duplicate, a reference to nothing, a value out of range):
    raised by storage at the end of a unit of work, which then saved nothing."""

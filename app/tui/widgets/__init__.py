"""Widgets of the Concord TUI."""

from app.tui.widgets.transcript_view import TranscriptView

__all__ = ["TranscriptView"]

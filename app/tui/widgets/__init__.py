"""Widgets of the Concord TUI."""

from concord.app.tui.widgets.transcript_view import TranscriptView

__all__ = ["TranscriptView"]

"""Numbers computed from a study: inter-coder agreement, questionnaire scoring, session selection.

A top-level package of its own because statistics are neither storage, import,
export nor presentation, and they must be testable against reference
implementations without a database or a screen.
"""

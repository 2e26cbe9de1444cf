"""The rules of a study: roles, the blind, consensus and the audit trail.

A top-level package of its own because these rules have no other home: `storage/`
only talks SQL, `app/` only presents, and both the CLI and the TUI (and every
importer and exporter acting for a person) must pass through the same rules.
Services open one unit of work per call and return frozen dataclasses, never
live ORM objects. Nothing here imports Textual.
"""

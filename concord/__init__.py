"""Concord: a terminal workbench for the qualitative coding of psychotherapy transcripts.

The project's folders (app/, services/, storage/, ...) are installed under this one
name: ``concord.app``, ``concord.services``, ``concord.storage`` and so on.
"""

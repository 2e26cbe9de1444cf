"""Turning users' files (transcripts, questionnaires, earlier codings) into study data, pseudonymised first."""

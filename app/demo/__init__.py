"""The demo study: `concord demo` builds a small, complete blind study to try Concord on.

The material in ``material/`` was written for Concord (fiction, pseudonyms already in place):
six CBT session transcripts of three dyads, one high- and one low-alliance session each, two IPR
interviews about one of those sessions, questionnaire answers for every session of the three
dyads, and two coders' partly finished blind coding. ``build`` turns it into a study through the
same services and importers a user's commands go through, and never leaves a half-built study
behind: it builds into a temporary file and moves it into place only when it is complete.
"""

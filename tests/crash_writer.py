"""Writes codings one by one and prints each id once it is committed; killed by test_crash."""

import sys

from concord.services import codes, coding, transcripts
from concord.services.workspace import Workspace

workspace = Workspace.open(sys.argv[1], "ann")
detail = transcripts.get_transcript(workspace, "S-A")
code_id = next(c.id for c in codes.visible_codes(workspace) if c.name == "Moving forward")
while True:
    made = coding.apply_code(workspace, detail.id, code_id, 0, 10)
    print(made.id, flush=True)

"""A small app hosting consensus mode (and the agreement screen) until the workbench app hosts them.

`concord consensus STUDY --as SUPERVISOR` runs it. The screens are self-contained: they take the open
``Workspace`` and ask the services for everything, so the main app can push them the same way.
"""

from __future__ import annotations

from textual.app import App
from textual.binding import Binding

from app.tui.screens.agreement import AgreementScreen
from app.tui.screens.consensus import ConsensusScreen
from services.agreement import AgreementOptions
from services.workspace import Workspace


class ConsensusApp(App[None]):
    TITLE = "Concord consensus"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True, id="consensus-app.quit"),
        Binding("g", "agreement", "Agreement", id="consensus-app.agreement"),
    ]

    def __init__(self, workspace: Workspace, *, unit: str = "turn", overlap: float = 0.5,
                 present: tuple[str, ...] = (), transcripts: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.workspace = workspace
        self.actor = workspace.require_supervisor()
        self.screen_options = {"unit": unit, "overlap": overlap, "present": tuple(present),
                               "transcripts": tuple(transcripts)}
        self.sub_title = f"{self.actor.name} ({self.actor.role})"

    def get_default_screen(self) -> ConsensusScreen:
        return ConsensusScreen(self.workspace, **self.screen_options)

    def action_agreement(self) -> None:
        if isinstance(self.screen, ConsensusScreen):
            options = AgreementOptions(transcripts=self.screen_options["transcripts"])
            self.push_screen(AgreementScreen(self.workspace, options))


def run_consensus(workspace: Workspace, **options) -> None:
    ConsensusApp(workspace, **options).run()

"""The coding workbench app and the factory the CLI and the tests build it with."""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.binding import Binding
from textual.dom import DOMNode
from textual.screen import Screen

from app.tui.commands import ConcordCommands
from app.tui.keymap import KeyRow, binding_ids, key_rows, keymap_path, load_keymap
from app.tui.messages import OpenTranscript
from app.tui.screens.code_picker import CodePicker
from app.tui.screens.find import FindScreen
from app.tui.screens.help import HelpScreen
from app.tui.screens.memo import MemoScreen
from app.tui.screens.overview import OverviewScreen
from app.tui.screens.transcript import TranscriptScreen
from app.tui.widgets.transcript_view import TranscriptView
from services.workspace import Workspace
from storage.errors import ConcordError


class ConcordApp(App[None]):
    """One coder (or supervisor) working in one study."""

    # All styles load once at start; a screen with its own CSS_PATH would re-parse them when pushed.
    CSS_PATH = ["app.tcss", "screens/overview.tcss", "screens/transcript.tcss"]
    TITLE = "Concord"
    COMMANDS = App.COMMANDS | {ConcordCommands}
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True, id="app.quit"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("ctrl+p", "command_palette", "Commands", show=False, priority=True, id="app.palette"),
    ]

    def __init__(self, workspace: Workspace, *, keymap: dict[str, str] | None = None,
                 keymap_file: Path | None = None, theme: str | None = None) -> None:
        super().__init__()
        self.workspace = workspace
        self.actor = workspace.require_actor()
        self.keymap = dict(keymap or {})
        self.keymap_file = keymap_file or keymap_path()
        self._reported_clashes: set[str] = set()
        if theme:
            if theme not in self.available_themes:
                raise ConcordError(f"unknown theme {theme!r}; choose one of: {', '.join(sorted(self.available_themes))}")
            self.theme = theme
        self.sub_title = f"{self.actor.name} ({self.actor.role})"

    def get_default_screen(self) -> Screen:
        return OverviewScreen()

    def on_mount(self) -> None:
        if self.keymap:
            self.set_keymap(self.keymap)

    def on_unmount(self) -> None:
        self.workspace.close()

    def on_open_transcript(self, message: OpenTranscript) -> None:
        open_mode = not self.workspace.blind_for_actor()
        self.push_screen(TranscriptScreen(message.summary, open_mode=open_mode))

    def key_rows_for(self, screen: Screen) -> list[KeyRow]:
        """Every action available on a screen, with its keys after the user's remapping."""
        nodes = screen.key_nodes() if hasattr(screen, "key_nodes") else [(screen, "This screen"),
                                                                          (self, "Everywhere")]
        return key_rows(nodes, self.keymap)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.key_rows_for(self.screen), self.keymap_file))

    def handle_bindings_clash(self, clashed_bindings: set[Binding], node: DOMNode) -> None:
        """A remapped key took a key another action had: say so once, not on every key press."""
        for binding in clashed_bindings:
            name = binding.id or binding.action
            if name not in self._reported_clashes:
                self._reported_clashes.add(name)
                self.notify(f"{self.keymap_file}: your keys take {binding.key!r} from {name!r}",
                            title="Key clash", severity="warning", markup=False)


# Every class whose bindings the user may remap by id.
KEYED_CLASSES = (ConcordApp, OverviewScreen, TranscriptScreen, TranscriptView, CodePicker, MemoScreen, FindScreen,
                 HelpScreen)


def remappable_ids() -> set[str]:
    return binding_ids(KEYED_CLASSES)


def make_app(study: str, actor: str | None, *, config_path: str | Path | None = None,
             theme: str | None = None) -> ConcordApp:
    """Open STUDY for ACTOR with their key file (or ``config_path``) and theme."""
    keymap_file = Path(config_path) if config_path else keymap_path()
    keymap = load_keymap(Path(config_path) if config_path else None, known_ids=remappable_ids())
    workspace = Workspace.open(study, actor)
    try:
        return ConcordApp(workspace, keymap=keymap, keymap_file=keymap_file, theme=theme)
    except BaseException:
        workspace.close()
        raise

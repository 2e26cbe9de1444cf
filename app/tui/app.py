"""The coding workbench app and the factory the CLI and the tests build it with."""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.binding import Binding
from textual.dom import DOMNode
from textual.screen import Screen

from concord.app.tui.commands import ConcordCommands
from concord.app.tui.keymap import KeyRow, binding_ids, key_rows, keymap_path, load_keymap
from concord.app.tui.messages import OpenTranscript
from concord.app.tui.screens.agreement import AgreementScreen, DisagreementsScreen
from concord.app.tui.screens.code_picker import CodePicker
from concord.app.tui.screens.consensus import (
    CodeChoiceDialog,
    ConsensusScreen,
    ConsensusSetup,
    RationaleDialog,
    SpanDialog,
)
from concord.app.tui.screens.find import FindScreen
from concord.app.tui.screens.help import HelpScreen
from concord.app.tui.screens.memo import MemoScreen
from concord.app.tui.screens.overview import OverviewScreen
from concord.app.tui.screens.results import ResultsScreen
from concord.app.tui.screens.search import SearchScreen
from concord.app.tui.screens.similar import SimilarScreen
from concord.app.tui.screens.themes import (
    Confirm,
    DefinitionEditor,
    SuggestionsScreen,
    TargetPicker,
    TextPrompt,
    ThemesScreen,
)
from concord.app.tui.screens.transcript import TranscriptScreen
from concord.app.tui.widgets.transcript_view import TranscriptView
from concord.services.agreement import AgreementOptions
from concord.services.dto import TranscriptSummary
from concord.services.rights import (
    require_agreement_rights,
    require_consensus_rights,
    require_results_rights,
    require_theme_rights,
)
from concord.services.workspace import Workspace
from concord.storage.errors import ConcordError, PermissionDenied

# Where the app can open: the overview, or straight in one of the sections it leads to.
STARTS = ("overview", "consensus", "agreement", "results")


class ConcordApp(App[None]):
    """One person working in one study: coding from the overview, and for supervisors (or anyone once the
    study is unblinded) consensus, agreement and results, each a screen pushed over the overview."""

    # All styles load once at start; a screen with its own CSS_PATH would re-parse them when pushed.
    CSS_PATH = [
        "app.tcss",
        "screens/overview.tcss",
        "screens/transcript.tcss",
        "screens/consensus.tcss",
        "screens/agreement.tcss",
        "screens/results.tcss",
        "screens/themes.tcss",
    ]
    TITLE = "Concord"
    COMMANDS = App.COMMANDS | {ConcordCommands}
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True, id="app.quit"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("ctrl+p", "command_palette", "Commands", show=False, priority=True, id="app.palette"),
    ]

    def __init__(
        self,
        workspace: Workspace,
        *,
        keymap: dict[str, str] | None = None,
        keymap_file: Path | None = None,
        theme: str | None = None,
        start: str = "overview",
        consensus: ConsensusSetup | None = None,
        transcript: str | None = None,
    ) -> None:
        super().__init__()
        self.workspace = workspace
        self.actor = workspace.require_actor()
        if start not in STARTS:
            raise ConcordError(f"unknown start {start!r}; choose one of: {', '.join(STARTS)}")
        self.start = start
        self.first_transcript = transcript
        self.consensus_setup = consensus or ConsensusSetup()
        # Whether the blind hides groups and the others' work from this person; the overview refreshes it.
        self.blind = workspace.blind_for_actor()
        if start != "overview":
            self.SECTION_RIGHTS[start](workspace)
        self.keymap = dict(keymap or {})
        self.keymap_file = keymap_file or keymap_path()
        self._reported_clashes: set[str] = set()
        if theme:
            if theme not in self.available_themes:
                raise ConcordError(
                    f"unknown theme {theme!r}; choose one of: {', '.join(sorted(self.available_themes))}"
                )
            self.theme = theme
        self.sub_title = f"{self.actor.name} ({self.actor.role})"

    def get_default_screen(self) -> Screen:
        return OverviewScreen()

    def on_mount(self) -> None:
        if self.keymap:
            self.set_keymap(self.keymap)
        if self.start != "overview":
            self.open_section(self.start)
        elif self.first_transcript:
            self._open_first_transcript(self.first_transcript)

    def _open_first_transcript(self, key: str) -> None:
        from concord.services.transcripts import list_transcripts

        summary = next((s for s in list_transcripts(self.workspace) if s.key == key), None)
        if summary is None:
            self.notify(f"No transcript {key!r} in this study", severity="error", markup=False)
            return
        self.open_transcript(summary)

    def on_unmount(self) -> None:
        self.workspace.close()

    def on_open_transcript(self, message: OpenTranscript) -> None:
        self.open_transcript(message.summary)

    def open_transcript(self, summary: TranscriptSummary, *, at: tuple[int, int] | None = None) -> None:
        """Push the coding screen for a transcript, at the coder's last place or with the span ``at`` selected."""
        open_mode = not self.workspace.blind_for_actor()
        self.push_screen(TranscriptScreen(summary, open_mode=open_mode, at=at))

    # -- the sections beyond coding ----------------------------------------------------------------

    # The services' own checks, asked before a section opens so a refusal is a message, not an empty screen.
    SECTION_RIGHTS = {
        "consensus": require_consensus_rights,
        "agreement": require_agreement_rights,
        "results": require_results_rights,
        "themes": require_theme_rights,
    }

    def open_section(self, section: str, **options) -> bool:
        """Push consensus, agreement, results or theme development over the current screen, if the services
        allow it."""
        try:
            self.SECTION_RIGHTS[section](self.workspace)
        except PermissionDenied as exc:
            self.notify(str(exc), title=f"No {section}", severity="error", markup=False)
            return False
        if section == "consensus":
            screen = ConsensusScreen.from_setup(self.workspace, self.consensus_setup)
        elif section == "agreement":
            transcripts = options.get("transcripts", self.consensus_setup.transcripts)
            screen = AgreementScreen(self.workspace, AgreementOptions(transcripts=tuple(transcripts)))
        elif section == "themes":
            screen = ThemesScreen(self.workspace)
        else:
            screen = ResultsScreen(self.workspace)
        self.push_screen(screen)
        return True

    def open_consensus(self) -> bool:
        return self.open_section("consensus")

    def open_agreement(self, transcripts: tuple[str, ...] | None = None) -> bool:
        return self.open_section("agreement", **({} if transcripts is None else {"transcripts": transcripts}))

    def open_results(self) -> bool:
        return self.open_section("results")

    def open_themes(self) -> bool:
        return self.open_section("themes")

    def open_search(self) -> None:
        self.push_screen(SearchScreen(self.workspace))

    def key_rows_for(self, screen: Screen) -> list[KeyRow]:
        """Every action available on a screen, with its keys after the user's remapping."""
        nodes = screen.key_nodes() if hasattr(screen, "key_nodes") else [(screen, "This screen"), (self, "Everywhere")]
        # A screen may leave keys out that do nothing in this study (the assistant's, while it is off).
        hidden = screen.hidden_keys() if hasattr(screen, "hidden_keys") else frozenset()
        return [row for row in key_rows(nodes, self.keymap) if row.binding_id not in hidden]

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.key_rows_for(self.screen), self.keymap_file))

    def handle_bindings_clash(self, clashed_bindings: set[Binding], node: DOMNode) -> None:
        """A remapped key took a key another action had: say so once, not on every key press."""
        for binding in clashed_bindings:
            name = binding.id or binding.action
            if name not in self._reported_clashes:
                self._reported_clashes.add(name)
                self.notify(
                    f"{self.keymap_file}: your keys take {binding.key!r} from {name!r}",
                    title="Key clash",
                    severity="warning",
                    markup=False,
                )


# Every class whose bindings the user may remap by id.
KEYED_CLASSES = (
    ConcordApp,
    OverviewScreen,
    TranscriptScreen,
    TranscriptView,
    CodePicker,
    MemoScreen,
    FindScreen,
    HelpScreen,
    ConsensusScreen,
    RationaleDialog,
    CodeChoiceDialog,
    SpanDialog,
    AgreementScreen,
    DisagreementsScreen,
    ResultsScreen,
    ThemesScreen,
    TextPrompt,
    DefinitionEditor,
    Confirm,
    TargetPicker,
    SuggestionsScreen,
    SearchScreen,
    SimilarScreen,
)


def remappable_ids() -> set[str]:
    return binding_ids(KEYED_CLASSES)


def make_app(
    study: str,
    actor: str | None,
    *,
    config_path: str | Path | None = None,
    theme: str | None = None,
    start: str = "overview",
    consensus: ConsensusSetup | None = None,
    transcript: str | None = None,
) -> ConcordApp:
    """Open STUDY for ACTOR with their key file (or ``config_path``) and theme, on the overview or straight
    in ``start`` (consensus, agreement or results; refused with PermissionDenied for who may not see it),
    or with ``transcript`` (a key) open for coding."""
    keymap_file = Path(config_path) if config_path else keymap_path()
    keymap = load_keymap(Path(config_path) if config_path else None, known_ids=remappable_ids())
    workspace = Workspace.open(study, actor)
    try:
        return ConcordApp(
            workspace,
            keymap=keymap,
            keymap_file=keymap_file,
            theme=theme,
            start=start,
            consensus=consensus,
            transcript=transcript,
        )
    except BaseException:
        workspace.close()
        raise

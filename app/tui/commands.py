"""The command palette (ctrl+p): every action of the current screen with its key,
plus one "apply code" command per code on the transcript screen."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.markup import escape


@dataclass(frozen=True)
class PaletteCommand:
    name: str
    keys: str
    help: str
    run: Callable[[], object]


class ConcordCommands(Provider):
    """Commands from the screen under the palette, so the list always matches what the keys do.

    The palette reads help texts as markup; ours hold code definitions and keys like "[",
    so they are escaped.
    """

    def _commands(self) -> Iterator[PaletteCommand]:
        app = self.app
        screen = self.screen
        for row in app.key_rows_for(screen):
            if row.action == "command_palette":
                continue
            yield PaletteCommand(
                row.description,
                row.keys_text,
                f"{row.where} · key {row.keys_text}",
                partial(app.run_action, row.action, row.node),
            )
        extra = getattr(screen, "palette_commands", None)
        if extra is not None:
            yield from extra()

    @staticmethod
    def _display(command: PaletteCommand, name: Content) -> Content:
        if command.keys:
            return name + Content.styled(f"  {command.keys}", "dim")
        return name

    async def discover(self) -> Hits:
        for command in self._commands():
            yield DiscoveryHit(
                self._display(command, Content(command.name)), command.run, text=command.name, help=escape(command.help)
            )

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            score = matcher.match(command.name)
            if score > 0:
                yield Hit(
                    score,
                    self._display(command, matcher.highlight(escape(command.name))),
                    command.run,
                    text=command.name,
                    help=escape(command.help),
                )

"""The in-memory shape of a codebook: frozen dataclasses shared by the loader, the .qdc exchange and the TUI."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class CodeSpec:
    """One node of a codebook tree: a theme, a sub-theme or a code.

    `pole` names which side of a two-sided theme this node is ("high"/"low",
    "facilitating"/"hindering"); `high_pole` is True on the high-alliance or
    facilitating side and False on the other, None where poles do not apply.
    """

    name: str
    label: str | None = None
    definition: str | None = None
    inclusion: str | None = None
    exclusion: str | None = None
    example: str | None = None
    pole: str | None = None
    high_pole: bool | None = None
    hotkey: str | None = None
    colour: str | None = None
    guid: str | None = None
    children: tuple[CodeSpec, ...] = ()

    @property
    def display_label(self) -> str:
        return self.label or self.name


# Text fields in the order the YAML format and the .qdc description block write them.
CODE_TEXT_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(CodeSpec) if f.name not in ("name", "high_pole", "children")
)


@dataclass(frozen=True)
class CodebookSpec:
    id: str
    title: str
    version: str
    source: str | None
    description: str | None
    codes: tuple[CodeSpec, ...]

    def walk(self) -> Iterator[tuple[tuple[str, ...], CodeSpec]]:
        """Every node depth-first, parents before children, with its path of names from the root."""
        yield from _walk(self.codes, ())

    def code_count(self) -> int:
        return sum(1 for _ in self.walk())

    def find(self, *path: str) -> CodeSpec:
        """The node at a path of names, e.g. find("therapist style", "exploring")."""
        siblings = self.codes
        node: CodeSpec | None = None
        for name in path:
            node = next((code for code in siblings if code.name == name), None)
            if node is None:
                raise KeyError(f"no code {' > '.join(path)!r} in codebook {self.id!r}")
            siblings = node.children
        if node is None:
            raise KeyError("an empty path names no code")
        return node

    def hotkeys(self) -> dict[str, tuple[str, ...]]:
        """Hotkey -> path of the code it applies."""
        return {code.hotkey: path for path, code in self.walk() if code.hotkey is not None}


def _walk(codes: tuple[CodeSpec, ...], prefix: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], CodeSpec]]:
    for code in codes:
        path = (*prefix, code.name)
        yield path, code
        yield from _walk(code.children, path)

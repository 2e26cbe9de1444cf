"""User key remapping, and the list of every action with the keys that trigger it.

Each binding in the workbench has an id ("transcript.undo"). A TOML file maps ids
to keys, either flat or grouped in tables:

    "transcript.undo" = "z"
    [transcript]
    pick-code = ["c", "space"]

The file is ``$CONCORD_KEYMAP`` or ``keys.toml`` in the user config folder; the
app hands the result to ``App.set_keymap``. The help screen and the command
palette read the same bindings, so what they show is what the keys do.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_config_path
from rich.text import Text
from textual.actions import parse as parse_action
from textual.binding import Binding
from textual.dom import DOMNode

from concord.storage.errors import InputError

KEYMAP_ENV = "CONCORD_KEYMAP"
KEYMAP_FILE = "keys.toml"
_TOML_POSITION = re.compile(r"\(at line (\d+), column \d+\)")


def keymap_path() -> Path:
    """Where the user's key file is looked for: $CONCORD_KEYMAP, else the user config folder."""
    override = os.environ.get(KEYMAP_ENV)
    if override:
        return Path(override)
    return user_config_path("concord", appauthor=False) / KEYMAP_FILE


def _line_of(lines: list[str], leaf: str) -> int | None:
    pattern = re.compile(rf"""^\s*["']?{re.escape(leaf)}["']?\s*=""")
    for number, line in enumerate(lines, 1):
        if pattern.match(line):
            return number
    return None


def _flatten(table: Mapping, prefix: str = "") -> Iterator[tuple[str, str, object]]:
    """(binding id, last part of the id, value) for every leaf of a TOML table."""
    for name, value in table.items():
        binding_id = f"{prefix}.{name}" if prefix else name
        if isinstance(value, dict):
            yield from _flatten(value, binding_id)
        else:
            yield binding_id, name, value


def load_keymap(path: Path | None = None, known_ids: Collection[str] | None = None) -> dict[str, str]:
    """Read a key file into {binding id: "key,key"}.

    A missing file at the default place means no remapping; a file named
    explicitly must exist. Errors name the file and line.
    """
    explicit = path is not None
    path = Path(path) if explicit else keymap_path()
    if not path.exists():
        if explicit or os.environ.get(KEYMAP_ENV):
            raise InputError("no such key file", path=str(path))
        return {}
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the key file ({exc})", path=str(path)) from None
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_POSITION.search(str(exc))
        message = _TOML_POSITION.sub("", str(exc)).strip()
        raise InputError(
            f"not valid TOML: {message}", path=str(path), line=int(found.group(1)) if found else None
        ) from None
    lines = source.splitlines()
    keymap: dict[str, str] = {}
    for binding_id, leaf, value in _flatten(data):
        line = _line_of(lines, leaf)
        if isinstance(value, str):
            keys = [key.strip() for key in value.split(",")]
        elif isinstance(value, list) and all(isinstance(key, str) for key in value):
            keys = [key.strip() for key in value]
        else:
            raise InputError(f"{binding_id}: give a key as a string or a list of strings", path=str(path), line=line)
        bad = [key for key in keys if not key or any(ch.isspace() for ch in key)]
        if bad or not keys:
            raise InputError(
                f'{binding_id}: {value!r} is not a key (write e.g. "z" or "ctrl+z")', path=str(path), line=line
            )
        if known_ids is not None and binding_id not in known_ids:
            raise InputError(
                f"unknown binding id {binding_id!r} (the help screen, ?, lists every id)", path=str(path), line=line
            )
        keymap[binding_id] = ",".join(keys)
    return keymap


def declared_bindings(node_class: type[DOMNode]) -> list[Binding]:
    """The bindings a widget class declares, its own first, then inherited ones
    (unless a class in between stops inheritance); a key bound twice keeps the nearest."""
    found: list[Binding] = []
    seen_keys: set[str] = set()
    for base in node_class.__mro__:
        declared = base.__dict__.get("BINDINGS")
        if declared:
            for binding in Binding.make_bindings(declared):
                if binding.key not in seen_keys:
                    seen_keys.add(binding.key)
                    found.append(binding)
        if base.__dict__.get("inherit_bindings", True) is False:
            break
    return found


def binding_ids(node_classes: Iterable[type[DOMNode]]) -> set[str]:
    return {binding.id for cls in node_classes for binding in declared_bindings(cls) if binding.id}


def effective_keys(binding: Binding, keymap: Mapping[str, str]) -> list[str]:
    """The keys that trigger a binding once the user's keymap is applied."""
    if binding.id and binding.id in keymap:
        return [b.key for b in Binding.make_bindings([Binding(keymap[binding.id], binding.action)])]
    return [binding.key]


@dataclass(frozen=True)
class KeyRow:
    """One action as the help screen and command palette list it."""

    keys: tuple[str, ...]
    description: str
    binding_id: str | None
    action: str
    node: DOMNode
    where: str

    @property
    def keys_text(self) -> str:
        return ", ".join(self.keys)


def key_rows(nodes: Iterable[tuple[DOMNode, str]], keymap: Mapping[str, str]) -> list[KeyRow]:
    """Every described, currently available action of the given nodes with its keys.

    ``nodes`` pairs each node with the name of the place its keys work in. An
    action the node hides (``check_action`` returns False, as the blind does for
    the overlay) is left out; bindings for the same action are merged.
    """
    rows: dict[tuple[int, str], KeyRow] = {}
    for node, where in nodes:
        app = node.app
        for binding in declared_bindings(type(node)):
            if not binding.description or binding.system:
                continue
            _, name, params = parse_action(binding.action)
            if node.check_action(name, params) is False:
                continue
            shown = tuple(app.get_key_display(binding.with_key(key)) for key in effective_keys(binding, keymap))
            slot = (id(node), binding.action)
            if slot in rows:
                previous = rows[slot]
                rows[slot] = KeyRow(
                    previous.keys + tuple(k for k in shown if k not in previous.keys),
                    previous.description,
                    previous.binding_id,
                    binding.action,
                    node,
                    where,
                )
            else:
                rows[slot] = KeyRow(shown, binding.description, binding.id, binding.action, node, where)
    return list(rows.values())


def hint_line(rows: Iterable[KeyRow], names: Mapping[str, str], width: int | None = None) -> Text:
    """A one-line reminder of chosen actions ("c code  u undo"), with the user's keys;
    ``names`` maps binding ids to short names, most wanted first: with a ``width``, the
    reminders that would not fit are left out rather than cut in half."""
    by_id = {row.binding_id: row for row in rows if row.binding_id}
    line = Text()
    for binding_id, name in names.items():
        row = by_id.get(binding_id)
        if row is None:
            continue
        item = Text.assemble((row.keys[0], "bold"), f" {name}")
        gap = 2 if line else 0
        if width is not None and line.cell_len + gap + item.cell_len > width:
            continue
        if gap:
            line.append("  ")
        line.append_text(item)
    return line


# The help screen's tasks, most used first; within a task, the order of the ids is the order shown.
# Rows whose id no task lists follow under the name of the place their keys work in.
HELP_TASKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Code",
        (
            "transcript.apply-*",
            "transcript.pick-code",
            "transcript.hotkey-codebook",
            "transcript.change",
            "transcript.remove",
            "transcript.new-code",
            "transcript.in-vivo",
        ),
    ),
    (
        "Move",
        (
            "transcript.next-turn",
            "transcript.previous-turn",
            "transcript.next-word",
            "transcript.previous-word",
            "transcript.next-sentence",
            "transcript.previous-sentence",
            "transcript.next-char",
            "transcript.previous-char",
            "transcript.start",
            "transcript.end",
            "transcript.page-down",
            "transcript.page-up",
        ),
    ),
    ("Select", ("transcript.visual", "transcript.select-turn", "transcript.select-*", "transcript.clear-selection")),
    ("Memo, undo", ("transcript.memo", "transcript.undo", "transcript.redo")),
    ("Find", ("transcript.find", "transcript.next-coding", "transcript.prev-coding")),
    ("Views", ("transcript.overlay", "transcript.done", "transcript.close")),
    (
        "Assistant",
        ("transcript.accept-suggestion", "transcript.reject-suggestion", "transcript.more-like-this", "similar.*"),
    ),
    ("Everywhere", ("app.help", "app.palette", "app.quit")),
)
HOTKEY_ID = re.compile(r"transcript\.apply-\d$")


def _task_slot(binding_id: str | None) -> tuple[int, int] | None:
    if not binding_id:
        return None
    for task_index, (_, ids) in enumerate(HELP_TASKS):
        for position, pattern in enumerate(ids):
            if binding_id == pattern or (pattern.endswith("*") and binding_id.startswith(pattern[:-1])):
                return task_index, position
    return None


def help_groups(rows: Iterable[KeyRow]) -> list[tuple[str, list[KeyRow]]]:
    """The rows grouped by task, most used first. The ten "apply the code with hotkey N" rows
    become one ("1–9, 0"), since they are one task."""
    rows = list(rows)
    hotkeys = [row for row in rows if HOTKEY_ID.match(row.binding_id or "")]
    if len(hotkeys) > 1:
        first = hotkeys[0]
        keys = [key for row in hotkeys for key in row.keys]
        digits = [key for key in keys if key.isdigit() and key != "0"]
        shown = (
            f"{digits[0]}–{digits[-1]}"
            if digits == [str(n) for n in range(1, len(digits) + 1)] and len(digits) > 2
            else ", ".join(digits)
        )
        rest = [key for key in keys if key not in digits]
        merged = KeyRow(
            tuple(part for part in (shown, *rest) if part),
            "Apply the code with that hotkey (the codebook marked · keys)",
            "transcript.apply-N",
            first.action,
            first.node,
            first.where,
        )
        index = rows.index(first)
        rows = [row for row in rows if row not in hotkeys]
        rows.insert(index, merged)
    tasks: list[list[tuple[int, KeyRow]]] = [[] for _ in HELP_TASKS]
    others: dict[str, list[KeyRow]] = {}
    for row in rows:
        slot = _task_slot("transcript.apply-1" if row.binding_id == "transcript.apply-N" else row.binding_id)
        if slot is None:
            others.setdefault(row.where, []).append(row)
        else:
            tasks[slot[0]].append((slot[1], row))
    groups = [
        (HELP_TASKS[index][0], [row for _, row in sorted(found, key=lambda item: item[0])])
        for index, found in enumerate(tasks)
        if found
    ]
    everywhere = groups.pop() if groups and groups[-1][0] == "Everywhere" else None
    groups += list(others.items())
    if everywhere:
        groups.append(everywhere)
    return groups

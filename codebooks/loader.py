"""Read, validate and write codebook YAML files (the format is documented in docs/codebook-format.md).

Validation works on the composed YAML node graph rather than on plain Python objects, so every
error can name the line it comes from, duplicate keys are caught (PyYAML silently keeps the last
one), and YAML aliases that would make the code tree cyclic are found before anything recurses.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from rapidfuzz import process

from concord.codebooks.spec import (
    CODE_TEXT_FIELDS,
    CodebookSpec,
    CodeFieldError,
    CodeSpec,
    applies_to_from_document,
    scale_from_document,
)
from concord.storage.errors import InputError, NotFound
from concord.storage.limits import MAX_YAML_BYTES, check_yaml, decode_yaml, read_file_bytes

CODEBOOK_FIELDS: tuple[str, ...] = ("id", "title", "version", "source", "description", "codes")
CODE_FIELDS: tuple[str, ...] = (
    "name",
    *CODE_TEXT_FIELDS[:6],
    "high_pole",
    *CODE_TEXT_FIELDS[6:],
    "applies_to",
    "scale",
    "children",
)
# A code's sub-codes may be listed under `children` or, reading more naturally for a theme, `codes`.
CHILDREN_KEYS: tuple[str, ...] = ("children", "codes")
DEFAULT_VERSION = "1"

# Keys the coding screen keeps for itself; a codebook hotkey may not take them.  Values say why, so
# the TUI can show them in its help and the loader can explain a refusal.  Names other than single
# characters are Textual key names; they can never be hotkeys (a hotkey is one printable character)
# but are listed so the TUI has the whole reserved set in one place.
RESERVED_HOTKEYS: dict[str, str] = {
    "q": "quit",
    "?": "help",
    "/": "search",
    ":": "command palette",
    "j": "next turn",
    "k": "previous turn",
    "h": "move left",
    "l": "move right",
    "g": "go to first turn",
    "G": "go to last turn",
    "n": "new inductive code",
    "a": "accept the assistant's suggestion",
    "r": "reject the assistant's suggestion",
    "s": "passages like this one (assistant)",
    "N": "reserved for search",
    "v": "start or end a span selection",
    "m": "write a memo",
    "u": "undo the last coding",
    "space": "extend the selection",
    "enter": "open the selected item",
    "escape": "cancel",
    "tab": "next panel",
    "shift+tab": "previous panel",
    "up": "previous line",
    "down": "next line",
    "left": "move left",
    "right": "move right",
    "pageup": "page up",
    "pagedown": "page down",
    "home": "start of transcript",
    "end": "end of transcript",
    "backspace": "remove the last coding",
    "delete": "remove the coding under the cursor",
    # The coding workbench's own keys (app/tui); tests/test_tui_pilot.py keeps the two in step.
    "w": "next word",
    "b": "previous word",
    "t": "select the turn",
    "(": "previous sentence",
    ")": "next sentence",
    "c": "code picker",
    "i": "in vivo code",
    "e": "change the coding",
    "x": "remove the coding",
    "f": "find",
    "d": "mark done",
    "o": "overlay",
    "[": "previous coding of the code",
    "]": "next coding of the code",
}

# Colour names a codebook may use instead of #RRGGBB, with the CSS value each stands for.
NAMED_COLOURS: dict[str, str] = {
    "black": "#000000",
    "white": "#FFFFFF",
    "grey": "#808080",
    "gray": "#808080",
    "silver": "#C0C0C0",
    "red": "#FF0000",
    "crimson": "#DC143C",
    "maroon": "#800000",
    "coral": "#FF7F50",
    "salmon": "#FA8072",
    "orange": "#FFA500",
    "gold": "#FFD700",
    "yellow": "#FFFF00",
    "khaki": "#F0E68C",
    "olive": "#808000",
    "lime": "#00FF00",
    "green": "#008000",
    "teal": "#008080",
    "turquoise": "#40E0D0",
    "cyan": "#00FFFF",
    "blue": "#0000FF",
    "navy": "#000080",
    "indigo": "#4B0082",
    "purple": "#800080",
    "violet": "#EE82EE",
    "magenta": "#FF00FF",
    "orchid": "#DA70D6",
    "plum": "#DDA0DD",
    "pink": "#FFC0CB",
    "brown": "#A52A2A",
    "chocolate": "#D2691E",
    "sienna": "#A0522D",
    "tan": "#D2B48C",
    "lavender": "#E6E6FA",
}

HEX_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")
GUID_PATTERN = re.compile(
    r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\})$"
)
CODEBOOK_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")

_BOOL_TAG = "tag:yaml.org,2002:bool"
_NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"


def colour_hex(colour: str) -> str:
    """#RRGGBB for a colour as a codebook stores it (a hex value or a name from NAMED_COLOURS)."""
    if HEX_COLOUR.match(colour):
        return colour
    try:
        return NAMED_COLOURS[colour.lower()]
    except KeyError:
        raise ValueError(f"unknown colour {colour!r}") from None


def hotkey_problem(key: str) -> str | None:
    """Why `key` cannot be a codebook hotkey, or None when it can."""
    if len(key) != 1 or not key.isprintable() or key.isspace():
        return f"hotkey {key!r} must be one printable character (a letter, digit or sign)"
    if key in RESERVED_HOTKEYS:
        return f"hotkey {key!r} is reserved for '{RESERVED_HOTKEYS[key]}'"
    return None


# --------------------------------------------------------------------------------------------------
# Public entry points


def load_codebook(path_or_text: str | os.PathLike[str], source_name: str | None = None) -> CodebookSpec:
    """Load and validate a codebook.

    A `Path` (or any path-like) is read as a file; so is a one-line string that ends in .yaml/.yml or
    names an existing file. Any other string is the YAML text itself. `source_name` is how errors
    name the input (default: the file path, or "<codebook text>").
    """
    text, where = _read_source(path_or_text, source_name)
    return _CodebookReader(text, where).read()


def bundled_ids() -> list[str]:
    """Ids of the codebooks shipped with Concord, sorted."""
    return sorted(entry.name[: -len(".yaml")] for entry in _bundled_dir().iterdir() if entry.name.endswith(".yaml"))


def load_bundled(codebook_id: str) -> CodebookSpec:
    known = bundled_ids()
    if codebook_id not in known:
        raise NotFound(f"no bundled codebook {codebook_id!r}; bundled codebooks: {', '.join(known)}")
    entry = _bundled_dir() / f"{codebook_id}.yaml"
    return load_codebook(entry.read_text(encoding="utf-8"), source_name=f"codebooks/bundled/{codebook_id}.yaml")


def dump_codebook(spec: CodebookSpec) -> str:
    """YAML text for a codebook; load_codebook(dump_codebook(spec)) == spec for any loaded spec."""
    document: dict[str, Any] = {"id": spec.id, "title": spec.title, "version": spec.version}
    if spec.source is not None:
        document["source"] = spec.source
    if spec.description is not None:
        document["description"] = spec.description
    document["codes"] = [_code_document(code) for code in spec.codes]
    return yaml.dump(document, Dumper=_CodebookDumper, sort_keys=False, allow_unicode=True, width=100)


# --------------------------------------------------------------------------------------------------
# Reading


def _bundled_dir():
    return resources.files("concord.codebooks") / "bundled"


def _read_source(path_or_text: str | os.PathLike[str], source_name: str | None) -> tuple[str, str]:
    if isinstance(path_or_text, str) and not _looks_like_path(path_or_text):
        return path_or_text, source_name or "<codebook text>"
    path = Path(path_or_text)
    where = source_name or str(path)
    if not path.exists():
        raise InputError("no such codebook file", where)
    raw = read_file_bytes(path, limit=MAX_YAML_BYTES, where=where)
    return decode_yaml(raw, where), where


def _looks_like_path(text: str) -> bool:
    if "\n" in text or not text.strip():
        return False
    return text.lower().endswith((".yaml", ".yml")) or Path(text).is_file()


class _AliasRecordingLoader(yaml.SafeLoader):
    """Composes nodes and remembers where each alias was written, so errors can point at the alias."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.alias_uses: dict[tuple[int, Any], yaml.Event] = {}

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)
            self.alias_uses[_slot(parent, index)] = event
            return node
        return super().compose_node(parent, index)


def _slot(parent: Any, index: Any) -> tuple[int, Any]:
    return id(parent), index if isinstance(index, int) or index is None else id(index)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class _CodebookReader:
    def __init__(self, text: str, where: str):
        self.text = text
        self.where = where
        self.alias_uses: dict[tuple[int, Any], yaml.Event] = {}
        self.code_nodes_seen: set[int] = set()
        self.hotkeys: dict[str, tuple[int, str]] = {}
        self.guids: dict[str, tuple[int, str]] = {}

    def fail(self, message: str, line: int | None) -> InputError:
        return InputError(message, self.where, line)

    def read(self) -> CodebookSpec:
        root = self._compose()
        if root is None:
            raise self.fail("the codebook is empty; it needs at least an id and a title", 1)
        if not isinstance(root, yaml.MappingNode):
            raise self.fail("a codebook must be a mapping with id, title, version and codes", _line(root))
        fields = self._fields(root, CODEBOOK_FIELDS, "codebook")
        codebook_id = self._required_text(fields, "id", root, "codebook")
        if not CODEBOOK_ID.match(codebook_id):
            raise self.fail(
                f"codebook id {codebook_id!r} must be lower-case letters, digits, '-', '_' or '.'",
                _line(fields["id"][1]),
            )
        title = self._required_text(fields, "title", root, "codebook")
        version = self._text(fields, "version") or DEFAULT_VERSION
        codes: tuple[CodeSpec, ...] = ()
        if "codes" in fields:
            codes = self._codes(fields["codes"][1], parent_name=None, ancestors=())
        return CodebookSpec(
            id=codebook_id,
            title=title,
            version=version,
            source=self._text(fields, "source"),
            description=self._text(fields, "description"),
            codes=codes,
        )

    def _compose(self) -> yaml.Node | None:
        # Depth, aliases and tags first: composing recurses once per level of nesting.
        check_yaml(self.text, self.where)
        loader = _AliasRecordingLoader(self.text)
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            problem = error.problem or error.context or "malformed YAML"
            raise self.fail(f"not valid YAML: {problem}", mark.line + 1 if mark else None) from None
        except yaml.YAMLError as error:
            raise self.fail(f"not valid YAML: {error}", None) from None
        finally:
            loader.dispose()
        self.alias_uses = loader.alias_uses
        return node

    def _fields(
        self, node: yaml.MappingNode, known: tuple[str, ...], what: str
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        found: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            if key.tag == _MERGE_TAG:
                raise self.fail("YAML merge keys ('<<') are not supported in codebooks", _line(key))
            if not isinstance(key, yaml.ScalarNode):
                raise self.fail(f"a {what} field name must be plain text", _line(key))
            name = key.value
            if name not in known:
                raise self.fail(f"unknown {what} field {name!r}{_suggestion(name, known)}", _line(key))
            if name in found:
                raise self.fail(
                    f"field {name!r} is given twice in this {what} (first on line {_line(found[name][0])})",
                    _line(key),
                )
            found[name] = (key, value)
        return found

    def _text(self, fields: dict[str, tuple[yaml.Node, yaml.Node]], name: str) -> str | None:
        """The field's text, trimmed, or None when absent, null or blank. A hotkey is kept as written."""
        if name not in fields:
            return None
        value = fields[name][1]
        if not isinstance(value, yaml.ScalarNode):
            raise self.fail(f"field {name!r} must be text, not a list or mapping", _line(value))
        if value.tag == _NULL_TAG:
            return None
        # The raw scalar keeps what the author wrote: `version: 1.10` stays "1.10", `hotkey: 1` is "1".
        if name == "hotkey":
            return value.value or None  # " " must reach validation, not vanish as blank
        text = value.value.strip()
        return text or None

    def _required_text(
        self, fields: dict[str, tuple[yaml.Node, yaml.Node]], name: str, owner: yaml.Node, what: str
    ) -> str:
        text = self._text(fields, name)
        if text is None:
            line = _line(fields[name][0]) if name in fields else _line(owner)
            raise self.fail(f"this {what} has no {name}", line)
        return text

    def _codes(self, node: yaml.Node, parent_name: str | None, ancestors: tuple[int, ...]) -> tuple[CodeSpec, ...]:
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG:
            return ()
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail("codes must be a list (one '- name: ...' entry per code)", _line(node))
        codes: list[CodeSpec] = []
        sibling_lines: dict[str, tuple[int, str]] = {}
        for index, child in enumerate(node.value):
            alias = self.alias_uses.get(_slot(node, index))
            use_line = alias.start_mark.line + 1 if alias is not None else _line(child)
            if id(child) in ancestors:
                raise self.fail(
                    f"the alias *{alias.anchor if alias else '?'} makes code "
                    f"{_node_name(child)!r} (line {_line(child)}) its own descendant: the code tree "
                    "would be cyclic",
                    use_line,
                )
            if id(child) in self.code_nodes_seen:
                raise self.fail(
                    f"code {_node_name(child)!r} from line {_line(child)} appears a second time here "
                    "through a YAML alias; a code has exactly one place in the tree",
                    use_line,
                )
            code = self._code(child, ancestors=(*ancestors, id(child)))
            folded = " ".join(code.name.casefold().split())
            if folded in sibling_lines:
                first_line, first_name = sibling_lines[folded]
                under = f"under {parent_name!r}" if parent_name else "at the top level"
                raise self.fail(
                    f"duplicate code name {code.name!r} {under}: lines {first_line} and {_line(child)} "
                    f"({first_name!r} and {code.name!r})",
                    _line(child),
                )
            sibling_lines[folded] = (_line(child), code.name)
            codes.append(code)
        return tuple(codes)

    def _code(self, node: yaml.Node, ancestors: tuple[int, ...]) -> CodeSpec:
        self.code_nodes_seen.add(id(node))
        if isinstance(node, yaml.ScalarNode) and node.tag != _NULL_TAG:
            raise self.fail(f"a code must be a mapping such as '- name: {node.value}', not bare text", _line(node))
        if not isinstance(node, yaml.MappingNode):
            raise self.fail("a code must be a mapping with at least a name", _line(node))
        fields = self._fields(node, (*CODE_FIELDS, "codes"), "code")
        name = self._text(fields, "name")
        if name is None:
            raise self.fail("this code has no name", _line(node))
        if "\n" in name:
            raise self.fail(f"code name {name.splitlines()[0]!r}... must fit on one line", _line(fields["name"][1]))
        present_children_keys = [key for key in CHILDREN_KEYS if key in fields]
        if len(present_children_keys) > 1:
            raise self.fail(
                f"code {name!r} lists sub-codes under both 'children' and 'codes'; use one of them",
                _line(fields["codes"][0]),
            )
        texts = {field: self._text(fields, field) for field in CODE_TEXT_FIELDS}
        if texts["hotkey"] is not None:
            self._check_hotkey(texts["hotkey"], fields["hotkey"][1], name)
        if texts["colour"] is not None:
            texts["colour"] = self._checked_colour(texts["colour"], fields["colour"][1])
        if texts["guid"] is not None:
            self._check_guid(texts["guid"], fields["guid"][1], name)
        children: tuple[CodeSpec, ...] = ()
        if present_children_keys:
            children = self._codes(fields[present_children_keys[0]][1], name, ancestors)
        return CodeSpec(
            name=name,
            high_pole=self._bool(fields, "high_pole"),
            applies_to=self._structured(fields, "applies_to", applies_to_from_document, name),
            scale=self._structured(fields, "scale", scale_from_document, name),
            children=children,
            **texts,
        )

    def _structured(self, fields: dict[str, tuple[yaml.Node, yaml.Node]], name: str, check, code_name: str):
        """A field written as YAML data (applies_to, scale), checked by ``check``; None when absent."""
        if name not in fields:
            return None
        node = fields[name][1]
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG:
            return None
        try:
            return check(_plain_data(node))
        except CodeFieldError as error:
            raise self.fail(f"{error} (code {code_name!r})", _line(node)) from None

    def _bool(self, fields: dict[str, tuple[yaml.Node, yaml.Node]], name: str) -> bool | None:
        if name not in fields:
            return None
        value = fields[name][1]
        if isinstance(value, yaml.ScalarNode) and value.tag == _NULL_TAG:
            return None
        if not isinstance(value, yaml.ScalarNode) or value.tag != _BOOL_TAG:
            raise self.fail(f"{name} must be true or false (unquoted)", _line(value))
        return value.value.lower() in ("true", "yes", "on", "y")

    def _check_hotkey(self, key: str, node: yaml.Node, code_name: str) -> None:
        problem = hotkey_problem(key)
        if problem:
            raise self.fail(f"{problem} (code {code_name!r})", _line(node))
        if key in self.hotkeys:
            first_line, first_code = self.hotkeys[key]
            raise self.fail(
                f"hotkey {key!r} is used twice: line {first_line} ({first_code!r}) and line "
                f"{_line(node)} ({code_name!r})",
                _line(node),
            )
        self.hotkeys[key] = (_line(node), code_name)

    def _checked_colour(self, colour: str, node: yaml.Node) -> str:
        if HEX_COLOUR.match(colour):
            return colour
        if colour.lower() in NAMED_COLOURS:
            return colour.lower()
        hint = _suggestion(colour.lower(), tuple(NAMED_COLOURS))
        raise self.fail(
            f"colour {colour!r} is neither #RRGGBB nor a known colour name{hint}; "
            f"names: {', '.join(sorted(NAMED_COLOURS))}",
            _line(node),
        )

    def _check_guid(self, guid: str, node: yaml.Node, code_name: str) -> None:
        if not GUID_PATTERN.match(guid):
            raise self.fail(f"guid {guid!r} of code {code_name!r} is not a GUID (8-4-4-4-12 hex digits)", _line(node))
        canonical = guid.strip("{}").lower()
        if canonical in self.guids:
            first_line, first_code = self.guids[canonical]
            raise self.fail(
                f"guid {guid} is used twice: line {first_line} ({first_code!r}) and line {_line(node)} ({code_name!r})",
                _line(node),
            )
        self.guids[canonical] = (_line(node), code_name)


def _plain_data(node: yaml.Node) -> Any:
    """Plain Python data from a composed node: numbers stay numbers, everything else scalar is text."""
    if isinstance(node, yaml.MappingNode):
        return {_plain_data(key): _plain_data(value) for key, value in node.value}
    if isinstance(node, yaml.SequenceNode):
        return [_plain_data(item) for item in node.value]
    if node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float"):
        return yaml.safe_load(node.value)
    if node.tag == _NULL_TAG:
        return None
    if node.tag == _BOOL_TAG:
        return node.value.lower() in ("true", "yes", "on", "y")
    return node.value


def _node_name(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "name" and isinstance(value, yaml.ScalarNode):
                return value.value
    return "?"


def _suggestion(word: str, choices: tuple[str, ...]) -> str:
    match = process.extractOne(word, choices, score_cutoff=60)
    return f" (did you mean {match[0]!r}?)" if match else ""


# --------------------------------------------------------------------------------------------------
# Writing


class _CodebookDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # Indent list items under their key, as hand-written codebooks do.
        return super().increase_indent(flow, False)


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_CodebookDumper.add_representer(str, _represent_text)


def _code_document(code: CodeSpec) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for field in CODE_FIELDS:
        if field == "children":
            if code.children:
                document["children"] = [_code_document(child) for child in code.children]
            continue
        value = getattr(code, field)
        if value is None:
            continue
        if field == "applies_to":
            value = value[0] if len(value) == 1 else list(value)
        elif field == "scale":
            value = value.to_document()
        document[field] = value
    return document

"""The in-memory shape of a codebook: frozen dataclasses shared by the loader, the .qdc exchange and the TUI."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

# Who speaks in a transcript; a code group may declare which of them it applies to (``applies_to``).
# The same four roles as storage.models.SPEAKER_ROLES (tests/test_codebook_scales.py keeps them equal),
# written out here so reading a codebook does not load the database layer.
SPEAKER_ROLES: tuple[str, ...] = ("therapist", "client", "interviewer", "other")
SCALE_LEVELS: tuple[str, ...] = ("ordinal", "interval", "ratio")
SCALE_KEYS: tuple[str, ...] = ("level", "min", "max", "points")
MAX_SCALE_POINTS = 101


class CodeFieldError(ValueError):
    """A scale or applies_to that cannot be used (the message says what is wrong)."""


@dataclass(frozen=True)
class ScalePoint:
    value: float
    label: str | None = None


@dataclass(frozen=True)
class ScaleSpec:
    """The rating scale of a code that carries a value: its level of measurement and the values allowed.

    Either ``points`` (the values a coder may give, each optionally labelled) or a range ``minimum`` to
    ``maximum``: on an ordinal scale the range means every whole number in it; on an interval or ratio
    scale any number in it.
    """

    level: str = "ordinal"
    minimum: float | None = None
    maximum: float | None = None
    points: tuple[ScalePoint, ...] = ()

    def point_values(self) -> tuple[float, ...] | None:
        """The values a coder may give, in order; None for a continuous interval or ratio range."""
        if self.points:
            return tuple(sorted(point.value for point in self.points))
        if self.level == "ordinal" and self.minimum is not None and self.maximum is not None:
            return tuple(float(v) for v in range(int(self.minimum), int(self.maximum) + 1))
        return None

    def allows(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        allowed = self.point_values()
        if allowed is not None:
            return float(value) in allowed
        return self.minimum is not None and self.maximum is not None and self.minimum <= value <= self.maximum

    def label_of(self, value: float) -> str | None:
        return next((point.label for point in self.points if point.value == value), None)

    def describe(self) -> str:
        """One line for people: "ordinal 1-5" or "ordinal: 0 none, 1 mild, 2 strong"."""
        if self.points:
            shown = ", ".join(
                _number_text(p.value) + (f" {p.label}" if p.label else "")
                for p in sorted(self.points, key=lambda p: p.value)
            )
            return f"{self.level}: {shown}"
        return f"{self.level} {_number_text(self.minimum)}-{_number_text(self.maximum)}"

    def to_document(self) -> dict[str, Any]:
        """The plain form written to YAML and stored as JSON; ``scale_from_document`` reads it back."""
        document: dict[str, Any] = {"level": self.level}
        if self.points:
            document["points"] = [
                {"value": _plain_number(p.value), **({"label": p.label} if p.label else {})} for p in self.points
            ]
        else:
            document["min"] = _plain_number(self.minimum)
            document["max"] = _plain_number(self.maximum)
        return document


def _plain_number(value: float | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else float(value)


def _number_text(value: float | None) -> str:
    return str(_plain_number(value))


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CodeFieldError(f"{what} must be a number, got {value!r}")
    return float(value)


def scale_from_document(document: object) -> ScaleSpec:
    """Check a scale written as a mapping (``{min: 1, max: 5, level: ordinal}`` or ``{points: [...]}``)."""
    if not isinstance(document, Mapping):
        raise CodeFieldError("scale must be a mapping such as {min: 1, max: 5, level: ordinal}")
    unknown = [key for key in document if key not in SCALE_KEYS]
    if unknown:
        raise CodeFieldError(f"unknown scale field {unknown[0]!r}; a scale has {', '.join(SCALE_KEYS)}")
    level = document.get("level", "ordinal")
    if level not in SCALE_LEVELS:
        raise CodeFieldError(f"scale level {level!r} must be one of {', '.join(SCALE_LEVELS)}")
    has_range = "min" in document or "max" in document
    if has_range == ("points" in document):
        raise CodeFieldError("a scale needs either min and max, or a list of points (not both)")
    if "points" in document:
        raw = document["points"]
        if not isinstance(raw, (list, tuple)) or len(raw) < 2:
            raise CodeFieldError("scale points must be a list of at least two values")
        points = []
        for position, item in enumerate(raw, 1):
            if isinstance(item, Mapping):
                extra = [key for key in item if key not in ("value", "label")]
                if extra or "value" not in item:
                    raise CodeFieldError(f"scale point {position} must be a number or {{value: N, label: TEXT}}")
                label = item.get("label")
                if label is not None and not isinstance(label, str):
                    raise CodeFieldError(f"the label of scale point {position} must be text")
                points.append(ScalePoint(_number(item["value"], f"scale point {position}"), label or None))
            else:
                points.append(ScalePoint(_number(item, f"scale point {position}")))
        values = [p.value for p in points]
        if len(set(values)) != len(values):
            raise CodeFieldError("two scale points have the same value")
        if len(points) > MAX_SCALE_POINTS:
            raise CodeFieldError(f"a scale has at most {MAX_SCALE_POINTS} points, got {len(points)}")
        if level == "ratio" and min(values) < 0:
            raise CodeFieldError("a ratio scale cannot have negative values")
        return ScaleSpec(level=level, points=tuple(points))
    if "min" not in document or "max" not in document:
        raise CodeFieldError("a scale range needs both min and max")
    low, high = _number(document["min"], "scale min"), _number(document["max"], "scale max")
    if low >= high:
        raise CodeFieldError(f"scale min {_number_text(low)} must be below max {_number_text(high)}")
    if level == "ordinal":
        if not (low.is_integer() and high.is_integer()):
            raise CodeFieldError("an ordinal range runs over whole numbers; list the points for other values")
        if high - low + 1 > MAX_SCALE_POINTS:
            raise CodeFieldError(f"a scale has at most {MAX_SCALE_POINTS} points, got {int(high - low + 1)}")
    if level == "ratio" and low < 0:
        raise CodeFieldError("a ratio scale cannot have negative values")
    return ScaleSpec(level=level, minimum=low, maximum=high)


def applies_to_from_document(value: object) -> tuple[str, ...]:
    """Check ``applies_to``: one speaker role or a list of them."""
    roles = [value] if isinstance(value, str) else value
    if not isinstance(roles, (list, tuple)) or not roles:
        raise CodeFieldError(f"applies_to must be a speaker role or a list of them ({', '.join(SPEAKER_ROLES)})")
    found: list[str] = []
    for role in roles:
        if not isinstance(role, str) or role.strip() not in SPEAKER_ROLES:
            raise CodeFieldError(f"applies_to: {role!r} is not a speaker role; choose from {', '.join(SPEAKER_ROLES)}")
        if role.strip() in found:
            raise CodeFieldError(f"applies_to names {role.strip()!r} twice")
        found.append(role.strip())
    return tuple(found)


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
    # The speaker roles whose turns this code (and everything below it) is meant for; None: not declared.
    applies_to: tuple[str, ...] | None = None
    # A code that carries a value: coders give a number on this scale with every coding.
    scale: ScaleSpec | None = None
    children: tuple[CodeSpec, ...] = ()

    @property
    def display_label(self) -> str:
        return self.label or self.name


# Text fields in the order the YAML format and the .qdc description block write them.
CODE_TEXT_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(CodeSpec) if f.name not in ("name", "high_pole", "applies_to", "scale", "children")
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

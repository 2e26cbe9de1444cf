"""Questionnaire instruments: load and validate their YAML definitions, and score answers.

An instrument definition says how many items there are, the response scale, reverse-keyed
items, subscales, sum or mean scoring, what to do with missing answers and the severity
bands. Nothing about an instrument is hard-coded here: response scales differ between
versions and translations, so every fact lives in a YAML file (the bundled ones in
analysis/instruments/, or a user's own). docs/instruments.md documents the format.

Definitions are parsed with yaml.compose so that every complaint can name the line it is
about.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from numbers import Real
from pathlib import Path

import yaml

from concord.storage.errors import InputError, NotFound
from concord.storage.limits import MAX_YAML_BYTES, compose_yaml, decode_yaml, read_file_bytes
from concord.storage.resources import package_path

BUNDLED_DIRECTORY = package_path("concord.analysis.instruments")

# reported: scores, but its key comes from secondary sources, not the publisher's sheet: said on import.
STATUSES = ("confirmed", "reported", "template", "user")
RESPONDENTS = ("client", "therapist", "either")
SCORINGS = ("sum", "mean")
MISSING_RULES = ("refuse", "prorate")

FIELDS = (
    "id",
    "title",
    "citation",
    "status",
    "respondent",
    "respondents",
    "items",
    "scale",
    "scoring",
    "reverse",
    "subscales",
    "missing",
    "missing_values",
    "variants",
    "bands",
    "review_items",
    "column_prefixes",
    "to_complete",
    "notes",
    "extends",
)
# Fields a template may leave for the user to fill in from a licensed scoring sheet.
COMPLETABLE = (
    "respondent",
    "scale",
    "scoring",
    "reverse",
    "subscales",
    "missing",
    "missing_values",
    "variants",
    "bands",
    "review_items",
)
# Belong to one file only: a definition that extends another does not inherit them.
NOT_INHERITED = ("status", "to_complete", "extends")

# Cell texts that mean "no answer" in exports from R, SPSS, Excel and the like.
BLANK_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "none", ".", "-"})

# Float noise (a mean of 0.1 steps, a prorated sum) must not push a total across a band boundary.
TOLERANCE = 1e-9


def format_number(value: float) -> str:
    """5.0 -> '5', 35.9 -> '35.9': numbers as a person would write them in a message."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:g}"


def squash(text: str) -> str:
    """Lower-case letters and digits only: 'WAI-SR' and 'wai_sr' compare equal."""
    return re.sub(r"[^0-9a-z]", "", str(text).lower())


@dataclass(frozen=True)
class Scale:
    min: float
    max: float
    step: float = 1.0

    @property
    def decimals(self) -> int:
        """Decimal places of the scale's points: 0 for whole steps, 1 for steps of 0.1."""
        exponent = Decimal(format_number(self.step)).as_tuple().exponent
        return max(0, -exponent) if isinstance(exponent, int) else 0

    def describe(self) -> str:
        text = f"{format_number(self.min)}–{format_number(self.max)}"
        if self.step != 1:
            text += f" in steps of {format_number(self.step)}"
        return text

    def contains(self, value: float) -> bool:
        return self.min - TOLERANCE <= value <= self.max + TOLERANCE

    def on_grid(self, value: float) -> bool:
        steps = (value - self.min) / self.step
        return abs(steps - round(steps)) < 1e-6


@dataclass(frozen=True)
class Band:
    name: str
    min: float
    max: float


@dataclass(frozen=True)
class Subscale:
    name: str
    items: tuple[str, ...]


@dataclass(frozen=True)
class MissingRule:
    """refuse: any missing item leaves the score empty. prorate: up to max_missing items
    (and max_missing_per_subscale per subscale) may be missing; the score is then computed
    from the answered items as if each missing one had the mean of the answered ones."""

    rule: str = "refuse"
    max_missing: int = 0
    max_missing_per_subscale: int | None = None


@dataclass(frozen=True)
class Instrument:
    id: str
    title: str
    citation: str
    status: str
    respondent: str
    items: tuple[str, ...]
    scale: Scale | None
    scoring: str | None
    reverse: tuple[str, ...] | None
    subscales: tuple[Subscale, ...] | None
    missing: MissingRule
    missing_values: tuple[float, ...] = ()
    variants: tuple[tuple[str, tuple[str, ...]], ...] = ()
    bands: tuple[Band, ...] = ()
    review_items: tuple[str, ...] = ()
    column_prefixes: tuple[str, ...] = ()
    to_complete: tuple[str, ...] = ()
    notes: str = ""
    source: str = field(default="", compare=False)
    # Who may answer the form, when more than ``respondent`` may (the WAI-SR's client and therapist
    # versions share one key); ``respondent`` is then who answered when a table does not say.
    respondents: tuple[str, ...] = ()

    @property
    def is_template(self) -> bool:
        return self.status == "template"

    def answered_by(self, who: str) -> bool:
        """Whether ``who`` ("client" or "therapist") may have answered this form."""
        if self.respondents:
            return who in self.respondents
        return self.respondent in ("either", who)

    @property
    def subscale_items(self) -> dict[str, tuple[str, ...]]:
        return {subscale.name: subscale.items for subscale in self.subscales or ()}

    @property
    def total_range(self) -> tuple[float, float]:
        """The lowest and highest possible total (sum or mean) on a complete form."""
        if self.scale is None or self.scoring is None:
            raise ValueError(f"{self.title} is a template: its scale and scoring are not complete")
        if self.scoring == "mean":
            return self.scale.min, self.scale.max
        count = len(self.items)
        return self.scale.min * count, self.scale.max * count

    def variant_suffixes(self, item: str) -> tuple[str, ...]:
        for variant_item, suffixes in self.variants:
            if variant_item == item:
                return suffixes
        return ()

    def item_id(self, key: object) -> str:
        """The item id a response key refers to: 3, '3' and '03' all name item '3'."""
        text = str(key).strip()
        if text in self.items:
            return text
        if text.isdigit() and str(int(text)) in self.items:
            return str(int(text))
        for item in self.items:
            if item.lower() == text.lower():
                return item
        raise ValueError(f"{self.title} has no item {text!r} (items: {describe_items(self.items)})")

    def parse_response(self, item: str, raw: object) -> float | None:
        """One answer as a number on the scale, or None when it is missing.

        Accepts numbers, numeric text (a decimal comma too), the letter variants the
        definition declares (BDI-II '2b' counts 2) and the blank markers of common
        exports. Declared missing-value codes (e.g. 0 = not applicable) become None.
        """
        _require_complete(self)
        assert self.scale is not None  # a complete instrument has a scale
        label = f"{self.title} item {item}"
        if raw is None:
            return None
        if isinstance(raw, bool):
            raise ValueError(f"{label}: {raw!r} is not a number")
        if isinstance(raw, Real):
            value = float(raw)
        elif isinstance(raw, str):
            text = raw.strip()
            if text.lower() in BLANK_MARKERS:
                return None
            value = self._number_from_text(item, text, label)
        else:
            raise ValueError(f"{label}: {raw!r} is not a number")
        if math.isnan(value):
            return None
        if any(abs(value - code) < TOLERANCE for code in self.missing_values):
            return None
        if not self.scale.contains(value):
            allowed = f"{format_number(self.scale.min)}–{format_number(self.scale.max)}"
            if self.missing_values:
                codes = ", ".join(format_number(code) for code in self.missing_values)
                allowed += f", or the missing-value code {codes}"
            raise ValueError(f"{label}: {format_number(value)} is outside the allowed range {allowed}")
        if not self.scale.on_grid(value):
            raise ValueError(f"{label}: {format_number(value)} is not a point of the scale {self.scale.describe()}")
        return value

    def _number_from_text(self, item: str, text: str, label: str) -> float:
        suffixes = self.variant_suffixes(item)
        if suffixes:
            match = re.fullmatch(r"(\d+)\s*([A-Za-z]+)", text)
            if match and match.group(2).lower() in suffixes:
                return float(match.group(1))
        if re.fullmatch(r"[-+]?\d+,\d+", text):
            text = text.replace(",", ".")
        try:
            return float(text)
        except ValueError:
            hint = ""
            if suffixes:
                hint = f" (item {item} also accepts a number followed by {' or '.join(suffixes)})"
            raise ValueError(f"{label}: {text!r} is not a number{hint}") from None


@dataclass(frozen=True)
class Scored:
    """total and subscale scores are None when the missing-item rule does not allow a score.
    review lists the items whose answer calls for clinician review (above the scale minimum
    on a `review_items` item)."""

    total: float | None
    subscales: dict[str, float | None]
    band: str | None
    missing: list[str]
    prorated: bool
    review: list[str] = field(default_factory=list)


def describe_items(items: tuple[str, ...]) -> str:
    if items == tuple(str(number) for number in range(1, len(items) + 1)):
        return f"1–{len(items)}"
    return ", ".join(items)


# ----------------------------------------------------------------------------- scoring


def score(instrument: Instrument, responses: Mapping[str, float | None]) -> Scored:
    """Score one completed form. Unknown items and answers off the scale raise ValueError."""
    _require_complete(instrument)
    assert instrument.scale is not None and instrument.scoring is not None
    values: dict[str, float | None] = dict.fromkeys(instrument.items)
    for key, raw in responses.items():
        item = instrument.item_id(key)
        values[item] = instrument.parse_response(item, raw)

    low_plus_high = instrument.scale.min + instrument.scale.max
    keyed = {
        item: (low_plus_high - value if item in (instrument.reverse or ()) else value)
        for item, value in values.items()
        if value is not None
    }
    rule = instrument.missing
    total, prorated = _combine(instrument, instrument.items, keyed, rule.max_missing)
    subscales: dict[str, float | None] = {}
    per_subscale = rule.max_missing if rule.max_missing_per_subscale is None else rule.max_missing_per_subscale
    for subscale in instrument.subscales or ():
        subscales[subscale.name], subscale_prorated = _combine(instrument, subscale.items, keyed, per_subscale)
        prorated = prorated or subscale_prorated
    review = [
        item
        for item in instrument.review_items
        if values[item] is not None and values[item] > instrument.scale.min + TOLERANCE
    ]
    return Scored(
        total=total,
        subscales=subscales,
        band=band_for(instrument, total),
        missing=[item for item in instrument.items if values[item] is None],
        prorated=prorated,
        review=review,
    )


def _combine(
    instrument: Instrument, items: tuple[str, ...], keyed: dict[str, float], allowed_missing: int
) -> tuple[float | None, bool]:
    answered = [keyed[item] for item in items if item in keyed]
    missing_count = len(items) - len(answered)
    if not answered:
        return None, False
    if missing_count and (instrument.missing.rule == "refuse" or missing_count > allowed_missing):
        return None, False
    if instrument.scoring == "sum" and not missing_count:
        # A complete sum lies on the scale's grid: snap away float noise (8.9 + 9.0 + ...).
        return round(math.fsum(answered), instrument.scale.decimals), False
    mean = math.fsum(answered) / len(answered)
    value = mean * len(items) if instrument.scoring == "sum" else mean
    return value, missing_count > 0


def mean_item_score(instrument: str, total: float | None, items: Mapping[str, object] | None) -> float | None:
    """A stored total as the mean item score, so forms of different lengths compare (a WAI-SR sum of
    48 over 12 items and a WAI-S sum of 60 over 12 items are 4.0 and 5.0).

    The instrument's definition says whether its total is a sum (divided by its item count) or
    already a mean; an instrument Concord does not bundle is taken as a sum over the items stored
    with the score. None when neither is known. Reverse keying is already in the total."""
    if total is None or (isinstance(total, float) and math.isnan(total)):
        return None
    definition = _bundled_definition(instrument)
    if definition is not None and definition.scoring == "mean":
        return float(total)
    count = len(definition.items) if definition is not None else len(items or {})
    return float(total) / count if count else None


@lru_cache(maxsize=64)
def _bundled_definition(name: str) -> Instrument | None:
    try:
        return load_instrument(name, allow_template=True)
    except (NotFound, InputError):
        return None


def band_for(instrument: Instrument, total: float | None) -> str | None:
    """The band a total falls in. A prorated or mean total can fall between two adjacent
    bands (13.5 between BDI-II 0-13 and 14-19); it stays in the lower band because it has
    not reached the next cut point. Bands are adjacent when the next one starts at most one
    scale step above the end of this one; a wider gap is deliberately left unlabelled."""
    if total is None or instrument.scale is None:
        return None
    bands = instrument.bands
    for index, band in enumerate(bands):
        if band.min - TOLERANCE <= total <= band.max + TOLERANCE:
            return band.name
        following = bands[index + 1] if index + 1 < len(bands) else None
        if (
            following is not None
            and band.max < total < following.min
            and following.min - band.max <= instrument.scale.step + TOLERANCE
        ):
            return band.name
    return None


def _require_complete(instrument: Instrument) -> None:
    if instrument.is_template:
        raise InputError(template_message(instrument), path=instrument.source or None)


def template_message(instrument: Instrument) -> str:
    fields = ", ".join(instrument.to_complete)
    return (
        f"{instrument.title} ({instrument.id}) is a template and cannot score yet: complete "
        f"{fields} from your licensed scoring sheet, in your own file that starts with "
        f"'extends: {instrument.id}' (see docs/instruments.md)"
    )


# ----------------------------------------------------------------------------- loading


def load_instrument(id_or_path: str | os.PathLike[str], *, allow_template: bool = False) -> Instrument:
    """A bundled instrument by id (case and punctuation ignored: 'WAI-SR' = 'wai_sr'), or a
    user's definition by the path of its .yaml file. Templates are refused unless
    allow_template is set, because they cannot score."""
    instrument = _load_file(_locate(id_or_path))
    if instrument.is_template and not allow_template:
        raise InputError(template_message(instrument), path=instrument.source)
    return instrument


def list_instruments(directory: str | os.PathLike[str] | None = None) -> list[Instrument]:
    """Every definition in a folder (the bundled one by default), templates included, by id."""
    if directory is None:
        return list(_bundled())
    return _load_directory(Path(directory))


@lru_cache(maxsize=1)
def _bundled() -> tuple[Instrument, ...]:
    return tuple(_load_directory(BUNDLED_DIRECTORY))


def _load_directory(directory: Path) -> list[Instrument]:
    by_id: dict[str, Instrument] = {}
    paths = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    for path in paths:
        instrument = _load_file(path)
        key = squash(instrument.id)
        if key in by_id:
            raise InputError(
                f"duplicate instrument id {instrument.id!r}: {by_id[key].source} has it too", path=str(path)
            )
        by_id[key] = instrument
    return sorted(by_id.values(), key=lambda instrument: instrument.id.lower())


def _locate(id_or_path: str | os.PathLike[str]) -> Path:
    text = os.fspath(id_or_path)
    looks_like_path = (
        not isinstance(id_or_path, str) or text.lower().endswith((".yaml", ".yml")) or os.sep in text or "/" in text
    )
    if looks_like_path:
        path = Path(text).expanduser()
        if not path.is_file():
            raise InputError("no such instrument definition file", path=text)
        return path
    wanted = squash(text)
    bundled = _bundled_paths_by_id()
    if wanted in bundled:
        return bundled[wanted][1]
    known = ", ".join(sorted(identifier for identifier, _ in bundled.values()))
    raise NotFound(f"no bundled instrument {text!r}; bundled: {known}; or give the path of a .yaml definition")


@lru_cache(maxsize=1)
def _bundled_paths_by_id() -> dict[str, tuple[str, Path]]:
    """Bundled files by squashed id, read shallowly so that looking up one instrument (or
    extending one) does not validate them all."""
    found: dict[str, tuple[str, Path]] = {}
    for path in sorted(BUNDLED_DIRECTORY.glob("*.yaml")):
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(content, dict) and content.get("id"):
            found[squash(content["id"])] = (str(content["id"]), path)
    return found


def _load_file(path: Path) -> Instrument:
    problems = _Problems()
    try:
        definition = _read_definition(path, problems, chain=())
        instrument = _build(definition, problems)
    except yaml.YAMLError as error:  # a value no plain type holds: a mapping as a key, a list that contains itself
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        raise InputError(
            f"unreadable YAML value: {problem}", path=str(path), line=mark.line + 1 if mark else None
        ) from None
    problems.raise_if_any()
    assert instrument is not None
    return instrument


# ----------------------------------------------------------------------------- YAML reading


class _Problems:
    """Collects every complaint about a definition so that one error lists them all."""

    def __init__(self) -> None:
        self.found: list[tuple[str, int, str]] = []

    def add(self, path: str, node: yaml.Node, message: str) -> None:
        self.found.append((path, node.start_mark.line + 1, message))

    def raise_if_any(self) -> None:
        if not self.found:
            return
        self.found.sort(key=lambda found: (found[0], found[1]))
        path, line, message = self.found[0]
        if len(self.found) == 1:
            raise InputError(message, path=path, line=line)
        listing = "\n".join(f"  {p}:{n}: {m}" for p, n, m in self.found)
        raise InputError(f"{len(self.found)} problems in the instrument definition:\n{listing}", path=path, line=line)


@dataclass
class _Field:
    path: str
    key: yaml.Node
    value: yaml.Node


@dataclass
class _Definition:
    path: str
    root: yaml.Node
    fields: dict[str, _Field]
    own: frozenset[str]
    template_base: tuple[str, tuple[str, ...], _Field] | None  # (base id, to_complete, extends field)


class _LenientConstructor(yaml.constructor.SafeConstructor):
    """A scalar that looks like a date or number but is not one (2021-13-45) stays the text written."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> object:
        if not isinstance(node, yaml.ScalarNode):
            return super().construct_object(node, deep)  # type: ignore[no-untyped-call]
        try:
            return super().construct_object(node, deep)  # type: ignore[no-untyped-call]
        except (ValueError, OverflowError, yaml.YAMLError):
            self.recursive_objects.pop(node, None)
            return node.value


def _python(node: yaml.Node) -> object:
    # A fresh constructor each time: one that failed (say, on a recursive alias) keeps stale state.
    return _LenientConstructor().construct_object(node, deep=True)


def _read_definition(path: Path, problems: _Problems, chain: tuple[Path, ...]) -> _Definition:
    where = str(path)
    text = decode_yaml(read_file_bytes(path, limit=MAX_YAML_BYTES, where=where), where)
    root = compose_yaml(text, where)
    if root is None:
        raise InputError("empty instrument definition", path=where, line=1)
    if not isinstance(root, yaml.MappingNode):
        raise InputError(
            "an instrument definition is a mapping of fields (id:, items:, scale: ...)",
            path=where,
            line=root.start_mark.line + 1,
        )

    fields: dict[str, _Field] = {}
    for key_node, value_node in root.value:
        if not isinstance(key_node, yaml.ScalarNode):
            problems.add(where, key_node, "a field name must be plain text")
            continue
        name = str(_python(key_node))
        if name in fields:
            problems.add(
                where, key_node, f"duplicate field {name!r} (first at line {fields[name].key.start_mark.line + 1})"
            )
            continue
        if name not in FIELDS:
            close = difflib.get_close_matches(name, FIELDS, n=2)
            hint = (
                f"; did you mean {' or '.join(repr(option) for option in close)}?"
                if close
                else f"; known fields: {', '.join(FIELDS)}"
            )
            problems.add(where, key_node, f"unknown field {name!r}{hint}")
            continue
        fields[name] = _Field(where, key_node, value_node)

    definition = _Definition(where, root, fields, frozenset(fields), None)
    if "extends" in fields:
        _merge_base(path, definition, problems, chain + (path.resolve(),))
    return definition


def _merge_base(path: Path, definition: _Definition, problems: _Problems, chain: tuple[Path, ...]) -> None:
    extends = definition.fields["extends"]
    line = extends.value.start_mark.line + 1
    # A broken extends makes every other complaint noise: report it alone.
    target = _python(extends.value)
    if not isinstance(target, str) or not target.strip():
        raise InputError("extends names a bundled instrument id or a .yaml path", path=extends.path, line=line)
    if target.lower().endswith((".yaml", ".yml")) or "/" in target:
        base_path = (path.parent / target).expanduser()
        if not base_path.is_file():
            raise InputError(f"extends {target!r}, but there is no such file", path=extends.path, line=line)
    else:
        try:
            base_path = _locate(target)
        except NotFound as error:
            raise InputError(f"extends: {error}", path=extends.path, line=line) from None
    if base_path.resolve() in chain:
        raise InputError(f"extends {target!r}, which extends this file again (a cycle)", path=extends.path, line=line)
    base = _read_definition(base_path, problems, chain)
    merged = {name: item for name, item in base.fields.items() if name not in NOT_INHERITED}
    merged.update({name: item for name, item in definition.fields.items() if name != "extends"})
    definition.fields = merged
    if "status" in base.fields and _python(base.fields["status"].value) == "template":
        to_complete = base.fields.get("to_complete")
        listed = _python(to_complete.value) if to_complete is not None else []
        names = tuple(str(name) for name in listed) if isinstance(listed, list) else ()
        base_id = _python(base.fields["id"].value) if "id" in base.fields else target
        definition.template_base = (str(base_id), names, extends)
    elif base.template_base is not None:
        base_id, names, _ = base.template_base
        still_open = tuple(name for name in names if name not in base.own)
        definition.template_base = (base_id, still_open, extends)


# ----------------------------------------------------------------------------- validation


class _Builder:
    """Turns validated field nodes into an Instrument, reporting each problem with its line."""

    def __init__(self, definition: _Definition, problems: _Problems):
        self.definition = definition
        self.fields = definition.fields
        self.problems = problems

    def report(self, item: _Field | tuple[str, yaml.Node], message: str) -> None:
        if isinstance(item, _Field):
            self.problems.add(item.path, item.value, message)
        else:
            self.problems.add(item[0], item[1], message)

    def at_top(self, message: str) -> None:
        self.problems.add(self.definition.path, self.definition.root, message)

    # -- scalar helpers

    def text(self, name: str, default: str | None = None, required: bool = False) -> str | None:
        item = self.fields.get(name)
        if item is None:
            if required:
                self.at_top(f"missing required field {name!r}")
            return default
        value = _python(item.value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and name in ("id", "title"):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            self.report(item, f"{name} must be non-empty text")
            return default
        return " ".join(value.split()) if name != "notes" else value.strip()

    def choice(self, name: str, options: tuple[str, ...], default: str | None) -> str | None:
        item = self.fields.get(name)
        if item is None:
            return default
        value = _python(item.value)
        if value not in options:
            self.report(item, f"{name} must be one of {', '.join(options)}, not {value!r}")
            return default
        return str(value)

    def number(self, origin: _Field | tuple[str, yaml.Node], node: yaml.Node, what: str) -> float | None:
        value = _python(node)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or math.isinf(value):
            self.report((_path_of(origin), node), f"{what} must be a number, not {value!r}")
            return None
        return float(value)

    def mapping(self, item: _Field, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            self.report((item.path, node), f"{what} must be a mapping")
            return []
        entries: list[tuple[str, yaml.Node, yaml.Node]] = []
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = _python(key_node)
            key = str(key) if not isinstance(key, (list, dict)) else repr(key)
            if key in seen:
                self.report((item.path, key_node), f"duplicate key {key!r} in {what} (first at line {seen[key]})")
                continue
            seen[key] = key_node.start_mark.line + 1
            entries.append((key, key_node, value_node))
        return entries

    def sequence(self, item: _Field, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            self.report((item.path, node), f"{what} must be a list, e.g. [1, 2, 3]")
            return []
        return list(node.value)

    def item_list(self, item: _Field, node: yaml.Node, items: tuple[str, ...], what: str) -> tuple[str, ...]:
        """A list of existing, distinct item ids."""
        chosen: list[str] = []
        for entry in self.sequence(item, node, what):
            key = self.item_ref(item, entry, items, what)
            if key is None:
                continue
            if key in chosen:
                self.report((item.path, entry), f"item {key} appears twice in {what}")
                continue
            chosen.append(key)
        return tuple(chosen)

    def item_ref(self, item: _Field, node: yaml.Node, items: tuple[str, ...], what: str) -> str | None:
        value = _python(node)
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            self.report((item.path, node), f"{what}: {value!r} is not an item id")
            return None
        key = _canonical_item(value)
        if key not in items:
            self.report(
                (item.path, node), f"{what} names item {key}, which is not among the items ({describe_items(items)})"
            )
            return None
        return key

    # -- fields

    def build(self) -> Instrument | None:
        identifier = self.text("id", required=True)
        title = self.text("title", default=identifier) or ""
        citation = self.text("citation", default="") or ""
        notes = self.text("notes", default="") or ""
        status = self.choice("status", STATUSES, "user") or "user"
        to_complete = self.to_complete(status)
        self.check_template_base(status)
        respondent = self.choice("respondent", RESPONDENTS, "either") or "either"
        respondents = self.respondents(respondent)
        items = self.items()
        scale = self.scale(to_complete)
        scoring = None if "scoring" in to_complete else self.choice("scoring", SCORINGS, "sum")
        reverse = None if "reverse" in to_complete else self.reverse(items)
        subscales = None if "subscales" in to_complete else self.subscales(items)
        missing = self.missing_rule(items, subscales or ())
        missing_values = self.missing_values(scale)
        variants = self.variants(items)
        bands = self.bands(scale, scoring, len(items))
        review = self.listed_items("review_items", items)
        prefixes = self.prefixes()
        if identifier is None or not items:
            return None
        return Instrument(
            id=identifier,
            title=title,
            citation=citation,
            status=status,
            respondent=respondent,
            items=items,
            scale=scale,
            scoring=scoring,
            reverse=reverse,
            subscales=subscales,
            missing=missing,
            missing_values=missing_values,
            variants=variants,
            bands=bands,
            review_items=review,
            column_prefixes=prefixes,
            to_complete=to_complete,
            notes=notes,
            source=self.definition.path,
            respondents=respondents,
        )

    def respondents(self, respondent: str) -> tuple[str, ...]:
        item = self.fields.get("respondents")
        if item is None:
            return ()
        found: list[str] = []
        for node in self.sequence(item, item.value, "respondents"):
            who = _python(node)
            if who not in ("client", "therapist"):
                self.report((item.path, node), f"respondents lists client or therapist, not {who!r}")
            elif who not in found:
                found.append(str(who))
        if respondent != "either" and found and respondent not in found:
            self.report(item, f"respondents must include the respondent {respondent!r}")
        return tuple(found)

    def to_complete(self, status: str) -> tuple[str, ...]:
        item = self.fields.get("to_complete")
        if item is None:
            if status == "template":
                self.at_top("a template lists the fields the user must complete in to_complete")
            return ()
        if status != "template":
            self.report(item, "to_complete belongs in templates only (status: template)")
            return ()
        names: list[str] = []
        for node in self.sequence(item, item.value, "to_complete"):
            name = _python(node)
            if name not in COMPLETABLE:
                self.report(
                    (item.path, node),
                    f"to_complete: {name!r} is not a field a user can complete ({', '.join(COMPLETABLE)})",
                )
            elif name in self.fields:
                self.report((item.path, node), f"to_complete lists {name!r}, but the template gives it")
            elif name not in names:
                names.append(str(name))
        if isinstance(item.value, yaml.SequenceNode) and not item.value.value:
            self.report(item, "to_complete must name at least one field")
        return tuple(names)

    def check_template_base(self, status: str) -> None:
        base = self.definition.template_base
        if base is None:
            return
        base_id, names, extends = base
        open_fields = [name for name in names if name not in self.fields]
        if open_fields and status != "template":
            self.report(
                extends,
                f"extends the template {base_id!r} but does not complete "
                f"{', '.join(open_fields)} (take them from your licensed scoring sheet)",
            )

    def items(self) -> tuple[str, ...]:
        item = self.fields.get("items")
        if item is None:
            self.at_top("missing required field 'items' (a count such as 12, or a list of item ids)")
            return ()
        value = _python(item.value)
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                self.report(item, f"items must be at least 1, not {value}")
                return ()
            return tuple(str(number) for number in range(1, value + 1))
        if not isinstance(item.value, yaml.SequenceNode):
            self.report(item, "items must be a count (12) or a list of item ids ([a1, a2])")
            return ()
        ids: list[str] = []
        seen: dict[str, int] = {}
        for node in item.value.value:
            entry = _python(node)
            if isinstance(entry, bool) or not isinstance(entry, (int, str)) or not str(entry).strip():
                self.report((item.path, node), f"item id {entry!r} must be a number or text")
                continue
            key = _canonical_item(entry)
            if key.lower() in seen:
                self.report((item.path, node), f"duplicate item id {key!r} (first at line {seen[key.lower()]})")
                continue
            seen[key.lower()] = node.start_mark.line + 1
            ids.append(key)
        if not ids and item.value.value == []:
            self.report(item, "items must not be empty")
        return tuple(ids)

    def scale(self, to_complete: tuple[str, ...]) -> Scale | None:
        if "scale" in to_complete:
            return None
        item = self.fields.get("scale")
        if item is None:
            self.at_top("missing required field 'scale' (e.g. scale: {min: 1, max: 5})")
            return None
        bounds: dict[str, float | None] = {}
        for key, key_node, value_node in self.mapping(item, item.value, "scale"):
            if key not in ("min", "max", "step"):
                self.report((item.path, key_node), f"unknown field {key!r} in scale (min, max, step)")
                continue
            bounds[key] = self.number(item, value_node, f"scale {key}")
        if not isinstance(item.value, yaml.MappingNode):
            return None
        for key in ("min", "max"):
            if key not in bounds:
                self.report(item, f"scale needs {key}")
        low, high, step = bounds.get("min"), bounds.get("max"), bounds.get("step", 1.0)
        if low is None or high is None or step is None:
            return None
        if low >= high:
            self.report(item, f"scale min {format_number(low)} must be below max {format_number(high)}")
            return None
        if step <= 0:
            self.report(item, f"scale step must be above 0, not {format_number(step)}")
            return None
        if not Scale(low, high, step).on_grid(high):
            self.report(
                item,
                f"scale max {format_number(high)} is not a whole number of steps "
                f"of {format_number(step)} above min {format_number(low)}",
            )
            return None
        return Scale(low, high, step)

    def reverse(self, items: tuple[str, ...]) -> tuple[str, ...]:
        item = self.fields.get("reverse")
        if item is None:
            return ()
        return self.item_list(item, item.value, items, "reverse")

    def listed_items(self, name: str, items: tuple[str, ...]) -> tuple[str, ...]:
        item = self.fields.get(name)
        if item is None:
            return ()
        return self.item_list(item, item.value, items, name)

    def subscales(self, items: tuple[str, ...]) -> tuple[Subscale, ...]:
        item = self.fields.get("subscales")
        if item is None:
            return ()
        result: list[Subscale] = []
        for name, key_node, value_node in self.mapping(item, item.value, "subscales"):
            if not name.strip():
                self.report((item.path, key_node), "a subscale needs a name")
                continue
            members = self.item_list(item, value_node, items, f"subscale {name!r}")
            if isinstance(value_node, yaml.SequenceNode) and not value_node.value:
                self.report((item.path, value_node), f"subscale {name!r} has no items")
            if members:
                result.append(Subscale(name, members))
        return tuple(result)

    def missing_rule(self, items: tuple[str, ...], subscales: tuple[Subscale, ...]) -> MissingRule:
        item = self.fields.get("missing")
        if item is None:
            return MissingRule()
        settings: dict[str, object] = {}
        nodes: dict[str, yaml.Node] = {}
        for key, key_node, value_node in self.mapping(item, item.value, "missing"):
            if key not in ("rule", "max_missing", "max_missing_per_subscale"):
                self.report(
                    (item.path, key_node),
                    f"unknown field {key!r} in missing (rule, max_missing, max_missing_per_subscale)",
                )
                continue
            settings[key] = _python(value_node)
            nodes[key] = value_node
        rule = settings.get("rule", "refuse")
        if rule not in MISSING_RULES:
            self.report(
                (item.path, nodes.get("rule", item.value)), f"missing rule must be refuse or prorate, not {rule!r}"
            )
            return MissingRule()
        if rule == "refuse":
            for key in ("max_missing", "max_missing_per_subscale"):
                if key in settings:
                    self.report((item.path, nodes[key]), f"{key} only applies with rule: prorate")
            return MissingRule()
        if "max_missing" not in settings:
            self.report(item, "rule: prorate needs max_missing (how many items may be missing)")
            return MissingRule()
        limits: dict[str, int] = {}
        for key, value in settings.items():
            if key == "rule":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                self.report(
                    (item.path, nodes[key]), f"{key} must be a whole number of items (0 or more), not {value!r}"
                )
                return MissingRule()
            limits[key] = value
        if limits["max_missing"] >= len(items) and items:
            self.report(
                (item.path, nodes["max_missing"]),
                f"max_missing {limits['max_missing']} would allow a form with no answer "
                f"({len(items)} items); it must be below {len(items)}",
            )
        per_subscale = limits.get("max_missing_per_subscale")
        if per_subscale is not None:
            where = (item.path, nodes["max_missing_per_subscale"])
            if not subscales:
                if "subscales" not in self.fields:
                    self.report(where, "max_missing_per_subscale needs subscales")
            elif per_subscale >= min(len(subscale.items) for subscale in subscales):
                smallest = min(len(subscale.items) for subscale in subscales)
                self.report(
                    where,
                    f"max_missing_per_subscale {per_subscale} would allow a subscale with no "
                    f"answer (the smallest has {smallest} items)",
                )
        return MissingRule("prorate", limits["max_missing"], per_subscale)

    def missing_values(self, scale: Scale | None) -> tuple[float, ...]:
        item = self.fields.get("missing_values")
        if item is None:
            return ()
        codes: list[float] = []
        for node in self.sequence(item, item.value, "missing_values"):
            code = self.number(item, node, "a missing value")
            if code is None:
                continue
            if scale is not None and scale.contains(code) and scale.on_grid(code):
                self.report(
                    (item.path, node),
                    f"missing value {format_number(code)} is also an answer on the "
                    f"scale {scale.describe()}; use a code outside the scale",
                )
                continue
            codes.append(code)
        return tuple(codes)

    def variants(self, items: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
        item = self.fields.get("variants")
        if item is None:
            return ()
        result: list[tuple[str, tuple[str, ...]]] = []
        for key, key_node, value_node in self.mapping(item, item.value, "variants"):
            item_key = self.item_ref(item, key_node, items, "variants")
            suffixes: list[str] = []
            for node in self.sequence(item, value_node, f"variants of item {key}"):
                suffix = _python(node)
                if not isinstance(suffix, str) or not re.fullmatch(r"[A-Za-z]+", suffix):
                    self.report((item.path, node), f"a variant is one or more letters (a, b), not {suffix!r}")
                    continue
                if suffix.lower() in suffixes:
                    self.report((item.path, node), f"variant {suffix!r} appears twice for item {key}")
                    continue
                suffixes.append(suffix.lower())
            if item_key is not None and suffixes:
                result.append((item_key, tuple(suffixes)))
        return tuple(result)

    def bands(self, scale: Scale | None, scoring: str | None, count: int) -> tuple[Band, ...]:
        item = self.fields.get("bands")
        if item is None:
            return ()
        bands: list[tuple[Band, yaml.Node]] = []
        for node in self.sequence(item, item.value, "bands"):
            entry: dict[str, object] = {}
            for key, key_node, value_node in self.mapping(item, node, "a band"):
                if key not in ("name", "min", "max"):
                    self.report((item.path, key_node), f"unknown field {key!r} in a band (name, min, max)")
                    continue
                entry[key] = _python(value_node) if key == "name" else self.number(item, value_node, f"band {key}")
            if not isinstance(node, yaml.MappingNode):
                continue
            absent = [key for key in ("name", "min", "max") if key not in entry]
            if absent:
                self.report((item.path, node), f"a band needs {', '.join(absent)}")
                continue
            name, low, high = entry["name"], entry["min"], entry["max"]
            if not isinstance(name, str) or not name.strip():
                self.report((item.path, node), "a band name must be non-empty text")
                continue
            if not isinstance(low, float) or not isinstance(high, float):
                continue
            if low > high:
                self.report(
                    (item.path, node), f"band {name!r}: min {format_number(low)} is above max {format_number(high)}"
                )
                continue
            bands.append((Band(name.strip(), low, high), node))
        names: set[str] = set()
        for index, (band, node) in enumerate(bands):
            if band.name.lower() in names:
                self.report((item.path, node), f"duplicate band name {band.name!r}")
            names.add(band.name.lower())
            if index and band.min <= bands[index - 1][0].max:
                previous = bands[index - 1][0]
                self.report(
                    (item.path, node),
                    f"band {band.name!r} starts at {format_number(band.min)}, not above "
                    f"the end of {previous.name!r} ({format_number(previous.max)}); "
                    "list bands from low to high without overlap",
                )
        if scale is not None and scoring is not None and count:
            low, high = (scale.min, scale.max) if scoring == "mean" else (scale.min * count, scale.max * count)
            for band, node in bands:
                if band.min < low - TOLERANCE or band.max > high + TOLERANCE:
                    self.report(
                        (item.path, node),
                        f"band {band.name!r} ({format_number(band.min)}–"
                        f"{format_number(band.max)}) lies outside the possible totals "
                        f"{format_number(low)}–{format_number(high)}",
                    )
        return tuple(band for band, _ in bands)

    def prefixes(self) -> tuple[str, ...]:
        item = self.fields.get("column_prefixes")
        if item is None:
            return ()
        prefixes: list[str] = []
        for node in self.sequence(item, item.value, "column_prefixes"):
            value = _python(node)
            if not isinstance(value, str) or not squash(value):
                self.report((item.path, node), f"a column prefix is text with letters, not {value!r}")
                continue
            prefixes.append(value)
        return tuple(prefixes)


def _path_of(origin: _Field | tuple[str, yaml.Node]) -> str:
    return origin.path if isinstance(origin, _Field) else origin[0]


def _canonical_item(value: int | str) -> str:
    text = str(value).strip()
    return str(int(text)) if text.isdigit() else text


def _build(definition: _Definition, problems: _Problems) -> Instrument | None:
    return _Builder(definition, problems).build()

"""Recognise who speaks on a transcript line and which role that speaker has.

A speaker line is `[timestamp] LABEL [timestamp]: utterance`, where LABEL is a known abbreviation
or role word (T, P, K, C, I, Therapist, terapeut, ...) or a capitalised name of one to three words.
Roles come from the defaults below, overridden by a speaker map such as "T=therapist,P=client".
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

from concord.importers.parsed import SPEAKER_ROLES
from concord.storage.errors import InputError

DEFAULT_LABEL_ROLES: dict[str, str] = {
    # therapist
    "t": "therapist",
    "th": "therapist",
    "therapist": "therapist",
    "counsellor": "therapist",
    "counselor": "therapist",
    "terapeut": "therapist",
    "terapeuten": "therapist",
    "behandlare": "therapist",
    "behandler": "therapist",
    # client
    "p": "client",
    "c": "client",
    "k": "client",
    "cl": "client",
    "client": "client",
    "patient": "client",
    "patienten": "client",
    "klient": "client",
    "klienten": "client",
    "pasient": "client",
    "pasienten": "client",
    # interviewer
    "i": "interviewer",
    "interviewer": "interviewer",
    "intervjuer": "interviewer",
    "intervjuare": "interviewer",
    "intervjueren": "interviewer",
    "intervjuaren": "interviewer",
}

# Words a speaker map may use for a role: the roles themselves and every default role word.
_ROLE_WORDS: dict[str, str] = {**{role: role for role in SPEAKER_ROLES}, **DEFAULT_LABEL_ROLES}


def _label_key(label: str) -> str:
    return " ".join(label.split()).casefold()


def parse_speaker_map(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """Parse "T=therapist,P=client" (or a dict) into {label: role}; labels compare case-insensitively."""
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        items = [(str(label), str(role), f"{label}={role}") for label, role in spec.items()]
    else:
        items = []
        for entry in re.split(r"[,;\n]", spec):
            if not entry.strip():
                continue
            label, sep, role = entry.partition("=")
            if not sep:
                label, sep, role = entry.partition(":")
            if not sep:
                raise InputError(f"speaker map entry {entry.strip()!r} is not LABEL=ROLE")
            items.append((label, role, entry.strip()))
    mapping: dict[str, str] = {}
    seen: dict[str, str] = {}
    for label, role, entry in items:
        label = " ".join(label.split())
        role_key = role.strip().casefold()
        if not label:
            raise InputError(f"speaker map entry {entry!r} has no label")
        if role_key not in _ROLE_WORDS:
            raise InputError(
                f"speaker map entry {entry!r}: unknown role {role.strip()!r} (use one of {', '.join(SPEAKER_ROLES)})"
            )
        resolved = _ROLE_WORDS[role_key]
        key = _label_key(label)
        if key in seen and mapping[seen[key]] != resolved:
            raise InputError(f"speaker map gives {label!r} two roles: {mapping[seen[key]]} and {resolved}")
        seen.setdefault(key, label)
        mapping[seen[key]] = resolved
    return mapping


class SpeakerRoles:
    """Label -> role lookup: the speaker map first, then the defaults."""

    def __init__(self, speaker_map: str | Mapping[str, str] | None = None):
        self.mapping = parse_speaker_map(speaker_map)
        self._lookup = dict(DEFAULT_LABEL_ROLES)
        self._lookup.update({_label_key(label): role for label, role in self.mapping.items()})

    def role_for(self, label: str) -> str | None:
        key = _label_key(label)
        role = self._lookup.get(key)
        if role is None and key.endswith("."):
            role = self._lookup.get(key.rstrip("."))
        return role

    def is_known(self, label: str) -> bool:
        return self.role_for(label) is not None


# ---------------------------------------------------------------------------------------------
# Timestamps


class MalformedTimestamp(ValueError):
    """A timestamp-shaped token whose fields are out of range or badly formed."""


# Loose on purpose: anything shaped like a clock time is caught here and then validated, so that
# [00:75:99] or [1:2] is reported instead of being taken as text.
_CLOCK = r"\d{1,3}(?::\d{1,3}){1,2}(?:[.,]\d{1,3})?"
_RANGE_SEP = r"\s*(?:-->|–|—|-)\s*"
_CLOCK_SPAN = rf"(?:{_CLOCK})(?:{_RANGE_SEP}(?:{_CLOCK}))?"
_BRACKETED = rf"\[\s*{_CLOCK_SPAN}\s*\]|\(\s*{_CLOCK_SPAN}\s*\)"
_BARE_CLOCK = r"\d{1,3}:\d{1,3}:\d{1,3}(?:[.,]\d{1,3})?"
_BARE = rf"{_BARE_CLOCK}(?:{_RANGE_SEP}{_BARE_CLOCK})?"
TIMESTAMP_PATTERN = rf"(?:{_BRACKETED}|{_BARE})"
_CLOCK_RE = re.compile(_CLOCK)
_STRICT = re.compile(r"(?:(\d{1,3}):)?(\d{1,3}):(\d{1,3})(?:[.,](\d{1,3}))?")


def parse_clock(value: str) -> float:
    """Seconds from hh:mm:ss, h:mm:ss, mm:ss (minutes may exceed 59) with optional .fff or ,fff."""
    match = _STRICT.fullmatch(value.strip())
    if not match:
        raise MalformedTimestamp(f"malformed timestamp {value!r} (expected hh:mm:ss or mm:ss)")
    hours, minutes, seconds, fraction = match.groups()
    if hours is not None and (len(minutes) != 2 or int(minutes) > 59):
        raise MalformedTimestamp(f"malformed timestamp {value!r}: minutes must be two digits 00-59")
    if len(seconds) != 2 or int(seconds) > 59:
        raise MalformedTimestamp(f"malformed timestamp {value!r}: seconds must be two digits 00-59")
    total = int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)
    if fraction:
        total += int(fraction) / 10 ** len(fraction)
    return float(total)


def parse_timestamp_token(token: str) -> tuple[float, float | None]:
    """(start, end) seconds from a token such as "[00:12:03]", "(12:03)" or "[00:01:02 - 00:01:09]"."""
    clocks = _CLOCK_RE.findall(token)
    if not clocks:
        raise MalformedTimestamp(f"malformed timestamp {token!r}")
    start = parse_clock(clocks[0])
    end = parse_clock(clocks[1]) if len(clocks) > 1 else None
    if end is not None and end < start:
        raise MalformedTimestamp(f"timestamp range {token.strip()!r} ends before it starts")
    return start, end


def parse_time_value(value: object) -> float | None:
    """A table's time cell: seconds (12.5, "12,5"), "hh:mm:ss[.fff]", "mm:ss", or a spreadsheet time."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise MalformedTimestamp(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise MalformedTimestamp(f"negative time {value!r}")
        return float(value)
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, _dt.time):
        return value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1e6
    if isinstance(value, _dt.datetime):
        raise MalformedTimestamp(f"a date, not a time: {value.isoformat()}")
    text = str(value).strip()
    if not text:
        return None
    if re.fullmatch(r"\d+(?:[.,]\d+)?", text):
        return float(text.replace(",", "."))
    return parse_clock(text)


# ---------------------------------------------------------------------------------------------
# Speaker lines

_NAME_WORD = r"[^\W\d_](?:[^\W_]|[.'’\-])*"
_LABEL = rf"{_NAME_WORD}(?:[ ]{_NAME_WORD}){{0,2}}(?:[ ]?\d{{1,2}})?"
_EMPHASIS = r"(?:\*\*|__|\*|_)"

_SPEAKER_LINE = re.compile(
    rf"""
    (?P<lead>[ \t]*)
    (?:(?P<ts_before>{TIMESTAMP_PATTERN})[ \t]*(?:[-–][ \t]*)?)?
    (?P<em_open>{_EMPHASIS})?
    (?P<label>{_LABEL})
    (?:[ \t]*(?P<ts_label>{TIMESTAMP_PATTERN}))?
    (?P<em_mid>{_EMPHASIS})?
    [ \t]*:
    (?P<em_close>{_EMPHASIS})?
    (?:[ \t]*(?P<ts_after>{TIMESTAMP_PATTERN}))?
    [ \t]*
    """,
    re.VERBOSE,
)
# Word transcripts often put a tab after a known label instead of a colon: "T<tab>Hur mår du?".
_TAB_LINE = re.compile(
    rf"[ \t]*(?:(?P<ts_before>{TIMESTAMP_PATTERN})[ \t]*)?(?P<label>{_LABEL})"
    rf"(?:[ \t]*(?P<ts_label>{TIMESTAMP_PATTERN}))?\t[ \t]*"
)
# "Speaker 1  0:03" or "00:00:03 Speaker 1" alone on a line, the utterance on the lines below
# (Otter, Word's transcribe, Teams exports).
_HEADER_CLOCK = rf"(?:{TIMESTAMP_PATTERN}|\d{{1,2}}:\d{{2}})"
_HEADER_LINE = re.compile(
    rf"[ \t]*(?:(?P<ts_before>{_HEADER_CLOCK})[ \t]+(?:[-–][ \t]*)?)?(?P<label>{_LABEL})"
    rf"(?:[ \t]+(?:[-–][ \t]*)?(?P<ts_after>{_HEADER_CLOCK}))?[ \t]*:?[ \t]*"
)
_TIME_ONLY_LINE = re.compile(rf"[ \t]*(?P<ts>{TIMESTAMP_PATTERN})[ \t]*")
# Something at the start of a line that looks like an attempt at a bracketed timestamp.
_SUSPECT_TIMESTAMP = re.compile(r"[ \t]*(?P<token>[\[(][\d:.,\s\-–>]*:[\d:.,\s\-–>]*[\])])")


@dataclass(frozen=True)
class SpeakerLine:
    label: str
    utterance_start: int  # offset in the line where the spoken text begins
    start_time: float | None
    end_time: float | None
    header_only: bool = False  # label (and time) alone on the line, the utterance below


@dataclass(frozen=True)
class TimeMarkLine:
    start_time: float | None  # None: a malformed time read leniently
    end_time: float | None


def match_speaker_line(
    line: str, roles: SpeakerRoles, *, markdown: bool = False, on_malformed=None
) -> SpeakerLine | TimeMarkLine | None:
    """Classify one line; raises MalformedTimestamp for a bad timestamp in a timestamp position.

    With `on_malformed` (called with the token and the reason) a bad timestamp is reported there and
    read as no time at all: the line is still a speaker line, its turn just has no time."""

    def times_of(*tokens: str | None) -> tuple[float | None, float | None]:
        """The first typed timestamp gives the turn's time; every one is validated."""
        found: list[tuple[float | None, float | None]] = []
        for token in tokens:
            if not token:
                continue
            try:
                found.append(parse_timestamp_token(token))
            except MalformedTimestamp as exc:
                if on_malformed is None:
                    raise
                on_malformed(token.strip(), str(exc))
                found.append((None, None))
        return found[0] if found else (None, None)

    time_only = _TIME_ONLY_LINE.fullmatch(line)
    if time_only:
        start, end = times_of(time_only["ts"])
        return TimeMarkLine(start, end)

    match = _SPEAKER_LINE.match(line)
    if match and _acceptable_label(match["label"], roles) and _emphasis_ok(match, markdown):
        start, end = times_of(match["ts_before"], match["ts_label"], match["ts_after"])
        return SpeakerLine(match["label"], match.end(), start, end)

    tabbed = _TAB_LINE.match(line)
    if tabbed and roles.is_known(tabbed["label"]):
        start, end = times_of(tabbed["ts_before"], tabbed["ts_label"])
        return SpeakerLine(tabbed["label"], tabbed.end(), start, end)

    header = _HEADER_LINE.fullmatch(line)
    if header and (header["ts_before"] or header["ts_after"]) and _acceptable_label(header["label"], roles):
        start, end = times_of(header["ts_before"] or header["ts_after"])
        return SpeakerLine(header["label"], len(line), start, end, header_only=True)

    suspect = _SUSPECT_TIMESTAMP.match(line)
    if suspect:
        times_of(suspect["token"])
    return None


def _acceptable_label(label: str, roles: SpeakerRoles) -> bool:
    if roles.is_known(label):
        return True
    words = [word for word in label.split(" ") if not word.isdigit()]
    return all(word[0].isupper() for word in words)


def _emphasis_ok(match: re.Match[str], markdown: bool) -> bool:
    opened, middle, closed = match["em_open"], match["em_mid"], match["em_close"]
    if not (opened or middle or closed):
        return True
    # **T:** and **T**: are Markdown emphasis around the label; anything else is not a label.
    return markdown and opened is not None and (middle or closed) == opened and not (middle and closed)

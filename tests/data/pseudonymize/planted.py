"""Seeded transcripts with planted names, for the pseudonymisation tests and benchmark.

A transcript is built from the therapy-like sentences in `sentences_<lang>.txt`: turns of one to
four sentences behind speaker labels ("T: ", "P: "), whose name slots are filled with registered
names (as written, genitive, one-letter typo, typo + genitive, upper case, full name) or with
names the register does not know. Every planted name is recorded with its place in the text and
the text a correct pseudonymiser must put there, so recall and precision can be counted.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from rapidfuzz.distance import OSA

HERE = Path(__file__).parent

# (real, pseudonym) — people are "First Last"; places and organisations one word.
KNOWN_PEOPLE = {
    "en": [
        ("Kristoffer Hale", "Jonas Reed"),
        ("Annabel Price", "Maria Wells"),
        ("Theodore Banks", "Samuel Hart"),
        ("Rosalind Moore", "Helen Ward"),
        ("Gregory Dunn", "Peter Lowe"),
        ("Imogen Fletcher", "Clara Stone"),
        ("Declan Murray", "Oscar Finch"),
        ("Priyanka Shah", "Nina Cole"),
        ("Bartholomew Quinn", "Arthur Bell"),
        ("Fenella Grant", "Lucy Marsh"),
        ("Mathilda Osei", "Julia Frost"),
        ("Lachlan Reid", "Edwin Shaw"),
        ("Siobhan Kelly", "Irene Page"),
        ("Desmond Achterberg", "Victor Lane"),
        ("Henrietta Vance", "Ada Lowell"),
        ("Caspian Ferris", "Felix Dale"),
    ],
    "sv": [
        ("Kristoffer Lindqvist", "Johan Ek"),
        ("Anna Bergström", "Maria Holm"),
        ("Ingegerd Sjöholm", "Karin Dahl"),
        ("Torbjörn Nyqvist", "Lars Berg"),
        ("Margareta Ljungberg", "Eva Strand"),
        ("Gunnel Åkesson", "Siv Lund"),
        ("Håkan Wikström", "Erik Norén"),
        ("Solveig Hermansson", "Greta Falk"),
        ("Leonard Engqvist", "Olof Sand"),
        ("Birgitta Fröberg", "Ulla Rask"),
        ("Evelina Hammarlund", "Sara Vik"),
        ("Mattias Grönkvist", "Nils Ros"),
    ],
    "nb": [
        ("Kristoffer Haugland", "Jonas Dahl"),
        ("Ingvild Torsvik", "Kari Berg"),
        ("Sigurd Fjellheim", "Ola Lien"),
        ("Ragnhild Sæther", "Liv Moe"),
        ("Torgeir Brekke", "Per Vik"),
        ("Solveig Nyhus", "Anne Lie"),
        ("Eirik Skjæveland", "Hans Holm"),
        ("Marte Langeland", "Eli Strand"),
        ("Øyvind Rønning", "Knut Sand"),
        ("Synnøve Helland", "Siri Bø"),
        ("Halvard Kvamme", "Jon Aas"),
        ("Tuva Ødegård", "Mia Li"),
    ],
}
KNOWN_PLACES = {
    "en": [
        ("Harrogate", "Northbury"),
        ("Aberystwyth", "Westford"),
        ("Kettering", "Millbrook"),
        ("Lochgilphead", "Glenmoor"),
        ("Swindon", "Eastwick"),
    ],
    "sv": [
        ("Uppsala", "Åstad"),
        ("Skellefteå", "Norrby"),
        ("Västerås", "Sjöstad"),
        ("Hudiksvall", "Bergvik"),
        ("Örnsköldsvik", "Älvsby"),
    ],
    "nb": [
        ("Tromsø", "Nordby"),
        ("Kristiansund", "Havnvik"),
        ("Lillehammer", "Fjellstad"),
        ("Haugesund", "Vestvik"),
        ("Gjøvik", "Innby"),
    ],
}
KNOWN_ORGANISATIONS = {
    "en": [("Brightwater", "Harbourside"), ("Hillcrest", "Oakfield")],
    "sv": [("Björkgården", "Lindgården"), ("Sjöviksskolan", "Ängsskolan")],
    "nb": [("Solbakken", "Granlia"), ("Fjordheim", "Elvetun")],
}
# Names the register does not know: for NER recall (English) and suspect detection (sv, nb).
UNKNOWN_FIRST = {
    "en": [
        "Megan",
        "Trevor",
        "Danielle",
        "Marcus",
        "Kevin",
        "Rebecca",
        "Gavin",
        "Natalie",
        "Simon",
        "Jessica",
        "Owen",
        "Laura",
        "Craig",
        "Emily",
        "Stuart",
        "Fiona",
        "Callum",
        "Jodie",
        "Martin",
        "Heather",
        "Ross",
        "Gemma",
        "Dylan",
        "Kirsty",
        "Graham",
        "Neil",
        "Abigail",
        "Wayne",
    ],
    "sv": ["Lasse", "Pernilla", "Jörgen", "Agneta", "Ronja", "Sixten", "Majvor", "Göran", "Yvonne", "Roger"],
    "nb": ["Tormod", "Gudrun", "Sverre", "Jorunn", "Arild", "Bodil", "Steinar", "Ranveig", "Oddvar", "Turid"],
}
UNKNOWN_LAST = {
    "en": [
        "Clark",
        "Holloway",
        "Bennett",
        "Foster",
        "Gibson",
        "Harper",
        "Lawson",
        "Mitchell",
        "Palmer",
        "Sutton",
        "Walsh",
        "Doyle",
        "Barker",
        "Chapman",
    ],
    "sv": ["Sandgren", "Wennerholm", "Ekdahl", "Rosendahl", "Lövgren"],
    "nb": ["Bjørnstad", "Myrvold", "Tveiten", "Sandvik", "Aasen"],
}
SPEAKERS = ("T", "P")


@dataclass(frozen=True)
class Planted:
    start: int  # range of the planted text (with its genitive ending)
    end: int
    written: str  # as planted: "Annas", "Kristofer", "Anna Bergström"
    real: str  # the register spelling it stands for (for unknown names, the name itself)
    kind: str  # person | place | organisation
    known: bool  # the register knew the name before the text was pseudonymised
    variant: str  # plain | genitive | typo | typo+genitive | upper | full | full+genitive
    expected: str | None  # what must replace `written` (known names only)


@dataclass(frozen=True)
class PlantedTranscript:
    text: str
    protected: tuple[tuple[int, int], ...]  # the speaker labels "T:" / "P:"
    planted: tuple[Planted, ...]


def sentences(language: str) -> list[str]:
    lines = (HERE / f"sentences_{language}.txt").read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def register_rows(language: str) -> list[tuple[str, str, str]]:
    """(real, pseudonym, kind) rows of the study register the transcripts are made for."""
    rows = [(real, pseudonym, "person") for real, pseudonym in KNOWN_PEOPLE[language]]
    rows += [(real, pseudonym, "place") for real, pseudonym in KNOWN_PLACES[language]]
    rows += [(real, pseudonym, "organisation") for real, pseudonym in KNOWN_ORGANISATIONS[language]]
    return rows


def genitive(name: str, language: str) -> str:
    if language == "en":
        return name + ("'" if name.endswith("s") else "'s")
    if name[-1] in "sxz":
        return name if language == "sv" else name + "'"
    return name + "s"


def pseudonym_genitive(pseudonym: str, real: str, language: str) -> str:
    """The genitive of `pseudonym` a pseudonymiser should write for the genitive of `real`."""
    if language == "en":
        # the ending is kept as written: "'s" stays "'s"; the lone apostrophe of "Ferris'" becomes
        # "'s" unless the pseudonym ends in s as well
        if real.endswith("s") and not pseudonym.endswith("s"):
            return pseudonym + "'s"
        return pseudonym + ("'" if real.endswith("s") else "'s")
    if real[-1] in "sxz" and language == "sv":
        return pseudonym  # "Västerås kommun": the genitive looks like the name; nothing to carry over
    if pseudonym[-1] in "sxz":
        return pseudonym if language == "sv" else pseudonym + "'"
    return pseudonym + "s"


class _Typos:
    """One-letter misspellings that stay closer to their own name than to any other registered one."""

    def __init__(self, names: list[str], rng: random.Random):
        self.names = [name.lower() for name in names]
        self.rng = rng
        self.alphabet = "abcdefghijklmnoprstuvy"

    def make(self, word: str) -> str | None:
        if len(word) < 5:
            return None
        for _ in range(30):
            position = self.rng.randrange(1, len(word) - 1)
            operation = self.rng.choice(("substitute", "delete", "insert", "transpose"))
            letter = self.rng.choice(self.alphabet)
            if operation == "substitute":
                typo = word[:position] + letter + word[position + 1 :]
            elif operation == "delete":
                typo = word[:position] + word[position + 1 :]
            elif operation == "insert":
                typo = word[:position] + letter + word[position:]
            else:
                typo = word[:position] + word[position + 1] + word[position] + word[position + 2 :]
            lower = typo.lower()
            # keep the last letter, so a genitive ending stays recognisable after the typo
            if typo == word or typo[-1] != word[-1] or lower.endswith("s") or lower in self.names:
                continue
            if sum(OSA.distance(lower, name) <= 1 for name in self.names) != 1:
                continue
            return typo
        return None


def generate(
    language: str,
    *,
    seed: int,
    names: int | None = None,
    words: int | None = None,
    unknown_share: float = 0.3,
    slot_share: float = 0.5,
) -> PlantedTranscript:
    """A transcript with about `names` planted names (or about `words` words)."""
    rng = random.Random(seed)
    pool = sentences(language)
    with_slots = [sentence for sentence in pool if "{" in sentence]
    fillers = [sentence for sentence in pool if "{" not in sentence]
    people = KNOWN_PEOPLE[language]
    single_names = [real.split()[0] for real, _ in people] + [real.split()[1] for real, _ in people]
    single_names += [real for real, _ in KNOWN_PLACES[language] + KNOWN_ORGANISATIONS[language]]
    typos = _Typos(single_names, rng)

    parts: list[str] = []
    planted: list[Planted] = []
    protected: list[tuple[int, int]] = []
    length = 0
    word_count = 0
    turn = 0
    while (names is not None and len(planted) < names) or (words is not None and word_count < words):
        speaker = SPEAKERS[turn % 2]
        turn += 1
        label = f"{speaker}:"
        protected.append((length, length + len(label)))
        parts.append(label + " ")
        length += len(label) + 1
        for index in range(rng.randint(1, 4)):
            if index:
                parts.append(" ")
                length += 1
            template = rng.choice(with_slots) if rng.random() < slot_share else rng.choice(fillers)
            cursor = 0
            for match in re.finditer(r"\{(person|place|org)('s)?\}", template):
                before = template[cursor : match.start()]
                parts.append(before)
                length += len(before)
                slot, possessive = match.group(1), bool(match.group(2))
                written, record = _fill(slot, possessive, language, rng, typos, unknown_share)
                parts.append(written)
                planted.append(record(length, length + len(written)))
                length += len(written)
                cursor = match.end()
            rest = template[cursor:]
            parts.append(rest)
            length += len(rest)
            word_count += len(template.split())
        parts.append("\n")
        length += 1
    return PlantedTranscript("".join(parts), tuple(protected), tuple(planted))


def _fill(slot, possessive, language, rng, typos, unknown_share):
    kind = {"person": "person", "place": "place", "org": "organisation"}[slot]
    if slot == "person" and rng.random() < unknown_share:
        first = rng.choice(UNKNOWN_FIRST[language])
        name = first + (" " + rng.choice(UNKNOWN_LAST[language]) if rng.random() < 0.4 else "")
        written = genitive(name, language) if possessive else name
        return written, lambda start, end: Planted(start, end, written, name, kind, False, "plain", None)

    if slot == "person":
        real, pseudonym = rng.choice(KNOWN_PEOPLE[language])
        if rng.random() < 0.25:
            name, name_pseudonym, variant = real, pseudonym, "full"
        else:
            name, name_pseudonym, variant = real.split()[0], pseudonym.split()[0], "plain"
    else:
        pairs = KNOWN_PLACES[language] if slot == "place" else KNOWN_ORGANISATIONS[language]
        real, pseudonym = rng.choice(pairs)
        name, name_pseudonym, variant = real, pseudonym, "plain"

    written_name = name
    roll = rng.random()
    if variant == "plain" and roll < 0.2:
        typo = typos.make(name)
        if typo is not None:
            written_name, variant = typo, "typo"
    elif variant == "plain" and roll < 0.25:
        written_name, name_pseudonym, variant = name.upper(), name_pseudonym.upper(), "upper"
    if possessive:
        written = genitive(written_name, language)
        expected = pseudonym_genitive(name_pseudonym, written_name, language)
        variant += "+genitive"
    else:
        written, expected = written_name, name_pseudonym
    return written, lambda start, end: Planted(start, end, written, real, kind, True, variant, expected)

"""Suggest which inductive codes from different coders name the same thing and could be merged.

Each name is reduced to a set of word stems: lower-cased, punctuation and filler words
("the", "about", "client", ...) dropped, light English inflection removed ("expressing",
"expressed", "expresses" -> "express"), a few coding synonyms unified ("discuss" -> "talk").
Names are compared with a soft TF-IDF cosine: stems shared by many names (like "therapist")
count less than rare ones, and near-identical stems ("summaris"/"summariz") still match through
rapidfuzz. Before any score is trusted, polarity is checked: names that disagree on an opposite
pair ("positive"/"negative", "hopeful"/"hopeless", "agree"/"disagree"), where only one is
negated ("homework done" / "homework not done"), or that name different actors ("therapist sets
goals" / "client sets goals") are never grouped.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz, process

DEFAULT_THRESHOLD = 0.6
# Two stems this similar (rapidfuzz ratio, 0-100) count as the same word, scaled by the ratio.
STEM_MATCH_CUTOFF = 84.0

STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "about",
        "on",
        "in",
        "into",
        "to",
        "for",
        "with",
        "by",
        "and",
        "or",
        "at",
        "from",
        "as",
        "between",
        "than",
        "then",
        "so",
        "his",
        "her",
        "him",
        "he",
        "she",
        "they",
        "them",
        "their",
        "its",
        "it",
        "this",
        "that",
        "these",
        "those",
        "my",
        "your",
        "our",
        "own",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "am",
        "has",
        "have",
        "had",
        "having",
        "can",
        "could",
        "will",
        "would",
        "should",
        "may",
        "might",
        "some",
        "any",
        "very",
        "really",
        "just",
        "also",
        "quite",
        "while",
        "during",
        "when",
        "where",
        "who",
        "whom",
        "which",
        "what",
        "client",
        "clients",
        "patient",
        "patients",
        "pt",
        "cl",
        "p",
        "s",
        "d",
        "ll",
        "re",
        "ve",
        "m",
    ]
)

_ROLES = {
    "client": "client",
    "clients": "client",
    "patient": "client",
    "patients": "client",
    "p": "client",
    "pt": "client",
    "cl": "client",
    "therapist": "therapist",
    "therapists": "therapist",
    "t": "therapist",
    "th": "therapist",
    "counsellor": "therapist",
    "counselor": "therapist",
}

NEGATORS = frozenset({"not", "no", "never", "without", "nor", "none", "lack", "lacks", "lacking"})

# Whole words mapped before stemming: irregular forms, family words, role abbreviations.
_IRREGULAR = {
    "did": "do",
    "done": "do",
    "does": "do",
    "doing": "do",
    "went": "go",
    "gone": "go",
    "goes": "go",
    "said": "say",
    "says": "say",
    "made": "make",
    "felt": "feel",
    "thought": "think",
    "thoughts": "think",
    "told": "tell",
    "gave": "give",
    "given": "give",
    "took": "take",
    "taken": "take",
    "spoke": "speak",
    "spoken": "speak",
    "got": "get",
    "kept": "keep",
    "saw": "see",
    "seen": "see",
    "mum": "mother",
    "mom": "mother",
    "mommy": "mother",
    "dad": "father",
    "daddy": "father",
    "t": "therapist",
    "th": "therapist",
    "counsellor": "therapist",
    "counselor": "therapist",
}
_PHRASES = (
    (re.compile(r"\bopen[\s-]+ended\b"), "open"),
    (re.compile(r"\bclosed[\s-]+ended\b"), "closed"),
    (re.compile(r"\byes[\s/-]+no\b"), "closed"),
    (re.compile(r"n't\b"), " not"),
    (re.compile(r"\bcannot\b"), "can not"),
)

# Synonyms as they are after stemming -> one canonical stem.
_SYNONYM_WORDS = {
    "discuss": "talk",
    "speak": "talk",
    "mention": "talk",
    "conversation": "talk",
    "emotion": "feel",
    "feeling": "feel",
    "aim": "goal",
    "objective": "goal",
    "job": "work",
    "advise": "advice",
}

# Opposite pairs; the first word is the positive side of its axis.
_OPPOSITES = (
    ("positive", "negative"),
    ("high", "low"),
    ("more", "less"),
    ("increase", "decrease"),
    ("good", "bad"),
    ("better", "worse"),
    ("improve", "worsen"),
    ("strong", "weak"),
    ("open", "closed"),
    ("success", "failure"),
    ("accept", "reject"),
    ("approach", "avoid"),
    ("present", "absent"),
    ("active", "passive"),
    ("happy", "sad"),
    ("calm", "agitated"),
    ("validate", "invalidate"),
    ("valid", "invalid"),
    ("include", "exclude"),
    ("start", "stop"),
    ("before", "after"),
    ("past", "future"),
    ("confident", "insecure"),
)
_NEGATING_PREFIXES = ("dis", "non", "un")


@dataclass(frozen=True)
class MergeGroup:
    """Codes suggested for merging, in input order, with the mean pairwise similarity (0-1)."""

    code_ids: tuple[Hashable, ...]
    names: tuple[str, ...]
    score: float
    creators: tuple[str, ...]


@dataclass(frozen=True)
class NameFeatures:
    """What comparison sees of a code name."""

    stems: frozenset[str]
    polarity: tuple[tuple[str, int], ...]  # (axis stem, +1 or -1) for each opposite-pair word
    negated: bool
    agent: str | None = None  # "client" or "therapist" when the name says who acts


def suggest_merges(
    names: Sequence[tuple[Hashable, str, str]],
    threshold: float = DEFAULT_THRESHOLD,
    *,
    across_creators_only: bool = False,
) -> list[MergeGroup]:
    """Group near-identical code names; `names` holds (code_id, name, creator) triples.

    Only groups of two or more codes are returned, best first. With across_creators_only, a group
    never holds two codes by the same creator (useful when each coder's codebook is already clean).
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    features = [name_features(name) for _, name, _ in names]
    weights = _idf_weights(features)
    stem_similarity = _similar_stems({word_stem for feature in features for word_stem in feature.stems})
    scores: dict[tuple[int, int], float] = {}
    for first, second in _candidate_pairs(features, [name for _, name, _ in names], stem_similarity):
        if across_creators_only and names[first][2] == names[second][2]:
            continue
        if _conflict(features[first], features[second]):
            continue
        score = _similarity(features[first], features[second], weights, stem_similarity)
        if score == 0.0 and _folded(names[first][1]) == _folded(names[second][1]):
            score = 1.0
        scores[(first, second)] = score
    clusters = _cluster(len(names), scores, features, names, threshold, across_creators_only)
    groups = [_group(members, names, scores) for members in clusters if len(members) > 1]
    return sorted(groups, key=lambda group: (-group.score, group.names))


def name_features(name: str) -> NameFeatures:
    text = unicodedata.normalize("NFKC", name).casefold().replace("’", "'")
    for pattern, replacement in _PHRASES:
        text = pattern.sub(replacement, text)
    words = re.findall(r"[a-z0-9]+", text)
    agent = _agent(words)
    stems: set[str] = set()
    polarity: dict[str, int] = {}
    negations = 0
    pending_negation = False
    for word in words:
        if word in NEGATORS:
            pending_negation = not pending_negation
            continue
        if word in STOP_WORDS:
            continue
        word_stem, sign = _polar_stem(word)
        if sign is not None:
            # A negation right before an opposite-pair word flips it: "not hopeful" = "hopeless".
            polarity[word_stem] = -sign if pending_negation else sign
            pending_negation = False
        elif pending_negation:
            negations += 1
            pending_negation = False
        stems.add(word_stem)
    if pending_negation:
        negations += 1  # a trailing negator ("homework: none") still negates the name
    return NameFeatures(frozenset(stems), tuple(sorted(polarity.items())), negations % 2 == 1, agent)


def _agent(words: list[str]) -> str | None:
    """Who acts, when the name opens with a role ("therapist sets goals") or names one after "by"."""
    content = [word for word in words if word not in ("the", "a", "an")]
    if content and content[0] in _ROLES:
        first = _ROLES[content[0]]
        joint = len(content) > 2 and content[1] == "and" and _ROLES.get(content[2], first) != first
        return None if joint else first
    for position, word in enumerate(content[:-1]):
        if word == "by" and content[position + 1] in _ROLES:
            return _ROLES[content[position + 1]]
    return None


def stem(word: str) -> str:
    """A light English stemmer: the same stem for the inflected forms coders write."""
    word = _IRREGULAR.get(word, word)
    if len(word) <= 3 or word.isdigit():
        return word
    for suffix, keep in (("ness", 4), ("ment", 4), ("ism", 4), ("ance", 4), ("ence", 4)):
        if word.endswith(suffix) and len(word) - len(suffix) >= keep:
            word = word[: -len(suffix)]
            break
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "shes", "ches", "xes", "zes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        word = word[:-1]
    for suffix in ("ing", "ed", "ion", "ly", "al"):
        if word.endswith(suffix) and len(word) - len(suffix) >= (4 if suffix in ("ly", "al") else 3):
            word = word[: -len(suffix)]
            break
    if len(word) >= 4 and word[-1] == word[-2] and word[-1] not in "aeiouylsz":
        word = word[:-1]
    if word.endswith("is") and len(word) > 6:
        word = word[:-2] + "iz"  # British -ise spelling: summarise/summarize
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    if word.endswith("y") and len(word) > 3:
        word = word[:-1] + "i"
    return _SYNONYMS.get(word, word)


def _polar_stem(word: str) -> tuple[str, int | None]:
    """The stem of a word and its sign if it belongs to an opposite pair, else (stem, None)."""
    word_stem = stem(word)
    if word_stem in _AXES:
        return _AXES[word_stem]
    for suffix, sign in (("less", -1), ("ful", 1)):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = stem(word[: -len(suffix)])
            return _AXES.get(base, (base, 1))[0], sign * _AXES.get(base, (base, 1))[1]
    for suffix, sign in (("lessness", -1), ("fulness", 1)):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return stem(word[: -len(suffix)]), sign
    for prefix in _NEGATING_PREFIXES:
        if word.startswith(prefix) and len(word) - len(prefix) >= 4 and word_stem not in _KNOWN_STEMS:
            base_stem, base_sign = _polar_stem(word[len(prefix) :])
            return base_stem, -(base_sign or 1)
    return word_stem, None


def _build_axes() -> dict[str, tuple[str, int]]:
    axes: dict[str, tuple[str, int]] = {}
    for positive, negative in _OPPOSITES:
        axis = stem(positive)
        axes[axis] = (axis, 1)
        axes[stem(negative)] = (axis, -1)
    return axes


_SYNONYMS: dict[str, str] = {}
_SYNONYMS.update({stem(word): target for word, target in _SYNONYM_WORDS.items()})
_AXES = _build_axes()
# Stems that must not be read as a negating prefix plus a word ("discuss" is not "dis-cuss").
_KNOWN_STEMS = frozenset(_SYNONYMS) | frozenset(_SYNONYMS.values()) | frozenset(_AXES)


def _idf_weights(features: list[NameFeatures]) -> dict[str, float]:
    document_frequency: dict[str, int] = defaultdict(int)
    for feature in features:
        for word_stem in feature.stems:
            document_frequency[word_stem] += 1
    total = len(features)
    return {word_stem: math.log((total + 1) / (count + 1)) + 1.0 for word_stem, count in document_frequency.items()}


def _similar_stems(stems: set[str]) -> dict[str, dict[str, float]]:
    """For each stem, the other stems close enough to count as the same word, with their similarity."""
    ordered = sorted(stems)
    similar: dict[str, dict[str, float]] = {word_stem: {word_stem: 1.0} for word_stem in ordered}
    if len(ordered) < 2:
        return similar
    matrix = process.cdist(ordered, ordered, scorer=fuzz.ratio, score_cutoff=STEM_MATCH_CUTOFF, workers=1)
    for row, word_stem in enumerate(ordered):
        for column in matrix[row].nonzero()[0]:
            other = ordered[column]
            if other != word_stem and min(len(word_stem), len(other)) >= 4:
                similar[word_stem][other] = float(matrix[row][column]) / 100.0
    return similar


def _candidate_pairs(
    features: list[NameFeatures], texts: list[str], stem_similarity: dict[str, dict[str, float]]
) -> set[tuple[int, int]]:
    """Pairs of names sharing a stem, a near-identical stem or their whole text; others score 0 anyway."""
    by_stem: dict[str, list[int]] = defaultdict(list)
    for index, feature in enumerate(features):
        for word_stem in feature.stems:
            by_stem[word_stem].append(index)
    pairs: set[tuple[int, int]] = set()
    by_text: dict[str, list[int]] = defaultdict(list)
    for index, name in enumerate(texts):
        by_text[_folded(name)].append(index)
    for same in by_text.values():
        pairs.update((a, b) for position, a in enumerate(same) for b in same[position + 1 :])
    for index, feature in enumerate(features):
        for word_stem in feature.stems:
            for similar in stem_similarity[word_stem]:
                for other in by_stem.get(similar, ()):
                    if other > index:
                        pairs.add((index, other))
    return pairs


def _conflict(first: NameFeatures, second: NameFeatures) -> bool:
    if first.negated != second.negated:
        return True
    if first.agent and second.agent and first.agent != second.agent:
        return True
    for one, other in ((first, second), (second, first)):
        signs = dict(one.polarity)
        for axis, sign in other.polarity:
            # A bare word is the positive side of its own axis: "hope" against "hopeless".
            own_sign = signs.get(axis, 1 if axis in one.stems else None)
            if own_sign is not None and own_sign != sign:
                return True
    return False


def _similarity(
    first: NameFeatures, second: NameFeatures, weights: dict[str, float], stem_similarity: dict[str, dict[str, float]]
) -> float:
    if not first.stems or not second.stems:
        return 0.0
    candidates = sorted(
        ((stem_similarity[a].get(b, 0.0), a, b) for a in first.stems for b in second.stems if b in stem_similarity[a]),
        reverse=True,
    )
    used_first: set[str] = set()
    used_second: set[str] = set()
    dot = 0.0
    for similarity, a, b in candidates:
        if a in used_first or b in used_second:
            continue
        used_first.add(a)
        used_second.add(b)
        dot += weights[a] * weights[b] * similarity
    norm_first = math.sqrt(sum(weights[s] ** 2 for s in first.stems))
    norm_second = math.sqrt(sum(weights[s] ** 2 for s in second.stems))
    return min(1.0, dot / (norm_first * norm_second))


def _folded(name: str) -> str:
    return " ".join(name.casefold().split())


@dataclass
class _Cluster:
    """A growing group with what is needed to check a merge without revisiting every member pair."""

    members: list[int]
    agents: set[str]
    negated: set[bool]
    signs: dict[str, set[int]]
    bare_stems: set[str]  # stems a member uses without a polarity: the positive side of their axis
    creators: set[str]
    links: dict[int, float]  # other cluster -> sum of member-pair scores across

    @classmethod
    def of(cls, index: int, feature: NameFeatures, creator: str) -> _Cluster:
        polar = dict(feature.polarity)
        return cls(
            members=[index],
            agents={feature.agent} if feature.agent else set(),
            negated={feature.negated},
            signs={axis: {sign} for axis, sign in polar.items()},
            bare_stems=set(feature.stems) - set(polar),
            creators={creator},
            links={},
        )

    def conflicts_with(self, other: _Cluster) -> bool:
        if len(self.agents | other.agents) > 1 or len(self.negated | other.negated) > 1:
            return True
        bare = self.bare_stems | other.bare_stems
        for axis in set(self.signs) | set(other.signs):
            signs = self.signs.get(axis, set()) | other.signs.get(axis, set()) | ({1} if axis in bare else set())
            if len(signs) > 1:
                return True
        return False

    def absorb(self, other: _Cluster) -> None:
        self.members.extend(other.members)
        self.agents |= other.agents
        self.negated |= other.negated
        for axis, signs in other.signs.items():
            self.signs.setdefault(axis, set()).update(signs)
        self.bare_stems |= other.bare_stems
        self.creators |= other.creators


def _cluster(
    count: int,
    scores: dict[tuple[int, int], float],
    features: list[NameFeatures],
    names: Sequence[tuple[Hashable, str, str]],
    threshold: float,
    across_creators_only: bool,
) -> list[list[int]]:
    """Average-linkage agglomeration seeded by the above-threshold pairs, strongest pair first.

    Two clusters join only if no pair across them conflicts (polarity, negation, actor; or a shared
    creator when that is asked for) and their average cross-pair score still reaches the
    threshold, which keeps one loose link from chaining unrelated codes together.
    """
    clusters = {index: _Cluster.of(index, features[index], names[index][2]) for index in range(count)}
    for (first, second), score in scores.items():
        clusters[first].links[second] = score
        clusters[second].links[first] = score
    cluster_of = list(range(count))
    links = sorted((item for item in scores.items() if item[1] >= threshold), key=lambda item: (-item[1], item[0]))
    for (first, second), _ in links:
        left_id, right_id = cluster_of[first], cluster_of[second]
        if left_id == right_id:
            continue
        left, right = clusters[left_id], clusters[right_id]
        if left.conflicts_with(right) or (across_creators_only and left.creators & right.creators):
            continue
        average = left.links.get(right_id, 0.0) / (len(left.members) * len(right.members))
        if average < threshold:
            continue
        left.absorb(right)
        del clusters[right_id]
        left.links.pop(right_id, None)
        for neighbour_id, total in right.links.items():
            if neighbour_id == left_id:
                continue
            left.links[neighbour_id] = left.links.get(neighbour_id, 0.0) + total
            neighbour = clusters[neighbour_id].links
            neighbour[left_id] = neighbour.get(left_id, 0.0) + neighbour.pop(right_id)
        for index in right.members:
            cluster_of[index] = left_id
    return [sorted(cluster.members) for cluster in clusters.values()]


def _group(
    members: list[int], names: Sequence[tuple[Hashable, str, str]], scores: dict[tuple[int, int], float]
) -> MergeGroup:
    pairs = [(a, b) for position, a in enumerate(members) for b in members[position + 1 :]]
    mean = sum(scores.get((a, b), 0.0) for a, b in pairs) / len(pairs)
    return MergeGroup(
        code_ids=tuple(names[index][0] for index in members),
        names=tuple(names[index][1] for index in members),
        score=round(mean, 3),
        creators=tuple(names[index][2] for index in members),
    )

"""Code suggestions learned from one coder's turns: a small local model, and passages like a given one.

Pure functions and classes over plain data (turn texts, speaker roles, code ids); they read no study and
never decide *whose* codings may be learned from: that rule lives in services/assistant.py, which hands
this module only what the person may learn from.

The model, deliberately plain so that it trains in well under a second on a laptop and needs nothing
downloaded:

* Each turn is turned into hashed features (``HashingVectorizer``: no vocabulary to fit or store):
  word unigrams and bigrams, character 2-5-grams inside word boundaries (robust to typos, inflection
  and transcription quirks), and a context block: the speaker role, the previous turn's role, its
  words, and the codes the coder gave it. Word and character blocks get tf-idf weights computed over
  the turns at hand (idf is only a count of which words are common, over text every coder may read).
* One binary logistic regression per code (one-vs-rest), refitted from scratch: with the few thousand
  turns a coder codes by hand, a refit costs tens of milliseconds per code, which is cheaper and more
  predictable than ``partial_fit`` bookkeeping, and a rejected suggestion is learned from at once.
* A code is proposed only for the speaker roles the coder applied it to: a code given only to client
  turns is never proposed for a therapist's.

Confidence is the classifier's probability that the coder would give the code to the turn.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Features per block: 2^18 hashed buckets keep collisions rare for a few thousand turns of dialogue.
WORD_FEATURES = 2**18
CHAR_FEATURES = 2**18
CONTEXT_FEATURES = 2**16
# How much each block weighs once every block is L2-normalised on its own.
BLOCK_WEIGHTS = {"word": 1.0, "char": 1.0, "context": 0.6}
_WORD = re.compile(r"(?u)\b\w+\b")


@dataclass(frozen=True)
class TurnUnit:
    """One speaker turn as the model sees it."""

    text: str
    role: str
    previous_text: str = ""
    previous_role: str = ""
    # The codes the coder gave the previous turn (their ids); empty when it has none or is not coded yet.
    previous_codes: tuple[int, ...] = ()


@dataclass(frozen=True)
class Example:
    """A turn to learn from: the codes the coder gave it. ``only`` limits what it says to some codes:
    a rejected suggestion is an example against that one code, and says nothing about the others."""

    unit: TurnUnit
    codes: frozenset[int]
    only: frozenset[int] | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class Suggestion:
    index: int  # the position of the unit in the list asked about
    code_id: int
    confidence: float


def _context_tokens(unit: TurnUnit) -> list[tuple[str, float]]:
    tokens: list[tuple[str, float]] = [(f"role={unit.role}", 1.0)]
    tokens.append((f"prev_role={unit.previous_role or '-'}", 1.0))
    tokens.append((f"pair={unit.previous_role or '-'}>{unit.role}", 1.0))
    words = _WORD.findall(unit.previous_text.lower())
    if words:
        each = 1.0 / math.sqrt(len(words))
        tokens += [(f"prev_word={word}", each) for word in words]
    for code_id in unit.previous_codes:
        tokens.append((f"prev_code={code_id}", 1.0))
        tokens.append((f"prev_code_role={code_id}>{unit.role}", 1.0))
    return tokens


def _l2_rows(matrix: Any) -> Any:
    from sklearn.preprocessing import normalize

    return normalize(matrix, norm="l2", copy=False)


class TurnVectorizer:
    """Hashed word, character and context features of turns; stateless except for the idf weights."""

    def __init__(self) -> None:
        from sklearn.feature_extraction import FeatureHasher
        from sklearn.feature_extraction.text import HashingVectorizer

        common = {"alternate_sign": False, "norm": None, "lowercase": True, "dtype": np.float32}
        self._words = HashingVectorizer(
            n_features=WORD_FEATURES, ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b", **common
        )
        self._chars = HashingVectorizer(n_features=CHAR_FEATURES, analyzer="char_wb", ngram_range=(2, 5), **common)
        self._context = FeatureHasher(
            n_features=CONTEXT_FEATURES, input_type="pair", alternate_sign=False, dtype=np.float32
        )
        self._idf: dict[str, Any] = {}

    def fit_idf(self, texts: Sequence[str]) -> TurnVectorizer:
        """Learn which words and character grams are common, over ``texts`` (turns anyone may read)."""
        from sklearn.feature_extraction.text import TfidfTransformer

        for name, hasher in (("word", self._words), ("char", self._chars)):
            self._idf[name] = TfidfTransformer(sublinear_tf=True, norm=None).fit(hasher.transform(texts))
        return self

    def _block(self, name: str, texts: Sequence[str]) -> Any:
        hasher = self._words if name == "word" else self._chars
        raw = hasher.transform(texts)
        if name in self._idf:
            raw = self._idf[name].transform(raw)
        return _l2_rows(raw)

    def text_vectors(self, texts: Sequence[str]) -> Any:
        """Word and character blocks only, rows of unit length: for cosine similarity between passages."""
        from scipy.sparse import hstack

        blocks = [self._block(name, texts) * BLOCK_WEIGHTS[name] for name in ("word", "char")]
        return _l2_rows(hstack(blocks, format="csr"))

    def features(self, units: Sequence[TurnUnit]) -> Any:
        from scipy.sparse import hstack

        texts = [unit.text for unit in units]
        blocks = [self._block(name, texts) * BLOCK_WEIGHTS[name] for name in ("word", "char")]
        context = _l2_rows(self._context.transform(_context_tokens(unit) for unit in units))
        blocks.append(context * BLOCK_WEIGHTS["context"])
        return hstack(blocks, format="csr")


@dataclass
class CodeModel:
    code_id: int
    positives: int
    roles: frozenset[str]
    estimator: Any = None
    # A code the coder gave every turn it was learned from (or none): nothing to tell apart.
    constant: float | None = None


@dataclass
class SuggestionModel:
    """One classifier per code with enough examples; fitted with ``train``."""

    vectorizer: TurnVectorizer
    codes: dict[int, CodeModel] = field(default_factory=dict)
    examples: int = 0
    # The hashed columns the training turns used: the classifiers see only these (a few ten thousand of
    # the 590,000 buckets), which makes fitting them about twenty times cheaper.
    columns: Any = None

    @property
    def code_ids(self) -> list[int]:
        return sorted(self.codes)

    def probabilities(self, units: Sequence[TurnUnit]) -> np.ndarray:
        """(units x codes, in ``code_ids`` order): the chance the coder would give each code to each turn.
        A code is 0 for speaker roles the coder never gave it to."""
        ids = self.code_ids
        result = np.zeros((len(units), len(ids)), dtype=np.float64)
        if not units or not ids:
            return result
        matrix = self.vectorizer.features(units)[:, self.columns]
        roles = np.array([unit.role for unit in units], dtype=object)
        for column, code_id in enumerate(ids):
            model = self.codes[code_id]
            if model.constant is not None:
                result[:, column] = model.constant
            else:
                result[:, column] = model.estimator.predict_proba(matrix)[:, 1]
            result[~np.isin(roles, list(model.roles)), column] = 0.0
        return result

    def suggest(
        self,
        units: Sequence[TurnUnit],
        *,
        threshold: float = 0.5,
        per_turn: int = 2,
        skip: Iterable[tuple[int, int]] = (),
        previous_from_suggestions: bool = True,
    ) -> list[Suggestion]:
        """Codes at or above ``threshold``, at most ``per_turn`` per turn, best first; ``skip``: (index, code)
        pairs never to propose (already coded, or rejected).

        With ``previous_from_suggestions``, a turn whose previous turn has no codes yet is scored a second
        time as if that turn had its best suggestion: in an uncoded transcript the context the model
        learned from (the previous turn's codes) is otherwise always missing."""
        probabilities = self.probabilities(units)
        ids = self.code_ids
        if previous_from_suggestions and ids and len(units) > 1:
            guessed = [
                (ids[int(np.argmax(row))],) if row.size and row.max() >= threshold else () for row in probabilities
            ]
            refilled = [
                unit
                if unit.previous_codes or index == 0 or not guessed[index - 1]
                else TurnUnit(unit.text, unit.role, unit.previous_text, unit.previous_role, guessed[index - 1])
                for index, unit in enumerate(units)
            ]
            changed = [index for index, unit in enumerate(refilled) if unit is not units[index]]
            if changed:
                probabilities[changed] = self.probabilities([refilled[index] for index in changed])
        skipped = set(skip)
        found: list[Suggestion] = []
        for index, row in enumerate(probabilities):
            order = np.argsort(-row, kind="stable")
            taken = 0
            for column in order:
                if taken >= per_turn or row[column] < threshold:
                    break
                code_id = ids[int(column)]
                if (index, code_id) in skipped:
                    continue
                found.append(Suggestion(index, code_id, float(row[column])))
                taken += 1
        return found

    def best(self, units: Sequence[TurnUnit]) -> list[int | None]:
        """The single most likely code of each turn (None when no code can apply to its speaker)."""
        probabilities = self.probabilities(units)
        ids = self.code_ids
        return [ids[int(np.argmax(row))] if row.size and row.max() > 0 else None for row in probabilities]


def train(
    examples: Sequence[Example],
    *,
    min_examples: int = 10,
    idf_texts: Sequence[str] | None = None,
    regularisation: float = 16.0,
) -> SuggestionModel:
    """Fit one classifier per code the examples give to at least ``min_examples`` turns.

    ``idf_texts``: the texts to weigh words over (default: the examples' own turns)."""
    from sklearn.linear_model import LogisticRegression

    vectorizer = TurnVectorizer()
    full = [example for example in examples if example.only is None]
    vectorizer.fit_idf(list(idf_texts) if idf_texts else [example.unit.text for example in examples] or [""])
    model = SuggestionModel(vectorizer, examples=len(examples))
    counts: dict[int, int] = {}
    roles: dict[int, set[str]] = {}
    for example in full:
        for code_id in example.codes:
            counts[code_id] = counts.get(code_id, 0) + 1
            roles.setdefault(code_id, set()).add(example.unit.role)
    trainable = sorted(code_id for code_id, count in counts.items() if count >= min_examples)
    if not trainable:
        return model
    matrix = vectorizer.features([example.unit for example in examples])
    model.columns = np.unique(matrix.indices)
    matrix = matrix[:, model.columns]
    weights = np.array([example.weight for example in examples], dtype=np.float64)
    for code_id in trainable:
        rows = [i for i, example in enumerate(examples) if example.only is None or code_id in example.only]
        # Only turns of the speakers the code was given to teach it: the rest never get it proposed anyway.
        rows = [i for i in rows if examples[i].unit.role in roles[code_id]]
        labels = np.array([code_id in examples[i].codes for i in rows], dtype=np.int8)
        code_model = CodeModel(code_id, counts[code_id], frozenset(roles[code_id]))
        if labels.min() == labels.max():
            code_model.constant = float(labels[0])
        else:
            estimator = LogisticRegression(C=regularisation, solver="liblinear", max_iter=200, random_state=0)
            estimator.fit(matrix[rows], labels, sample_weight=weights[rows])
            code_model.estimator = estimator
        model.codes[code_id] = code_model
    return model


@dataclass(frozen=True)
class Similar:
    index: int
    score: float


def most_similar(
    vectorizer: TurnVectorizer,
    query: str,
    passages: Sequence[str],
    *,
    limit: int = 20,
    exclude: Iterable[int] = (),
    minimum: float = 0.05,
) -> list[Similar]:
    """The passages closest to ``query`` by cosine over word and character n-grams, best first."""
    if not passages or not query.strip():
        return []
    matrix = vectorizer.text_vectors(passages)
    target = vectorizer.text_vectors([query])
    scores = np.asarray((matrix @ target.T).todense()).ravel()
    for index in exclude:
        if 0 <= index < len(scores):
            scores[index] = -1.0
    order = np.argsort(-scores, kind="stable")[:limit]
    return [Similar(int(i), float(scores[i])) for i in order if scores[i] >= minimum]


def keyword_window(query: str, passage: str, width: int = 36) -> tuple[str, str, str]:
    """A keyword-in-context line for a similar passage: (left, the shared word, right).

    The keyword is the longest word the passage shares with the query (long words carry the meaning);
    without one, the passage's start."""
    flat = " ".join(passage.split())
    wanted = {word.lower() for word in _WORD.findall(query) if len(word) > 3}
    matches = [m for m in _WORD.finditer(flat) if m.group(0).lower() in wanted]
    if not matches:
        return "", "", flat[: 2 * width] + ("…" if len(flat) > 2 * width else "")
    match = max(matches, key=lambda m: (len(m.group(0)), -m.start()))
    left = flat[: match.start()]
    right = flat[match.end() :]
    if len(left) > width:
        left = "…" + left[-(width - 1) :]
    if len(right) > width:
        right = right[: width - 1] + "…"
    return left, match.group(0), right


def units_of(turns: Sequence[tuple[str, str]], codes: Sequence[Iterable[int]] | None = None) -> list[TurnUnit]:
    """Units of one transcript's turns in order: (text, role) each, with the codes of each turn when known."""
    units: list[TurnUnit] = []
    previous_text, previous_role = "", ""
    previous_codes: tuple[int, ...] = ()
    for position, (text, role) in enumerate(turns):
        units.append(TurnUnit(text, role, previous_text, previous_role, previous_codes))
        previous_text, previous_role = text, role
        previous_codes = tuple(sorted(codes[position])) if codes is not None else ()
    return units


def examples_of(units: Sequence[TurnUnit], codes: Sequence[Iterable[Hashable]]) -> list[Example]:
    return [Example(unit, frozenset(int(c) for c in given)) for unit, given in zip(units, codes)]  # type: ignore[call-overload]

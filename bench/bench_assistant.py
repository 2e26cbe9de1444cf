"""Learning curves of the coding assistant on real conversations, and its speed.

The MIBot conversations (../shared/data/mibot/, see tests/mibot.py) carry one machine MISC label per
utterance (counsellor R, Q, Other, MICO, MIIN; client C, N, S). They stand in for a coder who codes every
turn with an utterance-level behaviour codebook: the assistant is trained on that "coder's" first N
conversations (N = 5, 10, 20, 40, in participant order) and scored on the last 40, which it never sees.
Each held-out utterance gets the assistant's most likely code (its best suggestion, with the previous
turn's context filled in from the suggestions as in an uncoded transcript); Cohen's kappa and macro-F1
compare them with the labels. The suggestion threshold the workbench uses (0.5) is reported too: the share
of turns that get a suggestion and how often it is right.

The regularisation and block weights of analysis/suggest.py were chosen on conversations 41-66 (neither
training nor test here). Times are CPU seconds of this process (the machine is shared), best of 3:
training on N conversations, and suggesting for a 200-turn transcript (held-out utterances joined).

    python -m bench.bench_assistant            (prints, and writes its section of bench/RESULTS.md)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import best_of, write_section  # noqa: E402
from tests.mibot import SPEAKER_ROLES, mibot_missing_reason, mibot_transcripts_dir  # noqa: E402

SIZES = (5, 10, 20, 40)
HELD_OUT = 40
HEADING = "## Coding assistant: learning curves on MIBot (bench/bench_assistant.py)"


def conversations() -> tuple[list[tuple[list[tuple[str, str]], list[str]]], list[str]]:
    """[(turns as (text, role), labels)], in participant order; and the label set."""
    found = []
    for path in sorted(mibot_transcripts_dir().glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        turns = [(u["text"], SPEAKER_ROLES[u["speaker"]]) for u in data["utterances"]]
        found.append((turns, [u["auto_misc_label"] for u in data["utterances"]]))
    labels = sorted({label for _, given in found for label in given})
    return found, labels


def run() -> str:
    from sklearn.metrics import cohen_kappa_score, f1_score

    from concord.analysis.suggest import Example, train, units_of

    data, labels = conversations()
    ids = {label: number for number, label in enumerate(labels)}
    test = data[-HELD_OUT:]
    lines = [
        HEADING,
        "",
        f"Command: `python -m bench.bench_assistant` ({len(data)} conversations; trained on the first N, scored on"
        f" the last {HELD_OUT}: {sum(len(t) for t, _ in test)} utterances, {len(labels)} codes:"
        f" {', '.join(labels)}).",
        "",
        "| N trained | turns | kappa | macro-F1 | suggested at 0.5 | right when suggested | train (CPU s) |"
        " suggest 200 turns (CPU s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    long_turns = [turn for turns, _ in test for turn in turns][:200]
    for size in SIZES:
        examples = []
        for turns, given in data[:size]:
            codes = [{ids[label]} for label in given]
            examples += [Example(unit, frozenset(c)) for unit, c in zip(units_of(turns, codes), codes)]
        train_time, model = best_of(3, lambda examples=examples: train(examples), clock=time.process_time)
        gold, best, suggested, right = [], [], 0, 0
        for turns, given in test:
            units = units_of(turns)
            top = {s.index: s for s in model.suggest(units, threshold=0.0, per_turn=1)}
            for index, label in enumerate(given):
                guess = top.get(index)
                gold.append(ids[label])
                best.append(guess.code_id if guess else -1)
                if guess and guess.confidence >= 0.5:
                    suggested += 1
                    right += guess.code_id == ids[label]
        kappa = cohen_kappa_score(gold, best)
        f1 = f1_score(gold, best, average="macro", labels=list(range(len(labels))))
        units = units_of(long_turns)
        suggest_time, _ = best_of(3, lambda units=units, model=model: model.suggest(units), clock=time.process_time)
        lines.append(
            f"| {size} | {len(examples)} | {kappa:.3f} | {f1:.3f} | {suggested / len(gold):.0%} |"
            f" {right / max(suggested, 1):.0%} | {train_time:.2f} | {suggest_time:.3f} |"
        )
        print(lines[-1], flush=True)
    lines += [
        "",
        "Target: kappa >= 0.6 after 20 coded conversations (two trained human coders reach about 0.74 on such"
        " codebooks). The labels are a machine's (MIBot's own MISC labeller), not a person's: the curve says how"
        " well the assistant picks up a consistent coder's rules, not how right those rules are. In the"
        " workbench a suggestion is shown only at 0.5 or more, so a coder sees fewer, surer suggestions than the"
        " kappa column scores.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    reason = mibot_missing_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    text = run()
    print(text)
    write_section(HEADING, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

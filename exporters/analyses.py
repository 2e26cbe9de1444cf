"""Files for the analyses: co-occurrence tables and heatmap, query hits as an excerpt report, the
themes-against-scores report and the memo report.

The reports are a list of blocks (headings, paragraphs, tables, figures, quotations) written to
.docx, .md or .html by one function, ``write_document``; Markdown and HTML get their figures as
PNG files beside them (FILE.figure-N.png). What the blocks say comes from records the services
hand over; nothing here reads a study.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from concord.exporters.excerpts import Excerpt, Fragment, Line, Report, Section, attribution, md_escape
from concord.exporters.records import CodeNode
from concord.exporters.writers import (
    TableSpec,
    add_caption,
    add_note,
    add_table,
    atomic_write,
    cell_text,
    new_document,
)

DOCUMENT_FORMATS = (".docx", ".md", ".html")
EXPLORATORY = (
    "Exploratory: the themes were not chosen to test these links; p-values are corrected across themes "
    "({method}) and are a guide to what to look at, not findings."
)


@dataclass(frozen=True)
class Block:
    kind: str  # heading | paragraph | note | table | figure | quote
    text: str = ""
    level: int = 1
    frame: pd.DataFrame | None = None
    png: bytes | None = None


# -- writing a document ------------------------------------------------------------------------------


def write_document(blocks: Sequence[Block], path: str | Path, *, title: str) -> list[Path]:
    """Write ``blocks`` under ``title`` as the extension of ``path`` says; returns the files written."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in DOCUMENT_FORMATS:
        from concord.storage.errors import ConcordError

        raise ConcordError(f"{path}: a report is written as {', '.join(DOCUMENT_FORMATS)}")
    if suffix == ".docx":
        return [atomic_write(path, lambda part: _docx(blocks, title, part))]
    figures = [b for b in blocks if b.kind == "figure"]
    names = {id(b): path.with_name(f"{path.stem}.figure-{i}.png") for i, b in enumerate(figures, 1)}
    written = [atomic_write(path, lambda part: part.write_text(_text(blocks, title, suffix, names), encoding="utf-8"))]
    for block in figures:
        written.append(atomic_write(names[id(block)], _bytes_writer(block.png or b"")))
    return written


def _bytes_writer(data: bytes) -> Callable[[Path], int]:
    return lambda part: part.write_bytes(data)


def _docx(blocks: Sequence[Block], title: str, part: Path) -> None:
    from docx.shared import Cm

    document = new_document()
    document.add_paragraph(title, style="Title")
    tables = figures = 0
    for block in blocks:
        if block.kind == "heading":
            document.add_paragraph(block.text, style=f"Heading {min(block.level, 4)}")
        elif block.kind == "paragraph":
            document.add_paragraph(block.text)
        elif block.kind == "quote":
            document.add_paragraph(block.text, style="Quote")
        elif block.kind == "note":
            add_note(document, block.text)
        elif block.kind == "table":
            tables += 1
            add_caption(document, tables, block.text)
            add_table(document, block.frame if block.frame is not None else pd.DataFrame())
        elif block.kind == "figure":
            figures += 1
            add_caption(document, figures, block.text, kind="Figure")
            document.add_picture(io.BytesIO(block.png or b""), width=Cm(14))
    document.save(str(part))


def _text(blocks: Sequence[Block], title: str, suffix: str, figure_names: dict[int, Path]) -> str:
    markdown = suffix == ".md"
    e = html.escape
    out = (
        [f"# {md_escape(title)}", ""]
        if markdown
        else [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{e(title)}</title>",
            "<style>body{font-family:Georgia,serif;max-width:60rem;margin:2rem auto;line-height:1.45}"
            "table{border-collapse:collapse;font-size:0.85em}th,td{padding:2px 8px;text-align:center}"
            "th{border-bottom:1px solid black}table{border-top:1px solid black;border-bottom:1px solid black}"
            "td:first-child,th:first-child{text-align:left}.note{font-size:0.85em}</style></head><body>",
            f"<h1>{e(title)}</h1>",
        ]
    )
    tables = figures = 0
    for block in blocks:
        if block.kind == "heading":
            level = min(block.level + 1, 6)
            out += (
                [f"{'#' * level} {md_escape(block.text)}", ""]
                if markdown
                else [f"<h{level}>{e(block.text)}</h{level}>"]
            )
        elif block.kind in ("paragraph", "note", "quote"):
            lead = "*Note.* " if block.kind == "note" else ""
            if markdown:
                prefix = "> " if block.kind == "quote" else ""
                out += [prefix + lead + md_escape(block.text), ""]
            elif block.kind == "quote":
                out.append(f"<blockquote><p>{e(block.text)}</p></blockquote>")
            else:
                css = ' class="note"' if block.kind == "note" else ""
                out.append(f"<p{css}>{'<i>Note.</i> ' if lead else ''}{e(block.text)}</p>")
        elif block.kind == "table":
            tables += 1
            caption = f"Table {tables}. {block.text}"
            frame = block.frame if block.frame is not None else pd.DataFrame()
            out += _md_table(frame, caption) if markdown else _html_table(frame, caption)
        elif block.kind == "figure":
            figures += 1
            name = figure_names[id(block)].name
            if markdown:
                out += [
                    f"**Figure {figures}.** *{md_escape(block.text)}*",
                    "",
                    f"![{md_escape(block.text)}]({name})",
                    "",
                ]
            else:
                out.append(
                    f"<figure><figcaption><b>Figure {figures}.</b> <i>{e(block.text)}</i></figcaption>"
                    f'<img src="{e(name)}" alt="{e(block.text)}" width="640"></figure>'
                )
    if not markdown:
        out.append("</body></html>")
    return "\n".join(out) + "\n"


def _md_table(frame: pd.DataFrame, caption: str) -> list[str]:
    cells = [
        [md_escape(cell_text(v)) for v in row] for row in frame.astype(object).where(frame.notna(), None).to_numpy()
    ]
    lines = [f"**{md_escape(caption)}**", "", "| " + " | ".join(md_escape(str(c)) for c in frame.columns) + " |"]
    lines.append("|" + "|".join(":--" if i == 0 else ":-:" for i in range(len(frame.columns))) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return lines + [""]


def _html_table(frame: pd.DataFrame, caption: str) -> list[str]:
    e = html.escape
    rows = frame.astype(object).where(frame.notna(), None).to_numpy()
    out = [f"<table><caption>{e(caption)}</caption><thead><tr>"]
    out.append("".join(f"<th>{e(str(c))}</th>" for c in frame.columns) + "</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{e(cell_text(v))}</td>" for v in row) + "</tr>")
    out.append("</tbody></table>")
    return out


# -- co-occurrence -----------------------------------------------------------------------------------


def _matrix(tables, values: np.ndarray, integer: bool) -> pd.DataFrame:
    labels = [tables.labels[n.id] for n in tables.codes]
    frame = pd.DataFrame(values, columns=labels)
    if not integer:
        frame = frame.round(4)
    frame.insert(0, "code", labels)
    return frame


def cooccurrence_specs(tables, rows: list[dict]) -> list[TableSpec]:
    """The long list (every pair, primary) and, per group, the matrices."""
    unit = {"turn": "the same turn", "overlap": "overlapping spans"}.get(
        str(tables.within), f"within {tables.within} turns"
    )
    notes = list(tables.notes)
    pairs = pd.DataFrame(rows)
    what = "B following A" if tables.directed else "co-occurrence"
    specs = [TableSpec("pairs", f"Pairs of codes: {what}, unit {unit}", pairs, notes=notes, primary=True)]
    for group in tables.groups:
        suffix = f" ({group.name})" if tables.by else ""
        tag = f" {group.name}" if tables.by else ""
        result = group.result
        if tables.directed:
            specs.append(
                TableSpec(
                    f"followed{tag}",
                    f"Codings of the row code followed by the column code within {tables.within} turns{suffix}",
                    _matrix(tables, result.counts, True),
                )
            )
            specs.append(
                TableSpec(
                    f"share{tag}",
                    f"Share of the row code's codings followed by the column code{suffix}",
                    _matrix(tables, result.share, False),
                )
            )
        else:
            specs.append(
                TableSpec(
                    f"counts{tag}",
                    f"Co-occurrences, {unit} (diagonal: codings){suffix}",
                    _matrix(tables, result.counts, True),
                )
            )
            specs.append(TableSpec(f"c{tag}", f"c-coefficient, {unit}{suffix}", _matrix(tables, result.c, False)))
            specs.append(TableSpec(f"jaccard{tag}", f"Jaccard, {unit}{suffix}", _matrix(tables, result.jaccard, False)))
    return specs


def heatmap_png(tables, dpi: int = 150) -> bytes:
    """The first group's c-coefficient (or, directed, the share followed), counts written in the cells."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    group = tables.groups[0]
    values = group.result.share if tables.directed else group.result.c
    labels = [tables.labels[n.id] for n in tables.codes]
    size = max(3.5, 0.38 * len(labels) + 2.5)
    figure = Figure(figsize=(size + 1, size), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    shown = np.where(np.isfinite(values), values, np.nan) if len(labels) else np.zeros((1, 1))
    image = axes.imshow(
        shown, cmap="Greys", vmin=0, vmax=max(1.0, float(np.nanmax(shown))) if np.isfinite(shown).any() else 1.0
    )
    axes.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    axes.set_yticks(range(len(labels)), labels, fontsize=7)
    if len(labels) <= 25:
        counts = group.result.counts
        for i in range(len(labels)):
            for j in range(len(labels)):
                if counts[i, j] and (tables.directed or i != j):
                    dark = np.isfinite(shown[i, j]) and shown[i, j] > 0.5
                    axes.text(
                        j,
                        i,
                        str(counts[i, j]),
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if dark else "black",
                    )
    figure.colorbar(image, ax=axes, fraction=0.04, label="share followed" if tables.directed else "c-coefficient")
    name = f" ({group.name})" if tables.by else ""
    axes.set_title(("B after A" if tables.directed else "Co-occurrence") + f", unit {tables.within}{name}", fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


# -- query hits as an excerpt report -------------------------------------------------------------------


def query_report(result, turn_rows: pd.DataFrame, *, context: int, groups: dict[int, str], group_label: str) -> Report:
    """The hits of a query as the excerpt report's one section: each hit with ``context`` turns around it
    (``turn_rows``: the turns of the transcripts with hits, with their text), the hit's words in bold."""
    hits = result.hits
    units = {int(r["transcript_id"]): r for r in result.data.units.to_dict(orient="records")}
    ordered: dict[int, list[Any]] = {}
    place: dict[int, tuple[int, int]] = {}
    row: Any
    if len(hits):
        for row in turn_rows.itertuples(index=False):
            rows = ordered.setdefault(int(row.transcript_id), [])
            place[int(row.turn_id)] = (int(row.transcript_id), len(rows))
            rows.append(row)
    excerpts = []
    hit: Any
    for hit in hits.itertuples(index=False):
        tid, index = place[int(hit.turn_id)]
        rows = ordered[tid]
        lines = []
        for position in range(max(0, index - context), min(len(rows), index + context + 1)):
            turn = rows[position]
            text = turn.text or ""
            if position == index:
                a, b = int(hit.start) - int(turn.char_start), int(hit.end) - int(turn.char_start)
                pieces = (Fragment(text[:a]), Fragment(text[a:b], bold=True), Fragment(text[b:]))
                lines.append(Line(turn.speaker_label, tuple(p for p in pieces if p.text)))
            else:
                lines.append(Line(turn.speaker_label, (Fragment(text),), context=True))
        plain = {
            k: (None if v is pd.NA or (isinstance(v, float) and math.isnan(v)) else v) for k, v in units[tid].items()
        }
        excerpts.append(Excerpt(str(hit.transcript), tuple(lines), attribution(plain, groups.get(tid), group_label)))
    node = CodeNode(
        id=0,
        codebook="query",
        parent_id=None,
        name=result.query,
        label=f"Query: {result.query}",
        path=(result.query,),
        depth=0,
        definition=None,
        pole=None,
        high_pole=None,
    )
    n_transcripts = hits["transcript_id"].nunique() if len(hits) else 0
    unit_noun = {"turn": "turns", "overlap": "stretches of text"}.get(
        str(result.within), f"turns (codes within {result.within} turns)"
    )
    count_line = f"{len(hits)} hit{'s' if len(hits) != 1 else ''} ({unit_noun}) in {n_transcripts} of {result.searched} transcripts searched."
    layer = "consensus codings" if result.data.layer == "consensus" else f"the codings of {result.data.layer}"
    lead = " ".join(result.notes) + f" Hits of the query {result.query} in {layer}; the words of each hit are in bold"
    lead += f", with {context} turn{'s' if context != 1 else ''} of context." if context else "."
    notes = ("The study is blind for you: groups, dyads and scores are left out.",) if result.data.blind else ()
    return Report(
        title=result.data.title,
        lead=lead.strip(),
        sections=(Section(node, count_line, None, (), tuple(excerpts)),),
        prevalence=None,
        excerpt_count=len(excerpts),
        context=context,
        notes=notes,
    )


# -- themes against scores ------------------------------------------------------------------------------


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def _p(value) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return "< .001" if value < 0.001 else f"{value:.3f}".lstrip("0")


def _with_ci(row, stem: str) -> str:
    if not math.isfinite(row[stem]):
        return "-"
    return f"{_fmt(row[stem])} [{_fmt(row[stem + ' CI low'])}, {_fmt(row[stem + ' CI high'])}]"


def scores_link_summary(link) -> pd.DataFrame:
    rows = []
    for _, row in link.results.iterrows():
        rows.append(
            {
                "theme": row["theme"],
                "sessions (patients)": f"{row['sessions']} ({row['patients']})",
                "with theme": int(row["sessions with theme"]),
                "r [95% CI]": _with_ci(row, "r"),
                "r within": _with_ci(row, "r within"),
                "r between": _with_ci(row, "r between"),
                "LMM within b (SE)": f"{_fmt(row['LMM within b'], 3)} ({_fmt(row['LMM within SE'], 3)})",
                "p": _p(row["LMM within p"]),
                "p adj.": _p(row["LMM within p adjusted"]),
                "GEE within OR": _fmt(
                    math.exp(row["GEE within b"]) if math.isfinite(row["GEE within b"]) else math.nan
                ),
                "GEE p adj.": _p(row["GEE within p adjusted"]),
            }
        )
    return pd.DataFrame(rows)


def scores_link_specs(link) -> list[TableSpec]:
    from concord.analysis.scores_link import CORRECTIONS

    notes = [*link.notes, EXPLORATORY.format(method=CORRECTIONS[link.correction])]
    results = link.results.copy()
    return [
        TableSpec("themes", f"Themes and {link.score_name}", results, notes=notes, primary=True),
        TableSpec("sessions", f"Sessions: theme rates per {_per(link)} and {link.score_name}", link.sessions),
    ]


def _per(link) -> str:
    return "100 turns" if link.per == "turns" else "1,000 words"


def theme_plot(link, theme: str, row, dpi: int = 130) -> bytes:
    """Rate against score, one shade per patient; with the mixed model's within-patient slope drawn
    through each patient's mean."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    frame = link.sessions.dropna(subset=["score"])
    figure = Figure(figsize=(5.2, 3.6), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    patients = sorted(frame["patient"].unique(), key=str)
    shades = [str(0.1 + 0.7 * i / max(1, len(patients) - 1)) for i in range(len(patients))]
    slope = row["LMM within b"]
    for patient, shade in zip(patients, shades):
        part = frame[frame["patient"] == patient]
        axes.scatter(part["score"], part[f"{theme}: rate"], s=16, color=shade, edgecolor="black", linewidth=0.3)
        if math.isfinite(slope) and len(part) > 1:
            x0, y0 = part["score"].mean(), part[f"{theme}: rate"].mean()
            xs = np.array([part["score"].min(), part["score"].max()])
            axes.plot(xs, y0 + slope * (xs - x0), color=shade, linewidth=0.8)
    axes.set_xlabel(link.score_name)
    axes.set_ylabel(f"codings per {_per(link)}")
    axes.set_title(theme, fontsize=9)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def scores_link_blocks(link) -> list[Block]:
    from concord.analysis.scores_link import CORRECTIONS

    method = CORRECTIONS[link.correction]
    layer = "the consensus layer" if link.data.layer == "consensus" else f"the codings of {link.data.layer}"
    blocks = [
        Block("paragraph", " ".join(link.notes)),
        Block(
            "paragraph",
            f"Per session, each {link.level}'s rate (codings per {_per(link)} of the covered session transcripts) and "
            f"presence, from {layer}, against {link.score_name}. Sessions are nested in patients: the score is split "
            "into the patient's mean (between) and the session's deviation from it (within). The mixed model (rate) "
            "and the GEE logistic model (presence) take both, with patients as clusters; the within coefficient is "
            "the association inside patients.",
        ),
        Block("paragraph", EXPLORATORY.format(method=method)),
        Block("table", f"Themes and {link.score_name} (exploratory)", frame=scores_link_summary(link)),
        Block(
            "note",
            "r: Pearson over sessions, 95% CI by Fisher's z; r within: over deviations from each patient's mean; "
            "r between: over patients' means. LMM: linear mixed model, random intercept per patient, REML. GEE: "
            f"logistic, exchangeable working correlation; OR per unit of the score within a patient. p adj.: {method}.",
        ),
    ]
    for _, row in link.results.iterrows():
        theme = row["theme"]
        blocks.append(Block("heading", theme, level=2))
        detail = pd.DataFrame(
            [
                ("r (pooled)", _with_ci(row, "r"), _p(row["r p"])),
                ("r within patients", _with_ci(row, "r within"), ""),
                (f"r between patients (n = {row['r between patients']})", _with_ci(row, "r between"), ""),
                ("r presence (point-biserial)", _with_ci(row, "r presence"), ""),
                ("LMM within b [95% CI]", _coef(row, "LMM within"), _p(row["LMM within p"])),
                ("LMM between b [95% CI]", _coef(row, "LMM between"), _p(row["LMM between p"])),
                ("GEE within log OR [95% CI]", _coef(row, "GEE within"), _p(row["GEE within p"])),
                ("GEE between log OR [95% CI]", _coef(row, "GEE between"), _p(row["GEE between p"])),
            ],
            columns=["statistic", "estimate", "p"],
        )
        blocks.append(Block("table", f"{theme} and {link.score_name}", frame=detail))
        if row["notes"]:
            blocks.append(Block("note", str(row["notes"])))
        blocks.append(
            Block("figure", f"{theme}: rate per session against {link.score_name}", png=theme_plot(link, theme, row))
        )
    return blocks


def _coef(row, stem: str) -> str:
    if not math.isfinite(row[f"{stem} b"]):
        return "-"
    return f"{_fmt(row[f'{stem} b'], 3)} [{_fmt(row[f'{stem} CI low'], 3)}, {_fmt(row[f'{stem} CI high'], 3)}]"


# -- memos -----------------------------------------------------------------------------------------------


def memo_blocks(entries: Sequence, *, by: str, blind: bool, actor: str) -> list[Block]:
    """Every memo under a heading for its code, transcript or coder; each says what it is about."""
    key: Callable = {
        "code": lambda m: m.code or "(not about a code)",
        "transcript": lambda m: m.transcript or "(not about a transcript)",
        "coder": lambda m: m.coder,
    }[by]
    from concord.exporters.frequencies import natural_key

    blocks = [
        Block(
            "paragraph",
            f"{len(entries)} memo{'s' if len(entries) != 1 else ''}, by {by}"
            + (f"; the study is blind for {actor}: only their own memos." if blind else "."),
        )
    ]
    grouped: dict[str, list] = {}
    for entry in entries:
        grouped.setdefault(key(entry), []).append(entry)
    for heading in sorted(grouped, key=lambda k: (k.startswith("("), natural_key(k))):
        blocks.append(Block("heading", heading, level=1))
        for entry in sorted(grouped[heading], key=lambda m: (natural_key(m.transcript or ""), m.turn or 0, m.coder)):
            where = []
            if entry.code and by != "code":
                where.append(f"code {entry.code}")
            if entry.transcript and by != "transcript":
                where.append(f"transcript {entry.transcript}")
            if entry.turn is not None:
                where.append(f"turn {entry.turn}")
            if by != "coder":
                where.append(f"by {entry.coder}")
            if entry.written is not None:
                where.append(entry.written.strftime("%Y-%m-%d"))
            about = {"coding note": "note on a coding"}.get(entry.about, f"memo on the {entry.about}")
            blocks.append(Block("paragraph", f"{about.capitalize()} ({', '.join(where)}): {entry.text}"))
            if entry.quote:
                blocks.append(Block("quote", entry.quote))
    return blocks

"""The excerpt report: per theme -> sub-theme -> code, its definition, how often it was coded,
and the coded excerpts with their context, attributed in the field's style; plus a chart of
theme prevalence by group. Written as .docx, .md or .html.

Built from the plain records of ``exporters.records.ResultsData`` (gathered with turn text).
Under each heading come the excerpts coded with that very code; the count line of a theme
or sub-theme includes the codes below it. Attribution:

* IPR interviews: "(client, dyad 12, session 5)": the interview's perspective, dyad and session.
* Session transcripts: "(Session E, high alliance)": the transcript key as the session's name,
  then the group (``group_label`` filled with the group value), which is there only when the
  reader may see it (a supervisor, or anyone after unblinding).

Transcript text is the users' text: it is escaped for HTML and Markdown.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

import numpy as np
import pandas as pd

from concord.exporters.frequencies import attribute_columns, code_counts, coding_turns, natural_key
from concord.exporters.records import CodeNode, ResultsData
from concord.exporters.writers import add_caption, atomic_write, format_of, new_document

REPORT_FORMATS = (".docx", ".md", ".html")
CONTEXT_GREY = (0x6B, 0x6B, 0x6B)


@dataclass(frozen=True)
class Fragment:
    text: str
    bold: bool = False


@dataclass(frozen=True)
class Line:
    speaker: str
    fragments: tuple[Fragment, ...]
    context: bool = False


@dataclass(frozen=True)
class Excerpt:
    transcript: str
    lines: tuple[Line, ...]
    attribution: str
    memos: tuple[str, ...] = ()


@dataclass(frozen=True)
class Section:
    node: CodeNode
    count_line: str | None
    definition: str | None
    memos: tuple[str, ...]
    excerpts: tuple[Excerpt, ...]


@dataclass(frozen=True)
class Prevalence:
    """Per theme and group: the share of units with the theme (0-100), and the group sizes."""

    themes: list[str]
    groups: list[str]
    percent: np.ndarray  # themes x groups
    sizes: list[int]  # counted units per group (the covered ones, unless uncoded ones were asked for)
    unit: str
    item: str = "theme"
    in_group: list[int] | None = None  # every unit of each group, counted or not

    def legend(self, index: int) -> str:
        label = f"{self.groups[index]} (n = {self.sizes[index]}"
        if self.in_group is not None and self.in_group[index] != self.sizes[index]:
            label += f" covered / {self.in_group[index]}"
        return label + ")"


@dataclass(frozen=True)
class Report:
    title: str
    lead: str
    sections: tuple[Section, ...]
    prevalence: Prevalence | None
    excerpt_count: int
    context: int
    notes: tuple[str, ...] = field(default=())


def unit_noun(kinds: set[str]) -> str:
    if kinds == {"session"}:
        return "sessions"
    if kinds == {"ipr"}:
        return "interviews"
    return "transcripts"


def attribution(row: dict, group: str | None, group_label: str) -> str:
    """ "client, dyad 12, session 5" for an IPR interview; "Session E, high alliance" for a session."""
    if row["kind"] == "ipr":
        parts = [row["perspective"] or "interview"]
        if row["dyad"] is not None:
            parts.append(f"dyad {row['dyad']}")
            if row["session"] is not None:
                parts.append(f"session {row['session']}")
        else:
            parts.append(f"interview {row['transcript']}")
        return ", ".join(parts)
    text = f"Session {row['transcript']}"
    if group is not None:
        text += ", " + group_label.format(value=group)
    return text


def _plain(value):
    return None if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA else value


def build_report(
    data: ResultsData,
    *,
    context: int = 0,
    group_attribute: str = "group",
    group_label: str = "{value} alliance",
    memos: bool = False,
    all_codes: bool = False,
) -> Report:
    """The report; codes never applied in the counted transcripts are left out unless ``all_codes``."""
    if context < 0:
        raise ValueError("context is a number of turns, 0 or more")
    every_unit = data.units
    units = every_unit[data.counted().to_numpy()]
    attrs = attribute_columns(data)
    groups_by_transcript: dict[int, str] = {}
    if group_attribute in attrs.columns:
        for tid, value in zip(attrs["transcript_id"], attrs[group_attribute]):
            if _plain(value) is not None:
                groups_by_transcript[int(tid)] = str(value)
    noun = unit_noun(set(every_unit["kind"]))
    n_units = len(units)
    counted_ids = {int(t) for t in units["transcript_id"]}
    counts = code_counts(data.codes, data.codings, data.turns, "segments")
    group_sizes: dict[str, int] = {}
    in_group: dict[str, int] = {}
    for tid, value in groups_by_transcript.items():
        in_group[value] = in_group.get(value, 0) + 1
        if tid in counted_ids:
            group_sizes[value] = group_sizes.get(value, 0) + 1
    group_order = sorted(in_group, key=natural_key)
    # "of 2 covered" says what was counted when some transcripts were left out, "of 12" when none were.
    partial = data.coverage is not None and not data.coverage.include_uncoded and n_units < len(every_unit)
    covered_word = " covered" if partial else ""
    # Not dict(groupby): a GroupBy has a `keys` attribute (the column name), which dict() would take for a mapping.
    by_node = {node_id: part for node_id, part in counts.groupby("code_id")} if not counts.empty else {}  # noqa: C416

    unit_rows = {int(r["transcript_id"]): {k: _plain(v) for k, v in r.items()} for r in units.to_dict(orient="records")}
    excerpts_by_code = _excerpts(data, unit_rows, groups_by_transcript, context, group_label, memos)
    code_memos: dict[int, list[str]] = {}
    if memos:
        for memo in data.memos:
            if memo.target_kind == "code":
                code_memos.setdefault(memo.target_id, []).append(f"{memo.text} ({memo.coder})")

    sections = []
    applied: set[int] = set()
    for node in data.codes:
        count_line = None
        if node.id not in data.outline_only:
            part = by_node.get(node.id)
            segments = int(part["value"].sum()) if part is not None else 0
            if segments:
                applied.add(node.id)
            coded = {int(t) for t in part["transcript_id"]} if part is not None else set()
            count_line = (
                f"Coded {segments} time{'s' if segments != 1 else ''} in {len(coded)} of {n_units}{covered_word} {noun}"
            )
            if group_order:
                per_group = []
                for group in group_order:
                    hits = sum(1 for t in coded if groups_by_transcript.get(t) == group)
                    size = f"{group_sizes.get(group, 0)}{covered_word}"
                    if partial:
                        size += f" / {in_group[group]} in the group"
                    per_group.append(f"{group_label.format(value=group)}: {hits} of {size}")
                count_line += " (" + "; ".join(per_group) + ")"
            count_line += "."
        sections.append(
            Section(
                node=node,
                count_line=count_line,
                definition=node.definition,
                memos=tuple(code_memos.get(node.id, ())),
                excerpts=tuple(excerpts_by_code.get(node.id, ())),
            )
        )
    sections, never_applied = _applied_only(sections, data, applied, all_codes)
    prevalence = _prevalence(data, counts, groups_by_transcript, group_order, group_label, noun, counted_ids, in_group)
    layer = "consensus codings" if data.layer == "consensus" else f"the codings of {data.layer}"
    total = len(data.codings)
    lead = ""
    if data.coverage is not None:
        lead = data.coverage.statement(int(every_unit["covered"].sum()), len(every_unit), noun)
        lead += " "
    lead += (
        f"Excerpts from {layer}: {total} coded segment{'s' if total != 1 else ''} in "
        f"{data.codings['transcript_id'].nunique() if total else 0} of {n_units}{covered_word} {noun}. "
        "The coded words are in bold"
        + (f", with {context} turn{'s' if context != 1 else ''} of context before and after" if context else "")
        + "."
    )
    if never_applied:
        lead += (
            f" {never_applied} code{'s' if never_applied != 1 else ''} never applied "
            f"{'are' if never_applied != 1 else 'is'} left out (--all-codes shows every code)."
        )
    notes = []
    if data.blind:
        notes.append("The study is blind for you: groups, dyads and scores are left out.")
    return Report(
        title=data.title,
        lead=lead,
        sections=tuple(sections),
        prevalence=prevalence,
        excerpt_count=total,
        context=context,
        notes=tuple(notes),
    )


def _applied_only(
    sections: list[Section], data: ResultsData, applied: set[int], all_codes: bool
) -> tuple[list[Section], int]:
    """The sections of codes applied at least once, with the outline above them; and how many were left out."""
    if all_codes:
        return sections, 0
    by_id = {node.id: node for node in data.codes}
    keep = set(applied)
    for node_id in applied:
        current = by_id[node_id]
        while current.parent_id in by_id:
            keep.add(current.parent_id)
            current = by_id[current.parent_id]
    left_out = sum(1 for s in sections if s.count_line is not None and s.node.id not in keep)
    return [s for s in sections if s.node.id in keep], left_out


def _excerpts(
    data: ResultsData, unit_rows: dict, groups: dict[int, str], context: int, group_label: str, memos: bool
) -> dict[int, list[Excerpt]]:
    codings = data.codings
    turns = data.turns
    found: dict[int, list[Excerpt]] = {}
    if codings.empty:
        return found
    # Each transcript's turns as plain tuples in order, and where each turn number sits.
    ordered_turns: dict[int, list[tuple]] = {}
    place: dict[tuple[int, int], int] = {}
    if not turns.empty:
        columns = turns[["transcript_id", "number", "speaker_label", "char_start", "char_end", "text"]]
        for tid, number, label, start, end, text in columns.sort_values(["transcript_id", "number"]).itertuples(
            index=False, name=None
        ):
            rows = ordered_turns.setdefault(int(tid), [])
            place[(int(tid), int(number))] = len(rows)
            rows.append((int(number), label, int(start), int(end), text or ""))
    pairs = coding_turns(codings, turns)
    span_turns: dict[int, tuple[int, int]] = {}
    if not pairs.empty:
        numbers = pairs.merge(turns[["turn_id", "number"]], on="turn_id").groupby("coding_id")["number"]
        span_turns = {
            int(c): (int(lo), int(hi))
            for c, lo, hi in zip(numbers.min().index, numbers.min().to_numpy(), numbers.max().to_numpy())
        }
    coding_memos: dict[int, list[str]] = {}
    if memos:
        for memo in data.memos:
            if memo.target_kind == "coding":
                coding_memos.setdefault(memo.target_id, []).append(f"{memo.text} ({memo.coder})")
    keys = {tid: natural_key(row["transcript"]) for tid, row in unit_rows.items()}
    # In transcript order (natural order of their keys), then by place: one lexsort over columns rather than a
    # Python sort key reading three pandas cells per coding. Equal keys share a rank; lexsort is stable.
    rank_of = {key: rank for rank, key in enumerate(sorted(set(keys.values())))}
    ranks = codings["transcript_id"].map(lambda tid: rank_of[keys[int(tid)]]).to_numpy(dtype=np.int64)
    order = np.lexsort(
        (codings["end"].to_numpy(dtype=np.int64), codings["start"].to_numpy(dtype=np.int64), ranks)
    ).tolist()
    records = codings.to_dict(orient="records")
    for index in order:
        row = records[index]
        tid, coding_id, start, end = (
            int(row["transcript_id"]),
            int(row["coding_id"]),
            int(row["start"]),
            int(row["end"]),
        )
        unit = unit_rows[tid]
        lines: list[Line] = []
        if coding_id in span_turns and tid in ordered_turns:
            low, high = span_turns[coding_id]
            rows = ordered_turns[tid]
            first, last = place[(tid, low)], place[(tid, high)]
            for number, label, t_start, t_end, text in rows[max(0, first - context) : last + context + 1]:
                inside = low <= number <= high
                a, b = max(start, t_start) - t_start, min(end, t_end) - t_start
                if inside and a < b:
                    pieces = (Fragment(text[:a]), Fragment(text[a:b], bold=True), Fragment(text[b:]))
                    lines.append(Line(label, tuple(p for p in pieces if p.text)))
                else:
                    lines.append(Line(label, (Fragment(text),), context=not inside))
        else:
            lines.append(Line("", (Fragment(row["text"], bold=True),)))
        notes = []
        if memos:
            if _plain(row["memo"]):
                notes.append(f"{row['memo']} ({row['coder']})")
            notes.extend(coding_memos.get(coding_id, ()))
        found.setdefault(int(row["code_id"]), []).append(
            Excerpt(
                transcript=unit["transcript"],
                lines=tuple(lines),
                attribution=attribution(unit, groups.get(tid), group_label),
                memos=tuple(notes),
            )
        )
    return found


def _prevalence(
    data: ResultsData,
    counts: pd.DataFrame,
    groups: dict[int, str],
    group_order: list[str],
    group_label: str,
    noun: str,
    counted: set[int],
    in_group: dict[str, int],
) -> Prevalence | None:
    # The themes; with --codes, the chosen codes highest in the tree (their ancestors are only an outline).
    themes = [
        node
        for node in data.codes
        if node.id not in data.outline_only and (node.parent_id is None or node.parent_id in data.outline_only)
    ]
    if not themes or data.units.empty:
        return None
    transcripts = [int(t) for t in data.units["transcript_id"] if int(t) in counted]
    coded = set(zip(counts["transcript_id"].astype(int), counts["code_id"].astype(int)))
    labels = [group_label.format(value=g) for g in group_order] if group_order else [f"all {noun}"]
    members = [[t for t in transcripts if groups.get(t) == g] for g in group_order] if group_order else [transcripts]
    percent = np.zeros((len(themes), len(members)))
    for i, node in enumerate(themes):
        for j, part in enumerate(members):
            percent[i, j] = 100.0 * sum((t, node.id) in coded for t in part) / len(part) if part else 0.0
    return Prevalence(
        themes=[n.label for n in themes],
        groups=labels,
        percent=percent,
        sizes=[len(m) for m in members],
        unit=noun,
        item="theme" if all(n.depth == 0 for n in themes) else "code",
        in_group=[in_group[g] for g in group_order] if group_order else [len(data.units)],
    )


# -- the chart ---------------------------------------------------------------------------------


def prevalence_png(prevalence: Prevalence, dpi: int = 150) -> bytes:
    """Horizontal grouped bars: the share of units with each theme, one bar per group."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    themes, groups = prevalence.themes, prevalence.groups
    height = max(2.0, 0.42 * len(themes) * max(1, len(groups)) ** 0.5 + 0.9)
    figure = Figure(figsize=(6.5, height), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    bar = 0.8 / len(groups)
    positions = np.arange(len(themes))
    shades = ["#3B3B3B", "#A6A6A6", "#6E6E6E", "#D0D0D0", "#1A1A1A"]
    for j in range(len(groups)):
        offsets = positions - 0.4 + bar * (j + 0.5)
        axes.barh(
            offsets,
            prevalence.percent[:, j],
            height=bar * 0.95,
            color=shades[j % len(shades)],
            edgecolor="black",
            linewidth=0.4,
            label=prevalence.legend(j),
        )
    axes.set_yticks(positions, [_wrap(t, 28) for t in themes])
    axes.invert_yaxis()
    axes.set_xlim(0, 100)
    axes.set_xlabel(f"% of {prevalence.unit} with the {prevalence.item}")
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    if len(groups) > 1:
        # Above the bars, so it never hides one.
        axes.legend(frameon=False, fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=len(groups))
    axes.tick_params(labelsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _wrap(text: str, width: int) -> str:
    words, lines, current = text.split(), [], ""
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    lines.append(current)
    return "\n".join(lines)


# -- writers -----------------------------------------------------------------------------------


def chart_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.prevalence.png")


def write_report(report: Report, path: str | Path, progress: Callable[[int], None] | None = None) -> list[Path]:
    """Write the report in the format its extension names; returns the files written."""
    suffix = format_of(path, REPORT_FORMATS)
    path = Path(path)
    step = progress or (lambda n: None)
    chart = prevalence_png(report.prevalence) if report.prevalence is not None else None
    written = []
    if suffix == ".docx":
        written.append(atomic_write(path, lambda part: _write_docx(report, part, chart, step)))
        return written
    if chart is not None:
        written.append(atomic_write(chart_path(path), lambda part: part.write_bytes(chart)))
    render = _markdown if suffix == ".md" else _html
    text = render(report, chart_path(path).name if chart is not None else None, step)
    written.insert(0, atomic_write(path, lambda part: part.write_text(text, encoding="utf-8")))
    return written


def figure_caption(prevalence: Prevalence) -> str:
    by = " by group" if len(prevalence.groups) > 1 else ""
    return f"Share of {prevalence.unit} in which each {prevalence.item} was coded{by}"


def heading_title(section: Section) -> str:
    node = section.node
    pole = f" ({node.pole} pole)" if node.pole else ""
    return node.label + pole


XML_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def docx_text(text: str) -> str:
    """Text a w:t element can hold: no control characters; tabs and line breaks become spaces."""
    return XML_UNSAFE.sub("", text).replace("\t", " ").replace("\r", " ").replace("\n", " ")


W_NAMESPACE = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


class _FastBody:
    """Appends paragraphs to a document as WordprocessingML written directly, a section at a time.

    python-docx's add_paragraph searches the whole body for the place of each new paragraph
    and builds each run through several lookups; for thousands of excerpts that takes
    minutes. The XML here is what python-docx would write for the same styles and runs.
    """

    def __init__(self, document):
        self.anchor = document.element.body.sectPr
        self.pending: list[str] = []

    @staticmethod
    def run(text: str, *, bold: bool = False, italic: bool = False, style_id: str | None = None) -> str:
        properties = (
            (f'<w:rStyle w:val="{style_id}"/>' if style_id else "")
            + ("<w:b/>" if bold else "")
            + ("<w:i/>" if italic else "")
        )
        properties = f"<w:rPr>{properties}</w:rPr>" if properties else ""
        return f'<w:r>{properties}<w:t xml:space="preserve">{xml_escape(docx_text(text))}</w:t></w:r>'

    def paragraph(self, runs: list[str], style_id: str | None = None) -> None:
        properties = f'<w:pPr><w:pStyle w:val="{style_id}"/></w:pPr>' if style_id else ""
        self.pending.append(f"<w:p>{properties}{''.join(runs)}</w:p>")

    def flush(self) -> None:
        from docx.oxml import parse_xml

        if not self.pending:
            return
        holder = parse_xml(f'<w:body xmlns:w="{W_NAMESPACE}">{"".join(self.pending)}</w:body>')
        for element in list(holder):
            self.anchor.addprevious(element)
        self.pending.clear()


def _excerpt_styles(document):
    from docx.enum.style import WD_STYLE_TYPE
    from docx.shared import Cm, Pt, RGBColor

    styles = document.styles
    made = {}
    for name, after in (("Excerpt", 0), ("Excerpt end", 8)):
        style = styles.add_style(name, WD_STYLE_TYPE.PARAGRAPH)
        style.base_style = styles["Normal"]
        layout = style.paragraph_format
        layout.left_indent, layout.right_indent = Cm(1.0), Cm(1.0)
        layout.space_before, layout.space_after = Pt(0), Pt(after)
        layout.keep_together = True
        style.font.size = Pt(10.5)
        made[name] = style
    memo = styles.add_style("Excerpt memo", WD_STYLE_TYPE.PARAGRAPH)
    memo.base_style = made["Excerpt end"]
    memo.font.size, memo.font.italic = Pt(9), True
    made["memo"] = memo
    context = styles.add_style("Context turn", WD_STYLE_TYPE.CHARACTER)
    context.font.color.rgb = RGBColor(*CONTEXT_GREY)
    made["context"] = context
    return made


def _write_docx(report: Report, path: Path, chart: bytes | None, step: Callable[[int], None]) -> None:
    from docx.shared import Cm, Pt, RGBColor

    document = new_document()
    document.styles["Normal"].paragraph_format.space_after = Pt(6)
    for name in ("Title", "Heading 1", "Heading 2", "Heading 3", "Heading 4"):
        style = document.styles[name]
        plain_font(style, "Liberation Serif")
        style.font.color.rgb = RGBColor(0, 0, 0)
    document.styles["Title"].font.size = Pt(18)
    styles = _excerpt_styles(document)
    document.add_paragraph(f"Results: {docx_text(report.title)}", style="Title")
    document.add_paragraph(report.lead)
    for note in report.notes:
        document.add_paragraph(note)
    if chart is not None:
        add_caption(document, 1, figure_caption(report.prevalence), kind="Figure")
        document.add_picture(io.BytesIO(chart), width=Cm(15))
    body = _FastBody(document)
    run = body.run
    headings = {level: document.styles[f"Heading {level}"].style_id for level in range(1, 5)}
    excerpt_id, end_id = styles["Excerpt"].style_id, styles["Excerpt end"].style_id
    memo_id, context_id = styles["memo"].style_id, styles["context"].style_id
    for section in report.sections:
        body.paragraph([run(heading_title(section))], headings[min(section.node.depth + 1, 4)])
        if section.definition:
            body.paragraph([run("Definition. ", italic=True), run(" ".join(section.definition.split()))])
        if section.count_line:
            body.paragraph([run(section.count_line)])
        for memo in section.memos:
            body.paragraph([run("Memo. ", italic=True), run(memo)])
        for excerpt in section.excerpts:
            last = len(excerpt.lines) - 1
            for index, line in enumerate(excerpt.lines):
                grey = context_id if line.context else None
                runs = [run(f"{line.speaker}: ", style_id=grey)] if line.speaker else []
                runs += [run(f.text, bold=f.bold, style_id=grey) for f in line.fragments]
                if index == last:
                    runs.append(run(f" ({excerpt.attribution})"))
                body.paragraph(runs, end_id if index == last and not excerpt.memos else excerpt_id)
            for memo in excerpt.memos:
                body.paragraph([run(f"Memo: {memo}")], memo_id)
            step(1)
        body.flush()
    document.save(str(path))


def plain_font(style, name: str) -> None:
    """Give a style one font; the default headings take theme fonts that would override it."""
    from docx.oxml.ns import qn

    style.font.name = name
    fonts = style.element.rPr.rFonts
    for attribute in ("w:asciiTheme", "w:hAnsiTheme", "w:eastAsiaTheme", "w:cstheme"):
        fonts.attrib.pop(qn(attribute), None)


MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~&])")
# At the start of a paragraph these would begin a list item.
MARKDOWN_LIST_START = re.compile(r"^(\s*)([-+]|\d+(?=[.)]))")


def md_escape(text: str) -> str:
    """Text that Markdown shows as it is: markup characters escaped, no line breaks."""
    escaped = MARKDOWN_SPECIAL.sub(r"\\\1", text).replace("\r", " ").replace("\n", " ")
    match = MARKDOWN_LIST_START.match(escaped)
    if match and match.group(2) in "-+":
        escaped = f"{match.group(1)}\\{escaped[match.end(1) :]}"
    elif match:
        end = match.end()
        escaped = f"{escaped[:end]}\\{escaped[end:]}"
    return escaped


def _md_fragment(fragment: Fragment) -> str:
    if not fragment.bold or not fragment.text.strip():
        return md_escape(fragment.text)
    core = fragment.text.strip()
    lead = fragment.text[: len(fragment.text) - len(fragment.text.lstrip())]
    tail = fragment.text[len(fragment.text.rstrip()) :]
    return f"{md_escape(lead)}**{md_escape(core)}**{md_escape(tail)}"


def _markdown(report: Report, chart_name: str | None, step: Callable[[int], None]) -> str:
    out = [f"# Results: {md_escape(report.title)}", "", md_escape(report.lead), ""]
    out += [md_escape(n) + "\n" for n in report.notes]
    if chart_name:
        out += [
            f"**Figure 1.** *{md_escape(figure_caption(report.prevalence))}*",
            "",
            f"![{md_escape(figure_caption(report.prevalence))}]({chart_name})",
            "",
        ]
    for section in report.sections:
        out += ["#" * min(section.node.depth + 2, 6) + " " + md_escape(heading_title(section)), ""]
        if section.definition:
            out += [f"*Definition.* {md_escape(' '.join(section.definition.split()))}", ""]
        if section.count_line:
            out += [md_escape(section.count_line), ""]
        for memo in section.memos:
            out += [f"*Memo.* {md_escape(memo)}", ""]
        for excerpt in section.excerpts:
            for index, line in enumerate(excerpt.lines):
                speaker = f"{md_escape(line.speaker)}: " if line.speaker else ""
                body = "".join(_md_fragment(f) for f in line.fragments)
                suffix = f" ({md_escape(excerpt.attribution)})" if index == len(excerpt.lines) - 1 else "  "
                out.append(f"> {speaker}{body}{suffix}")
            for memo in excerpt.memos:
                out += [">", f"> *Memo: {md_escape(memo)}*"]
            out.append("")
            step(1)
    return "\n".join(out) + "\n"


HTML_STYLE = """
body { font-family: Georgia, 'Liberation Serif', serif; max-width: 46rem; margin: 2rem auto; line-height: 1.45; }
blockquote { margin: 0.6rem 2rem 1rem; }
blockquote p { margin: 0; }
.context { color: #6b6b6b; }
.attribution { white-space: nowrap; }
.memo { font-style: italic; font-size: 0.9em; }
figure { margin: 1.5rem 0; }
figcaption b { font-style: normal; }
figcaption { font-style: italic; }
"""


def _html(report: Report, chart_name: str | None, step: Callable[[int], None]) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Results: {e(report.title)}</title>",
        f"<style>{HTML_STYLE}</style></head><body>",
        f"<h1>Results: {e(report.title)}</h1>",
        f"<p>{e(report.lead)}</p>",
    ]
    out += [f"<p>{e(n)}</p>" for n in report.notes]
    if chart_name:
        caption = e(figure_caption(report.prevalence))
        out.append(
            f"<figure><figcaption><b>Figure 1.</b> {caption}</figcaption>"
            f'<img src="{e(chart_name)}" alt="{caption}" width="600"></figure>'
        )
    for section in report.sections:
        level = min(section.node.depth + 2, 6)
        out.append(f"<h{level}>{e(heading_title(section))}</h{level}>")
        if section.definition:
            out.append(f"<p><i>Definition.</i> {e(' '.join(section.definition.split()))}</p>")
        if section.count_line:
            out.append(f"<p>{e(section.count_line)}</p>")
        for memo in section.memos:
            out.append(f'<p class="memo">Memo. {e(memo)}</p>')
        for excerpt in section.excerpts:
            out.append("<blockquote>")
            for index, line in enumerate(excerpt.lines):
                body = "".join(f"<strong>{e(f.text)}</strong>" if f.bold else e(f.text) for f in line.fragments)
                speaker = f"{e(line.speaker)}: " if line.speaker else ""
                cls = ' class="context"' if line.context else ""
                tail = (
                    f' <span class="attribution">({e(excerpt.attribution)})</span>'
                    if index == len(excerpt.lines) - 1
                    else ""
                )
                out.append(f"<p{cls}>{speaker}{body}{tail}</p>")
            for memo in excerpt.memos:
                out.append(f'<p class="memo">Memo: {e(memo)}</p>')
            out.append("</blockquote>")
            step(1)
    out.append("</body></html>")
    return "\n".join(out) + "\n"

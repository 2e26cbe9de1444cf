"""The excerpt report: outline, counts, excerpts with context, attribution, escaping, chart, files."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from docx import Document

from concord.exporters.excerpts import Fragment, build_report, md_escape, prevalence_png, write_report
from concord.services.results import gather
from concord.storage.errors import PermissionDenied
from tests.factories import as_person
from tests.test_frequencies import build_ipr_study, shared_study  # noqa: F401

REPORT = {"spans": True, "turns": "text"}


@pytest.fixture
def study(shared_study):  # noqa: F811
    return shared_study


def _report(workspace, person="sue", *, layer="consensus", memos=False, codes=None, include_uncoded=False, **options):
    data = gather(
        as_person(workspace, person),
        layer=layer,
        with_memos=memos,
        codes=codes,
        include_uncoded=include_uncoded,
        **REPORT,
    )
    return build_report(data, memos=memos, **options)


def _section(report, label):
    return next(s for s in report.sections if s.node.label == label)


def _bold(excerpt):
    return [f.text for line in excerpt.lines for f in line.fragments if f.bold]


def test_outline_counts_and_attribution(study):
    report = _report(study)
    assert [s.node.label for s in report.sections] == [
        "Therapeutic direction",
        "Moving forward",
        "talk about goals",
        "hope",
        "Stagnation",
        "Therapist style",
        "Exploring",
        "Expert role",
    ]
    assert (
        _section(report, "Therapeutic direction").count_line
        == "Coded 8 times in 4 of 4 sessions (high alliance: 2 of 2; low alliance: 2 of 2)."
    )
    assert (
        _section(report, "Moving forward").count_line
        == "Coded 5 times in 2 of 4 sessions (high alliance: 2 of 2; low alliance: 0 of 2)."
    )
    assert _section(report, "talk about goals").definition == "Client and therapist talk about goals."
    assert report.excerpt_count == 13
    hope = _section(report, "hope").excerpts
    assert [e.attribution for e in hope] == ["Session S-A, high alliance", "Session S-D, high alliance"]
    assert hope[0].lines[0].speaker == "P"
    assert hope[0].lines[0].fragments == (
        Fragment("That I wanted to give up. "),
        Fragment("But I did the homework, um-hm, some of it.", bold=True),
    )
    assert _bold(hope[1]) == ["but I want to try the plan again"]


def test_a_span_across_turns_shows_each_turn(study):
    forward = _section(_report(study), "Moving forward").excerpts
    across = forward[0]
    assert [line.speaker for line in across.lines] == ["T", "P"]
    assert _bold(across) == ["when that thought came?", "That I wanted"]
    assert across.lines[0].fragments[0] == Fragment("What did you notice in yourself ")


def test_context_turns_before_and_after(study):
    expert = _section(_report(study, context=1), "Expert role").excerpts
    first = expert[0]
    assert [(line.speaker, line.context) for line in first.lines] == [("P", True), ("T", False), ("P", True)]
    assert first.lines[2].fragments == (Fragment("She stayed <b>two</b> days & said *nothing* kind."),)
    # At the start of a transcript there is nothing before.
    last = expert[-1]
    assert last.attribution == "Session S-C, low alliance"
    assert [(line.speaker, line.context) for line in last.lines] == [("T", False), ("P", True)]


def test_memos_follow_the_blind(study):
    sue = _report(study, memos=True)
    assert _section(sue, "Exploring").memos == ("Often right after a summary. (sue)", "Look for open questions. (ann)")
    hope = _section(sue, "hope").excerpts[0]
    assert hope.memos == ("hope despite doubt (sue)", "Agency despite doubt. (sue)")
    # Exploring was never applied in ann's layer: listed only when every code is asked for.
    ann = _report(study, "ann", layer="ann", memos=True, all_codes=True)
    assert _section(ann, "Exploring").memos == ("Look for open questions. (ann)",)


def test_blind_coder_gets_no_groups(study):
    with pytest.raises(PermissionDenied):
        _report(study, "ann")
    report = _report(study, "ann", layer="ann")
    excerpts = [e for s in report.sections for e in s.excerpts]
    assert [e.attribution for e in excerpts] == ["Session S-A", "Session S-A"]
    # ann marked S-A done and nothing else: one session of four is covered, and counted.
    assert report.lead.startswith("Coverage: 1 of 4 sessions covered (marked done by ann)")
    assert _section(report, "Therapeutic direction").count_line == "Coded 2 times in 1 of 1 covered sessions."
    assert report.prevalence.groups == ["all sessions"]
    assert report.notes


def test_prevalence_by_group(study):
    report = _report(study, layer="ann")
    assert report.prevalence.themes == ["Therapeutic direction", "Therapist style"]
    assert report.prevalence.groups == ["high alliance", "low alliance"]
    # ann covers S-A only (high): 1 of 1 covered high session, no covered low one.
    assert report.prevalence.percent.tolist() == [[100.0, 0.0], [0.0, 0.0]]
    assert report.prevalence.sizes == [1, 0] and report.prevalence.in_group == [2, 2]
    assert report.prevalence.legend(0) == "high alliance (n = 1 covered / 2)"
    # Counting every session, the uncovered ones as uncoded, as before coverage was known.
    everything = _report(study, layer="ann", include_uncoded=True)
    assert everything.prevalence.percent.tolist() == [[50.0, 0.0], [0.0, 0.0]]
    assert everything.prevalence.sizes == [2, 2]
    assert "--include-uncoded: all 4 are counted" in everything.lead
    assert prevalence_png(report.prevalence)[:8] == b"\x89PNG\r\n\x1a\n"


def test_selected_codes_keep_their_outline(study):
    report = _report(study, codes=["hope"])
    assert [(s.node.label, s.count_line is None) for s in report.sections] == [
        ("Therapeutic direction", True),
        ("Moving forward", True),
        ("hope", False),
    ]
    assert _section(report, "hope").count_line.startswith("Coded 2 times in 2 of 4 sessions")
    assert report.excerpt_count == 2


def test_ipr_attribution(study_target):
    workspace = build_ipr_study(study_target)
    try:
        report = _report(workspace, group_attribute="outcome", group_label="{value} outcome")
    finally:
        workspace.close()
    safety = _section(report, "Safety replaces fear").excerpts
    assert [e.attribution for e in safety] == ["client, dyad 1, session 3"]
    assert (
        _section(report, "Relational safety").count_line
        == "Coded 2 times in 2 of 7 interviews (frail outcome: 0 of 3; positive outcome: 2 of 4)."
    )


def test_docx_report(study, tmp_path):
    out = tmp_path / "report.docx"
    assert write_report(_report(study, context=1, memos=True), out) == [out]
    document = Document(str(out))
    texts = [p.text for p in document.paragraphs]
    assert texts[0] == "Results: Test study"
    assert "Figure 1. Share of sessions in which each theme was coded by group" in texts
    assert len(document.inline_shapes) == 1
    headings = [(p.style.name, p.text) for p in document.paragraphs if p.style.name.startswith("Heading")]
    assert headings[:3] == [
        ("Heading 1", "Therapeutic direction"),
        ("Heading 2", "Moving forward"),
        ("Heading 3", "talk about goals"),
    ]
    assert ("Heading 2", "Exploring (high pole)") in headings
    quote = next(
        p
        for p in document.paragraphs
        if p.text.endswith("(Session S-D, high alliance)") and "[laughter]" in p.text and p.style.name == "Excerpt end"
    )
    assert [r.text for r in quote.runs if r.bold] == ["Yes, but I want to try the plan again. [laughter] I can do it."]
    context = next(p for p in document.paragraphs if p.text.startswith("P: She stayed"))
    assert {r.style.name for r in context.runs[:-1]} == {"Context turn"}
    assert context.runs[-1].text == " (Session S-B, low alliance)"
    assert "Memo: Agency despite doubt. (sue)" in texts
    assert not list(tmp_path.glob("*.part"))


def test_markdown_and_html_escape_transcript_text(study, tmp_path):
    report = _report(study, context=1)
    md, chart = write_report(report, tmp_path / "report.md")
    assert chart == tmp_path / "report.prevalence.png" and chart.read_bytes()[:4] == b"\x89PNG"
    text = md.read_text(encoding="utf-8")
    assert "> P: She stayed \\<b\\>two\\</b\\> days \\& said \\*nothing\\* kind. (Session S-B, low alliance)" in text
    assert "](report.prevalence.png)" in text
    assert "**That I wanted** to give up" in text
    assert "<b>two" not in text
    page = write_report(report, tmp_path / "report.html")[0].read_text(encoding="utf-8")
    assert "She stayed &lt;b&gt;two&lt;/b&gt; days &amp; said *nothing* kind." in page
    assert "<b>two</b>" not in page
    assert '<img src="report.prevalence.png"' in page
    assert "<strong>But I did the homework, um-hm, some of it.</strong>" in page


def test_markdown_escape_covers_markup():
    assert md_escape("*a* _b_ <i> [x](y) # | & \\") == "\\*a\\* \\_b\\_ \\<i\\> \\[x\\](y) \\# \\| \\& \\\\"
    assert md_escape("- not a list") == "\\- not a list"
    assert md_escape("12. not a list either") == "12\\. not a list either"
    assert md_escape("line\nbreak") == "line break"


@pytest.mark.skipif(
    shutil.which("soffice") is None or shutil.which("pdftotext") is None,
    reason="LibreOffice and poppler are needed to render the report",
)
def test_docx_report_renders_to_pdf(study, tmp_path):
    out = tmp_path / "report.docx"
    write_report(_report(study), out)
    subprocess.run(
        ["soffice", "--headless", "--convert-to", "pdf", "--outdir", str(tmp_path), str(out)],
        check=True,
        capture_output=True,
        timeout=180,
    )
    text = subprocess.run(
        ["pdftotext", str(tmp_path / "report.pdf"), "-"], check=True, capture_output=True, text=True
    ).stdout
    assert "Results: Test study" in text and "Therapeutic direction" in text
    assert "(Session S-A, high alliance)" in " ".join(text.split())

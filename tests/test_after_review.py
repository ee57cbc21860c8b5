"""The record after review says what the person said: a segment the machine flagged as a possible
hallucination, with no English, that a person corrected, checked and translated, shows the person's text
without the flag markers in the renderings, the viewer, the DOCX (python-docx and LibreOffice), the CSV
and the Prefect artifact; the machine's flags stay in the history (revision 0)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path

import pytest
from docx import Document
from docx.oxml.ns import qn

from pipeline.archive import catalog, documents
from pipeline.archive.bundle import find_bundle
from pipeline.archive.viewer import INDEX
from pipeline.review import revisions
from pipeline.review.save import save_revision
from pipeline.run import process
from pipeline.transcript import POSSIBLE_HALLUCINATION, UNTRANSLATED, Segment, Source, Transcript

from .test_documents import _pdf, needs_office

SHA = hashlib.sha256(b"a reviewed testimony").hexdigest()
HEARD = "去去去去去去去去"  # what a random-weight decoder makes of silence
SAID = "Менің әкем лагерьде болды"
ENGLISH = "My father was in the camp"


def _draft() -> Transcript:
    """A Kazakh draft with no translation package: both segments untranslated, the first a hallucination."""
    segments = [Segment(0, 0.5, 2.4, HEARD, None, -0.1, 0.1, 9.5, [POSSIBLE_HALLUCINATION, UNTRANSLATED], None, 0.0),
                Segment(1, 3.0, 5.0, "Екі жыл болды", None, -0.4, 0.1, 1.1, [UNTRANSLATED], None, 0.0)]
    return Transcript(Source("witness 3.mp4", SHA, 1000, 9.0, {"index": 1}), "kk", "kk", 0.9,
                      {"asr": {"name": "base"}, "options_key": "k"}, segments, created="2026-12-01T00:00:00+00:00")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    archive = tmp_path_factory.mktemp("reviewed")
    process.publish_transcript(archive, _draft())
    catalog.index_bundle(archive, find_bundle(archive, SHA))
    newest = revisions.newest(find_bundle(archive, SHA))
    segments = [dict(s) for s in newest.segments]
    segments[0] |= {"text": SAID, "translation": ENGLISH, "checked": True}
    save_revision(archive, SHA, base=newest.sha256, author="Aigul", segments=segments)
    return find_bundle(archive, SHA)


def test_the_renderings_and_the_viewer_follow_the_review(bundle):
    assert f"{SAID}\n" in (bundle / "kk.srt").read_text(encoding="utf-8")
    assert f"00:00:00,500 --> 00:00:02,400\n{ENGLISH}\n" in (bundle / "en.srt").read_text(encoding="utf-8")
    assert HEARD not in (bundle / "kk.txt").read_text(encoding="utf-8")
    page = (bundle / INDEX).read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="transcript-data">(.*?)</script>', page, flags=re.S).group(1))["transcript"]
    assert [s["flags"] for s in data["segments"]] == [[], [UNTRANSLATED]]
    machine = revisions.chain(bundle)[0].segments[0]
    assert machine["flags"] == [POSSIBLE_HALLUCINATION, UNTRANSLATED], "the history keeps what the machine said"


def _cell_shaded(cell) -> bool:
    return cell._tc.tcPr is not None and cell._tc.tcPr.find(qn("w:shd")) is not None


def test_the_docx_shows_the_persons_text_unflagged(bundle):
    doc = Document(io.BytesIO(documents.document(bundle, "docx")))
    facts = {row.cells[0].text: row.cells[1].text for row in doc.tables[0].rows}
    assert facts["Translation"] == "none by machine; 1 of 2 segments' English by a person"
    reviewed, untouched = doc.tables[1].rows[1], doc.tables[1].rows[2]
    assert [c.text for c in reviewed.cells][3:] == [SAID, ENGLISH]
    assert reviewed.cells[0].text == "" and not any(_cell_shaded(c) for c in reviewed.cells)
    assert untouched.cells[0].text == "⚑ untranslated, unchecked" and untouched.cells[4].text == "(untranslated)"
    assert all(_cell_shaded(c) for c in untouched.cells)


def test_the_csv_and_the_artifact_show_no_answered_flag(bundle):
    from flows import artifacts

    rows = list(csv.DictReader(io.StringIO(documents.document(bundle, "csv").decode("utf-8-sig"), newline="")))
    assert [(r["english"], r["flags"], r["checked"]) for r in rows] == [
        (ENGLISH, "", "true"), ("", "untranslated", "false")]
    markdown = artifacts.transcript_markdown(Transcript.load(bundle / "transcript.json"), bundle)
    assert f"| {SAID} | {ENGLISH} |  |" in markdown and "(1 flagged)" in artifacts.summary_markdown(
        Transcript.load(bundle / "transcript.json"))


@pytest.mark.slow
@needs_office
def test_the_docx_in_libreoffice_shows_the_persons_text_unflagged(bundle, tmp_path):
    path = documents.write_document(bundle, "docx", tmp_path / "reviewed.docx")
    _pdf_path, text = _pdf(path, tmp_path)
    assert SAID in text and ENGLISH in text and HEARD not in text
    assert "⚑ possible" not in text and "none (untranslated)" not in text
    assert text.count("⚑") == 1 + 1, "the legend and the one segment nobody reviewed"

"""Documents out, opened as a person opens them: DOCX and XLSX through LibreOffice (headless) to PDF and
`pdftotext`, CSV through Python's csv module, the OHMS XML parsed, the viewer's `#t=` in real Chromium,
and the workspace's download behind its credentials.

The bundle is published through the run's own path (`process.publish_transcript`, with an arrival in the
custody log) from a transcript written here: Kazakh Cyrillic and Uyghur Arabic segments, named speakers,
flagged, checked and unchecked ones, and an original that a spreadsheet would take for a formula.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import httpx
import pytest

from pipeline.archive import catalog, custody, documents
from pipeline.archive.bundle import MANIFEST
from pipeline.archive.documents.ohms import NS
from pipeline.archive.integrity import verify_bundle
from pipeline.archive.viewer import INDEX
from pipeline.cli.main import main
from pipeline.run import process
from pipeline.stages.media import probe
from pipeline.transcript import LOW_CONFIDENCE, POSSIBLE_HALLUCINATION, Segment, Source, Transcript

from . import test_viewer, test_workspace
from .test_integrity import _unzip_and_check
from .test_viewer import Opened, wait_js
from .test_workspace import _auth, _page

video = test_viewer.video  # the viewer's real H.264 video (module scope: made once here)
server = test_workspace.server  # a real `testimony review` over this module's `archive`

UG_1 = "مېنىڭ دادام ئۈرۈمچىدە تۇتۇلدى"  # my father was detained in Urumqi
UG_2 = "ئۇ ئىككى يىل قايتىپ كەلمىدى"  # he did not come back for two years
SEGMENTS = [  # (start, end, speaker, original, English, flags, checked)
    (0.0, 1.2, "S1", "Менің әкем лагерьде болды", "My father was in the camp", [], True),
    (1.2, 2.4, "S2", UG_1, "My father was detained in Urumqi", [LOW_CONFIDENCE], False),  # a check answers a flag
    (2.4, 3.6, "S1", "Екі жыл бойы хабар болмады", "There was no news for two years", [], False),
    (3.6, 4.6, "S2", UG_2, "He did not come back for two years", [], True),
    (4.6, 5.4, "S1", "=1+1 деді ол", "=1+1 he said", [POSSIBLE_HALLUCINATION], False),
]
# Words pdftotext gives back as typed (Uyghur words without lam-alef, which it extracts as alef-lam).
MARKERS = ["лагерьде", "ئۈرۈمچىدە", "хабар", "كەلمىدى", "деді"]
NAMES = {"S1": "Айгүл", "S2": "Interviewer"}
SOFFICE = shutil.which("soffice")
needs_office = pytest.mark.skipif(not (SOFFICE and shutil.which("pdftotext") and shutil.which("pdftoppm")),
                                  reason="LibreOffice and poppler-utils are not installed (run bin/setup)")


def _transcript(video: Path, sha256: str) -> Transcript:
    segments = [Segment(n, s, e, text, en, -0.4, 0.1, 1.1, list(flags), None, 0.0, speaker=who, checked=ok,
                        english_source="machine") for n, (s, e, who, text, en, flags, ok) in enumerate(SEGMENTS)]
    return Transcript(Source(video.name, sha256, video.stat().st_size, probe(video).duration, {"index": 1}),
                      "kk", "kk", 0.9, {"asr": {"name": "base", "engine": "openai-whisper", "sha256": "ab" * 32},
                                        "translation": {"engine": "argostranslate", "route": ["kk", "en"]}},
                      segments, created="2026-12-01T00:00:00+00:00",
                      sidecar={"file_name": f"{video.name}.json", "sha256": "0" * 64,
                               "content": {"speaker_names": NAMES}})


@pytest.fixture(scope="module")
def archive(tmp_path_factory, video) -> Path:
    root = tmp_path_factory.mktemp("documents") / "archive"
    sha256 = hashlib.sha256(video.read_bytes()).hexdigest()
    root.mkdir()
    custody.record_arrival(root, sha256, video)
    process.publish_transcript(root, _transcript(video, sha256), video)
    catalog.sync(root)
    return root


def _bundle(archive: Path) -> Path:
    (entry,) = catalog.list_videos(archive)
    return archive / entry.bundle


def _pdf(document: Path, tmp_path: Path) -> tuple[Path, str]:
    """LibreOffice's PDF of `document` (a profile of this test's own) and the text pdftotext finds in it."""
    out = tmp_path / "pdf"
    subprocess.run([SOFFICE, f"-env:UserInstallation={(tmp_path / 'lo-profile').as_uri()}", "--headless",
                    "--convert-to", "pdf", "--outdir", str(out), str(document)],
                   check=True, capture_output=True, timeout=180)
    pdf = out / f"{document.stem}.pdf"
    # -layout keeps the page's rows in order (its reading-order guess can move a right-to-left cell).
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True).stdout
    text = re.sub("[\u200e\u200f\u202a-\u202e]", "", text.decode("utf-8"))  # bidi controls around RTL
    return pdf, " ".join(text.split())


def _in_order(text: str, words: list[str]) -> None:
    at = [text.find(word) for word in words]
    assert -1 not in at, f"missing: {[w for w, i in zip(words, at) if i < 0]}"
    assert at == sorted(at), f"out of segment order: {words}"


def _page_png(pdf: Path, tmp_path: Path) -> Path:
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
                   check=True)
    (png,) = tmp_path.glob("page*.png")
    return png


@pytest.mark.slow
@needs_office
def test_docx_in_libreoffice(archive, tmp_path):
    bundle = _bundle(archive)
    record = documents.record.read(bundle)
    path = documents.write_document(bundle, "docx", tmp_path / "testimony.docx")
    pdf, text = _pdf(path, tmp_path)
    _in_order(text, MARKERS)
    assert record.sha256 in text and f"0, sha256 {record.revision_sha256}" in text
    assert "ab" * 32 in text and "kk → en" in text and "arrived 20" in text
    assert text.count("⚑") == 1 + 3, "the legend and the flagged or unchecked segments"
    assert "⚑ low" in text and "⚑ unchecked" in text and "⚑ possible" in text  # the rest wraps in its cell
    assert "Айгүл" in text and "Interviewer" in text and "S1" not in text, "speakers by name"
    assert _page_png(pdf, tmp_path).stat().st_size > 5000
    with zipfile.ZipFile(path) as docx:
        xml = docx.read("word/document.xml").decode("utf-8")
    uyghur = xml[:xml.index(UG_1)].rsplit("<w:p>", 1)[-1] if "<w:p>" in xml else xml[:xml.index(UG_1)]
    assert "<w:bidi/>" in uyghur and "<w:rtl/>" in uyghur, "the Uyghur cell is a right-to-left paragraph"


@pytest.mark.slow
@needs_office
def test_xlsx_in_libreoffice(archive, tmp_path):
    path = documents.write_document(_bundle(archive), "xlsx", tmp_path / "segments.xlsx")
    _pdf_path, text = _pdf(path, tmp_path)
    _in_order(text, MARKERS)
    assert "index.html#t=1.2" in text and "=1+1 деді ол" in text, "an original is text, never a formula"
    assert "low_confidence" in text and documents.record.read(_bundle(archive)).sha256 in text
    from openpyxl import load_workbook

    sheet = load_workbook(path)["segments"]
    assert [sheet.cell(n, 10).hyperlink.target for n in (2, 3)] == ["index.html#t=0", "index.html#t=1.2"]


def test_csv_round_trips(archive):
    bundle = _bundle(archive)
    data = documents.document(bundle, "csv")
    assert data.startswith(b"\xef\xbb\xbf"), "a byte-order mark, so Excel reads UTF-8"
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert [r["original"] for r in rows[:4]] == [s[3] for s in SEGMENTS[:4]]
    assert rows[4]["original"] == "'=1+1 деді ол", "a cell that would be a formula is made inert"
    assert [r["english"] for r in rows[:4]] == [s[4] for s in SEGMENTS[:4]]
    assert [r["speaker"] for r in rows] == [NAMES[s[2]] for s in SEGMENTS]
    assert [(float(r["start"]), float(r["end"])) for r in rows] == [(s[0], s[1]) for s in SEGMENTS]
    assert [r["link"] for r in rows[:2]] == ["index.html#t=0", "index.html#t=1.2"]
    assert [(r["flags"], r["checked"]) for r in rows[1:3]] == [("low_confidence", "false"), ("", "false")]
    assert {r["bundle"] for r in rows} == {bundle.name[:12]}


def test_ohms_xml_parses_and_its_times_match(archive):
    root = ET.fromstring(documents.document(_bundle(archive), "ohms"))
    record = root.find(f"{{{NS}}}record")
    points = record.findall(f"{{{NS}}}index/{{{NS}}}point")
    alt = record.findall(f"{{{NS}}}index_alt/{{{NS}}}point")
    assert [int(p.findtext(f"{{{NS}}}time")) for p in points] == [int(s[0]) for s in SEGMENTS]
    assert [p.findtext(f"{{{NS}}}partial_transcript") for p in points] == [s[3] for s in SEGMENTS]
    assert [p.findtext(f"{{{NS}}}partial_transcript") for p in alt] == [s[4] for s in SEGMENTS]
    lines = record.findtext(f"{{{NS}}}transcript").splitlines()
    assert lines[1] == f"INTERVIEWER: {UG_1}" and lines[0].endswith(SEGMENTS[0][3])
    assert record.findtext(f"{{{NS}}}transcript_alt").splitlines()[3] == f"INTERVIEWER: {SEGMENTS[3][4]}"


def test_viewer_opens_at_the_fragment(browser, archive):
    opened = Opened(browser, _bundle(archive) / INDEX, "#t=2.4")
    page = opened.page
    try:
        assert opened.current_id() == "2"
        wait_js(page, "Math.abs(document.getElementById('video').currentTime - 2.4) < 0.05", timeout_ms=15000)
        page.evaluate("window.location.hash = '#t=3.7'")
        wait_js(page, "document.querySelector('li.seg.current')?.dataset.id === '3'")
        wait_js(page, "Math.abs(document.getElementById('video').currentTime - 3.7) < 0.05")
    finally:
        opened.close()


def test_get_writes_documents_and_refuses_an_unknown_format(archive, tmp_path, capsys):
    key = _bundle(archive).name[:12]
    out = tmp_path / "t.docx"
    assert main(["get", key, "--out", str(archive), "--format", "docx", "-o", str(out)]) == 0
    assert "word/document.xml" in zipfile.ZipFile(out).namelist()
    assert main(["get", key, "--out", str(archive), "--format", "csv"]) == 0  # a text document: to a pipe
    assert UG_1 in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        main(["get", key, "--out", str(archive), "--format", "pdf"])
    assert refused.value.code == 2 and "invalid choice: 'pdf'" in capsys.readouterr().err


def test_export_adds_documents_beside_the_unchanged_bundle(archive, tmp_path, capsys):
    bundle = _bundle(archive)
    manifest = (bundle / MANIFEST).read_bytes()
    dest = tmp_path / "evidence.zip"
    assert main(["export", bundle.name[:12], "--out", str(archive), "-o", str(dest), "--formats", "docx,xlsx"]) == 0
    checked = _unzip_and_check(dest, tmp_path / "x")  # sha256sum -c SHA256SUMS: every line OK
    key = bundle.name[:12]
    assert f"documents/{key}.docx: OK" in checked and f"documents/{key}.xlsx: OK" in checked
    assert "word/document.xml" in zipfile.ZipFile(tmp_path / "x" / "documents" / f"{key}.docx").namelist()
    assert "documents/ holds docx, xlsx" in (tmp_path / "x" / "VERIFY.txt").read_text(encoding="utf-8")
    assert (bundle / MANIFEST).read_bytes() == manifest and verify_bundle(archive, bundle).ok
    assert custody.read(archive, documents.record.read(bundle).sha256)[-1]["documents"] == ["docx", "xlsx"]
    with pytest.raises(SystemExit) as refused:
        main(["export", bundle.name[:12], "--out", str(archive), "-o", str(tmp_path / "x.zip"), "--formats", "pdf"])
    assert refused.value.code == 2 and "no document format 'pdf'" in capsys.readouterr().err


@pytest.mark.slow
def test_workspace_serves_documents_behind_its_credentials(browser, server, archive):
    key = _bundle(archive).name[:12]
    url = f"{server}/api/bundles/{key}/document"
    assert httpx.get(url, params={"format": "docx"}, timeout=30).status_code == 401
    got = httpx.get(url, params={"format": "docx"}, headers=_auth(), timeout=60)
    assert got.status_code == 200 and got.headers["content-type"] == documents.FORMATS["docx"].media_type
    assert f'filename="{key}.docx"' in got.headers["content-disposition"]
    assert "word/document.xml" in zipfile.ZipFile(io.BytesIO(got.content)).namelist()
    bad = httpx.get(url, params={"format": "pdf"}, headers=_auth(), timeout=30)
    assert bad.status_code == 400 and "no document format" in bad.json()["error"]
    assert httpx.get(f"{server}/api/bundles/{'0' * 12}/document?format=docx", headers=_auth(),
                     timeout=30).status_code == 404

    page = _page(browser, server, f"/edit/{key}")
    page.wait_for_selector("#segments .seg")
    with page.expect_download() as download:
        page.click("#documents a[data-format=xlsx]")
    assert download.value.suggested_filename == f"{key}.xlsx"
    page.goto(server + "/")
    page.wait_for_selector("#bundles tbody tr")
    assert page.get_attribute("#bundles a.document[data-format=docx]", "href") == \
        f"/api/bundles/{key}/document?format=docx"
    page.context.close()


def test_the_process_video_artifact_offers_every_document(archive):
    """Both forms of the artifact (with the text, and ids only) name the commands and the downloads."""
    from flows import artifacts

    bundle = _bundle(archive)
    transcript = Transcript.load(bundle / "transcript.json")
    key = transcript.id
    for text in (artifacts.summary_markdown(transcript), artifacts.transcript_markdown(transcript, bundle)):
        for fmt in documents.FORMATS:
            assert f"`testimony get {key} --format {fmt} -o {documents.file_name(key, fmt)}`" in text
            assert f"(http://127.0.0.1:4300/api/bundles/{key}/document?format={fmt})" in text

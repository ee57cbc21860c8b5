"""The DOCX: a header that ties the document to its evidence, then the bilingual table.

Set for Kazakh Cyrillic and Uyghur Arabic script: every run names DejaVu Sans for Latin, Cyrillic and
complex scripts alike (it has the glyphs, and Debian's fontconfig has it wherever LibreOffice runs), and
an Arabic-script cell is a right-to-left paragraph (`w:bidi`, right-aligned) of right-to-left runs
(`w:rtl`), so Word and LibreOffice shape and order it as Uyghur is read.
"""

from __future__ import annotations

import io

from docx import Document
from docx.enum.section import WD_ORIENT
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Pt

from pipeline.archive.documents.record import Record, Row, clock, right_to_left

FONT = "DejaVu Sans"
MARK = "⚑"  # a marked segment: flagged by the machine, or not yet checked by a person
SHADE = "FFF3C4"  # the viewer's highlight yellow
COLUMNS = (("", 3.0), ("Time", 4.0), ("Speaker", 2.5), ("Original", 8.6), ("English", 8.6))  # cm, 26.7 in all
LANGS = {"kk": "kk-KZ", "ug": "ug-CN", "en": "en-GB"}


def _fonts(rpr) -> None:
    """Name the font for every script slot, so Cyrillic and Arabic never fall to another face."""
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = OxmlElement("w:rFonts")
        rpr.insert(0, fonts)
    for slot in ("w:ascii", "w:hAnsi", "w:cs", "w:eastAsia"):
        fonts.set(qn(slot), FONT)


def _setup(doc) -> None:
    """Landscape A4 with narrow margins (five columns), one font in the Normal style."""
    section = doc.sections[0]
    section.orientation = WD_ORIENT.LANDSCAPE
    section.page_width, section.page_height = Cm(29.7), Cm(21.0)
    for side in ("left_margin", "right_margin", "top_margin", "bottom_margin"):
        setattr(section, side, Cm(1.5))
    normal = doc.styles["Normal"]
    normal.font.name, normal.font.size = FONT, Pt(9.5)
    _fonts(normal.element.get_or_add_rPr())


def _text(paragraph, text: str, lang: str | None = None, *, bold: bool = False) -> None:
    """A run of `text`; Arabic script makes the paragraph and the run right to left."""
    run = paragraph.add_run(text)
    run.bold = bold
    rpr = run._r.get_or_add_rPr()
    _fonts(rpr)
    rtl = right_to_left(text)
    if rtl:
        rpr.append(OxmlElement("w:rtl"))
        _bidi(paragraph)
    if rtl or lang in LANGS:  # Arabic script here is Uyghur, whatever the run's language
        tag = OxmlElement("w:lang")
        tag.set(qn("w:bidi" if rtl else "w:val"), LANGS["ug"] if rtl else LANGS[lang])
        rpr.append(tag)


def _bidi(paragraph) -> None:
    """A right-to-left paragraph, aligned to its start: the right edge. (In a `w:bidi` paragraph Word and
    LibreOffice read `jc=right` as the end, i.e. the left edge, so no `jc` is the right-aligned one.)"""
    ppr = paragraph._p.get_or_add_pPr()
    if ppr.find(qn("w:bidi")) is None:
        ppr.insert(0, OxmlElement("w:bidi"))


def _shade(cell, fill: str) -> None:
    tcpr = cell._tc.get_or_add_tcPr()
    shading = OxmlElement("w:shd")
    for key, value in (("w:val", "clear"), ("w:color", "auto"), ("w:fill", fill)):
        shading.set(qn(key), value)
    tcpr.append(shading)


def _widths(table, widths: list[float]) -> None:
    """Column widths in the grid (which LibreOffice reads) and in every cell (which Word reads)."""
    table.autofit = False
    for grid, width in zip(table._tbl.tblGrid.gridCol_lst, widths):
        grid.w = Cm(width)
    for column, width in zip(table.columns, widths):
        for cell in column.cells:
            cell.width = Cm(width)


def _header(doc, record: Record) -> None:
    """What the document is evidence of: the source's hash, the models, the revision, the custody."""
    doc.add_heading(f"Transcript: {record.file_name}", level=1)
    facts = [("Source SHA-256", record.sha256), ("Bundle", f"{record.bundle_id} ({record.bundle_name})"),
             ("Language", record.language), ("Duration", clock(record.duration) if record.duration else "unknown"),
             ("ASR model", record.asr), ("Translation", record.translation),
             ("Revision", f"{record.revision}, sha256 {record.revision_sha256}"),
             ("Custody", record.custody.summary())]
    table = doc.add_table(rows=0, cols=2)
    for key, value in facts:
        cells = table.add_row().cells
        _text(cells[0].paragraphs[0], key, bold=True)
        _text(cells[1].paragraphs[0], value)
    _widths(table, [3.5, 23.0])
    marked = sum(row.marked for row in record.rows)
    legend = doc.add_paragraph()
    _text(legend, f"{MARK} and a shaded row: a segment the machine flagged (low confidence, possible "
          f"hallucination, untranslated, glossary match) or that no person has checked yet; "
          f"{marked} of {len(record.rows)} segments are marked. Check them against the video.")


def _segment(table, row: Row, language: str) -> None:
    cells = table.add_row().cells
    _text(cells[0].paragraphs[0], f"{MARK} " + ", ".join(row.reasons) if row.marked else "")
    _text(cells[1].paragraphs[0], f"{clock(row.start)}–{clock(row.end)}")
    _text(cells[2].paragraphs[0], row.speaker or "")
    _text(cells[3].paragraphs[0], row.original, language)
    _text(cells[4].paragraphs[0], row.english if row.english is not None else "(untranslated)", "en")
    if row.marked:
        for cell in cells:
            _shade(cell, SHADE)


def _table(doc, record: Record) -> None:
    table = doc.add_table(rows=1, cols=len(COLUMNS))
    table.style = "Table Grid"
    head = table.rows[0]
    head._tr.get_or_add_trPr().append(OxmlElement("w:tblHeader"))  # repeated on every page
    for cell, (title, _width) in zip(head.cells, COLUMNS):
        _text(cell.paragraphs[0], title, bold=True)
    for row in record.rows:
        _segment(table, row, record.language)
    _widths(table, [width for _title, width in COLUMNS])


def docx(record: Record) -> bytes:
    """The bilingual DOCX of one testimony."""
    doc = Document()
    _setup(doc)
    doc.core_properties.title = f"Transcript {record.bundle_id}"
    doc.core_properties.identifier = record.sha256
    _header(doc, record)
    _table(doc, record)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()

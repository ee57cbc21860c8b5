"""Spreadsheets of segments (CSV, XLSX), for teams that build records of victims from many testimonies.

One row per segment, the same columns in both: rows of several testimonies can be stacked, and each
row's link opens the moment in its bundle's viewer (`index.html#t=SECONDS`, relative to the bundle).
"""

from __future__ import annotations

import csv
import io

from pipeline.archive.documents.record import Record, Row, right_to_left, seconds

COLUMNS = ("bundle", "segment", "start", "end", "speaker", "original", "english", "flags", "checked", "link")
FORMULA = ("=", "+", "-", "@")  # a cell starting so is a formula to Excel and LibreOffice


def values(record: Record, row: Row) -> list:
    """The row's cells, typed (numbers stay numbers in XLSX)."""
    return [record.bundle_id, row.segment, float(seconds(row.start)), float(seconds(row.end)), row.speaker or "",
            row.original, row.english or "", " ".join(row.flags), "true" if row.checked else "false", row.link]


def _inert(value) -> str:
    """A CSV cell that a spreadsheet shows as text: one that would start a formula gets a leading `'`."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA) else text


def csv_bytes(record: Record) -> bytes:
    """UTF-8 with a byte-order mark, which Excel needs to read Cyrillic and Arabic as such."""
    out = io.StringIO(newline="")
    table = csv.writer(out, lineterminator="\r\n")
    table.writerow(COLUMNS)
    for row in record.rows:
        table.writerow([_inert(v) if isinstance(v, str) else v for v in values(record, row)])
    return out.getvalue().encode("utf-8-sig")


def _about(book, record: Record) -> None:
    """A second sheet naming what the rows are evidence of."""
    sheet = book.create_sheet("about")
    for key, value in (("file", record.file_name), ("source sha256", record.sha256), ("bundle", record.bundle_name),
                       ("language", record.language), ("asr model", record.asr), ("translation", record.translation),
                       ("revision", str(record.revision)), ("revision sha256", record.revision_sha256),
                       ("custody", record.custody.summary())):
        sheet.append([key, value])
        sheet.cell(sheet.max_row, 2).data_type = "s"
    sheet.column_dimensions["A"].width, sheet.column_dimensions["B"].width = 18, 90


def _write_row(sheet, record: Record, row: Row) -> None:
    from openpyxl.styles import Alignment, PatternFill

    sheet.append(values(record, row))
    n = sheet.max_row
    for column in (5, 6, 7):  # free text: never a formula, whatever it starts with
        sheet.cell(n, column).data_type = "s"
    original = sheet.cell(n, 6)
    rtl = right_to_left(row.original)
    original.alignment = Alignment(wrap_text=True, vertical="top", horizontal="right" if rtl else None,
                                   readingOrder=2 if rtl else 0)
    sheet.cell(n, 7).alignment = Alignment(wrap_text=True, vertical="top")
    link = sheet.cell(n, 10)
    link.hyperlink, link.style = row.link, "Hyperlink"
    if row.marked:
        for cell in sheet[n]:
            cell.fill = PatternFill("solid", fgColor="FFF3C4")


def xlsx(record: Record) -> bytes:
    """The segments sheet (header frozen, marked rows shaded, links live) and an `about` sheet."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = "segments"
    sheet.append(list(COLUMNS))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    for row in record.rows:
        _write_row(sheet, record, row)
    for letter, width in zip("ABCDEFGHIJ", (14, 8, 9, 9, 14, 50, 50, 24, 8, 22)):
        sheet.column_dimensions[letter].width = width
    _about(book, record)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()

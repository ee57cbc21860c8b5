"""OHMS-style XML, for archives that run the Oral History Metadata Synchronizer viewer.

One `record` in OHMS's namespace: an index point per segment (time in whole seconds, a title from the
segment's first words, its text as the partial transcript) in `index`, the same points in English in
`index_alt`, the transcript one segment a line in `transcript` and its English twin in `transcript_alt`,
with `sync` / `sync_alt` placing each minute on a line as OHMS's legacy transcripts do.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from pipeline.archive.documents.record import Record, Row, clock

NS = "https://www.weareavp.com/nunncenter/ohms"
VERSION = "5.4"
TITLE_WORDS = 8
LANGUAGES = {"kk": "Kazakh", "ug": "Uyghur", "en": "English"}


def _add(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, tag, attrs)
    child.text = text
    return child


def title(text: str) -> str:
    """An index point's title: the segment's first words."""
    words = text.split()
    return " ".join(words[:TITLE_WORDS]) + (" …" if len(words) > TITLE_WORDS else "")


def _line(row: Row, text: str) -> str:
    """One transcript line; OHMS reads a leading `NAME:` as the speaker."""
    line = " ".join(text.split())
    return f"{row.speaker.upper()}: {line}" if row.speaker else line


def _index(parent: ET.Element, tag: str, rows: list[tuple[Row, str]]) -> None:
    index = _add(parent, tag)
    for row, text in rows:
        point = _add(index, "point")
        _add(point, "time", str(int(row.start)))  # OHMS wants whole seconds
        _add(point, "title", title(text))
        _add(point, "partial_transcript", text)
        _add(point, "synopsis", text)
        _add(point, "keywords", "")
        _add(point, "subjects", "")


def sync(rows: list[Row], duration: float | None) -> str:
    """OHMS's legacy sync: `1:` (one-minute interval) then, for each minute, `|line(word)` of the line
    being spoken then (lines counted from 1, word 1 of the line)."""
    end = duration if duration else (rows[-1].end if rows else 0.0)
    marks = []
    for minute in range(1, math.floor(end / 60) + 1):
        line = sum(1 for row in rows if row.start <= minute * 60) or 1
        marks.append(f"|{line}(1)")
    return "1:" + "".join(marks)


def _duration(seconds: float | None) -> str:
    """H:MM:SS, OHMS's duration (no tenths)."""
    return clock(seconds or 0.0).rsplit(".", 1)[0]


def _metadata(record_el: ET.Element, record: Record) -> None:
    _add(record_el, "version", VERSION)
    _add(record_el, "title", record.file_name)
    _add(record_el, "accession", record.bundle_id)
    _add(record_el, "duration", _duration(record.duration))
    _add(record_el, "language", LANGUAGES.get(record.language, record.language))
    _add(record_el, "transcript_alt_lang", "English")
    _add(record_el, "translate", "1")
    _add(record_el, "rights", f"source sha256 {record.sha256}; revision {record.revision} "
         f"(sha256 {record.revision_sha256})")


def ohms_xml(record: Record) -> bytes:
    """The OHMS XML document, UTF-8, in OHMS's namespace as the default one (no `ns0:` prefixes)."""
    ET.register_namespace("", NS)
    root = ET.Element(f"{{{NS}}}ROOT")
    record_el = _add(root, "record", id=record.bundle_id, dt=record.custody.arrival or "")
    _metadata(record_el, record)
    originals = [(row, " ".join(row.original.split())) for row in record.rows]
    english = [(row, " ".join((row.english or "").split())) for row in record.rows]
    _index(record_el, "index", originals)
    _index(record_el, "index_alt", english)
    _add(record_el, "transcript", "\n".join(_line(row, text) for row, text in originals))
    _add(record_el, "transcript_alt", "\n".join(_line(row, text) for row, text in english))
    _add(record_el, "sync", sync(record.rows, record.duration))
    _add(record_el, "sync_alt", sync(record.rows, record.duration))
    for element in root.iter():  # every element in OHMS's namespace, not just the root
        if not element.tag.startswith("{"):
            element.tag = f"{{{NS}}}{element.tag}"
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)

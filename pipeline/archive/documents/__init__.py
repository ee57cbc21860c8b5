"""Documents for people outside the pipeline: DOCX, CSV, XLSX and OHMS XML of one testimony.

One factory for every format, in the spirit of openai-whisper's `get_writer`: `writer(fmt)` gives the
function that turns a bundle's `Record` into the document's bytes, and `document` / `write_document`
are the only ways `testimony get`, `testimony export`, the review workspace and the Prefect artifact
make one. Documents are made on request from the bundle and never written into it, so its manifest and
custody chain stay as published.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline import atomic
from pipeline.archive.documents.record import Record, read
from pipeline.errors import TestimonyError


@dataclass(frozen=True)
class Format:
    """A document format: its file extension, media type, and the writer behind it (module, function)."""

    extension: str
    media_type: str
    module: str
    function: str


FORMATS: dict[str, Format] = {
    "docx": Format("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "word", "docx"),
    "csv": Format("csv", "text/csv; charset=utf-8", "sheets", "csv_bytes"),
    "xlsx": Format("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "sheets", "xlsx"),
    "ohms": Format("xml", "application/xml", "ohms", "ohms_xml"),
}


class DocumentFormatError(TestimonyError):
    """A format nobody writes: the message lists those there are."""


def check_format(fmt: str) -> Format:
    """The format named `fmt`, or an error that says which exist."""
    if fmt not in FORMATS:
        raise DocumentFormatError(f"no document format {fmt!r}: one of {', '.join(FORMATS)}")
    return FORMATS[fmt]


def writer(fmt: str) -> Callable[[Record], bytes]:
    """The writer of one format; its library (python-docx, openpyxl) is imported only when asked for."""
    spec = check_format(fmt)
    module = importlib.import_module(f"{__name__}.{spec.module}")
    return getattr(module, spec.function)


def file_name(record_or_id: Record | str, fmt: str) -> str:
    """`<id>.<ext>`: the name a document is saved under (a download, an export's entry)."""
    key = record_or_id if isinstance(record_or_id, str) else record_or_id.bundle_id
    return f"{key}.{check_format(fmt).extension}"


def workspace_link(bundle_id: str, fmt: str) -> str | None:
    """The document's download from the review workspace serve runs on this machine (it asks for
    credentials); None when serve runs without one."""
    check_format(fmt)
    from pipeline.archive.viewer import workspace_url

    return workspace_url(f"/api/bundles/{bundle_id}/document?format={fmt}")


def offers(bundle_id: str) -> list[str]:
    """Markdown lines naming every document: the command that writes it, and its workspace download."""
    lines = []
    for fmt in FORMATS:
        link = workspace_link(bundle_id, fmt)
        lines.append(f"- {fmt.upper()}: `testimony get {bundle_id} --format {fmt} -o {file_name(bundle_id, fmt)}`"
                     + (f" or [download]({link})" if link else ""))
    return lines


def document(bundle: Path, fmt: str) -> bytes:
    """The document of a published bundle in `fmt`."""
    make = writer(fmt)
    return make(read(bundle))


def write_document(bundle: Path, fmt: str, dest: Path) -> Path:
    """Write the document to `dest` atomically (a reader never finds half a file); returns `dest`."""
    data = document(bundle, fmt)
    with atomic.replacing(dest, binary=True) as f:
        f.write(data)
    return dest

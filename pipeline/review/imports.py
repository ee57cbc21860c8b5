"""Corrections made elsewhere come back in: an SRT or WebVTT a reviewer edited in Subtitle Edit or a
text editor, mapped onto the bundle's segments by time and saved as one revision by a named account.

Times are the anchor, not cue numbers: an editor may renumber, drop or join cues, but a cue that lies
on a segment (most of the cue inside it) corrects that segment, and every segment a cue corrects is
marked checked. A cue that lies on no segment, or straddles two, is refused with its line number:
guessing where words belong is how testimony gets attributed to the wrong moment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.review.revisions import ReviewError

TIMES = re.compile(r"^\s*(\d+:)?(\d{1,2}):(\d{2})[,.](\d{3})\s*-->\s*(\d+:)?(\d{1,2}):(\d{2})[,.](\d{3})")
VOICE = re.compile(r"^<v(?:\.[^ >]*)?\s+([^>]*)>")
CONTENTS = ("original", "english", "bilingual")
MOST = 0.5  # share of a cue's time that must lie inside one segment
STRADDLE = 0.25  # share inside a second segment that makes the cue ambiguous


@dataclass(frozen=True)
class Cue:
    line: int  # where its time line is in the file, counted from 1
    start: float
    end: float
    lines: tuple[str, ...]


def _seconds(hours: str | None, minutes: str, secs: str, millis: str) -> float:
    return int((hours or "0:")[:-1]) * 3600 + int(minutes) * 60 + int(secs) + int(millis) / 1000


def read_cues(path: Path) -> list[Cue]:
    """Every cue of an SRT or WebVTT file; a file that holds none, or a cue whose end is not after its
    start, is refused with its line."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ReviewError(f"{path}: cannot read it as UTF-8 subtitles ({exc})") from None
    cues, n = [], 0
    while n < len(lines):
        if (m := TIMES.match(lines[n])) is None:
            n += 1
            continue
        start, end = _seconds(*m.group(1, 2, 3, 4)), _seconds(*m.group(5, 6, 7, 8))
        if end <= start:
            raise ReviewError(f"{path}:{n + 1}: the cue ends before it starts; fix its times")
        text, n = _text(lines, n + 1)
        cues.append(Cue(n - len(text), start, end, tuple(text)))
    if not cues:
        raise ReviewError(f"{path}: no subtitle cues found (expected SRT or WebVTT with `-->` time lines)")
    return cues


def _text(lines: list[str], n: int) -> tuple[list[str], int]:
    """The cue's text lines from `n` to the next blank line, and where reading stopped."""
    text = []
    while n < len(lines) and lines[n].strip():
        text.append(lines[n].strip())
        n += 1
    return text, n


CLOCK = re.compile(r"^\s*(\d+):(\d{2}):(\d{2})\.(\d)\s*[–-]\s*(\d+):(\d{2}):(\d{2})\.(\d)\s*$")
UNTRANSLATED = "(untranslated)"


def read_docx_cues(path: Path) -> list[Cue]:
    """The rows of a testimony DOCX's segment table (Time, Speaker, Original, English) as bilingual
    cues; `line` is the table row. Times there are to a tenth of a second, which the overlap absorbs."""
    import docx

    try:
        tables = docx.Document(str(path)).tables
    except Exception as exc:  # python-docx raises several kinds for a file that is not a DOCX
        raise ReviewError(f"{path}: not a DOCX this program wrote ({type(exc).__name__})") from None
    table = next((t for t in tables if [c.text for c in t.rows[0].cells][1:2] == ["Time"]), None)
    if table is None:
        raise ReviewError(f"{path}: no segment table (a header row with Time, Speaker, Original, English)")
    return [_row_cue(path, n, [c.text.strip() for c in row.cells]) for n, row in enumerate(table.rows) if n]


def _row_cue(path: Path, n: int, cells: list[str]) -> Cue:
    if len(cells) < 5 or (m := CLOCK.match(cells[1])) is None:
        raise ReviewError(f"{path}: table row {n}: expected its time as H:MM:SS.s–H:MM:SS.s, found {cells[1:2]}")
    h1, m1, s1, d1, h2, m2, s2, d2 = (int(g) for g in m.groups())
    english = "" if cells[4] == UNTRANSLATED else cells[4]
    start, end = h1 * 3600 + m1 * 60 + s1 + d1 / 10, h2 * 3600 + m2 * 60 + s2 + d2 / 10
    if end < start:
        raise ReviewError(f"{path}: table row {n}: the row ends before it starts; keep the times it had")
    # the document cut each time down to its tenth: the true times lie within the tenth after each
    return Cue(n, start + 0.05, end + 0.05 + (0.05 if end == start else 0.0), (cells[3], english))


def read_any(path: Path) -> tuple[list[Cue], str]:
    """(cues, what they hold) from a returned SRT, VTT or DOCX."""
    if path.suffix.lower() == ".docx":
        return read_docx_cues(path), "bilingual"
    return read_cues(path), content_of(path)


def content_of(path: Path) -> str:
    """What a rendering's name says it holds: `kk-en.srt` both lines, `en.srt` English, else the original."""
    stem = path.name.rsplit(".", 1)[0].lower()
    return "bilingual" if stem.endswith("-en") else "english" if stem == "en" or stem.endswith(".en") else "original"


def _overlap(cue: Cue, seg: dict) -> float:
    return max(0.0, min(cue.end, seg["end"]) - max(cue.start, seg["start"]))


def _target(path: Path, cue: Cue, segments: list[dict]) -> int:
    """The index of the one segment the cue lies on, or a refusal naming the line."""
    length = max(cue.end - cue.start, 1e-6)  # read_cues and _row_cue refuse a cue that ends before it starts
    shares = sorted(((_overlap(cue, s) / length, i) for i, s in enumerate(segments)), reverse=True)
    if len(shares) > 1 and shares[1][0] >= STRADDLE:
        raise ReviewError(f"{path}:{cue.line}: this cue straddles two segments; split it at their boundary")
    if not shares or shares[0][0] < MOST:
        raise ReviewError(f"{path}:{cue.line}: no segment lies under this cue's times; keep the times the "
                          "transcript gave (only the text may change)")
    return shares[0][1]


def _strip_speaker(text: str, names: set[str]) -> str:
    """The cue's words without the `Name: ` or `<v Name>` the rendering put in front."""
    if (m := VOICE.match(text)) is not None:
        return text[m.end():].strip()
    head, sep, rest = text.partition(": ")
    return rest.strip() if sep and head in names else text


def apply_cues(path: Path, segments: list[dict], cues: list[Cue], content: str,
               names: set[str]) -> list[dict]:
    """The segments with the cues' words in place and every corrected segment checked."""
    if content not in CONTENTS:
        raise ReviewError(f"unknown content {content!r}: one of {', '.join(CONTENTS)}")
    found: dict[int, list[Cue]] = {}
    for cue in cues:
        found.setdefault(_target(path, cue, segments), []).append(cue)
    out = [dict(s) for s in segments]
    for index, on in found.items():
        before = out[index].get("translation")
        out[index].update(_fields(on, content, names), checked=True)
        if out[index].get("translation") == before:  # English the file did not change keeps its source
            out[index]["english_source"] = segments[index].get("english_source")
        elif not before:
            out[index]["english_source"] = "written"
    return out


def _fields(cues: list[Cue], content: str, names: set[str]) -> dict[str, Any]:
    """The fields a segment's cues set: its original, its English (then the person's), or both."""
    first = [_strip_speaker(c.lines[0], names) if c.lines else "" for c in cues]
    rest = [" ".join(c.lines[1:]) for c in cues]
    if content == "original":
        return {"text": " ".join(_strip_speaker(" ".join(c.lines), names) for c in cues)}
    if content == "english":
        return {"translation": " ".join(_strip_speaker(" ".join(c.lines), names) for c in cues),
                "english_source": "edited"}
    return {"text": " ".join(first), "translation": " ".join(r for r in rest if r) or None,
            "english_source": "edited"}


def import_file(archive: Path, sha256: str, path: Path, author: str, content: str | None = None):
    """Save a returned SRT, VTT or DOCX as one revision by `author`, an account of the archive that may
    sign in; custody records the file's name and SHA-256. Returns the save (`save.Saved`)."""
    from pipeline.archive.bundle import TRANSCRIPT, find_bundle
    from pipeline.hashing import file_sha256
    from pipeline.review import accounts, revisions
    from pipeline.review.save import save_revision
    from pipeline.transcript import Transcript

    account = accounts.get(archive, author)
    if account is None or account.disabled or account.locked:
        raise ReviewError(f"--as {author}: no account of that name may sign in (see `testimony users list`)")
    cues, found = read_any(path)
    bundle = find_bundle(archive, sha256)
    if bundle is None:
        raise ReviewError(f"no bundle for {sha256[:12]} in {archive}")
    transcript = Transcript.load(bundle / TRANSCRIPT)
    if not account.can_edit(transcript.language):
        raise ReviewError(f"--as {author}: a {account.role} of {','.join(account.languages) or 'no language'} "
                          f"may not change a {transcript.language} transcript")
    newest = revisions.newest(bundle)
    segments = apply_cues(path, newest.segments, cues, content or found, _speaker_names(transcript))
    saved = save_revision(archive, sha256, base=newest.sha256, author=account.name, segments=segments,
                          origin={"file": path.name, "sha256": file_sha256(path)})
    if not saved.unchanged:  # as a save in the workspace: an approved text that changed is in review again
        from pipeline.review import workflow

        workflow.after_save(archive, sha256, account)
    return saved


def _speaker_names(transcript) -> set[str]:
    """Every way a rendering may have written a speaker in front of a line: its label and its name."""
    from pipeline.archive.formats import speaker_name

    return {n for seg in transcript.segments for n in (seg.speaker, speaker_name(transcript, seg)) if n}
